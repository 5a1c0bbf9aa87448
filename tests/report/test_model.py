"""Reading the report directory: typed objects, and one-line errors naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rollout.report.model import (
    ReportDataError,
    experiment_dirs,
    read_experiment,
    read_session,
    read_summary,
    read_timeline,
)
from tests.report.sample_report import RELEASED_AT, bad_canary, full_report, write_summary


def test_sample_report_reads_into_typed_objects(tmp_path: Path) -> None:
    report = full_report(tmp_path)
    assert [d.name for d in experiment_dirs(report)] == [
        "bad-canary",
        "readiness-probe",
        "smoke-gate",
        "strategy-cost",
    ]
    session = read_session(report)
    assert session is not None
    assert session.backend == "local"
    assert session.argv[:3] == ("pytest", "-m", "rollout")

    canary = read_experiment(report / "bad-canary")
    assert canary.summary.verdict == "passed"
    assert canary.summary.kind == "canary-containment"
    assert canary.summary.headline.startswith("bad share 3.1%")
    (run,) = canary.runs
    assert run.released_at == RELEASED_AT
    assert run.rel(run.rollback_at or 0) == pytest.approx(12.2)
    assert run.blast_radius is not None
    assert [m.thresholds for m in run.analysis] == [(0.05,), (0.95,)]
    assert run.status[0].step == 1
    assert run.status[0].steps == 3
    weight_events = [e.message for e in run.events if e.reason == "TrafficWeightUpdated"]
    assert weight_events[0] == "Traffic weight updated ", "Argo's text kept, trailing space too"

    cost = read_experiment(report / "strategy-cost")
    assert [r.strategy for r in cost.runs] == ["canary", "blue_green", "rolling"]
    assert max(p.ready + p.not_ready for p in cost.runs[1].resources) == 8


def test_summary_without_the_newer_keys_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text(
        json.dumps(
            {"experiment": "old", "backend": "local", "verdict": "failed", "metrics": {"a": 1}}
        )
    )
    summary = read_summary(path)
    assert (summary.headline, summary.kind, summary.finished, summary.events) == (
        "",
        None,
        None,
        (),
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", r"summary\.json: not JSON"),
        ("[]", r"summary\.json: expected an object, got a list"),
        ('{"experiment": "x", "verdict": "won"}', r"verdict 'won'; allowed: passed, failed"),
        ('{"experiment": 3}', r"summary\.json\.experiment: expected a non-empty string, got 3"),
        ('{"experiment": "x", "metrics": [1]}', r"\.metrics: expected an object, got a list"),
    ],
)
def test_bad_summary_names_file_and_field(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "summary.json"
    path.write_text(content)
    with pytest.raises(ReportDataError, match=expected) as caught:
        read_summary(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            {"traffic": "t.csv", "released_at": 1.0},
            r"runs\[0\]\.label: expected a non-empty string",
        ),
        ({"label": "a", "released_at": "soon"}, r"runs\[0\]\.released_at: expected a number"),
        (
            {"label": "a", "released_at": 1.0, "status": [{"t": 1.0, "weight": 2.5}]},
            r"runs\[0\]\.status\[0\]\.weight: expected an integer or null, got 2\.5",
        ),
        (
            {"label": "a", "released_at": 1.0, "window": {"blast_radius": [5, 1]}},
            r"window\.blast_radius: expected \[start, end\] with start <= end",
        ),
        (
            {"label": "a", "released_at": 1.0, "analysis": [{"t": 1, "metric": "m"}]},
            r"analysis\[0\]\.phase: expected a non-empty string, got nothing",
        ),
        (
            {"label": "a", "released_at": 1.0, "resources": [{"t": 1, "ready": True}]},
            r"resources\[0\]\.ready: expected an integer or null, got True",
        ),
    ],
)
def test_bad_timeline_names_the_field(
    tmp_path: Path, run: dict[str, object], expected: str
) -> None:
    path = tmp_path / "timeline.json"
    path.write_text(json.dumps({"runs": [run]}))
    with pytest.raises(ReportDataError, match=expected):
        read_timeline(path)


def test_timeline_naming_a_missing_traffic_file_is_an_error(tmp_path: Path) -> None:
    directory = bad_canary(tmp_path)
    (directory / "traffic.csv").unlink()
    with pytest.raises(ReportDataError, match=r"traffic file 'traffic\.csv' is not in"):
        read_experiment(directory)


def test_experiment_without_timeline_has_no_runs(tmp_path: Path) -> None:
    write_summary(tmp_path / "old", "old", verdict="passed")
    experiment = read_experiment(tmp_path / "old")
    assert experiment.runs == ()
    assert experiment.name == "old"
