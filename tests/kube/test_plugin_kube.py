"""The kube backend through the plugin: the header line and one-line failures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_rollout._proc import free_port
from pytest_rollout.backends.kube import versions

pytest_plugins = ["pytester"]

CONFIG = """
manifests = ["deploy"]

[images."example/web"]
command = ["{python}", "-m", "http.server", "--bind", "{host}", "{port}"]

[[requests]]
path = "/"

[version]
header = "X-Version"
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: example/web:1
          ports: [{containerPort: 8000}]
"""

TEST = """
def test_needs_the_cluster(rollout_cluster):
    pass
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", rollout=textwrap.dedent(CONFIG))
    (pytester.path / "deploy").mkdir()
    (pytester.path / "deploy" / "web.yaml").write_text(DEPLOYMENT)
    pytester.makepyfile(test_cluster=TEST)
    return pytester


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


def _program(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _kubeconfig(path: Path) -> Path:
    server = f"https://127.0.0.1:{free_port()}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "ci", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ci",
            }
        )
    )
    return path


def _assert_one_line_failure(result: pytest.RunResult, expected: str) -> None:
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{expected}*"])
    text = result.stdout.str()
    assert "Traceback" not in text, text
    assert "raise " not in text, text


def test_without_kind_the_run_fails_with_one_line_naming_it(
    project: pytest.Pytester, bare_path: Path
) -> None:
    result = project.runpytest("--rollout-backend=kube", "-p", "no:randomly")
    result.stdout.fnmatch_lines(
        ["rollout: kube: kind cluster 'pytest-rollout': `kind` not found on PATH"]
    )
    _assert_one_line_failure(
        result,
        "--rollout-backend=kube: `kind`, `kubectl`, `docker` not found on PATH: `kind` (creates "
        "the Kubernetes cluster): install it from https://kind.sigs.k8s.io/*",
    )


def test_an_unreachable_kubeconfig_fails_with_one_line(project: pytest.Pytester) -> None:
    config = _kubeconfig(project.path / "kubeconfig")
    result = project.runpytest(
        "--rollout-backend=kube", f"--rollout-kubeconfig={config}", "--rollout-context=ci",
        "-p", "no:randomly",
    )  # fmt: skip
    where = f"kubeconfig {config} (context ci)"
    result.stdout.fnmatch_lines(
        [
            "rollout: pytest-rollout *, kubernetes the existing cluster's, argo-rollouts *",
            f"rollout: kube: existing cluster from {where} (reused, never deleted)",
        ]
    )
    _assert_one_line_failure(
        result,
        f"--rollout-backend=kube: {where}: the cluster's API server*unreachable*",
    )


def test_the_header_says_a_kind_cluster_will_be_created_or_reused(
    project: pytest.Pytester, bare_path: Path
) -> None:
    # A stand-in for the kind CLI (none is installed here): it answers `kind get clusters`.
    _program(bare_path, "kind", 'echo "No kind clusters found." >&2')
    result = project.runpytest("--rollout-backend=kube", "--collect-only")
    image = versions.KIND_NODE_IMAGES[versions.DEFAULT_KUBERNETES].partition("@")[0]
    expected = f"will be created ({image}); deleted after the run"
    result.stdout.fnmatch_lines([f"rollout: kube: kind cluster 'pytest-rollout' {expected}"])
    # The cluster's versions, not the local backend's HAProxy and Prometheus.
    runs = (
        f"kubernetes {image.rpartition(':')[2]}, argo-rollouts {versions.ARGO_ROLLOUTS}, "
        f"gatewayapi-plugin {versions.GATEWAY_API_PLUGIN}, traefik {versions.TRAEFIK}, python "
    )
    result.stdout.fnmatch_lines([f"rollout: pytest-rollout *, backend=kube, *{runs}*"])
    assert "haproxy" not in result.stdout.str()
    result = project.runpytest(
        "--rollout-backend=kube", "--rollout-keep-cluster", "--rollout-kind-cluster=ci-1",
        "--collect-only",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["*kind cluster 'ci-1' will be created (*); kept (--rollout-keep-cluster)"]
    )
    _program(bare_path, "kind", "echo ci-1")
    result = project.runpytest(
        "--rollout-backend=kube", "--rollout-kind-cluster=ci-1", "--collect-only"
    )
    result.stdout.fnmatch_lines(
        ["rollout: kube: kind cluster 'ci-1' exists: reused (never deleted by this run)"]
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--rollout-kubeconfig=nowhere/kubeconfig",
            "kubeconfig 'nowhere/kubeconfig' is not a file",
        ),
        ("--rollout-context=", "context name must not be empty"),
        ("--rollout-kind-cluster=Bad_Name", "kind cluster name 'Bad_Name'"),
    ],
)
def test_bad_kube_options_are_usage_errors(
    project: pytest.Pytester, option: str, message: str
) -> None:
    result = project.runpytest("--rollout-backend=kube", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_the_kube_options_are_in_the_help(project: pytest.Pytester) -> None:
    result = project.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*--rollout-kubeconfig=PATH*",
            "*--rollout-context=NAME*",
            "*--rollout-keep-cluster*",
            "*--rollout-kind-cluster=NAME*",
        ]
    )
