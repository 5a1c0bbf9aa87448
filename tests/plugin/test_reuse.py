"""Another team's service, run through every safety property by configuration only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.shop import make_shop_project

# Runs experiments, whose generator must keep its schedule: alone, not beside other tests.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_a_foreign_service_passes_every_declared_experiment(pytester: pytest.Pytester) -> None:
    make_shop_project(pytester)
    result = pytester.runpytest_subprocess(
        "-m", "rollout", "-v", "-p", "no:randomly", "--rollout-report", "report"
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*prometheus addresses: http://prometheus.monitoring:9090 -> the local backend's*",
            "*pyproject.toml::probe PASSED*",
            "*pyproject.toml::contained PASSED*",
            "*pyproject.toml::orders-gate PASSED*",
            "*pyproject.toml::ships PASSED*",
        ]
    )
    report = pytester.path / "report"
    contained = _metrics(report, "contained")
    assert contained["aborted_by"] == "error-ratio"
    assert contained["abort_phase"] == "Failed"
    assert contained["bad_version"] == "two-broken"
    assert 0 < contained["bad_share"] <= 0.10
    assert contained["prometheus_addresses"] == {
        "http://prometheus.monitoring:9090": "the local backend's Prometheus"
    }
    gate = _metrics(report, "orders-gate")
    assert gate["aborted_by"] == "order-success"
    assert gate["metric_phases"]["error-ratio"] == "Successful"
    probe = _metrics(report, "probe")
    assert probe["errors_with_probe"] == 0 < probe["errors_without_probe"]
    assert _metrics(report, "ships")["errors"] == 0


def _metrics(report: Path, experiment: str) -> dict[str, Any]:
    summary = json.loads((report / experiment / "summary.json").read_text())
    assert summary["verdict"] == "passed", summary
    metrics: dict[str, Any] = summary["metrics"]
    return metrics
