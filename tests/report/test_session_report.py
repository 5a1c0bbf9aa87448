"""At the end of a session that wrote evidence the plugin stamps the session record, builds
the HTML report and, on GitHub Actions, appends the job summary (pytester, real sessions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

EXPERIMENTS = """
def test_one(rollout_evidence):
    evidence = rollout_evidence("exp-one")
    evidence.headline = "3 of 10 requests failed"
    evidence.kind = "demo"
    evidence.record(requests=10, failures=3)

def test_two(rollout_evidence):
    evidence = rollout_evidence("exp-two")
    evidence.record(requests=5)
    assert False, "5 requests were not enough"
"""


def test_report_built_at_session_end(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(EXPERIMENTS)
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = pytester.runpytest_subprocess(
        "--rollout-report", "report", "--junitxml", "junit.xml", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["rollout report: *index.html: 2 experiment(s)*"])
    report = pytester.path / "report"

    session = json.loads((report / "_session.json").read_text())
    assert session["backend"] == "local"
    assert session["started"] <= session["finished"]
    assert session["header"][1].startswith("rollout: pytest-rollout ")
    assert session["argv"][-4:] == ["--junitxml", "junit.xml", "-p", "no:cacheprovider"]

    index = (report / "index.html").read_text()
    assert '<a href="exp-one/index.html">exp-one</a>' in index
    assert "3 of 10 requests failed" in index
    assert "5 requests were not enough" in index, "the message stands in for a headline"
    for name in ("exp-one", "exp-two"):
        assert (report / name / "index.html").is_file()
        with Image.open(report / name / "timeline.png") as image:
            assert image.width >= 1000
            assert image.height >= 500

    summary = json.loads((report / "exp-one" / "summary.json").read_text())
    assert (summary["headline"], summary["kind"]) == ("3 of 10 requests failed", "demo")

    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="exp-one.headline" value="3 of 10 requests failed"' in junit
    assert 'name="exp-two.verdict" value="failed"' in junit
    assert 'name="exp-one.requests" value="10"' in junit

    markdown = step_summary.read_text()
    assert markdown.startswith("earlier step\n## Rollout evidence"), "appended"
    assert "| exp-one | passed | 3 of 10 requests failed |" in markdown
    assert "| exp-two | **failed** |" in markdown


def test_session_without_evidence_leaves_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("--rollout-report", "report", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not Path(pytester.path, "report").exists()
    assert "rollout report:" not in result.stdout.str()


def test_report_built_once_by_the_xdist_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(EXPERIMENTS)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--rollout-report", "report", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    report = pytester.path / "report"
    assert json.loads((report / "_session.json").read_text())["finished"]
    index = (report / "index.html").read_text()
    assert "exp-one" in index
    assert "exp-two" in index
