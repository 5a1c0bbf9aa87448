"""pytest-rollout: prove by experiment that a progressive-delivery setup contains bad releases.

The public API — everything a hand-written experiment needs — is importable from here::

    from pytest_rollout import Experiment

    @pytest.mark.rollout
    def test_bad_release_is_contained(rollout: Experiment) -> None:
        run = rollout.release("bad", manifests="bad-canary")
        run.assert_aborted_by("error-rate")
        run.assert_contained()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_rollout._lazy import lazy_attributes

if TYPE_CHECKING:
    from pytest_rollout._wait import wait_for
    from pytest_rollout.assertions import (
        assert_in_order,
        assert_readiness_probe_load_bearing,
        assert_served_throughout,
    )
    from pytest_rollout.backends.base import (
        AnalysisRunView,
        Cluster,
        EventView,
        MeasurementView,
        MetricView,
        Namespace,
        ResourceSample,
        RollbackAllowance,
        RolloutHandle,
        RolloutView,
    )
    from pytest_rollout.config import TargetConfig, Variant
    from pytest_rollout.errors import (
        BackendError,
        ConfigError,
        InconclusiveError,
        ProcessError,
        PrometheusError,
        RolloutError,
        WaitTimeout,
    )
    from pytest_rollout.evidence import Evidence
    from pytest_rollout.experiment import Experiment
    from pytest_rollout.kinds import ExperimentSpec, Kind, register
    from pytest_rollout.load import BackgroundLoad, TrafficLog
    from pytest_rollout.prom import PromClient
    from pytest_rollout.release import LiveRelease, wait_serving
    from pytest_rollout.runs import AbortCause, BlastRadius, ReleaseRun, StatusSample

__version__ = "0.1.0"

# Imported on first use (see pytest_rollout._lazy).
_LAZY = {
    "AbortCause": "pytest_rollout.runs",
    "AnalysisRunView": "pytest_rollout.backends.base",
    "BackendError": "pytest_rollout.errors",
    "BackgroundLoad": "pytest_rollout.load",
    "BlastRadius": "pytest_rollout.runs",
    "Cluster": "pytest_rollout.backends.base",
    "ConfigError": "pytest_rollout.errors",
    "EventView": "pytest_rollout.backends.base",
    "Evidence": "pytest_rollout.evidence",
    "Experiment": "pytest_rollout.experiment",
    "ExperimentSpec": "pytest_rollout.kinds",
    "InconclusiveError": "pytest_rollout.errors",
    "Kind": "pytest_rollout.kinds",
    "LiveRelease": "pytest_rollout.release",
    "MeasurementView": "pytest_rollout.backends.base",
    "MetricView": "pytest_rollout.backends.base",
    "Namespace": "pytest_rollout.backends.base",
    "ProcessError": "pytest_rollout.errors",
    "PromClient": "pytest_rollout.prom",
    "PrometheusError": "pytest_rollout.errors",
    "ReleaseRun": "pytest_rollout.runs",
    "ResourceSample": "pytest_rollout.backends.base",
    "RollbackAllowance": "pytest_rollout.backends.base",
    "RolloutError": "pytest_rollout.errors",
    "RolloutHandle": "pytest_rollout.backends.base",
    "RolloutView": "pytest_rollout.backends.base",
    "StatusSample": "pytest_rollout.runs",
    "TargetConfig": "pytest_rollout.config",
    "TrafficLog": "pytest_rollout.load",
    "Variant": "pytest_rollout.config",
    "WaitTimeout": "pytest_rollout.errors",
    "assert_in_order": "pytest_rollout.assertions",
    "assert_readiness_probe_load_bearing": "pytest_rollout.assertions",
    "assert_served_throughout": "pytest_rollout.assertions",
    "register": "pytest_rollout.kinds",
    "wait_for": "pytest_rollout._wait",
    "wait_serving": "pytest_rollout.release",
}

__getattr__ = lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "AbortCause",
    "AnalysisRunView",
    "BackendError",
    "BackgroundLoad",
    "BlastRadius",
    "Cluster",
    "ConfigError",
    "EventView",
    "Evidence",
    "Experiment",
    "ExperimentSpec",
    "InconclusiveError",
    "Kind",
    "LiveRelease",
    "MeasurementView",
    "MetricView",
    "Namespace",
    "ProcessError",
    "PromClient",
    "PrometheusError",
    "ReleaseRun",
    "ResourceSample",
    "RollbackAllowance",
    "RolloutError",
    "RolloutHandle",
    "RolloutView",
    "StatusSample",
    "TargetConfig",
    "TrafficLog",
    "Variant",
    "WaitTimeout",
    "__version__",
    "assert_in_order",
    "assert_readiness_probe_load_bearing",
    "assert_served_throughout",
    "register",
    "wait_for",
    "wait_serving",
]
