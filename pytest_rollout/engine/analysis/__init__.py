"""AnalysisTemplates and AnalysisRuns with Argo Rollouts v1.9 semantics.

- :mod:`.model`: the typed subset of ``AnalysisTemplate``/``ClusterAnalysisTemplate``; anything
  else is ``unsupported: <field>``, malformed input gets Argo's wording with file:line.
- :mod:`.args`: ``{{args.x}}`` placeholders, merging a Rollout's arguments into templates'.
- :mod:`.providers`: prometheus, web and job measurements (asynchronous, with timeouts).
- :mod:`.rollup`: measurement -> metric -> run phases, exactly as Argo rolls them up.
- :mod:`.run`: :class:`AnalysisRun`, which schedules measurements on an injectable clock.

    template = AnalysisTemplate.from_manifest(manifest)
    run = AnalysisRun("error-rate-1", template, [Argument("namespace", "ns")],
                      providers=Providers(resolve_url=backend.map_url))
    status = await run.run()   # status.phase, status.message, status.metric("error-rate")
"""

from pytest_rollout.engine.analysis.args import (
    ArgResolver,
    Argument,
    ArgumentError,
    ValueFrom,
    flatten_args,
    merge_args,
    parse_arguments,
    resolve_values,
    substitute,
)
from pytest_rollout.engine.analysis.clock import Clock, RealClock, VirtualClock
from pytest_rollout.engine.analysis.durations import DurationError, parse_go_duration
from pytest_rollout.engine.analysis.evaluate import evaluate_result
from pytest_rollout.engine.analysis.jsonpath import JsonPath, JsonPathError, compile_jsonpath
from pytest_rollout.engine.analysis.model import (
    AnalysisSpecError,
    AnalysisTemplate,
    JobRun,
    Metric,
    MetricSpecError,
    MetricTemplate,
    PrometheusQuery,
    WebRequest,
    flatten_metrics,
    resolve_metrics,
)
from pytest_rollout.engine.analysis.phases import AnalysisPhase, is_worse, worst
from pytest_rollout.engine.analysis.providers import (
    JobLaunch,
    JobLauncher,
    MeasureContext,
    MetricProvider,
    Outcome,
    ProviderError,
    ProviderFactory,
    Providers,
    UrlResolver,
)
from pytest_rollout.engine.analysis.rollup import Limits, MetricResult, assess_metric, assess_run
from pytest_rollout.engine.analysis.run import (
    AnalysisRun,
    AnalysisRunEvent,
    AnalysisRunStatus,
    Listener,
    MeasurementStatus,
    MetricStatus,
)

__all__ = [
    "AnalysisPhase",
    "AnalysisRun",
    "AnalysisRunEvent",
    "AnalysisRunStatus",
    "AnalysisSpecError",
    "AnalysisTemplate",
    "ArgResolver",
    "Argument",
    "ArgumentError",
    "Clock",
    "DurationError",
    "JobLaunch",
    "JobLauncher",
    "JobRun",
    "JsonPath",
    "JsonPathError",
    "Limits",
    "Listener",
    "MeasureContext",
    "MeasurementStatus",
    "Metric",
    "MetricProvider",
    "MetricResult",
    "MetricSpecError",
    "MetricStatus",
    "MetricTemplate",
    "Outcome",
    "PrometheusQuery",
    "ProviderError",
    "ProviderFactory",
    "Providers",
    "RealClock",
    "UrlResolver",
    "ValueFrom",
    "VirtualClock",
    "WebRequest",
    "assess_metric",
    "assess_run",
    "compile_jsonpath",
    "evaluate_result",
    "flatten_args",
    "flatten_metrics",
    "is_worse",
    "merge_args",
    "parse_arguments",
    "parse_go_duration",
    "resolve_metrics",
    "resolve_values",
    "substitute",
    "worst",
]
