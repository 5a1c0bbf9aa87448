"""A measurement's phase from its result and the metric's conditions.

Followed: argoproj/argo-rollouts ``utils/evaluate/evaluate.go`` (``EvaluateResult``,
``formatEvalError``, ``isNilOrEmpty``):

- neither condition: Successful;
- only ``successCondition``: Failed when it is false; only ``failureCondition``: Successful
  when it is false;
- both: Failed when the failure condition holds, Inconclusive when neither holds;
- a condition that cannot be evaluated: Error, with ``could not evaluate successCondition
  "EXPR": REASON`` (and ``metric result is nil or empty: ...`` when there was no data).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pytest_rollout.engine.analysis.model import Metric
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.expr import Condition, ExprError, compile_condition

NO_DATA = "metric result is nil or empty: no data returned from the metric provider"


def evaluate_result(result: Any, metric: Metric) -> tuple[AnalysisPhase, str]:
    """``(phase, message)``; the message is empty unless the phase is Error."""
    success = failure = False
    if metric.success_condition:
        try:
            success = _condition(metric.success_condition).evaluate(result)
        except ExprError as exc:
            return AnalysisPhase.ERROR, _eval_error(exc, "successCondition", metric, result)
    if metric.failure_condition:
        try:
            failure = _condition(metric.failure_condition).evaluate(result)
        except ExprError as exc:
            return AnalysisPhase.ERROR, _eval_error(exc, "failureCondition", metric, result)
    if not metric.success_condition and not metric.failure_condition:
        return AnalysisPhase.SUCCESSFUL, ""
    if metric.success_condition and not metric.failure_condition:
        failure = not success
    elif metric.failure_condition and not metric.success_condition:
        success = not failure
    if failure:
        return AnalysisPhase.FAILED, ""
    if not success:
        return AnalysisPhase.INCONCLUSIVE, ""
    return AnalysisPhase.SUCCESSFUL, ""


def is_nil_or_empty(result: Any) -> bool:
    """No data: ``None`` or an empty list (Argo's ``isNilOrEmpty``)."""
    return result is None or (isinstance(result, list | tuple) and len(result) == 0)


@lru_cache(maxsize=256)
def _condition(source: str) -> Condition:
    return compile_condition(source)


def _eval_error(exc: ExprError, kind: str, metric: Metric, result: Any) -> str:
    source = metric.success_condition if kind == "successCondition" else metric.failure_condition
    if is_nil_or_empty(result):
        return f'could not evaluate {kind} "{source}": {NO_DATA}'
    return f'could not evaluate {kind} "{source}": {exc.message}'
