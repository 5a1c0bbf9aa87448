"""Names checked as Kubernetes and kind check them."""

from __future__ import annotations

import argparse

import pytest

from pytest_rollout.errors import ConfigError
from pytest_rollout.names import check_kind_cluster_name, check_namespace_name, is_dns_label
from pytest_rollout.options import kind_cluster_name


@pytest.mark.parametrize("name", ["a", "web-1", "0a", "x" * 63])
def test_dns_labels(name: str) -> None:
    assert is_dns_label(name)
    assert check_namespace_name(name) == name


@pytest.mark.parametrize("name", ["", "Web", "-a", "a-", "a_b", "a.b", "x" * 64, "a\n"])
def test_not_dns_labels(name: str) -> None:
    assert not is_dns_label(name)
    with pytest.raises(ConfigError, match=r"must be a DNS-1123 label .* at most 63 characters"):
        check_namespace_name(name)


def test_a_kind_cluster_name_is_a_short_label_on_the_command_line_too() -> None:
    assert check_kind_cluster_name("x" * 42) == "x" * 42
    with pytest.raises(ConfigError, match="at most 42 characters"):
        check_kind_cluster_name("x" * 43)
    with pytest.raises(argparse.ArgumentTypeError, match="kind cluster name 'A'"):
        kind_cluster_name("A")
