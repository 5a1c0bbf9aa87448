"""Analysis arguments: placeholders, merging, valueFrom, and Argo's error texts."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.engine.analysis import (
    AnalysisPhase,
    AnalysisRun,
    AnalysisTemplate,
    Argument,
    ArgumentError,
    ValueFrom,
    VirtualClock,
    flatten_args,
    merge_args,
    parse_arguments,
    resolve_values,
    substitute,
)
from pytest_rollout.engine.analysis.providers import Providers
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest, parse_manifests

# -- substitution -------------------------------------------------------------------------------


def test_placeholders_are_replaced_and_spaces_inside_braces_allowed() -> None:
    values = {"service": "web", "namespace": "team-a"}
    assert (
        substitute("http://{{args.service}}.{{ args.namespace }}.svc/", values)
        == "http://web.team-a.svc/"
    )
    assert substitute("no placeholders", values) == "no placeholders"


def test_values_are_inserted_verbatim_and_never_substituted_again() -> None:
    values = {"a": 'say "hi"\n\t{{args.b}}', "b": "never"}
    assert substitute("[{{args.a}}]", values) == '[say "hi"\n\t{{args.b}}]'


def test_unknown_argument_is_argos_failed_to_resolve_naming_the_last_tag() -> None:
    with pytest.raises(ArgumentError) as info:
        substitute("{{args.nope}} and {{ args.other }}", {"x": "1"})
    assert str(info.value) == "failed to resolve {{ args.other }}"


def test_a_tag_that_is_not_an_argument_does_not_resolve() -> None:
    with pytest.raises(ArgumentError, match=r"^failed to resolve \{\{inputs\.x\}\}$"):
        substitute("{{inputs.x}}", {"x": "1"})


def test_an_unterminated_tag_is_fasttemplates_error() -> None:
    with pytest.raises(ArgumentError) as info:
        substitute("test-{{args.var", {"var": "x"})
    assert str(info.value) == (
        'Cannot find end tag="}}" in the template="test-{{args.var" starting from "args.var"'
    )


names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
plain = st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=8)


@given(st.lists(st.tuples(plain, names, st.booleans()), max_size=6), plain, st.data())
def test_substitution_equals_joining_the_pieces(
    pieces: list[tuple[str, str, bool]], tail: str, data: st.DataObject
) -> None:
    values = {name: data.draw(plain, label=name) for _, name, _ in pieces}
    text = "".join(
        f"{before}{{{{{' ' if spaced else ''}args.{name}}}}}" for before, name, spaced in pieces
    )
    expected = "".join(f"{before}{values[name]}" for before, name, _ in pieces)
    assert substitute(text + tail, values) == expected + tail


# -- merging and values ----------------------------------------------------------------------------


def test_rollout_args_override_template_values_and_unknown_ones_are_ignored() -> None:
    template_args = [Argument("namespace"), Argument("max", "0.05"), Argument("hash")]
    merged = merge_args(
        [
            Argument("namespace", "team-a"),
            Argument("max", "0.01"),
            Argument("hash", value_from=ValueFrom(pod_template_hash="Latest")),
            Argument("not-declared", "x"),
        ],
        template_args,
    )
    assert merged == [
        Argument("namespace", "team-a"),
        Argument("max", "0.01"),
        Argument("hash", value_from=ValueFrom(pod_template_hash="Latest")),
    ]


def test_a_required_template_arg_left_without_value_is_argos_error() -> None:
    with pytest.raises(ArgumentError) as info:
        merge_args([Argument("namespace", "x")], [Argument("namespace"), Argument("canary-hash")])
    assert str(info.value) == "args.canary-hash was not resolved"


def test_value_from_is_resolved_by_the_callers_hook() -> None:
    seen: list[tuple[str, ValueFrom]] = []

    def resolver(name: str, source: ValueFrom) -> str:
        seen.append((name, source))
        return {"Stable": "abc123", "Latest": "def456"}[source.pod_template_hash or "Stable"]

    args = [
        Argument("stable", value_from=ValueFrom(pod_template_hash="Stable")),
        Argument("latest", value_from=ValueFrom(pod_template_hash="Latest")),
        Argument("plain", "v"),
    ]
    assert resolve_values(args, resolver) == {
        "stable": "abc123",
        "latest": "def456",
        "plain": "v",
    }
    assert [name for name, _ in seen] == ["stable", "latest"]
    with pytest.raises(ArgumentError, match=r'^argument "stable" was not supplied$'):
        resolve_values(args, None)


def test_template_args_flatten_and_conflicting_values_are_argos_error() -> None:
    flattened = flatten_args(
        [[Argument("a"), Argument("b", "1")], [Argument("a", "2"), Argument("c")]]
    )
    assert flattened == [Argument("a", "2"), Argument("b", "1"), Argument("c")]
    with pytest.raises(ArgumentError) as info:
        flatten_args([[Argument("b", "1")], [Argument("b", "2")]])
    assert (
        str(info.value) == "Argument `b` specified multiple times with different values: '1', '2'"
    )


# -- parsing argument lists ---------------------------------------------------------------------


ROLLOUT_ARGS = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: r
spec:
  args:
    - name: namespace
      value: team-a
    - name: canary-hash
      valueFrom:
        podTemplateHashValue: Latest
    - name: name
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
"""


def manifest_of(text: str) -> Manifest:
    (manifest,) = parse_manifests(textwrap.dedent(text), Path("r.yaml"))
    return manifest


def test_rollout_argument_list_parses_values_and_sources() -> None:
    args = parse_arguments(manifest_of(ROLLOUT_ARGS), ("spec", "args"), pod_template_hash=True)
    assert args == (
        Argument("namespace", "team-a"),
        Argument("canary-hash", value_from=ValueFrom(pod_template_hash="Latest")),
        Argument("name", value_from=ValueFrom(field_path="metadata.name")),
    )


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        (
            "    - name: a\n      value: 5\n",
            "r.yaml:8: Rollout/r: spec.args[0].value: expected a string (quote it: '5')",
        ),
        (
            "    - name: a\n      valueFrom:\n        podTemplateHashValue: Canary\n",
            "spec.args[0].valueFrom.podTemplateHashValue: expected Stable or Latest, got 'Canary'",
        ),
        (
            "    - name: a\n      valueFrom:\n        secretKeyRef: {name: s, key: k}\n",
            "r.yaml:9: Rollout/r: unsupported: spec.args[0].valueFrom.secretKeyRef",
        ),
        ("    - value: x\n", "spec.args[0].name: required: a non-empty string"),
        (
            "    - name: a\n      value: x\n"
            "      valueFrom:\n        fieldRef: {fieldPath: metadata.name}\n",
            "arg a has both Value and ValueFrom fields",
        ),
    ],
)
def test_malformed_argument_lists(snippet: str, message: str) -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: r\nspec:\n  args:\n"
        + snippet
    )
    with pytest.raises(ConfigError) as info:
        parse_arguments(manifest_of(text), ("spec", "args"), pod_template_hash=True)
    assert message in str(info.value)


# -- arguments in a run ------------------------------------------------------------------------


TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: t
spec:
  args:
    - name: namespace
    - name: address
      value: http://127.0.0.1:1
  metrics:
    - name: m
      successCondition: "{{args.condition}}"
      provider:
        prometheus:
          address: "{{ args.address }}"
          query: up{namespace="{{args.namespace}}"}
"""


def analysis_template(text: str = TEMPLATE) -> AnalysisTemplate:
    (manifest,) = parse_manifests(text, Path("t.yaml"))
    return AnalysisTemplate.from_manifest(manifest)


def test_a_run_without_a_required_argument_cannot_be_created() -> None:
    with pytest.raises(ConfigError, match=r"^args\.namespace was not resolved$"):
        AnalysisRun("r", analysis_template(), providers=Providers())


def test_a_placeholder_without_argument_ends_the_run_in_error_with_argos_message() -> None:
    run = AnalysisRun(
        "r",
        analysis_template(),
        [Argument("namespace", "x")],
        providers=Providers(),
        clock=VirtualClock(),
    )
    status = asyncio.run(run.run())
    assert status.phase is AnalysisPhase.ERROR
    assert (
        status.message == "Unable to resolve metric arguments: failed to resolve {{args.condition}}"
    )


def test_a_resolved_metric_that_is_invalid_ends_the_run_in_error() -> None:
    text = TEMPLATE.replace(
        '      successCondition: "{{args.condition}}"\n', '      count: "{{args.namespace}}"\n'
    )
    run = AnalysisRun(
        "r",
        analysis_template(text),
        [Argument("namespace", "3")],
        providers=Providers(),
        clock=VirtualClock(),
    )
    assert (
        run.spec_error
        == "Analysis spec invalid: metrics[0]: interval must be specified when count > 1"
    )
    status = asyncio.run(run.run())
    assert (status.phase, status.message) == (AnalysisPhase.ERROR, run.spec_error)


def test_a_runs_value_from_args_are_resolved_by_the_hook_when_it_is_created() -> None:
    def resolver(name: str, source: ValueFrom) -> str:
        assert source == ValueFrom(pod_template_hash="Latest")
        return "7d9f8c"

    run = AnalysisRun(
        "r",
        analysis_template(),
        [
            Argument("namespace", "team-a"),
            Argument("namespace-hash", value_from=ValueFrom(pod_template_hash="Latest")),
        ],
        providers=Providers(),
        resolve_arg=resolver,
    )
    assert dict(run.args) == {"namespace": "team-a", "address": "http://127.0.0.1:1"}
    hashed = TEMPLATE.replace(
        "    - name: namespace\n", "    - name: namespace\n    - name: hash\n"
    )
    run = AnalysisRun(
        "r",
        analysis_template(hashed),
        [
            Argument("namespace", "team-a"),
            Argument("hash", value_from=ValueFrom(pod_template_hash="Latest")),
        ],
        providers=Providers(),
        resolve_arg=resolver,
    )
    assert run.args["hash"] == "7d9f8c"
