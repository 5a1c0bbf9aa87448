"""The Rollout model: the supported subset, defaults, and Argo's validation wording."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.engine.analysis.durations import parse_go_duration
from pytest_rollout.engine.rollout_model import (
    AnalysisArgument,
    AnalysisStep,
    Pause,
    Rollout,
    SetCanaryScale,
    SetWeight,
    duration_seconds,
    parse_rollout,
)
from pytest_rollout.engine.template_hash import pod_template_hash
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import load_manifest_file, parse_manifests

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "manifests"

BASE = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  labels:
    team: checkout
spec:
  replicas: 4
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: app
          image: example/web:1
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: web
      steps:
        - setWeight: 5
        - pause: {duration: 10s}
"""


# The services and traffic routing of the fixture Rollout, as written in it.
TRAFFIC_ROUTING = """      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: web
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Error messages show paths relative to the working directory.
    monkeypatch.chdir(tmp_path)


def parse(text: str) -> Rollout:
    return parse_rollout(parse_manifests(textwrap.dedent(text), Path("rollout.yaml"))[0])


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


# --- the fixtures --------------------------------------------------------------------------


@pytest.mark.parametrize("experiment", ["bad-canary", "smoke-gate", "business-gate"])
def test_fixture_rollouts_parse(experiment: str) -> None:
    manifest = load_manifest_file(FIXTURES / experiment / "rollout.yaml")[0]
    rollout = parse_rollout(manifest)
    spec = rollout.spec
    assert rollout.name == "reference-service"
    assert spec.replicas == 4
    assert spec.revision_history_limit == 2
    assert spec.selector == {"app": "reference-service"}
    assert spec.template["spec"]["containers"][0]["name"] == "app"
    strategy = spec.canary
    assert strategy is not None
    assert strategy.canary_service == "reference-service-canary"
    assert strategy.stable_service == "reference-service-stable"
    assert strategy.abort_scale_down_delay == 10
    assert strategy.traffic_routing is not None
    assert strategy.traffic_routing.http_route == "reference-service"
    analyses = [step for step in strategy.steps if isinstance(step, AnalysisStep)]
    error_rate = analyses[-1].analysis
    assert error_rate.args == (
        AnalysisArgument("namespace", field_path="metadata.namespace"),
        AnalysisArgument("canary-hash", pod_template_hash="Latest"),
    )
    assert error_rate.templates[0].template_name == "error-rate"
    assert isinstance(strategy.steps[-2], SetWeight)
    assert strategy.steps[-1] == Pause("10s")


def test_smoke_gate_steps() -> None:
    manifest = load_manifest_file(FIXTURES / "smoke-gate" / "rollout.yaml")[0]
    steps = parse_rollout(manifest).spec.canary.steps  # type: ignore[union-attr]
    assert steps[0] == SetCanaryScale(replicas=1)
    assert steps[3] == SetCanaryScale(match_traffic_weight=True)
    assert [step.describe() for step in steps[:4]] == [
        "setCanaryScale{replicas: 1}",
        "analysis",
        "setWeight: 5",
        "setCanaryScale{matchTrafficWeight: true}",
    ]


def test_defaults_follow_argo() -> None:
    text = edit("  replicas: 4\n", "")
    rollout = parse(text)
    spec = rollout.spec
    assert spec.replicas == 1
    assert spec.min_ready_seconds == 0
    assert spec.revision_history_limit == 10
    assert spec.progress_deadline_seconds == 600
    assert spec.progress_deadline_abort is False
    strategy = spec.canary
    assert strategy is not None
    assert (strategy.max_surge, strategy.max_unavailable) == ("25%", "25%")
    assert strategy.abort_scale_down_delay == 30
    assert strategy.scale_down_delay == 30
    zero = parse(edit("      steps:\n", "      abortScaleDownDelaySeconds: 0\n      steps:\n"))
    assert zero.spec.canary is not None
    assert zero.spec.canary.abort_scale_down_delay is None


def test_a_basic_canary_rolls_back_at_once() -> None:
    text = edit(
        TRAFFIC_ROUTING,
        "",
    )
    strategy = parse(text).spec.canary
    assert strategy is not None
    assert strategy.traffic_routing is None
    assert strategy.abort_scale_down_delay == 0
    assert strategy.scale_down_delay == 0


def test_blue_green_is_modelled() -> None:
    text = edit(
        BASE[BASE.index("    canary:") :],
        """    blueGreen:
      activeService: web-active
      previewService: web-preview
      autoPromotionEnabled: false
      autoPromotionSeconds: 20
      previewReplicaCount: 1
      scaleDownDelaySeconds: 5
      abortScaleDownDelaySeconds: 0
      prePromotionAnalysis:
        templates:
          - templateName: smoke
      postPromotionAnalysis:
        templates:
          - templateName: error-rate
        args:
          - name: hash
            valueFrom:
              podTemplateHashValue: Latest
""",
    )
    rollout = parse(text)
    blue_green = rollout.spec.blue_green
    assert rollout.spec.canary is None
    assert blue_green is not None
    assert blue_green.active_service == "web-active"
    assert blue_green.preview_service == "web-preview"
    assert blue_green.auto_promotion_enabled is False
    assert blue_green.auto_promotion_seconds == 20
    assert blue_green.preview_replica_count == 1
    assert blue_green.scale_down_delay == 5
    assert blue_green.abort_scale_down_delay is None  # 0: never scaled down
    assert blue_green.controller_pauses
    assert [a.templates[0].template_name for a in rollout.spec.analyses] == ["smoke", "error-rate"]
    assert rollout.spec.services == {
        "activeService": "web-active",
        "previewService": "web-preview",
    }
    # ComputeStepHash: no steps to hash.
    assert rollout.steps_hash == ""
    default = parse(
        edit(BASE[BASE.index("    canary:") :], "    blueGreen:\n      activeService: a\n")
    )
    assert default.spec.blue_green is not None
    assert default.spec.blue_green.auto_promotion_enabled is True
    assert default.spec.blue_green.auto_promotion_seconds == 0
    assert default.spec.blue_green.preview_replica_count is None
    assert default.spec.blue_green.scale_down_delay_seconds is None
    assert default.spec.blue_green.scale_down_delay == 30
    assert default.spec.blue_green.abort_scale_down_delay == 30
    assert not default.spec.blue_green.controller_pauses


@pytest.mark.parametrize(
    "field",
    [
        "antiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: {weight: 1}}",
        "previewMetadata: {labels: {role: preview}}",
        "activeMetadata: {labels: {role: active}}",
        "scaleDownDelayRevisionLimit: 1",
        "maxUnavailable: 1",
    ],
)
def test_blue_green_fields_outside_the_subset_are_rejected(field: str) -> None:
    text = edit(
        BASE[BASE.index("    canary:") :],
        f"    blueGreen:\n      activeService: a\n      {field}\n",
    )
    name = field.split(":")[0]
    assert error_of(text).startswith(
        f"rollout.yaml:{line_of(text, name)}: Rollout/web: unsupported: "
        f"spec.strategy.blueGreen.{name} (supported here: activeService, previewService, "
    )


def test_every_unsupported_field_of_a_rollout_is_named_at_once() -> None:
    text = edit("  replicas: 4\n", "  replicas: 4\n  paused: true\n  workloadRef: {name: w}\n")
    text = edit("        - setWeight: 5\n", "        - experiment: {templates: []}\n", text)
    lines = error_of(text).splitlines()
    assert lines[0] == "rollout.yaml: Rollout/web: 3 unsupported fields:"
    assert [line.split(": unsupported: ")[1].split(" (")[0] for line in lines[1:]] == [
        "spec.paused",
        "spec.workloadRef",
        "spec.strategy.canary.steps[0].experiment",
    ]
    assert lines[1].startswith(f"  rollout.yaml:{line_of(text, 'paused')}: Rollout/web: ")


def test_unsupported_fields_come_with_the_documents_other_error() -> None:
    text = edit("  replicas: 4\n", "  replicas: four\n  paused: true\n")
    lines = error_of(text).splitlines()
    assert lines[0] == "rollout.yaml: Rollout/web: 1 unsupported field and a further error:"
    assert "unsupported: spec.paused" in lines[1]
    assert "spec.replicas: Invalid value" in lines[2]


# --- unsupported fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("  replicas: 4\n", "  replicas: 4\n  paused: true\n", "spec.paused"),
        (
            "      steps:\n",
            "      minPodsPerReplicaSet: 2\n      steps:\n",
            "spec.strategy.canary.minPodsPerReplicaSet",
        ),
        (
            "        - setWeight: 5\n",
            "        - experiment: {templates: []}\n",
            "spec.strategy.canary.steps[0].experiment",
        ),
        (
            "        plugins:\n",
            "        nginx: {stableIngress: web}\n        plugins:\n",
            "spec.strategy.canary.trafficRouting.nginx",
        ),
        (
            "            httpRoute: web\n",
            "            httpRoute: web\n            useHeaderRoutes: true\n",
            "spec.strategy.canary.trafficRouting.plugins.argoproj-labs/gatewayAPI.useHeaderRoutes",
        ),
        (
            "      app: web\n  template:",
            "      app: web\n    matchExpressions: []\n  template:",
            "spec.selector.matchExpressions",
        ),
        (
            "        - pause: {duration: 10s}\n",
            "        - pause: {duration: 10s, until: never}\n",
            "spec.strategy.canary.steps[1].pause.until",
        ),
        ("kind: Rollout\n", "kind: Rollout\nstatus: {}\n", "status"),
    ],
)
def test_any_other_field_is_rejected_with_its_path_and_line(old: str, new: str, path: str) -> None:
    text = edit(old, new)
    message = error_of(text)
    assert f"unsupported: {path} (supported here: " in message
    field_name = path.rsplit(".", 1)[-1].split("[")[0]
    assert message.startswith(f"rollout.yaml:{line_of(text, field_name + ':')}: Rollout/web: ")


def test_unsupported_analysis_fields_are_rejected() -> None:
    text = edit(
        "      steps:\n",
        "      analysis:\n        templates:\n          - templateName: x\n"
        "        dryRun:\n          - metricName: x\n      steps:\n",
    )
    assert "unsupported: spec.strategy.canary.analysis.dryRun" in error_of(text)


# --- Argo's validation wording -------------------------------------------------------------


def test_canary_and_blue_green_together() -> None:
    text = edit("    canary:\n", "    blueGreen:\n      activeService: a\n    canary:\n")
    assert error_of(text).endswith(
        'spec.strategy: Invalid value: "blueGreen: true canary: true": '
        "Multiple Strategies can not be listed"
    )


def test_no_strategy() -> None:
    text = BASE[: BASE.index("  strategy:")]
    assert error_of(text).endswith(
        "spec.strategy: Required value: Rollout has missing field "
        "'.spec.strategy.canary or .spec.strategy.blueGreen'"
    )


@pytest.mark.parametrize("weight", [-1, 101, 1000])
def test_set_weight_outside_0_to_100(weight: int) -> None:
    text = edit("- setWeight: 5", f"- setWeight: {weight}")
    message = error_of(text)
    assert message == (
        f"rollout.yaml:{line_of(text, 'setWeight')}: Rollout/web: "
        f"spec.strategy.canary.steps[0].setWeight: Invalid value: {weight}: "
        "SetWeight needs to be between 0 and 100"
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("10s", 10),
        ("1m", 60),
        ("1h30m", 5400),
        ("1.5s", 1),
        ("90", 90),
        ("0", 0),
        ("500ms", 0),
        (7, 7),
    ],
)
def test_pause_durations_read_like_argo(written: str | int, seconds: int) -> None:
    shown = f'"{written}"' if isinstance(written, str) else str(written)
    rollout = parse(edit("{duration: 10s}", f"{{duration: {shown}}}"))
    pause = rollout.spec.canary.steps[1]  # type: ignore[union-attr]
    assert isinstance(pause, Pause)
    assert pause.seconds == seconds
    assert pause.describe() == f"pause: {written}"


@pytest.mark.parametrize(
    ("written", "value"), [('"10x"', -1), ('"soon"', -1), ('"-5s"', -5), ("-3", -3)]
)
def test_invalid_pause_duration(written: str, value: int) -> None:
    message = error_of(edit("{duration: 10s}", f"{{duration: {written}}}"))
    assert message.endswith(
        f"spec.strategy.canary.steps[1].pause.duration: Invalid value: {value}: "
        "Duration needs to be greater than 0"
    )


def test_step_with_two_kinds() -> None:
    text = edit("        - setWeight: 5\n", "        - setWeight: 5\n          pause: {}\n")
    assert error_of(text).endswith(
        'spec.strategy.canary.steps[0]: Invalid value: "step.Experiment: false step.Pause: true '
        'step.SetWeight: true step.Analysis: false": Step must have one of the following set: '
        "experiment, setWeight, setCanaryScale or pause"
    )


def test_empty_step() -> None:
    assert "Step must have one of the following set" in error_of(
        edit("        - setWeight: 5\n", "        - {}\n")
    )


@pytest.mark.parametrize("missing", ["canaryService", "stableService"])
def test_traffic_routing_needs_both_services(missing: str) -> None:
    text = edit(f"      {missing}: web-{missing[:-7]}\n", "")
    assert error_of(text).endswith(
        f'spec.strategy.canary.{missing}: Invalid value: "": Canary service and Stable service '
        "must to be set to use Traffic Routing"
    )


def test_stable_and_canary_service_must_differ() -> None:
    text = edit("canaryService: web-canary", "canaryService: web-stable")
    assert error_of(text).endswith(
        'spec.strategy.canary.stableService: Invalid value: "web-stable": This rollout uses the '
        "same service for the stable and canary services, but two different services are required."
    )


def test_max_surge_and_max_unavailable_both_zero() -> None:
    text = edit("      steps:\n", "      maxSurge: 0\n      maxUnavailable: '0%'\n      steps:\n")
    assert error_of(text).endswith(
        "spec.strategy.canary.maxSurge: Invalid value: 0: MaxSurge and MaxUnavailable both can "
        "not be zero"
    )


def test_set_canary_scale_needs_traffic_routing() -> None:
    text = edit(
        TRAFFIC_ROUTING,
        "",
    )
    text = edit("- setWeight: 5", "- setCanaryScale: {replicas: 1}", text)
    assert error_of(text).endswith(
        "spec.strategy.canary.trafficRouting: Required value: SetCanaryScale requires "
        "TrafficRouting to be set"
    )


def test_scale_down_delay_needs_traffic_routing() -> None:
    text = edit(
        """      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: web
""",
        "      scaleDownDelaySeconds: 5\n",
    )
    assert error_of(text).endswith(
        "spec.strategy.canary.scaleDownDelaySeconds: Invalid value: 5: Canary "
        "scaleDownDelaySeconds can only be used with traffic routing"
    )


def test_wrong_type_uses_the_api_servers_wording() -> None:
    text = edit("  replicas: 4\n", '  replicas: "4"\n')
    assert error_of(text) == (
        f"rollout.yaml:{line_of(text, 'replicas')}: Rollout/web: spec.replicas: "
        'Invalid value: "string": spec.replicas in body must be of type integer: "string"'
    )


def test_selector_is_required_and_must_match_the_template() -> None:
    missing = error_of(edit("  selector:\n    matchLabels:\n      app: web\n", ""))
    assert missing.endswith(
        "spec.selector: Required value: Rollout has missing field '.spec.selector'"
    )
    other = error_of(edit("      app: web\n  template:", "      app: api\n  template:"))
    assert other.endswith(
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    )


def test_progress_deadline_must_exceed_min_ready_seconds() -> None:
    text = edit(
        "  replicas: 4\n", "  replicas: 4\n  minReadySeconds: 30\n  progressDeadlineSeconds: 30\n"
    )
    assert error_of(text).endswith(
        "spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds"
    )


def test_analysis_arguments_are_checked() -> None:
    analysis = (
        "        - analysis:\n"
        "            templates:\n"
        "              - templateName: error-rate\n"
        "            args:\n"
        "              - name: hash\n"
        "                valueFrom:\n"
        "                  {value_from}\n"
    )
    bad_hash = edit(
        "        - setWeight: 5\n", analysis.format(value_from="podTemplateHashValue: Newest")
    )
    assert error_of(bad_hash).endswith(
        'podTemplateHashValue: Unsupported value: "Newest": supported values: "Latest", "Stable"'
    )
    bad_field = edit(
        "        - setWeight: 5\n",
        analysis.format(value_from="fieldRef: {fieldPath: metadata.owner}"),
    )
    assert error_of(bad_field).endswith(
        'fieldPath: Invalid value: "metadata.owner": Analyses arguments must refer to valid '
        "object metadata supported by downwardAPI"
    )
    no_template = edit("        - setWeight: 5\n", "        - analysis: {templates: []}\n")
    assert "steps[0].analysis.templates: Required value" in error_of(no_template)


def test_traffic_routing_must_use_the_gateway_api_plugin() -> None:
    text = edit(
        "          argoproj-labs/gatewayAPI:\n            httpRoute: web\n",
        "          other/router: {}\n",
    )
    assert "unsupported: spec.strategy.canary.trafficRouting.plugins.other/router" in error_of(text)
    no_route = edit("            httpRoute: web\n", "            namespace: x\n")
    assert error_of(no_route).endswith(
        "spec.strategy.canary.trafficRouting.plugins.argoproj-labs/gatewayAPI.httpRoute: "
        "Required value: the name of the HTTPRoute"
    )


def test_not_a_rollout() -> None:
    text = edit("kind: Rollout", "kind: Deployment")
    assert "expected apiVersion argoproj.io/v1alpha1 and kind Rollout" in error_of(text)


# --- arguments and hashes ------------------------------------------------------------------


def test_resolve_arguments() -> None:
    rollout = parse(BASE)
    args = (
        AnalysisArgument("ns", field_path="metadata.namespace"),
        AnalysisArgument("name", field_path="metadata.name"),
        AnalysisArgument("team", field_path="metadata.labels['team']"),
        AnalysisArgument("latest", pod_template_hash="Latest"),
        AnalysisArgument("stable", pod_template_hash="Stable"),
        AnalysisArgument("literal", value="0.05"),
    )
    assert rollout.resolve_arguments(args, namespace="t-1", stable_hash="s", latest_hash="l") == {
        "ns": "t-1",
        "name": "web",
        "team": "checkout",
        "latest": "l",
        "stable": "s",
        "literal": "0.05",
    }


def test_pod_template_hash_changes_with_the_template_only() -> None:
    first = parse(BASE)
    same = parse(edit("setWeight: 5", "setWeight: 10"))
    other = parse(edit("example/web:1", "example/web:2"))
    assert first.pod_template_hash == same.pod_template_hash
    assert first.steps_hash != same.steps_hash
    assert first.pod_template_hash != other.pod_template_hash
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{6,10}", first.pod_template_hash)


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=4))
def test_pod_template_hash_is_deterministic(template: dict[str, int]) -> None:
    assert pod_template_hash(template) == pod_template_hash(dict(reversed(list(template.items()))))


@given(
    hours=st.integers(min_value=0, max_value=5),
    minutes=st.integers(min_value=0, max_value=59),
    seconds=st.integers(min_value=0, max_value=59),
)
def test_go_durations_add_up(hours: int, minutes: int, seconds: int) -> None:
    text = f"{hours}h{minutes}m{seconds}s"
    assert parse_go_duration(text) == hours * 3600 + minutes * 60 + seconds
    assert duration_seconds(text) == hours * 3600 + minutes * 60 + seconds


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_integer_durations_are_seconds(value: int) -> None:
    assert duration_seconds(value) == value
    assert duration_seconds(str(value)) == value


@given(st.text(max_size=8))
def test_any_duration_string_reads_as_a_number(text: str) -> None:
    assert isinstance(duration_seconds(text), int)
