"""Live progress of an experiment: what the runner reports while a release is under way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProgressSnapshot:
    """One reading of a running experiment, taken about four times a second."""

    experiment: str
    phase: str
    """The Rollout's phase, or the runner's own stage (``Deploying``, ``Warming up``)."""
    step: int | None
    """1-based number of the step under way; None for a Deployment."""
    steps: int | None
    weight: int | None
    achieved_rate: float
    """Requests per second over the last second."""
    errors_by_version: Mapping[str, int]
    analysis_phase: str | None


class ProgressSink(Protocol):
    """Where snapshots go (the terminal, or nowhere)."""

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def close(self) -> None: ...
