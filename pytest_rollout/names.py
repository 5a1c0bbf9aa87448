"""Names the plugin checks as Kubernetes and kind do: one pattern each, one message each."""

from __future__ import annotations

import re

from pytest_rollout.errors import ConfigError

DNS_LABEL_MAX_LENGTH = 63
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""An RFC 1123 label (``IsDNS1123Label``): namespaces, container names, most object names."""

KIND_CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")
"""A kind cluster: a DNS label short enough for kind's ``<name>-control-plane`` node names."""


def is_dns_label(text: str) -> bool:
    return DNS_LABEL.fullmatch(text) is not None


def check_namespace_name(name: str) -> str:
    """``name``, when it can name a namespace; else a ConfigError saying what can."""
    if not is_dns_label(name):
        raise ConfigError(
            f"namespace {name!r}: must be a DNS-1123 label (lower-case alphanumerics and '-', "
            f"at most {DNS_LABEL_MAX_LENGTH} characters)"
        )
    return name


def check_kind_cluster_name(name: str) -> str:
    """``name``, when it can name a kind cluster; else a ConfigError saying what can."""
    if KIND_CLUSTER_NAME.fullmatch(name) is None:
        raise ConfigError(
            f"kind cluster name {name!r}: expected lowercase letters, digits and '-' "
            "(at most 42 characters, starting and ending with a letter or digit)"
        )
    return name
