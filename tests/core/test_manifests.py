"""Loading manifests: documents, origins, envelope checks and one-line errors."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import (
    ManifestSet,
    format_field_path,
    load_manifest_file,
    load_manifests,
    parse_manifests,
)

TWO_OBJECTS = """\
# leading comment
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80
---
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  template:
    spec:
      containers:
        - name: app
          image: example/web:1
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Error messages show paths relative to the working directory.
    monkeypatch.chdir(tmp_path)


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error_of(text: str) -> str:
    path = write("app.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_manifest_file(path)
    return str(caught.value)


def test_documents_become_objects_with_kind_name_and_origin() -> None:
    service, deployment = load_manifest_file(write("app.yaml", TWO_OBJECTS))
    assert (service.api_version, service.kind, service.name) == ("v1", "Service", "web")
    assert (service.group, service.version) == ("", "v1")
    assert (deployment.group, deployment.version, deployment.ref) == (
        "apps",
        "v1",
        "Deployment/web",
    )
    assert str(service.origin) == "app.yaml:2"
    assert (deployment.origin.document, deployment.origin.line) == (2, 11)
    assert deployment.body["spec"]["template"]["spec"]["containers"][0]["image"] == "example/web:1"


def test_field_lines_and_errors_name_file_line_object_and_field() -> None:
    _, deployment = load_manifest_file(write("app.yaml", TWO_OBJECTS))
    path = ("spec", "template", "spec", "containers", 0, "image")
    assert deployment.line_of(path) == 22
    assert deployment.line_of(("spec", "template", "spec", "volumes")) == 19  # nearest written
    error = deployment.error(path, "unsupported")
    assert str(error) == (
        "app.yaml:22: Deployment/web: spec.template.spec.containers[0].image: unsupported"
    )


def test_to_dict_is_a_copy() -> None:
    service, _ = load_manifest_file(write("app.yaml", TWO_OBJECTS))
    copy = service.to_dict()
    copy["spec"]["ports"][0]["port"] = 81
    assert service.body["spec"]["ports"][0]["port"] == 80


def test_timestamps_stay_strings() -> None:
    (manifest,) = parse_manifests(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {day: 2024-01-02}\n",
        Path("c.yaml"),
    )
    assert manifest.body["data"]["day"] == "2024-01-02"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n",
            "app.yaml:5: invalid YAML: key 'name' appears twice in one mapping (lines 4 and 5)",
        ),
        ("apiVersion: v1\nkind: [\n", "app.yaml:3: invalid YAML:"),
        (
            "- 1\n- 2\n",
            "app.yaml:1: document 1: expected a Kubernetes object (a mapping), got a list",
        ),
        (
            "kind: Service\nmetadata: {name: a}\n",
            "app.yaml:1: document 1: apiVersion: expected 'v1' or 'GROUP/VERSION' (e.g. "
            "'apps/v1'), got None",
        ),
        (
            "apiVersion: v1\nkind: service\nmetadata: {name: a}\n",
            "app.yaml:2: document 1: kind: expected a kind such as 'Deployment', got 'service'",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: []\nmetadata: {name: a}\n",
            "app.yaml:2: document 1: kind: List is not supported; write one document per object",
        ),
        (
            "apiVersion: v1\nkind: Service\n",
            "app.yaml:1: document 1: metadata: expected a mapping with a name, got nothing",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: Web_1\n",
            "app.yaml:4: document 1: metadata.name: expected a lowercase RFC 1123 name",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: prod\n",
            "app.yaml:5: document 1: metadata.namespace: not allowed: manifests are namespace-less",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  generateName: a-\n",
            "app.yaml:5: document 1: metadata.generateName: not supported; allowed metadata "
            "fields: annotations, labels, name",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations:\n"
            "    prometheus.io/scrape: true\n",
            "app.yaml:6: document 1: metadata.annotations.prometheus.io/scrape: expected a "
            "string (quote it: 'true'), got a boolean",
        ),
    ],
)
def test_bad_documents_give_one_line_errors(text: str, message: str) -> None:
    error = error_of(text)
    assert error.startswith(message), error
    assert "\n" not in error


def test_second_document_is_counted_in_errors() -> None:
    error = error_of("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n[]\n")
    assert error == "app.yaml:5: document 2: expected a Kubernetes object (a mapping), got a list"


def test_unreadable_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^missing\.yaml: cannot read manifest file"):
        load_manifest_file(Path("missing.yaml"))


def test_objects_of_several_files_in_order_and_unique() -> None:
    first = write("a/one.yaml", TWO_OBJECTS)
    second = write("a/two.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\n")
    manifests = load_manifests([first, second])
    assert [m.ref for m in manifests] == ["Service/web", "Deployment/web", "Service/other"]
    assert len(manifests) == 3
    assert [m.name for m in manifests.of_kind("Service")] == ["web", "other"]
    assert manifests.get("Deployment", "web").origin.path == first

    duplicate = write("a/three.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n")
    with pytest.raises(ConfigError) as caught:
        load_manifests([first, duplicate])
    assert str(caught.value) == (
        "a/three.yaml:1: Service/web is defined twice; first at a/one.yaml:2"
    )


def test_same_name_in_another_group_is_not_a_duplicate() -> None:
    text = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
    )
    assert len(ManifestSet(parse_manifests(text, Path("x.yaml")))) == 2


def test_get_lists_what_there_is() -> None:
    manifests = load_manifests([write("one.yaml", TWO_OBJECTS)])
    with pytest.raises(ConfigError) as caught:
        manifests.get("Service", "api")
    assert str(caught.value) == "no Service named 'api' in one.yaml (Service objects: web)"
    with pytest.raises(ConfigError, match=re.escape("(Rollout objects: none)")):
        manifests.get("Rollout", "web")


def test_field_paths_render_like_kubectl() -> None:
    assert format_field_path(("spec", "containers", 0, "env", 2)) == "spec.containers[0].env[2]"
    assert format_field_path(()) == ""
