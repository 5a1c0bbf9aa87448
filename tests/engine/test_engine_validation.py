"""Manifest sets checked against the engine's subset before anything is applied."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_rollout.config_file import load_target_config
from pytest_rollout.engine.validation import check_manifests
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import parse_manifests

DOCUMENTS = textwrap.dedent(
    """\
    apiVersion: v1
    kind: Service
    metadata:
      name: web
    spec:
      selector: {app: web}
      ports: [{port: 80}]
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: AnalysisTemplate
    metadata:
      name: t
    spec:
      dryRun: [{metricName: m}]
      metrics:
        - name: m
          provider:
            job:
              metadata: {labels: {team: web}}
              spec:
                template:
                  spec:
                    restartPolicy: Never
                    containers: [{name: c, image: i}]
    ---
    apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    metadata:
      name: web
    spec:
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec: {containers: [{name: app, image: i}]}
      strategy:
        blueGreen:
          activeService: web
          antiAffinity: {}
    """
)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_every_problem_of_every_document_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        check_manifests(parse_manifests(DOCUMENTS, Path("set.yaml")))
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 manifests are outside what the rollout engine supports:"
    unsupported = [
        line.split(": unsupported: ")[1].split(" (")[0] for line in lines if "unsupported: " in line
    ]
    assert unsupported == [
        "spec.dryRun",
        "spec.metrics[0].provider.job.metadata",
        "spec.strategy.blueGreen.antiAffinity",
    ]


def test_a_supported_set_passes() -> None:
    unsupported = ("dryRun:", "metadata: {labels: {team", "antiAffinity:")
    supported = "".join(
        line
        for line in DOCUMENTS.splitlines(keepends=True)
        if not any(u in line for u in unsupported)
    )
    check_manifests(parse_manifests(supported, Path("set.yaml")))


def test_a_manifest_set_is_checked_when_it_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "app.yaml").write_text(DOCUMENTS)
    (tmp_path / "rollout.toml").write_text(
        textwrap.dedent(
            """\
            manifests = ["k8s"]

            [images."i"]
            command = ["run"]

            [[requests]]
            path = "/"

            [version]
            header = "X-Version"
            """
        )
    )
    target = load_target_config([tmp_path])
    with pytest.raises(ConfigError, match=r"unsupported: spec\.strategy\.blueGreen\.antiAffinity"):
        target.load_manifests()
