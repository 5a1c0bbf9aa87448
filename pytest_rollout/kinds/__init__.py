"""Declarative experiments: the ``[experiments.NAME]`` tables of the target config.

Each table names a ``kind`` — a procedure written on the public API
(:class:`~pytest_rollout.experiment.Experiment`) — and the keys it takes. A table is validated
when it is collected, against the config and its manifests, so a mistake is one collection
error naming the file, the table and the key.

Keys every kind takes::

    kind      = "canary-containment"   # required
    manifests = "bad-canary"           # a manifest set (required unless the kind says)
    workload  = "reference-service"    # the Rollout or Deployment; default: the only one
    route     = "reference-service"    # the HTTPRoute; default: the only one
    variant   = "bad"                  # the release (required unless the kind says)
    rate      = 200                    # requests per second
    timeout   = 75                     # seconds a deploy or release may take to settle
    tail      = 9                      # seconds of load after the release settles
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.config import TargetConfig
from pytest_rollout.errors import ConfigError
from pytest_rollout.experiment import DEFAULT_RATE, DEFAULT_TAIL, DEFAULT_TIMEOUT, Experiment
from pytest_rollout.manifests import ManifestSet
from pytest_rollout.release import ReleaseTarget, resolve_target
from pytest_rollout.tomlcheck import Where, check_keys, require_string, require_strings, toml_type

COMMON_KEYS = ("kind", "manifests", "workload", "route", "variant", "rate", "timeout", "tail")
_MAX_RATE = 5_000.0


@dataclass(frozen=True)
class ExperimentSpec:
    """One validated ``[experiments.NAME]`` table."""

    name: str
    kind: str
    manifests: str | None
    workload: str | None
    route: str | None
    variant: str | None
    """None for a kind that names its releases itself."""
    rate: float
    timeout: float
    tail: float
    options: Mapping[str, Any] = field(default_factory=dict)
    """The kind's own keys, validated."""
    where: str = ""
    """``rollout.toml: [experiments.NAME]``: for messages."""

    @property
    def the_variant(self) -> str:
        """``variant``, for the kinds that take one (the parser required it there)."""
        if self.variant is None:
            raise ConfigError(f"{self.where}: kind {self.kind!r} names no single variant")
        return self.variant

    def release(self, experiment: Experiment, **overrides: Any) -> Any:
        """``experiment.release`` with this table's common keys."""
        arguments: dict[str, Any] = {
            "manifests": self.manifests,
            "workload": self.workload,
            "route": self.route,
            "rate": self.rate,
            "timeout": self.timeout,
            "tail": self.tail,
        }
        arguments.update(overrides)
        return experiment.release(self.the_variant, **arguments)


@dataclass(frozen=True)
class Kind:
    """A declarative experiment procedure and the keys it takes beyond the common ones."""

    name: str
    summary: str
    run: Callable[[Experiment, ExperimentSpec], None]
    keys: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    parse: Callable[[Mapping[str, Any], Where, TargetConfig, ExperimentSpec], Mapping[str, Any]] = (
        lambda table, where, target, spec: {}
    )
    needs_manifests: bool = True
    takes_variant: bool = True
    """False for a kind whose own keys name its releases: ``variant`` is then not allowed."""
    default_rate: float = DEFAULT_RATE
    runs_alone: bool = False
    """True for a kind that runs several releases at once (it fills the cores itself), whose
    numbers are reaction times compared with each other, or whose load generator works near
    its limit: its items carry the ``rollout_alone`` marker, so that a parallel run can leave
    them for a run of their own."""


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make ``kind`` available to ``[experiments]`` tables."""
    _KINDS[kind.name] = kind
    return kind


def kinds() -> Mapping[str, Kind]:
    _load_builtin_kinds()
    return dict(_KINDS)


def parse_experiment(name: str, table: Mapping[str, Any], target: TargetConfig) -> ExperimentSpec:
    """Validate ``[experiments.NAME]`` against ``target`` and its manifests."""
    where = Where(target.label, (*target.section, "experiments", name))
    known = kinds()
    if "kind" not in table:
        raise where.error(f"missing required key 'kind'; kinds: {', '.join(sorted(known))}")
    kind_name = require_string(table["kind"], where.key("kind"))
    kind = known.get(kind_name)
    if kind is None:
        raise where.key("kind").error(
            f"unknown kind {kind_name!r}; kinds: {', '.join(sorted(known))}"
        )
    common = COMMON_KEYS if kind.takes_variant else tuple(k for k in COMMON_KEYS if k != "variant")
    check_keys(
        table,
        where,
        allowed=(*common, *kind.keys),
        required=(
            *(("variant",) if kind.takes_variant else ()),
            *(("manifests",) if kind.needs_manifests else ()),
            *kind.required,
        ),
    )
    manifests = None
    if "manifests" in table:
        manifests = manifest_set_name(table["manifests"], where.key("manifests"), target)
    variant = None
    if kind.takes_variant:
        variant = variant_name(table["variant"], where.key("variant"), target)
    spec = ExperimentSpec(
        name=name,
        kind=kind_name,
        manifests=manifests,
        workload=_optional_string(table, "workload", where),
        route=_optional_string(table, "route", where),
        variant=variant,
        rate=positive(table.get("rate", kind.default_rate), where.key("rate"), upto=_MAX_RATE),
        timeout=positive(table.get("timeout", DEFAULT_TIMEOUT), where.key("timeout")),
        tail=positive(table.get("tail", DEFAULT_TAIL), where.key("tail")),
        where=f"{where.label}: {where}",
    )
    if manifests is not None:
        workload_of(spec, manifests, target, where)
    options = kind.parse(table, where, target, spec)
    return ExperimentSpec(**{**spec.__dict__, "options": dict(options)})


# --- helpers for kinds ---------------------------------------------------------------------


def manifest_set_name(value: object, where: Where, target: TargetConfig) -> str:
    """A manifest set of the target config."""
    return _known_name(value, where, target.manifest_sets, what="manifest set", plural="sets")


def variant_name(value: object, where: Where, target: TargetConfig) -> str:
    """A variant of the target config."""
    return _known_name(value, where, target.variants, what="variant", plural="variants")


def _known_name(
    value: object, where: Where, known: Mapping[str, Any], *, what: str, plural: str
) -> str:
    name = require_string(value, where)
    if name not in known:
        raise where.error(f"no {what} {name!r}; {plural}: {', '.join(sorted(known)) or 'none'}")
    return name


def workload_of(
    spec: ExperimentSpec, manifest_set: str, target: TargetConfig, where: Where
) -> ReleaseTarget:
    """The workload and route the table names in ``manifest_set``, checked."""
    return resolve_target(
        target.load_manifests(manifest_set),
        workload=spec.workload,
        route=spec.route,
        set_name=manifest_set,
        error=lambda key, message: where.key(key).error(message),
    )


def metric_names(manifests: ManifestSet) -> list[str]:
    """The metric names of every AnalysisTemplate in ``manifests``."""
    names: list[str] = []
    for manifest in manifests:
        if manifest.kind not in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
            continue
        spec = manifest.body.get("spec")
        metrics = spec.get("metrics") if isinstance(spec, Mapping) else None
        for metric in metrics if isinstance(metrics, list) else []:
            if isinstance(metric, Mapping) and isinstance(metric.get("name"), str):
                names.append(metric["name"])
    return names


def metric_name(value: object, where: Where, target: TargetConfig, manifest_set: str | None) -> str:
    """A metric name that an AnalysisTemplate of ``manifest_set`` defines."""
    name = require_string(value, where)
    if manifest_set is not None:
        known = metric_names(target.load_manifests(manifest_set))
        if name not in known:
            raise where.error(
                f"no metric {name!r} in the AnalysisTemplates of manifest set "
                f"{manifest_set!r}; metrics: {', '.join(known) or 'none'}"
            )
    return name


def metric_names_list(
    value: object, where: Where, target: TargetConfig, manifest_set: str | None
) -> tuple[str, ...]:
    names = require_strings(value, where, what="metric names")
    return tuple(metric_name(n, where.key(i), target, manifest_set) for i, n in enumerate(names))


def positive(value: object, where: Where, *, upto: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"expected a positive number, got {toml_type(value)}")
    if not math.isfinite(value) or not 0 < value <= upto:
        bound = f" at most {upto:g}" if math.isfinite(upto) else ""
        raise where.error(f"expected a positive number{bound}, got {value!r}")
    return float(value)


def share(value: object, where: Where) -> float:
    number = positive(value, where)
    if number > 1:
        raise where.error(f"expected a share of all requests in (0, 1], got {value!r}")
    return number


def _optional_string(table: Mapping[str, Any], key: str, where: Where) -> str | None:
    return require_string(table[key], where.key(key)) if key in table else None


def _load_builtin_kinds() -> None:
    # Imported here: the kinds import the experiment API, which imports nothing of this module.
    from pytest_rollout.kinds import canary, cost, judge, readiness, schema  # noqa: F401


__all__: Sequence[str] = (
    "ExperimentSpec",
    "Kind",
    "kinds",
    "parse_experiment",
    "register",
)
