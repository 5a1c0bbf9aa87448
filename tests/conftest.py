"""Settings every test of this repository shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_ci_job_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest sessions that tests run inside this one (pytester) must not append to the CI
    job's summary: only the outer session's report belongs there."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
