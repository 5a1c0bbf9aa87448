"""Typed model of the supported subset of an Argo Rollouts ``Rollout`` (``argoproj.io/v1alpha1``).

The subset is what the local engine drives: a canary with ``setWeight``, ``pause``,
``analysis`` and ``setCanaryScale`` steps, background analysis, traffic routing through the
Gateway API plugin (or none: the basic, replica-weighted canary), and a ``blueGreen`` strategy
with active and preview Services, pre- and post-promotion analysis, auto-promotion and the
scale-down delays. :func:`parse_rollout` (:mod:`.rollout_parser`) reads a manifest into this
model; every other field is rejected there, by name, before anything runs.

Defaults follow ``utils/defaults/defaults.go`` of argoproj/argo-rollouts; the hashes are
:mod:`.template_hash`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_rollout.engine.analysis.durations import parse_go_duration
from pytest_rollout.engine.intorstr import IntOrPercent
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest

API_VERSION = "argoproj.io/v1alpha1"
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"

DEFAULT_REPLICAS = 1
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30

PodTemplateHashSource = Literal["Stable", "Latest"]

# --- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRef:
    """One entry of ``templates``: an AnalysisTemplate (or ClusterAnalysisTemplate) by name."""

    template_name: str
    cluster_scope: bool = False


@dataclass(frozen=True)
class AnalysisArgument:
    """One entry of ``args``: exactly one of a literal, a pod-template hash or a metadata field."""

    name: str
    value: str | None = None
    pod_template_hash: PodTemplateHashSource | None = None
    field_path: str | None = None


@dataclass(frozen=True)
class RolloutAnalysis:
    """An analysis of a step, or the background analysis (which may have ``startingStep``)."""

    templates: tuple[TemplateRef, ...]
    args: tuple[AnalysisArgument, ...] = ()
    starting_step: int | None = None


@dataclass(frozen=True)
class SetWeight:
    weight: int

    def describe(self) -> str:
        return f"setWeight: {self.weight}"


@dataclass(frozen=True)
class Pause:
    """``pause: {}`` (``duration`` None: wait for promote) or ``pause: {duration: 10s}``."""

    duration: int | str | None = None

    @property
    def seconds(self) -> int | None:
        """The duration in whole seconds as Argo reads it; None when there is none."""
        return None if self.duration is None else duration_seconds(self.duration)

    def describe(self) -> str:
        return "pause" if self.duration is None else f"pause: {self.duration}"


@dataclass(frozen=True)
class AnalysisStep:
    analysis: RolloutAnalysis

    def describe(self) -> str:
        return "analysis"


@dataclass(frozen=True)
class SetCanaryScale:
    """Canary size without traffic. ``replicas`` wins over ``weight``; ``matchTrafficWeight``
    hands the size back to the traffic weight."""

    replicas: int | None = None
    weight: int | None = None
    match_traffic_weight: bool = False

    def describe(self) -> str:
        if self.weight is not None:
            return f"setCanaryScale{{weight: {self.weight}}}"
        if self.match_traffic_weight:
            return "setCanaryScale{matchTrafficWeight: true}"
        if self.replicas is not None:
            return f"setCanaryScale{{replicas: {self.replicas}}}"
        return "invalid"


CanaryStep = SetWeight | Pause | AnalysisStep | SetCanaryScale


# --- strategies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GatewayAPIRoute:
    """``trafficRouting.plugins."argoproj-labs/gatewayAPI"``: the HTTPRoute whose weights move."""

    http_route: str
    namespace: str | None = None


def scale_down_delay(seconds: int | None) -> int:
    """``GetScaleDownDelaySecondsOrDefault``: as written, 30 when unset."""
    return DEFAULT_SCALE_DOWN_DELAY_SECONDS if seconds is None else seconds


def abort_delay(seconds: int | None) -> int | None:
    """``GetAbortScaleDownDelaySecondsOrDefault``: 30 when unset; None (never) when 0."""
    if seconds is None:
        return DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
    return None if seconds == 0 else seconds


@dataclass(frozen=True)
class CanaryStrategy:
    canary_service: str | None = None
    stable_service: str | None = None
    max_surge: IntOrPercent = DEFAULT_MAX_SURGE
    max_unavailable: IntOrPercent = DEFAULT_MAX_UNAVAILABLE
    abort_scale_down_delay_seconds: int | None = None
    scale_down_delay_seconds: int | None = None
    traffic_routing: GatewayAPIRoute | None = None
    analysis: RolloutAnalysis | None = None
    steps: tuple[CanaryStep, ...] = ()
    dynamic_stable_scale: bool = False
    """``dynamicStableScale``: the stable shrinks as the canary's traffic grows (traffic routing
    only)."""

    @property
    def abort_scale_down_delay(self) -> int | None:
        """Seconds before an aborted canary is scaled down; None: never (set to 0).

        ``GetAbortScaleDownDelaySecondsOrDefault``: 30 by default with traffic routing; a basic
        canary rolls back at once instead.
        """
        if self.traffic_routing is None:
            return 0
        return abort_delay(self.abort_scale_down_delay_seconds)

    @property
    def scale_down_delay(self) -> int:
        """Seconds the previous stable stays up after promotion (traffic routing only)."""
        if self.traffic_routing is None:
            return 0
        return scale_down_delay(self.scale_down_delay_seconds)

    @property
    def delays_scale_down_on_abort(self) -> bool:
        """``shouldDelayScaleDownOnAbort`` as far as the spec decides it: traffic routing and an
        abort delay other than 0; with ``dynamicStableScale``, only a delay written out (unset,
        the canary shrinks as its traffic goes back to the stable)."""
        if self.traffic_routing is None or self.abort_scale_down_delay is None:
            return False
        return not (self.dynamic_stable_scale and self.abort_scale_down_delay_seconds is None)


@dataclass(frozen=True)
class BlueGreenStrategy:
    """``strategy.blueGreen``. Unset fields are None where Argo tells "unset" from a value."""

    active_service: str
    preview_service: str | None = None
    auto_promotion_enabled: bool = True
    auto_promotion_seconds: int = 0
    preview_replica_count: int | None = None
    pre_promotion_analysis: RolloutAnalysis | None = None
    post_promotion_analysis: RolloutAnalysis | None = None
    scale_down_delay_seconds: int | None = None
    abort_scale_down_delay_seconds: int | None = None

    @property
    def scale_down_delay(self) -> int:
        """Seconds the previous active ReplicaSet stays up after promotion (unset: 30)."""
        return scale_down_delay(self.scale_down_delay_seconds)

    @property
    def abort_scale_down_delay(self) -> int | None:
        """Seconds before an aborted preview ReplicaSet is scaled down; None: never (set to 0).

        ``GetAbortScaleDownDelaySecondsOrDefault``: unset is 30.
        """
        return abort_delay(self.abort_scale_down_delay_seconds)

    @property
    def controller_pauses(self) -> bool:
        """``needsBlueGreenControllerPause``: the controller pauses before the switch when
        auto-promotion is off or delayed."""
        return not self.auto_promotion_enabled or self.auto_promotion_seconds > 0

    @property
    def analyses(self) -> tuple[RolloutAnalysis, ...]:
        return tuple(
            a for a in (self.pre_promotion_analysis, self.post_promotion_analysis) if a is not None
        )


@dataclass(frozen=True, eq=False)
class RolloutSpec:
    replicas: int
    selector: Mapping[str, str]
    template: Mapping[str, Any]
    min_ready_seconds: int = 0
    revision_history_limit: int = DEFAULT_REVISION_HISTORY_LIMIT
    progress_deadline_seconds: int = DEFAULT_PROGRESS_DEADLINE_SECONDS
    progress_deadline_abort: bool = False
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None

    @property
    def analyses(self) -> tuple[RolloutAnalysis, ...]:
        """Every analysis the Rollout may start: steps, background, pre- and post-promotion."""
        if self.blue_green is not None:
            return self.blue_green.analyses
        if self.canary is None:
            return ()
        steps = tuple(s.analysis for s in self.canary.steps if isinstance(s, AnalysisStep))
        background = (self.canary.analysis,) if self.canary.analysis is not None else ()
        return (*steps, *background)

    @property
    def services(self) -> dict[str, str]:
        """The Services the strategy names, by field: ``{"activeService": "web-active"}``."""
        named: dict[str, str | None] = {}
        if self.blue_green is not None:
            named = {
                "activeService": self.blue_green.active_service,
                "previewService": self.blue_green.preview_service,
            }
        elif self.canary is not None:
            named = {
                "canaryService": self.canary.canary_service,
                "stableService": self.canary.stable_service,
            }
        return {field_name: name for field_name, name in named.items() if name}


@dataclass(frozen=True, eq=False)
class Rollout:
    """A parsed Rollout. ``pod_template_hash`` names its ReplicaSet; ``steps_hash`` detects a
    change of the canary steps."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: RolloutSpec
    pod_template_hash: str
    steps_hash: str
    manifest: Manifest | None = field(default=None, repr=False)

    def replica_set_name(self, pod_hash: str) -> str:
        return f"{self.name}-{pod_hash}"

    def resolve_arguments(
        self,
        args: Iterable[AnalysisArgument],
        *,
        namespace: str,
        stable_hash: str,
        latest_hash: str,
    ) -> dict[str, str]:
        """``BuildArgumentsForRolloutAnalysisRun``: each argument's value as a string."""
        values: dict[str, str] = {}
        for arg in args:
            if arg.value is not None:
                values[arg.name] = arg.value
            elif arg.pod_template_hash is not None:
                values[arg.name] = stable_hash if arg.pod_template_hash == "Stable" else latest_hash
            elif arg.field_path is not None:
                values[arg.name] = self._metadata_field(arg.field_path, namespace)
        return values

    def _metadata_field(self, field_path: str, namespace: str) -> str:
        simple = {"metadata.name": self.name, "metadata.namespace": namespace}
        if field_path in simple:
            return simple[field_path]
        if field_path == "metadata.labels":
            return _downward_map(self.labels)
        if field_path == "metadata.annotations":
            return _downward_map(self.annotations)
        match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
        if match is None:
            raise ConfigError(f"Rollout/{self.name}: cannot resolve fieldPath {field_path!r}")
        table = self.labels if match.group(1) == "labels" else self.annotations
        return table.get(match.group(2), "")


def _downward_map(values: Mapping[str, str]) -> str:
    # The downward API renders a map as sorted key="value" lines.
    return "\n".join(f'{key}="{values[key]}"' for key in sorted(values))


# --- durations -----------------------------------------------------------------------------


def duration_seconds(value: int | str) -> int:
    """``RolloutPause.DurationSeconds``: an int is seconds; a string is an integer (seconds) or a
    Go duration truncated to whole seconds; an unreadable string is -1."""
    if isinstance(value, int):
        return value
    if re.fullmatch(r"[+-]?[0-9]+", value):
        number = int(value)
        if -(2**31) <= number < 2**31:
            return number
    try:
        return math.trunc(parse_go_duration(value))
    except ValueError:
        return -1


# --- parsing ---------------------------------------------------------------------------------


def parse_rollout(manifest: Manifest) -> Rollout:
    """The Rollout in ``manifest``, or one ConfigError naming file, line, field and the rule
    (every field outside the supported subset at once)."""
    # The parser builds this module's types; importing it here keeps the two from a cycle.
    from pytest_rollout.engine.rollout_parser import RolloutParser

    return RolloutParser(manifest).parse()
