"""Analysis arguments: declaring them, merging a Rollout's into a template's, and substituting
``{{args.name}}`` placeholders.

Followed (argoproj/argo-rollouts): ``utils/analysis/helpers.go`` (``flattenArgs``,
``MergeArgs``, ``ResolveArgs``), ``utils/template/template.go`` (``ResolveArgs``,
``ResolveQuotedArgs``: fasttemplate with ``{{``/``}}``, the tag trimmed of spaces),
``utils/analysis/factory.go`` (``BuildArgumentsForRolloutAnalysisRun``: ``valueFrom`` becomes a
value when the AnalysisRun is created). Error texts are Argo's.

A ``valueFrom`` (``podTemplateHashValue: Stable|Latest`` or ``fieldRef.fieldPath``) is resolved
by the caller, who knows the ReplicaSets and the Rollout: pass an :data:`ArgResolver`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from pytest_rollout.engine.expr.builtins import go_quote
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import UnsupportedFields
from pytest_rollout.manifests import Manifest, type_name

PodTemplateHashValue = Literal["Stable", "Latest"]
POD_TEMPLATE_HASH_VALUES: tuple[PodTemplateHashValue, ...] = ("Stable", "Latest")

OPEN_TAG = "{{"
CLOSE_TAG = "}}"


class ArgumentError(ConfigError):
    """Arguments are missing, conflicting, or a placeholder cannot be resolved."""


@dataclass(frozen=True)
class ValueFrom:
    """Where an argument's value comes from when it is not written out."""

    pod_template_hash: PodTemplateHashValue | None = None
    field_path: str | None = None

    def __str__(self) -> str:
        if self.pod_template_hash is not None:
            return f"podTemplateHashValue: {self.pod_template_hash}"
        return f"fieldRef.fieldPath: {self.field_path}"


@dataclass(frozen=True)
class Argument:
    """One argument: a name and a value, a ``valueFrom``, or neither (required)."""

    name: str
    value: str | None = None
    value_from: ValueFrom | None = None

    @property
    def supplied(self) -> bool:
        return self.value is not None or self.value_from is not None


ArgResolver = Callable[[str, ValueFrom], str]
"""``resolver(argument_name, value_from) -> value``, supplied by the rollout engine."""


# --------------------------------------------------------------------------------------------
# Parsing


def parse_arguments(
    manifest: Manifest,
    path: Sequence[str | int],
    *,
    pod_template_hash: bool,
    found: UnsupportedFields | None = None,
) -> tuple[Argument, ...]:
    """The argument list at ``path`` in ``manifest`` (an AnalysisTemplate's ``spec.args``, or
    a Rollout's ``analysis.args`` with ``pod_template_hash=True``). Unsupported fields are
    noted in ``found`` for the caller to report with the document's others; without it, they
    are reported here, all at once."""
    if found is None:
        own = UnsupportedFields(manifest)
        parsed = parse_arguments(manifest, path, pod_template_hash=pod_template_hash, found=own)
        own.raise_if_any()
        return parsed
    raw = _value_at(manifest.body, path)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise manifest.error(path, f"expected a list of arguments, got {type_name(raw)}")
    args: list[Argument] = []
    for index, item in enumerate(raw):
        where = (*path, index)
        if not isinstance(item, dict):
            raise manifest.error(where, f"expected a mapping with a name, got {type_name(item)}")
        found.check_keys(where, item, ("name", "value", "valueFrom"))
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise manifest.error((*where, "name"), "required: a non-empty string")
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            raise manifest.error(
                (*where, "value"),
                f"expected a string (quote it: '{json.dumps(value)}'), got {type_name(value)}",
            )
        value_from = _parse_value_from(found, where, item.get("valueFrom"), pod_template_hash)
        if value is not None and value_from is not None:
            raise manifest.error(where, f"arg {name} has both Value and ValueFrom fields")
        args.append(Argument(name, value, value_from))
    return tuple(args)


def _parse_value_from(
    found: UnsupportedFields, where: tuple[str | int, ...], raw: object, pod_template_hash: bool
) -> ValueFrom | None:
    manifest = found.manifest
    if raw is None:
        return None
    at = (*where, "valueFrom")
    if not isinstance(raw, dict):
        raise manifest.error(at, f"expected a mapping, got {type_name(raw)}")
    allowed = ("podTemplateHashValue", "fieldRef") if pod_template_hash else ("fieldRef",)
    found.check_keys(at, raw, allowed)
    raw = {key: value for key, value in raw.items() if key in allowed}
    if not raw:
        return None  # only unsupported keys: reported with the others
    if len(raw) != 1:
        raise manifest.error(at, f"expected exactly one of {', '.join(allowed)}")
    if "podTemplateHashValue" in raw:
        source = raw["podTemplateHashValue"]
        if source not in POD_TEMPLATE_HASH_VALUES:
            raise manifest.error(
                (*at, "podTemplateHashValue"),
                f"expected Stable or Latest, got {source!r}",
            )
        return ValueFrom(pod_template_hash=source)
    field_ref = raw["fieldRef"]
    if not isinstance(field_ref, dict):
        raise manifest.error((*at, "fieldRef"), f"expected a mapping, got {type_name(field_ref)}")
    found.check_keys((*at, "fieldRef"), field_ref, ("fieldPath",))
    field_path = field_ref.get("fieldPath")
    if not isinstance(field_path, str) or not field_path:
        raise manifest.error((*at, "fieldRef", "fieldPath"), "required: a non-empty string")
    return ValueFrom(field_path=field_path)


# --------------------------------------------------------------------------------------------
# Merging


def flatten_args(arg_lists: Iterable[Sequence[Argument]]) -> list[Argument]:
    """The arguments of several templates combined, as Argo's ``flattenArgs`` does.

    The same name twice is fine when at most one value is set or the values agree; a
    later value fills an earlier argument that had none.
    """
    combined: list[Argument] = []
    for args in arg_lists:
        for arg in args:
            for index, previous in enumerate(combined):
                if previous.name != arg.name:
                    continue
                if (
                    previous.value is not None
                    and arg.value is not None
                    and previous.value != arg.value
                ):
                    raise ArgumentError(
                        f"Argument `{arg.name}` specified multiple times with different "
                        f"values: '{previous.value}', '{arg.value}'"
                    )
                if previous.value is None:
                    combined[index] = arg
                break
            else:
                combined.append(arg)
    return combined


def merge_args(incoming: Sequence[Argument], template_args: Sequence[Argument]) -> list[Argument]:
    """The template's arguments with the Rollout's values laid over them (``MergeArgs``).

    Arguments the templates do not declare are ignored, as in Argo. An argument left
    without a value or a source is an error: ``args.NAME was not resolved``.
    """
    merged = list(template_args)
    for arg in incoming:
        for index, declared in enumerate(merged):
            if declared.name != arg.name:
                continue
            if arg.value is not None:
                merged[index] = replace(declared, value=arg.value, value_from=None)
            elif arg.value_from is not None:
                merged[index] = replace(declared, value=None, value_from=arg.value_from)
    for arg in merged:
        if not arg.supplied:
            raise ArgumentError(f"args.{arg.name} was not resolved")
    return merged


def resolve_values(args: Sequence[Argument], resolver: ArgResolver | None) -> dict[str, str]:
    """Each argument's value; ``valueFrom`` is asked of ``resolver``.

    An argument with no value (and no way to get one) fails the way Argo's template
    resolution does: ``argument "NAME" was not supplied``.
    """
    values: dict[str, str] = {}
    for arg in args:
        if arg.value is not None:
            values[arg.name] = arg.value
        elif arg.value_from is not None and resolver is not None:
            values[arg.name] = resolver(arg.name, arg.value_from)
        else:
            raise ArgumentError(f'argument "{arg.name}" was not supplied')
    return values


# --------------------------------------------------------------------------------------------
# Substitution


def placeholders(text: str) -> list[str]:
    """The tags between ``{{`` and ``}}`` in ``text``, untrimmed, in order."""
    tags: list[str] = []
    start = text.find(OPEN_TAG)
    while start >= 0:
        end = text.find(CLOSE_TAG, start + len(OPEN_TAG))
        if end < 0:
            break
        tags.append(text[start + len(OPEN_TAG) : end])
        start = text.find(OPEN_TAG, end + len(CLOSE_TAG))
    return tags


def is_templated(text: str) -> bool:
    """Whether ``text`` holds a ``{{...}}`` placeholder (resolved only when the run starts)."""
    return OPEN_TAG in text


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``{{args.NAME}}`` replaced (spaces inside the braces allowed).

    Any other tag, or an unknown argument, is ``failed to resolve {{TAG}}`` (the last one,
    as fasttemplate reports it); a ``{{`` without ``}}`` is fasttemplate's parse error.
    """
    out: list[str] = []
    unresolved: str | None = None
    position = 0
    while True:
        start = text.find(OPEN_TAG, position)
        if start < 0:
            out.append(text[position:])
            break
        out.append(text[position:start])
        end = text.find(CLOSE_TAG, start + len(OPEN_TAG))
        if end < 0:
            rest = text[start + len(OPEN_TAG) :]
            raise ArgumentError(
                f"Cannot find end tag={go_quote(CLOSE_TAG)} in the template={go_quote(text)} "
                f"starting from {go_quote(rest)}"
            )
        tag = text[start + len(OPEN_TAG) : end]
        key = tag.strip()
        if key.startswith("args.") and key[len("args.") :] in values:
            out.append(values[key[len("args.") :]])
        else:
            unresolved = tag
        position = end + len(CLOSE_TAG)
    if unresolved is not None:
        raise ArgumentError(f"failed to resolve {{{{{unresolved}}}}}")
    return "".join(out)


T = TypeVar("T")


def substitute_all(value: T, values: Mapping[str, str]) -> T:
    """Every string inside ``value`` (nested mappings and lists) substituted.

    Argo substitutes in the metric's whole JSON text and reports the last unresolved tag;
    this walks the strings in document order and does the same.
    """
    errors: list[ArgumentError] = []
    result = _walk(value, values, errors)
    if errors:
        raise errors[-1]
    return result  # type: ignore[no-any-return]


def _walk(value: Any, values: Mapping[str, str], errors: list[ArgumentError]) -> Any:
    if isinstance(value, str):
        try:
            return substitute(value, values)
        except ArgumentError as exc:
            if exc.args[0].startswith("Cannot find end tag"):
                raise
            errors.append(exc)
            return value
    if isinstance(value, dict):
        return {key: _walk(item, values, errors) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, values, errors) for item in value]
    return value


def _value_at(body: Mapping[str, Any], path: Sequence[str | int]) -> Any:
    """The value at ``path`` in ``body``, or None when any step is missing."""
    node: Any = body
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return None
            node = node[part]
        else:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
    return node
