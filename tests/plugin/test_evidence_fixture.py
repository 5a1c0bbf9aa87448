"""The rollout_evidence fixture writes summary.json with the verdict of the test that used it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


def test_verdicts_follow_test_outcomes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_rollout import InconclusiveError

        def test_pass(rollout_evidence):
            ev = rollout_evidence("exp-pass")
            ev.record(requests=10, share=0.5)

        def test_fail(rollout_evidence):
            ev = rollout_evidence("exp-fail")
            ev.record(errors=3)
            ev.events.append("+1.0s Normal RolloutUpdated")
            assert False, "3 errors > 0"

        def test_inconclusive(rollout_evidence):
            rollout_evidence("exp-inconclusive").record(errors=0)
            raise InconclusiveError("no errors seen without the probe: 0 of 5000")
        """
    )
    result = pytester.runpytest_subprocess("--rollout-report", "report", "--junitxml", "j.xml")
    result.assert_outcomes(passed=1, failed=2)
    report = Path(pytester.path, "report")

    def summary(name: str) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((report / name / "summary.json").read_text())
        return loaded

    passed = summary("exp-pass")
    assert passed["verdict"] == "passed"
    assert passed["metrics"] == {"requests": 10, "share": 0.5}
    assert passed["backend"] == "local"

    failed = summary("exp-fail")
    assert failed["verdict"] == "failed"
    assert "3 errors > 0" in str(failed["message"])
    assert (report / "exp-fail" / "events.log").read_text() == "+1.0s Normal RolloutUpdated\n"

    inconclusive = summary("exp-inconclusive")
    assert inconclusive["verdict"] == "inconclusive"
    assert "0 of 5000" in str(inconclusive["message"])
    assert "| errors | 0 |" in (report / "exp-inconclusive" / "summary.md").read_text()
    assert 'name="exp-pass.requests" value="10"' in Path(pytester.path, "j.xml").read_text()
