"""The other side of the smoke gate, written on the public API: a release that passes its
pre-traffic check goes on to its first traffic step (the declarative ``smoke-gate`` shows a
failing one never gets there)."""

from __future__ import annotations

import pytest

from pytest_rollout import Experiment, InconclusiveError


@pytest.mark.rollout(name="smoke-gate-good-release")
def test_a_release_passing_its_smoke_check_reaches_its_first_step(rollout: Experiment) -> None:
    run = rollout.release("good", manifests="smoke-gate", until="Paused")
    smoke = run.metric_phases().get("home-page")
    rollout.record(smoke_phase=smoke, canary_weight=run.view.canary_weight if run.view else None)
    assert smoke == "Successful", run.analysis_runs
    assert run.view is not None
    assert run.view.canary_weight == run.first_weight, run.view
    if not run.log.by_version(run.released_at, None).get("v2"):
        raise InconclusiveError(
            f"the release reached weight {run.view.canary_weight} but served no request"
        )
