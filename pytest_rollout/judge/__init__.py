"""The sequential canary judge: anytime-valid tests of a canary's errors and latency against
stable's, from the cumulative counts Prometheus has (:func:`judge`), served over HTTP for Argo
Rollouts' web metric provider (``python -m pytest_rollout.judge``). See docs/judge.md."""

from pytest_rollout.judge.sequential import (
    Decision,
    Evidence,
    JudgeConfig,
    Snapshot,
    Verdict,
    VersionCounts,
    judge,
)
from pytest_rollout.judge.statistic import RatioGrid

__all__ = [
    "Decision",
    "Evidence",
    "JudgeConfig",
    "RatioGrid",
    "Snapshot",
    "Verdict",
    "VersionCounts",
    "judge",
]
