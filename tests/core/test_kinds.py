"""The declarative experiments of this repository's rollout.toml validate against its
manifests, and each names what it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rollout.config_file import load_target_config
from pytest_rollout.kinds import kinds, parse_experiment

REPO = Path(__file__).resolve().parents[2]


def test_every_builtin_kind_is_registered() -> None:
    assert {
        "readiness-probe",
        "canary-containment",
        "metric-gate",
        "smoke-gate",
        "good-release",
        "expand-contract",
        "canary-judge",
    } <= set(kinds())


@pytest.mark.parametrize("name", sorted(load_target_config([REPO]).experiments))
def test_the_repositorys_experiments_validate(name: str) -> None:
    target = load_target_config([REPO])
    spec = parse_experiment(name, target.experiments[name], target)
    assert spec.kind in kinds()
    assert spec.variant in target.variants or not kinds()[spec.kind].takes_variant
    assert spec.where == f"rollout.toml: [experiments.{name}]"


def test_containment_defaults_and_options() -> None:
    target = load_target_config([REPO])
    spec = parse_experiment("latency-regression", target.experiments["latency-regression"], target)
    assert spec.options == {"metric": "latency-p99"}
    assert (spec.rate, spec.tail, spec.timeout) == (200.0, 9.0, 75.0)
    gate = parse_experiment("business-gate", target.experiments["business-gate"], target)
    assert gate.options["must_pass"] == ("error-rate", "latency-p99")


def test_the_kinds_that_fill_the_machine_run_alone() -> None:
    alone = {name for name, kind in kinds().items() if kind.runs_alone}
    assert alone == {"canary-judge", "readiness-probe", "strategy-cost"}
