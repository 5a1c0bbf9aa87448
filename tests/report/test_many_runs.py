"""An experiment of many release runs (the same releases through several gates) stays readable:
its runs wrap into bands of at most four; and a web metric's JSON answer is shown as text
rather than as whichever number comes first in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_rollout.report.build import render_experiment
from pytest_rollout.report.charts import MAX_COLUMNS
from tests.report.sample_report import RELEASED_AT, bad_canary

JUDGE_ANSWER = (
    '{"alpha":0.01,"decision":"continue","e_value":1.7,"looks":3,"p_value":0.58,'
    '"reason":"no evidence against the canary yet"}'
)


def _many_runs(report: Path, runs: int) -> Path:
    """The bad canary's run repeated ``runs`` times, each analysed by a web metric too."""
    directory = bad_canary(report)
    timeline = json.loads((directory / "timeline.json").read_text())
    (template,) = timeline["runs"]
    copies: list[dict[str, Any]] = []
    for index in range(runs):
        run = json.loads(json.dumps(template))
        run["label"] = f"gate-{index // 4}/release-{index % 4}"
        run["analysis"].append(
            {
                "t": RELEASED_AT + 5.0,
                "run": "judge-run",
                "metric": "sequential-judge",
                "phase": "Successful",
                "value": None,
                "value_text": JUDGE_ANSWER,
                "message": "",
                "success_condition": 'result.decision in ["continue", "pass"]',
                "failure_condition": 'result.decision == "fail"',
                "thresholds": [],
            }
        )
        copies.append(run)
    timeline["runs"] = copies
    (directory / "timeline.json").write_text(json.dumps(timeline))
    return directory


def test_more_than_four_runs_wrap_into_bands_of_four(tmp_path: Path) -> None:
    four = render_experiment(_many_runs(tmp_path / "four", MAX_COLUMNS))
    eight = render_experiment(_many_runs(tmp_path / "eight", 2 * MAX_COLUMNS))
    assert eight.size[0] == four.size[0], "as wide as one band of four"
    assert 1.8 * four.size[1] < eight.size[1] < 2.2 * four.size[1], (four.size, eight.size)


def test_a_json_answer_is_shown_as_text_on_the_page(tmp_path: Path) -> None:
    rendered = render_experiment(_many_runs(tmp_path / "report", 1))
    page = rendered.page.read_text()
    assert "<code>{&quot;alpha&quot;:0.01,&quot;decision&quot;:&quot;continue&quot;" in page
    assert "no evidence against the canary yet" in page
