"""Kind ``readiness-probe``: the readiness probe is load-bearing.

The same slow-booting release rolls through the same workload under the same load twice, once
without a readinessProbe and once with one. Without the probe new pods take traffic before
they can answer and clients see errors; with it, no request fails.

Keys (beside the common ones; ``manifests`` is not used)::

    with_probe    = "readiness-with-probe"      # manifest set with the probe (required)
    without_probe = "readiness-without-probe"   # the same without it (required)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rollout.assertions import assert_readiness_probe_load_bearing
from pytest_rollout.config import TargetConfig
from pytest_rollout.experiment import Experiment
from pytest_rollout.kinds import ExperimentSpec, Kind, manifest_set_name, register, workload_of
from pytest_rollout.runs import ReleaseRun
from pytest_rollout.tomlcheck import Where

RATE = 300.0


def _parse(
    table: Mapping[str, Any], where: Where, target: TargetConfig, spec: ExperimentSpec
) -> Mapping[str, Any]:
    options = {}
    for key in ("with_probe", "without_probe"):
        options[key] = manifest_set_name(table[key], where.key(key), target)
        workload_of(spec, options[key], target, where)
    return options


def run(experiment: Experiment, spec: ExperimentSpec) -> None:
    without = spec.release(
        experiment, manifests=spec.options["without_probe"], label="without-probe"
    )
    with_probe = spec.release(experiment, manifests=spec.options["with_probe"], label="with-probe")
    errors_without = without.failure_count(without.released_at, None)
    errors_with = with_probe.failure_count(with_probe.released_at, None)
    requests_without = without.log.count(without.released_at, None)
    requests_with = with_probe.log.count(with_probe.released_at, None)
    experiment.record(
        requests_without_probe=requests_without,
        errors_without_probe=errors_without,
        requests_with_probe=requests_with,
        errors_with_probe=errors_with,
        errors_by_status_without_probe=without.failures(without.released_at, None),
        errors_by_status_with_probe=with_probe.failures(with_probe.released_at, None),
        rate=spec.rate,
    )
    experiment.headline(
        f"without the probe {errors_without:,} of {requests_without:,} requests failed; "
        f"with it {errors_with:,} of {requests_with:,}"
    )
    table = readiness_table(with_probe, without)
    print("\n" + table)
    for release in (without, with_probe):
        release.assert_load_held()
        release.assert_version_served()
    assert_readiness_probe_load_bearing(
        with_probe, without, min_requests=int(spec.rate * spec.tail), table=table
    )


def readiness_table(with_probe: ReleaseRun, without_probe: ReleaseRun) -> str:
    """The before/after table of the readiness experiment."""
    rows = [("", "without probe", "with probe")]
    summaries = (without_probe.summary(), with_probe.summary())
    for name, key in (
        ("requests", "requests"),
        ("client-visible failures", "errors"),
        ("failures by status", "errors_by_status"),
        ("rollout seconds", "settled_after_s"),
        ("achieved req/s", "achieved_rate"),
    ):
        rows.append((name, str(summaries[0][key]), str(summaries[1][key])))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows)


register(
    Kind(
        name="readiness-probe",
        summary="a slow-booting release: client errors without the readiness probe, none with it",
        run=run,
        keys=("with_probe", "without_probe"),
        required=("with_probe", "without_probe"),
        parse=_parse,
        needs_manifests=False,
        default_rate=RATE,
        # Its release without the probe sends 300 req/s into pods that hang, then fail by the
        # hundred at once: the generator's answer to each burst, beside another experiment on
        # two cores, stalled its schedule past the bound (p99 lateness 5.10 and 5.38 ms).
        runs_alone=True,
    )
)
