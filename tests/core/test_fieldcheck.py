"""Field checks: one message form for every reader of manifests, with the file and line of the
field whenever the manifest is known."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_rollout.backends.local.pod_spec import PodSpec
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import LOCAL_BACKEND_LABEL, FieldRef, UnsupportedFields
from pytest_rollout.manifests import Manifest, parse_manifests

DEPLOYMENT = textwrap.dedent(
    """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
            - name: web
              image: example/web:1
              volumeMounts: []
              ports:
                - containerPort: 8080
                  protocol: UDP
    """
)


def deployment() -> Manifest:
    (manifest,) = parse_manifests(DEPLOYMENT, Path("app.yaml"))
    return manifest


def test_without_a_manifest_the_message_names_the_field_only() -> None:
    where = FieldRef(("spec", "containers", 0), label=LOCAL_BACKEND_LABEL)
    assert str(where.at("volumeMounts").unsupported(["image", "name"])) == (
        "unsupported: spec.containers[0].volumeMounts (supported by the local backend: image, name)"
    )
    assert str(where.at("name").invalid("must be a DNS label", value="Web")) == (
        "invalid: spec.containers[0].name='Web': must be a DNS label"
    )
    assert str(where.at("scheme").unsupported(value="HTTPS", reason="HTTP only")) == (
        "unsupported: spec.containers[0].scheme='HTTPS' (HTTP only)"
    )


def test_with_a_manifest_every_message_names_file_line_and_object() -> None:
    where = FieldRef(("spec", "template", "spec", "containers", 0), deployment())
    assert str(where.at("volumeMounts").unsupported(["image"])) == (
        "app.yaml:13: Deployment/web: unsupported: "
        "spec.template.spec.containers[0].volumeMounts (supported: image)"
    )
    assert str(where.at("name").invalid("must be a DNS label")).startswith(
        "app.yaml:11: Deployment/web: invalid: spec.template.spec.containers[0].name: "
    )


def test_only_rejects_the_first_unknown_key_and_accepts_inert_ones() -> None:
    where = FieldRef(("spec",))
    where.only({"a": 1, "quiet": 2}, ["a"], inert=["quiet"])
    with pytest.raises(ConfigError, match=r"^unsupported: spec\.b \(supported: a, c\)$"):
        where.only({"a": 1, "b": 2, "d": 3}, ["c", "a"])
    with pytest.raises(ConfigError, match=r"^invalid: spec: must be a mapping$"):
        where.mapping([])


def test_entries_are_the_mappings_of_a_list_each_with_its_field() -> None:
    where = FieldRef(("spec", "ports"))
    assert [(str(ref), dict(item)) for ref, item in where.entries([{"a": 1}])] == [
        ("spec.ports[0]", {"a": 1})
    ]
    with pytest.raises(ConfigError, match=r"^invalid: spec.ports: must be a list$"):
        list(where.entries({}))
    with pytest.raises(ConfigError, match=r"^invalid: spec.ports\[1\]: must be a mapping$"):
        list(where.entries([{}, 3]))


def test_a_local_pod_spec_error_points_at_its_line() -> None:
    manifest = deployment()
    with pytest.raises(ConfigError) as caught:
        PodSpec.from_manifest(
            manifest.body["spec"]["template"]["spec"],
            path=("spec", "template", "spec"),
            manifest=manifest,
        )
    assert str(caught.value).startswith(
        "app.yaml:13: Deployment/web: unsupported: spec.template.spec.containers[0].volumeMounts "
        "(supported by the local backend: "
    )


def test_collected_fields_are_reported_together() -> None:
    found = UnsupportedFields(deployment())
    found.check_keys(("spec",), {"selector": {}, "template": {}, "paused": True}, ["template"])
    error = found.error()
    assert error is not None
    assert str(error).splitlines() == [
        "app.yaml: Deployment/web: 2 unsupported fields:",
        "  app.yaml:6: Deployment/web: unsupported: spec.selector (supported: template)",
        "  app.yaml:5: Deployment/web: unsupported: spec.paused (supported: template)",
    ]
    assert UnsupportedFields(deployment()).error() is None
