"""Reading a ``Rollout`` manifest into :mod:`.rollout_model`, with Argo Rollouts' validation.

Malformed specs are rejected with Argo Rollouts' own wording where it has one. Followed
(argoproj/argo-rollouts): ``pkg/apis/rollouts/validation/validation.go`` (ValidateRolloutSpec,
ValidateRolloutStrategyCanary, ValidateRolloutStrategyBlueGreen, hasMultipleStepsType,
invalidMaxSurgeMaxUnavailable), ``pkg/apis/rollouts/v1alpha1/types.go`` (RolloutPause.
DurationSeconds, PauseReason, BlueGreenStrategy), ``utils/rollout/rolloututil.go``
(CanaryStepString), ``utils/defaults/defaults.go`` (defaults) and the v1.9.1 Rollout CRD schema
for types. Type errors use the API server's wording (``... in body must be of type integer:
"string"``).

A field outside the supported subset does not stop the reading: every such field of the
document is collected, and the one error names each with its file and line
(``unsupported: spec.strategy.blueGreen.antiAffinity``), so that a user fixes them in one go.
Outside the subset on the blueGreen side: ``antiAffinity``, ``previewMetadata`` /
``activeMetadata`` (ephemeral pod metadata), ``scaleDownDelayRevisionLimit`` and
``maxUnavailable`` (pod restarts), none of which the local engine models.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_rollout.engine.intorstr import IntOrPercent, validated, written_value
from pytest_rollout.engine.rollout_model import (
    API_VERSION,
    DEFAULT_MAX_SURGE,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PROGRESS_DEADLINE_SECONDS,
    DEFAULT_REPLICAS,
    DEFAULT_REVISION_HISTORY_LIMIT,
    GATEWAY_API_PLUGIN,
    AnalysisArgument,
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    GatewayAPIRoute,
    Pause,
    Rollout,
    RolloutAnalysis,
    RolloutSpec,
    SetCanaryScale,
    SetWeight,
    TemplateRef,
    duration_seconds,
)
from pytest_rollout.engine.template_hash import pod_template_hash, steps_hash
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import UnsupportedFields
from pytest_rollout.manifests import FieldPath, Manifest, format_field_path

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
INVALID_CANARY_DYNAMIC_STABLE_SCALE = (
    "Canary dynamicStableScale can only be used with traffic routing"
)
INVALID_CANARY_DYNAMIC_STABLE_SCALE_WITH_SCALE_DOWN_DELAY = (
    "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds"
)

_BLUE_GREEN_FIELDS = (
    "activeService",
    "previewService",
    "autoPromotionEnabled",
    "autoPromotionSeconds",
    "previewReplicaCount",
    "prePromotionAnalysis",
    "postPromotionAnalysis",
    "scaleDownDelaySeconds",
    "abortScaleDownDelaySeconds",
)
_DOWNWARD_FIELD = re.compile(
    r"metadata\.(?:name|namespace|labels|annotations)"
    r"|metadata\.(?:labels|annotations)\['[^']+'\]"
)


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


class RolloutParser:
    """Reads one Rollout manifest; :meth:`parse` returns it or raises one ConfigError."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.unsupported = UnsupportedFields(manifest, label="supported here")

    # -- error helpers --

    def fail(self, path: FieldPath, message: str) -> ConfigError:
        return self.manifest.error(path, message)

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

    def only(
        self, body: Mapping[str, Any], path: FieldPath, allowed: Sequence[str]
    ) -> dict[str, Any]:
        """The keys of ``body`` that are ``allowed``; every other one is noted, and
        :meth:`parse` reports them all together."""
        self.unsupported.check_keys(path, body, allowed)
        return {key: value for key, value in body.items() if key in allowed}

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
        return validated(value, lambda reason: self.invalid(path, value, reason))

    # -- the object --

    def parse(self) -> Rollout:
        try:
            rollout = self._parse()
        except ConfigError as exc:
            error = self.unsupported.error(exc) or exc
            if error is exc:
                raise
            raise error from exc
        self.unsupported.raise_if_any()
        return rollout

    def _parse(self) -> Rollout:
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
            # ComputeStepHash: blueGreen has no steps to hash.
            steps_hash="" if spec.blue_green is not None else steps_hash(raw_steps),
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
        blue_green = self.mapping(strategy["blueGreen"], (*path, "blueGreen"))
        return None, self.blue_green(blue_green)

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
                "dynamicStableScale",
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
        if written_value(surge) == 0 and written_value(unavailable) == 0:
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
        dynamic = self.dynamic_stable_scale(body, path, traffic_routing is not None)
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
            dynamic_stable_scale=dynamic,
        )

    def dynamic_stable_scale(
        self, body: Mapping[str, Any], path: FieldPath, traffic_routed: bool
    ) -> bool:
        """``dynamicStableScale``: needs traffic routing, and excludes ``scaleDownDelaySeconds``
        (the previous stable is already scaled down when the canary is promoted)."""
        if "dynamicStableScale" not in body:
            return False
        where = (*path, "dynamicStableScale")
        dynamic = self.boolean(body["dynamicStableScale"], where)
        if dynamic and not traffic_routed:
            raise self.invalid(where, dynamic, INVALID_CANARY_DYNAMIC_STABLE_SCALE)
        if dynamic and "scaleDownDelaySeconds" in body:
            raise self.invalid(
                where, dynamic, INVALID_CANARY_DYNAMIC_STABLE_SCALE_WITH_SCALE_DOWN_DELAY
            )
        return dynamic

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
        value_from = self.only(value_from, from_path, ("podTemplateHashValue", "fieldRef"))
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
            self.unsupported.add(
                (*ref_path, "fieldPath"), ("metadata.name", "metadata.namespace", "metadata.labels")
            )
            return AnalysisArgument(name=name, field_path=field_path)
        if not _DOWNWARD_FIELD.fullmatch(field_path):
            raise self.invalid((*ref_path, "fieldPath"), field_path, INVALID_ANALYSIS_ARGS_MESSAGE)
        return AnalysisArgument(name=name, field_path=field_path)

    def step(self, raw: object, path: FieldPath, *, has_traffic_routing: bool) -> CanaryStep:
        body = self.mapping(raw, path)
        kinds = ("setWeight", "pause", "analysis", "setCanaryScale")
        known = self.only(body, path, kinds)
        if not body:
            raise self.invalid(
                path,
                "step.Experiment: true step.Pause: true step.SetWeight: true step.Analysis: true "
                "step.SetCanaryScale: true step.SetHeaderRoute: true step.SetMirrorRoutes: true",
                INVALID_STEP_MESSAGE,
            )
        if not known:
            # Only unsupported kinds (noted already): a stand-in, as parse() fails in the end.
            return Pause()
        if len(known) > 1:
            raise self.invalid(
                path,
                f"step.Experiment: false step.Pause: {_go_bool('pause' in body)} "
                f"step.SetWeight: {_go_bool('setWeight' in body)} "
                f"step.Analysis: {_go_bool('analysis' in body)}",
                INVALID_STEP_MESSAGE,
            )
        kind = next(iter(known))
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
        self.only(body, path, _BLUE_GREEN_FIELDS)
        if "activeService" not in body:
            raise self.required((*path, "activeService"), "the Service that serves production")
        active = self.string(body["activeService"], (*path, "activeService"))
        preview = self.optional_string(body, "previewService", path)
        if active == (preview or ""):
            raise self.invalid(
                (*path, "activeService"), active, DUPLICATED_SERVICES_BLUE_GREEN_MESSAGE
            )
        analyses = {
            key: self.analysis(body[key], (*path, key), background=False)
            for key in ("prePromotionAnalysis", "postPromotionAnalysis")
            if key in body
        }
        numbers = {
            key: self.non_negative(body[key], (*path, key))
            for key in (
                "autoPromotionSeconds",
                "previewReplicaCount",
                "scaleDownDelaySeconds",
                "abortScaleDownDelaySeconds",
            )
            if key in body
        }
        return BlueGreenStrategy(
            active_service=active,
            preview_service=preview,
            auto_promotion_enabled=self.boolean(
                body.get("autoPromotionEnabled", True), (*path, "autoPromotionEnabled")
            ),
            auto_promotion_seconds=numbers.get("autoPromotionSeconds", 0),
            preview_replica_count=numbers.get("previewReplicaCount"),
            pre_promotion_analysis=analyses.get("prePromotionAnalysis"),
            post_promotion_analysis=analyses.get("postPromotionAnalysis"),
            scale_down_delay_seconds=numbers.get("scaleDownDelaySeconds"),
            abort_scale_down_delay_seconds=numbers.get("abortScaleDownDelaySeconds"),
        )


def _go_bool(value: bool) -> str:
    return "true" if value else "false"
