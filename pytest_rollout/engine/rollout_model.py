"""Typed model of the supported subset of an Argo Rollouts ``Rollout`` (``argoproj.io/v1alpha1``).

The subset is what the local engine drives: a canary with ``setWeight``, ``pause``,
``analysis`` and ``setCanaryScale`` steps, background analysis, traffic routing through the
Gateway API plugin (or none: the basic, replica-weighted canary), and a ``blueGreen`` strategy
that is modelled and validated only. Every other field is rejected with
``unsupported: <path>``; nothing is silently ignored.

Malformed specs are rejected with Argo Rollouts' own wording where it has one. Followed
(argoproj/argo-rollouts): ``pkg/apis/rollouts/validation/validation.go`` (ValidateRolloutSpec,
ValidateRolloutStrategyCanary, hasMultipleStepsType, invalidMaxSurgeMaxUnavailable),
``pkg/apis/rollouts/v1alpha1/types.go`` (RolloutPause.DurationSeconds, PauseReason),
``utils/rollout/rolloututil.go`` (CanaryStepString), ``utils/defaults/defaults.go`` (defaults),
``utils/conditions/conditions.go`` (ComputeStepHash) and the v1.9.1 Rollout CRD schema for types.
Type errors use the API server's wording (``... in body must be of type integer: "string"``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_rollout.engine.analysis.durations import parse_go_duration
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import FieldPath, Manifest, display_path, format_field_path

API_VERSION = "argoproj.io/v1alpha1"
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"

DEFAULT_REPLICAS = 1
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30

IntOrPercent = int | str
"""An ``intstr.IntOrString`` as written: ``1`` or ``"25%"``."""

PodTemplateHashSource = Literal["Stable", "Latest"]

# validation.go constants.
MISSING_FIELD_MESSAGE = "Rollout has missing field '{}'"
INVALID_SET_WEIGHT_MESSAGE = "SetWeight needs to be between 0 and 100"
INVALID_SET_CANARY_SCALE_TRAFFIC_POLICY = "SetCanaryScale requires TrafficRouting to be set"
INVALID_DURATION_MESSAGE = "Duration needs to be greater than 0"
INVALID_MAX_SURGE_MAX_UNAVAILABLE = "MaxSurge and MaxUnavailable both can not be zero"
INVALID_STEP_MESSAGE = (
    "Step must have one of the following set: experiment, setWeight, setCanaryScale or pause"
)
INVALID_STRATEGY_MESSAGE = "Multiple Strategies can not be listed"
DUPLICATED_SERVICES_BLUE_GREEN_MESSAGE = (
    "This rollout uses the same service for the active and preview services, but two different "
    "services are required."
)
DUPLICATED_SERVICES_CANARY_MESSAGE = (
    "This rollout uses the same service for the stable and canary services, but two different "
    "services are required."
)
INVALID_TRAFFIC_ROUTING_MESSAGE = (
    "Canary service and Stable service must to be set to use Traffic Routing"
)
INVALID_ANALYSIS_ARGS_MESSAGE = (
    "Analyses arguments must refer to valid object metadata supported by downwardAPI"
)
INVALID_CANARY_SCALE_DOWN_DELAY = (
    "Canary scaleDownDelaySeconds can only be used with traffic routing"
)

_PERCENT = re.compile(r"[0-9]+%")
_PERCENT_MESSAGE = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)
_DOWNWARD_FIELD = re.compile(
    r"metadata\.(?:name|namespace|labels|annotations)"
    r"|metadata\.(?:labels|annotations)\['[^']+'\]"
)
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


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

    @property
    def abort_scale_down_delay(self) -> int | None:
        """Seconds before an aborted canary is scaled down; None: never (set to 0).

        ``GetAbortScaleDownDelaySecondsOrDefault``: 30 by default with traffic routing; a basic
        canary rolls back at once instead.
        """
        if self.traffic_routing is None:
            return 0
        if self.abort_scale_down_delay_seconds is None:
            return DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
        if self.abort_scale_down_delay_seconds == 0:
            return None
        return self.abort_scale_down_delay_seconds

    @property
    def scale_down_delay(self) -> int:
        """Seconds the previous stable stays up after promotion (traffic routing only)."""
        if self.traffic_routing is None:
            return 0
        if self.scale_down_delay_seconds is None:
            return DEFAULT_SCALE_DOWN_DELAY_SECONDS
        return self.scale_down_delay_seconds


@dataclass(frozen=True)
class BlueGreenStrategy:
    """Modelled and validated; the canary engine does not drive it."""

    active_service: str
    preview_service: str | None = None
    auto_promotion_enabled: bool = True
    pre_promotion_analysis: RolloutAnalysis | None = None
    scale_down_delay_seconds: int = DEFAULT_SCALE_DOWN_DELAY_SECONDS


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


# --- durations and hashes ------------------------------------------------------------------


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


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: map each byte onto an alphabet without vowels."""
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in text)


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """A stable name for a pod template, in the shape of Argo's ``rollouts-pod-template-hash``.

    FNV-1a of the canonical JSON, safe-encoded as Argo does. The value is not byte-identical to
    the one the controller computes from its Go structs; it only has to change exactly when the
    template changes.
    """
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return safe_encode(str(_fnv32a(canonical.encode())))


def steps_hash(raw_steps: object) -> str:
    """``ComputeStepHash``: FNV-1a of the steps as JSON, safe-encoded."""
    canonical = json.dumps(raw_steps, sort_keys=True, separators=(",", ":"))
    return safe_encode(str(_fnv32a(canonical.encode())))


# --- parsing -------------------------------------------------------------------------------


def parse_rollout(manifest: Manifest) -> Rollout:
    """The Rollout in ``manifest``, or a ConfigError naming file, line, field and the rule."""
    return _RolloutParser(manifest).parse()


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: object) -> str:
    """A value the way ``field.Invalid`` renders it: strings quoted, numbers bare."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _RolloutParser:
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    # -- error helpers --

    def fail(self, path: FieldPath, message: str) -> ConfigError:
        return self.manifest.error(path, message)

    def unsupported(self, path: FieldPath, allowed: Iterable[str]) -> ConfigError:
        where = f"{display_path(self.manifest.origin.path)}:{self.manifest.line_of(path)}"
        supported = ", ".join(allowed) or "nothing"
        return ConfigError(
            f"{where}: {self.manifest.ref}: unsupported: {format_field_path(path)} "
            f"(supported here: {supported})"
        )

    def invalid(self, path: FieldPath, value: object, message: str) -> ConfigError:
        return self.fail(path, f"Invalid value: {_shown(value)}: {message}")

    def required(self, path: FieldPath, message: str) -> ConfigError:
        return self.fail(path, f"Required value: {message}")

    def wrong_type(self, path: FieldPath, value: object, expected: str) -> ConfigError:
        actual = _json_type(value)
        dotted = format_field_path(path)
        return self.fail(
            path,
            f'Invalid value: "{actual}": {dotted} in body must be of type {expected}: "{actual}"',
        )

    # -- typed access --

    def mapping(self, value: object, path: FieldPath) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong_type(path, value, "object")
        return value

    def only(self, body: Mapping[str, Any], path: FieldPath, allowed: Sequence[str]) -> None:
        for key in body:
            if key not in allowed:
                raise self.unsupported((*path, str(key)), allowed)

    def integer(self, value: object, path: FieldPath) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(path, value, "integer")
        return value

    def non_negative(self, value: object, path: FieldPath) -> int:
        number = self.integer(value, path)
        if number < 0:
            raise self.invalid(path, number, "must be greater than or equal to 0")
        return number

    def string(self, value: object, path: FieldPath) -> str:
        if not isinstance(value, str):
            raise self.wrong_type(path, value, "string")
        return value

    def boolean(self, value: object, path: FieldPath) -> bool:
        if not isinstance(value, bool):
            raise self.wrong_type(path, value, "boolean")
        return value

    def array(self, value: object, path: FieldPath) -> list[Any]:
        if not isinstance(value, list):
            raise self.wrong_type(path, value, "array")
        return value

    def int_or_percent(self, value: object, path: FieldPath) -> IntOrPercent:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.invalid(path, value, "must be an integer or percentage (e.g '5%')")
        if isinstance(value, str) and not _PERCENT.fullmatch(value):
            raise self.invalid(path, value, _PERCENT_MESSAGE)
        if isinstance(value, int) and value < 0:
            raise self.invalid(path, value, "must be greater than or equal to 0")
        return value

    # -- the object --

    def parse(self) -> Rollout:
        manifest = self.manifest
        if manifest.api_version != API_VERSION or manifest.kind != "Rollout":
            raise self.fail(
                ("apiVersion",),
                f"expected apiVersion {API_VERSION} and kind Rollout, got "
                f"{manifest.api_version} {manifest.kind}",
            )
        self.only(manifest.body, (), ("apiVersion", "kind", "metadata", "spec"))
        if "spec" not in manifest.body:
            raise self.required(("spec",), MISSING_FIELD_MESSAGE.format(".spec"))
        spec = self.spec(self.mapping(manifest.body["spec"], ("spec",)))
        metadata = manifest.body.get("metadata", {})
        raw_steps: object = []
        canary_body = manifest.body["spec"].get("strategy", {}).get("canary")
        if isinstance(canary_body, dict):
            raw_steps = canary_body.get("steps", [])
        return Rollout(
            name=manifest.name,
            labels=dict(metadata.get("labels", {})),
            annotations=dict(metadata.get("annotations", {})),
            spec=spec,
            pod_template_hash=pod_template_hash(spec.template),
            steps_hash=steps_hash(raw_steps),
            manifest=manifest,
        )

    def spec(self, body: Mapping[str, Any]) -> RolloutSpec:
        path: FieldPath = ("spec",)
        self.only(
            body,
            path,
            (
                "replicas",
                "selector",
                "template",
                "minReadySeconds",
                "revisionHistoryLimit",
                "progressDeadlineSeconds",
                "progressDeadlineAbort",
                "strategy",
            ),
        )
        replicas = self.non_negative(body.get("replicas", DEFAULT_REPLICAS), (*path, "replicas"))
        selector = self.selector(body)
        template = self.template(body, selector)
        min_ready = self.non_negative(body.get("minReadySeconds", 0), (*path, "minReadySeconds"))
        history = self.non_negative(
            body.get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT),
            (*path, "revisionHistoryLimit"),
        )
        deadline_path = (*path, "progressDeadlineSeconds")
        deadline = self.non_negative(
            body.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS), deadline_path
        )
        if deadline <= min_ready:
            raise self.invalid(deadline_path, deadline, "must be greater than minReadySeconds")
        deadline_abort = self.boolean(
            body.get("progressDeadlineAbort", False), (*path, "progressDeadlineAbort")
        )
        canary, blue_green = self.strategy(body, replicas)
        return RolloutSpec(
            replicas=replicas,
            selector=selector,
            template=template,
            min_ready_seconds=min_ready,
            revision_history_limit=history,
            progress_deadline_seconds=deadline,
            progress_deadline_abort=deadline_abort,
            canary=canary,
            blue_green=blue_green,
        )

    def selector(self, body: Mapping[str, Any]) -> dict[str, str]:
        path: FieldPath = ("spec", "selector")
        if "selector" not in body:
            raise self.required(path, MISSING_FIELD_MESSAGE.format(".spec.selector"))
        selector = self.mapping(body["selector"], path)
        self.only(selector, path, ("matchLabels",))
        labels = self.mapping(selector.get("matchLabels", {}), (*path, "matchLabels"))
        for key, value in labels.items():
            self.string(value, (*path, "matchLabels", key))
        if not labels:
            raise self.fail(path, "Invalid value: {}: empty selector is invalid for deployment")
        return dict(labels)

    def template(self, body: Mapping[str, Any], selector: Mapping[str, str]) -> dict[str, Any]:
        path: FieldPath = ("spec", "template")
        if "template" not in body:
            raise self.required(path, "a pod template is required")
        template = self.mapping(body["template"], path)
        metadata = self.mapping(template.get("metadata", {}), (*path, "metadata"))
        labels = self.mapping(metadata.get("labels", {}), (*path, "metadata", "labels"))
        if any(labels.get(key) != value for key, value in selector.items()):
            shown = ", ".join(f'"{key}":"{value}"' for key, value in labels.items())
            raise self.fail(
                (*path, "metadata", "labels"),
                f"Invalid value: map[string]string{{{shown}}}: "
                "`selector` does not match template `labels`",
            )
        copied: dict[str, Any] = json.loads(json.dumps(template))
        return copied

    def strategy(
        self, body: Mapping[str, Any], replicas: int
    ) -> tuple[CanaryStrategy | None, BlueGreenStrategy | None]:
        path: FieldPath = ("spec", "strategy")
        strategy = self.mapping(body.get("strategy", {}), path)
        self.only(strategy, path, ("canary", "blueGreen"))
        has_canary, has_blue_green = "canary" in strategy, "blueGreen" in strategy
        if not has_canary and not has_blue_green:
            raise self.required(
                path,
                MISSING_FIELD_MESSAGE.format(".spec.strategy.canary or .spec.strategy.blueGreen"),
            )
        if has_canary and has_blue_green:
            raise self.invalid(path, "blueGreen: true canary: true", INVALID_STRATEGY_MESSAGE)
        if has_canary:
            return self.canary(self.mapping(strategy["canary"], (*path, "canary"))), None
        return None, self.blue_green(self.mapping(strategy["blueGreen"], (*path, "blueGreen")))

    def canary(self, body: Mapping[str, Any]) -> CanaryStrategy:
        path: FieldPath = ("spec", "strategy", "canary")
        self.only(
            body,
            path,
            (
                "canaryService",
                "stableService",
                "maxSurge",
                "maxUnavailable",
                "abortScaleDownDelaySeconds",
                "scaleDownDelaySeconds",
                "trafficRouting",
                "analysis",
                "steps",
            ),
        )
        canary_service = self.optional_string(body, "canaryService", path)
        stable_service = self.optional_string(body, "stableService", path)
        surge = self.int_or_percent(body.get("maxSurge", DEFAULT_MAX_SURGE), (*path, "maxSurge"))
        unavailable = self.int_or_percent(
            body.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE), (*path, "maxUnavailable")
        )
        if _written_value(surge) == 0 and _written_value(unavailable) == 0:
            raise self.invalid((*path, "maxSurge"), surge, INVALID_MAX_SURGE_MAX_UNAVAILABLE)
        if canary_service and stable_service and canary_service == stable_service:
            raise self.invalid(
                (*path, "stableService"), stable_service, DUPLICATED_SERVICES_CANARY_MESSAGE
            )
        traffic_routing = None
        if "trafficRouting" in body:
            traffic_routing = self.traffic_routing(body["trafficRouting"])
            if not stable_service:
                raise self.invalid(
                    (*path, "stableService"), stable_service or "", INVALID_TRAFFIC_ROUTING_MESSAGE
                )
            if not canary_service:
                raise self.invalid(
                    (*path, "canaryService"), canary_service or "", INVALID_TRAFFIC_ROUTING_MESSAGE
                )
        abort_delay = None
        if "abortScaleDownDelaySeconds" in body:
            abort_delay = self.non_negative(
                body["abortScaleDownDelaySeconds"], (*path, "abortScaleDownDelaySeconds")
            )
        scale_down_delay = None
        if "scaleDownDelaySeconds" in body:
            scale_down_delay = self.non_negative(
                body["scaleDownDelaySeconds"], (*path, "scaleDownDelaySeconds")
            )
            if traffic_routing is None:
                raise self.invalid(
                    (*path, "scaleDownDelaySeconds"),
                    scale_down_delay,
                    INVALID_CANARY_SCALE_DOWN_DELAY,
                )
        analysis = None
        if "analysis" in body:
            analysis = self.analysis(body["analysis"], (*path, "analysis"), background=True)
        steps = tuple(
            self.step(raw, (*path, "steps", index), has_traffic_routing=traffic_routing is not None)
            for index, raw in enumerate(self.array(body.get("steps", []), (*path, "steps")))
        )
        return CanaryStrategy(
            canary_service=canary_service,
            stable_service=stable_service,
            max_surge=surge,
            max_unavailable=unavailable,
            abort_scale_down_delay_seconds=abort_delay,
            scale_down_delay_seconds=scale_down_delay,
            traffic_routing=traffic_routing,
            analysis=analysis,
            steps=steps,
        )

    def optional_string(self, body: Mapping[str, Any], key: str, path: FieldPath) -> str | None:
        if key not in body:
            return None
        return self.string(body[key], (*path, key))

    def traffic_routing(self, raw: object) -> GatewayAPIRoute:
        path: FieldPath = ("spec", "strategy", "canary", "trafficRouting")
        body = self.mapping(raw, path)
        self.only(body, path, ("plugins",))
        if "plugins" not in body:
            raise self.required(
                (*path, "plugins"),
                f'traffic routing through plugins."{GATEWAY_API_PLUGIN}" (the router the local '
                "backend implements)",
            )
        plugins = self.mapping(body["plugins"], (*path, "plugins"))
        self.only(plugins, (*path, "plugins"), (GATEWAY_API_PLUGIN,))
        if GATEWAY_API_PLUGIN not in plugins:
            raise self.required((*path, "plugins", GATEWAY_API_PLUGIN), "a plugin configuration")
        plugin_path: FieldPath = (*path, "plugins", GATEWAY_API_PLUGIN)
        plugin = self.mapping(plugins[GATEWAY_API_PLUGIN], plugin_path)
        self.only(plugin, plugin_path, ("httpRoute", "namespace"))
        if "httpRoute" not in plugin:
            raise self.required((*plugin_path, "httpRoute"), "the name of the HTTPRoute")
        return GatewayAPIRoute(
            http_route=self.string(plugin["httpRoute"], (*plugin_path, "httpRoute")),
            namespace=self.optional_string(plugin, "namespace", plugin_path),
        )

    def analysis(self, raw: object, path: FieldPath, *, background: bool) -> RolloutAnalysis:
        body = self.mapping(raw, path)
        allowed = ("templates", "args", "startingStep") if background else ("templates", "args")
        self.only(body, path, allowed)
        raw_templates = self.array(body.get("templates", []), (*path, "templates"))
        if not raw_templates:
            raise self.required((*path, "templates"), "at least one template")
        templates = tuple(
            self.template_ref(item, (*path, "templates", index))
            for index, item in enumerate(raw_templates)
        )
        args = tuple(
            self.argument(item, (*path, "args", index))
            for index, item in enumerate(self.array(body.get("args", []), (*path, "args")))
        )
        names = [arg.name for arg in args]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise self.fail((*path, "args", index, "name"), f"Duplicate value: {_shown(name)}")
        starting_step = None
        if "startingStep" in body:
            starting_step = self.non_negative(body["startingStep"], (*path, "startingStep"))
        return RolloutAnalysis(templates=templates, args=args, starting_step=starting_step)

    def template_ref(self, raw: object, path: FieldPath) -> TemplateRef:
        body = self.mapping(raw, path)
        self.only(body, path, ("templateName", "clusterScope"))
        if "templateName" not in body:
            raise self.required((*path, "templateName"), "the name of an AnalysisTemplate")
        return TemplateRef(
            template_name=self.string(body["templateName"], (*path, "templateName")),
            cluster_scope=self.boolean(body.get("clusterScope", False), (*path, "clusterScope")),
        )

    def argument(self, raw: object, path: FieldPath) -> AnalysisArgument:
        body = self.mapping(raw, path)
        self.only(body, path, ("name", "value", "valueFrom"))
        if "name" not in body:
            raise self.required((*path, "name"), "the argument's name")
        name = self.string(body["name"], (*path, "name"))
        if ("value" in body) == ("valueFrom" in body):
            raise self.fail(path, "Invalid value: exactly one of value and valueFrom must be set")
        if "value" in body:
            return AnalysisArgument(name=name, value=self.string(body["value"], (*path, "value")))
        from_path: FieldPath = (*path, "valueFrom")
        value_from = self.mapping(body["valueFrom"], from_path)
        self.only(value_from, from_path, ("podTemplateHashValue", "fieldRef"))
        if len(value_from) != 1:
            raise self.fail(
                from_path, "Invalid value: exactly one of podTemplateHashValue and fieldRef"
            )
        if "podTemplateHashValue" in value_from:
            hash_path: FieldPath = (*from_path, "podTemplateHashValue")
            source = self.string(value_from["podTemplateHashValue"], hash_path)
            if source == "Stable":
                return AnalysisArgument(name=name, pod_template_hash="Stable")
            if source == "Latest":
                return AnalysisArgument(name=name, pod_template_hash="Latest")
            raise self.fail(
                hash_path,
                f'Unsupported value: {_shown(source)}: supported values: "Latest", "Stable"',
            )
        ref_path: FieldPath = (*from_path, "fieldRef")
        field_ref = self.mapping(value_from["fieldRef"], ref_path)
        self.only(field_ref, ref_path, ("fieldPath",))
        if "fieldPath" not in field_ref:
            raise self.required((*ref_path, "fieldPath"), "the field to read")
        field_path = self.string(field_ref["fieldPath"], (*ref_path, "fieldPath"))
        if not field_path.startswith("metadata"):
            raise self.unsupported(
                (*ref_path, "fieldPath"), ("metadata.name", "metadata.namespace", "metadata.labels")
            )
        if not _DOWNWARD_FIELD.fullmatch(field_path):
            raise self.invalid((*ref_path, "fieldPath"), field_path, INVALID_ANALYSIS_ARGS_MESSAGE)
        return AnalysisArgument(name=name, field_path=field_path)

    def step(self, raw: object, path: FieldPath, *, has_traffic_routing: bool) -> CanaryStep:
        body = self.mapping(raw, path)
        kinds = ("setWeight", "pause", "analysis", "setCanaryScale")
        self.only(body, path, kinds)
        if not body:
            raise self.invalid(
                path,
                "step.Experiment: true step.Pause: true step.SetWeight: true step.Analysis: true "
                "step.SetCanaryScale: true step.SetHeaderRoute: true step.SetMirrorRoutes: true",
                INVALID_STEP_MESSAGE,
            )
        if len(body) > 1:
            raise self.invalid(
                path,
                f"step.Experiment: false step.Pause: {_go_bool('pause' in body)} "
                f"step.SetWeight: {_go_bool('setWeight' in body)} "
                f"step.Analysis: {_go_bool('analysis' in body)}",
                INVALID_STEP_MESSAGE,
            )
        kind = next(iter(body))
        if kind == "setWeight":
            weight = self.integer(body["setWeight"], (*path, "setWeight"))
            if not 0 <= weight <= 100:
                raise self.invalid((*path, "setWeight"), weight, INVALID_SET_WEIGHT_MESSAGE)
            return SetWeight(weight)
        if kind == "pause":
            return self.pause(body["pause"], (*path, "pause"))
        if kind == "analysis":
            return AnalysisStep(
                self.analysis(body["analysis"], (*path, "analysis"), background=False)
            )
        if not has_traffic_routing:
            raise self.required(
                ("spec", "strategy", "canary", "trafficRouting"),
                INVALID_SET_CANARY_SCALE_TRAFFIC_POLICY,
            )
        return self.set_canary_scale(body["setCanaryScale"], (*path, "setCanaryScale"))

    def pause(self, raw: object, path: FieldPath) -> Pause:
        body = self.mapping(raw, path)
        self.only(body, path, ("duration",))
        if "duration" not in body:
            return Pause()
        duration = body["duration"]
        if isinstance(duration, bool) or not isinstance(duration, int | str):
            raise self.invalid((*path, "duration"), duration, "must be an integer or a string")
        seconds = duration_seconds(duration)
        if seconds < 0:
            raise self.invalid((*path, "duration"), seconds, INVALID_DURATION_MESSAGE)
        return Pause(duration)

    def set_canary_scale(self, raw: object, path: FieldPath) -> SetCanaryScale:
        body = self.mapping(raw, path)
        self.only(body, path, ("replicas", "weight", "matchTrafficWeight"))
        replicas = None
        if "replicas" in body:
            replicas = self.non_negative(body["replicas"], (*path, "replicas"))
        weight = None
        if "weight" in body:
            weight = self.non_negative(body["weight"], (*path, "weight"))
        match = self.boolean(body.get("matchTrafficWeight", False), (*path, "matchTrafficWeight"))
        return SetCanaryScale(replicas=replicas, weight=weight, match_traffic_weight=match)

    def blue_green(self, body: Mapping[str, Any]) -> BlueGreenStrategy:
        path: FieldPath = ("spec", "strategy", "blueGreen")
        self.only(
            body,
            path,
            (
                "activeService",
                "previewService",
                "autoPromotionEnabled",
                "prePromotionAnalysis",
                "scaleDownDelaySeconds",
            ),
        )
        if "activeService" not in body:
            raise self.required((*path, "activeService"), "the Service that serves production")
        active = self.string(body["activeService"], (*path, "activeService"))
        preview = self.optional_string(body, "previewService", path)
        if active == (preview or ""):
            raise self.invalid(
                (*path, "activeService"), active, DUPLICATED_SERVICES_BLUE_GREEN_MESSAGE
            )
        analysis = None
        if "prePromotionAnalysis" in body:
            analysis = self.analysis(
                body["prePromotionAnalysis"], (*path, "prePromotionAnalysis"), background=False
            )
        return BlueGreenStrategy(
            active_service=active,
            preview_service=preview,
            auto_promotion_enabled=self.boolean(
                body.get("autoPromotionEnabled", True), (*path, "autoPromotionEnabled")
            ),
            pre_promotion_analysis=analysis,
            scale_down_delay_seconds=self.non_negative(
                body.get("scaleDownDelaySeconds", DEFAULT_SCALE_DOWN_DELAY_SECONDS),
                (*path, "scaleDownDelaySeconds"),
            ),
        )


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def _written_value(value: IntOrPercent) -> int:
    # validation.go getIntOrPercentValue: the number as written, percent or not.
    if isinstance(value, str):
        return int(value[:-1])
    return value
