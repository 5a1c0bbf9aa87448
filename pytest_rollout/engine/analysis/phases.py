"""Analysis phases and their severity order.

Followed: argoproj/argo-rollouts ``pkg/apis/rollouts/v1alpha1/analysis_types.go``
(AnalysisPhase, ``Completed``) and ``utils/analysis/helpers.go`` (``analysisStatusOrder``,
``IsWorse``, ``Worst``).
"""

from __future__ import annotations

import enum


class AnalysisPhase(enum.StrEnum):
    """The phase of a measurement, a metric or a whole run."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    ERROR = "Error"
    INCONCLUSIVE = "Inconclusive"

    @property
    def completed(self) -> bool:
        """True for the four final phases."""
        return self in _COMPLETED


_COMPLETED = frozenset(
    {
        AnalysisPhase.SUCCESSFUL,
        AnalysisPhase.FAILED,
        AnalysisPhase.ERROR,
        AnalysisPhase.INCONCLUSIVE,
    }
)

# Best to worst, exactly Argo's ``analysisStatusOrder``.
SEVERITY_ORDER: tuple[AnalysisPhase, ...] = (
    AnalysisPhase.SUCCESSFUL,
    AnalysisPhase.RUNNING,
    AnalysisPhase.PENDING,
    AnalysisPhase.INCONCLUSIVE,
    AnalysisPhase.ERROR,
    AnalysisPhase.FAILED,
)


def is_worse(current: AnalysisPhase, new: AnalysisPhase) -> bool:
    """Whether ``new`` is a worse condition than ``current``."""
    return SEVERITY_ORDER.index(new) > SEVERITY_ORDER.index(current)


def worst(left: AnalysisPhase, right: AnalysisPhase) -> AnalysisPhase:
    """The worse of two phases (``left`` on a tie)."""
    return right if is_worse(left, right) else left
