"""Synthetic report directories in the experiments' format, for the renderer's tests.

The numbers are made up (seeded, so every build is the same) but shaped like real runs: a
canary that is aborted by its analysis, a readiness-probe pair, a strategy-cost trio with
resource samples, and experiments that recorded nothing. Rendering is what is tested here;
the experiments that produce real directories are tested on their own.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.load.traffic import CSV_COLUMNS

RELEASED_AT = 1_764_676_000.0
STABLE_HASH = "5d8c7b9f4"
CANARY_HASH = "6f7c9d8b5"
ANALYSIS_RUN = f"reference-service-{CANARY_HASH}-2-3"
ABORT_MESSAGE = (
    "Rollout aborted update to revision 2: Step-based analysis phase error/failed: "
    'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
)

Router = Callable[[float], str | None]
"""Seconds from the release -> the version that serves a request then (None: no answer)."""


@dataclass
class Traffic:
    rate: float
    start: float
    end: float
    route: Router
    error_share: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    status_when_unanswered: int | None = 502


def write_traffic(path: Path, traffic: Traffic, *, released_at: float, seed: int) -> None:
    rng = random.Random(seed)
    count = int((traffic.end - traffic.start) * traffic.rate)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for i in range(count):
            rel = traffic.start + i / traffic.rate
            intended = released_at + rel
            lateness = rng.uniform(0.0002, 0.0012)
            version = traffic.route(rel)
            status: int | str = 200
            error = ""
            if version is None:
                if traffic.status_when_unanswered is None:
                    status, error = "", "reset"
                else:
                    status = traffic.status_when_unanswered
                latency = rng.uniform(0.001, 0.004)
            else:
                if rng.random() < traffic.error_share.get(version, 0.0):
                    status = 500
                latency = rng.lognormvariate(0, 0.35) * traffic.latency_ms.get(version, 2.0) / 1e3
            route = "/checkout" if i % 11 == 0 else "/"
            writer.writerow(
                (
                    f"{intended:.6f}",
                    f"{intended + lateness:.6f}",
                    f"{lateness:.6f}",
                    f"{latency + lateness:.6f}",
                    route,
                    status,
                    error,
                    version or "",
                    "",
                    "",
                )
            )


def write_summary(
    directory: Path,
    name: str,
    *,
    verdict: str,
    headline: str = "",
    kind: str | None = None,
    message: str = "",
    metrics: dict[str, Any] | None = None,
    events: Sequence[str] = (),
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    summary = {
        "experiment": name,
        "backend": "local",
        "verdict": verdict,
        "message": message,
        "headline": headline,
        "kind": kind,
        "metrics": metrics or {},
        "events": list(events),
        "finished": "2026-12-02T11:47:10Z",
    }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2))


def write_session(report: Path) -> None:
    report.mkdir(parents=True, exist_ok=True)
    session = {
        "header": [
            "rollout: pytest-rollout 0.1.0, backend=local, report=rollout-report, "
            "endpoint-delay=1s, haproxy 2.6.12, prometheus 2.42.0, python 3.11.7"
        ],
        "started": "2026-12-02T11:41:44Z",
        "finished": "2026-12-02T11:49:02Z",
        "backend": "local",
        "argv": ["pytest", "-m", "rollout", "--rollout-report", "rollout-report"],
    }
    (report / "_session.json").write_text(json.dumps(session, indent=2))


def _event(t: float, reason: str, message: str, type_: str = "Normal") -> dict[str, Any]:
    return {
        "t": RELEASED_AT + t,
        "type": type_,
        "reason": reason,
        "message": message,
        "kind": "Rollout",
        "name": "reference-service",
    }


def bad_canary(report: Path) -> Path:
    """A 5% canary failing half its requests, aborted by its error-rate analysis at +12.2 s."""
    directory = report / "bad-canary"
    abort = 12.2

    def weight_at(rel: float) -> int:
        return 5 if 1.0 <= rel < abort else 0

    def route(rel: float) -> str | None:
        if abort + 0.1 <= rel < abort + 0.12:
            return None  # a few connections reset while the router drops the canary
        # Each request is placed deterministically from its time, at the weight of the moment.
        served_canary = (int(rel * 200) % 100) < weight_at(rel)
        return "v2-bad" if served_canary else "v1"

    traffic = Traffic(
        rate=200,
        start=-1.0,
        end=24.0,
        route=route,
        error_share={"v2-bad": 0.5},
        latency_ms={"v1": 2.0, "v2-bad": 6.0},
        status_when_unanswered=None,
    )
    directory.mkdir(parents=True, exist_ok=True)
    write_traffic(directory / "traffic.csv", traffic, released_at=RELEASED_AT, seed=1)
    status = []
    for i in range(int(24.0 / 0.25)):
        rel = i * 0.25
        if rel < 0.3:
            phase, step, canary = "Progressing", 1, STABLE_HASH
        elif rel < 1.0:
            phase, step, canary = "Progressing", 1, CANARY_HASH
        elif rel < 11.0:
            phase, step, canary = "Paused", 2, CANARY_HASH
        elif rel < abort:
            phase, step, canary = "Progressing", 3, CANARY_HASH
        else:
            phase, step, canary = "Degraded", 1, STABLE_HASH
        status.append(
            {
                "t": RELEASED_AT + rel,
                "phase": phase,
                "step": step,
                "steps": 3,
                "weight": weight_at(rel),
                "stable_hash": STABLE_HASH,
                "canary_hash": canary,
            }
        )
    analysis = [
        {
            "t": RELEASED_AT + 12.0,
            "run": ANALYSIS_RUN,
            "metric": "error-rate",
            "phase": "Failed",
            "value": 0.4712,
            "message": "",
            "success_condition": "result[0] <= 0.05",
            "failure_condition": None,
            "thresholds": [0.05],
        },
        {
            "t": RELEASED_AT + 12.0,
            "run": ANALYSIS_RUN,
            "metric": "checkout-success",
            "phase": "Successful",
            "value": 0.97,
            "message": "",
            "success_condition": "result[0] >= 0.95",
            "failure_condition": None,
            "thresholds": [0.95],
        },
    ]
    events = [
        _event(0.05, "RolloutUpdated", "Rollout updated to revision 2"),
        _event(
            0.1,
            "NewReplicaSetCreated",
            f"Created ReplicaSet reference-service-{CANARY_HASH} (revision 2)",
        ),
        _event(
            0.15,
            "ScalingReplicaSet",
            f"Scaled up ReplicaSet reference-service-{CANARY_HASH} (revision 2) from 0 to 1",
        ),
        _event(0.3, "TrafficWeightUpdated", "Traffic weight updated "),
        _event(1.0, "TrafficWeightUpdated", "Traffic weight updated from 0 to 5"),
        _event(1.0, "RolloutStepCompleted", "Rollout step 1/3 completed (setWeight: 5)"),
        _event(1.0, "RolloutPaused", "Rollout is paused (CanaryPauseStep)"),
        _event(11.0, "RolloutResumed", "Rollout is resumed"),
        _event(11.0, "RolloutStepCompleted", "Rollout step 2/3 completed (pause: 10s)"),
        _event(
            11.0,
            "AnalysisRunRunning",
            f"Step Analysis Run '{ANALYSIS_RUN}' Status New: 'Running' "
            "Previous: 'NoPreviousStatus'",
        ),
        _event(
            12.1,
            "AnalysisRunFailed",
            f"Step Analysis Run '{ANALYSIS_RUN}' Status New: 'Failed' Previous: 'Running'",
            "Warning",
        ),
        _event(
            abort,
            "RolloutAborted",
            ABORT_MESSAGE,
            "Warning",
        ),
        _event(abort, "TrafficWeightUpdated", "Traffic weight updated from 5 to 0"),
    ]
    timeline = {
        "runs": [
            {
                "label": "bad-canary/bad",
                "traffic": "traffic.csv",
                "released_at": RELEASED_AT,
                "status": status,
                "analysis": analysis,
                "events": events,
                "window": {
                    "blast_radius": [RELEASED_AT, RELEASED_AT + abort + 3.0],
                    "rollback_at": RELEASED_AT + abort,
                },
                "strategy": "canary",
            }
        ]
    }
    (directory / "timeline.json").write_text(json.dumps(timeline))
    lines = [
        f"{e['t'] - RELEASED_AT:+.1f}s {e['type']} {e['reason']}: {e['message']}" for e in events
    ]
    (directory / "events.log").write_text("\n".join(lines) + "\n")
    write_summary(
        directory,
        "bad-canary",
        verdict="passed",
        headline="bad share 3.1% <= 5% (90 of 2,877 requests)",
        kind="canary-containment",
        metrics={
            "requests_in_window": 2877,
            "bad_requests": 90,
            "bad_share": 0.0313,
            "time_to_abort_s": 11.2,
            "by_version": {"v1": 4830, "v2-bad": 112},
            "events": lines,
        },
        events=lines,
    )
    return directory


def readiness_probe(report: Path) -> Path:
    """Two Deployment rollouts of a slow-booting release: without the probe (502s), with it."""
    directory = report / "readiness-probe"
    directory.mkdir(parents=True, exist_ok=True)
    runs = []
    for index, (label, probed) in enumerate((("without-probe", False), ("with-probe", True))):
        # Three pods replaced one at a time; each new pod boots for 5 s.
        replaced = [1.0 + 6.5 * k for k in range(3)] if probed else [1.0, 1.4, 1.8]

        def route(
            rel: float, replaced: list[float] = replaced, probed: bool = probed
        ) -> str | None:
            new = sum(1 for at in replaced if rel >= at + (5.0 if probed else 0.0))
            booting = 0 if probed else sum(1 for at in replaced if at <= rel < at + 5.0)
            slot = int(rel * 300) % 3
            if slot < booting:
                return None
            return "v2" if slot < new else "v1"

        csv_name = f"{label}.csv"
        write_traffic(
            directory / csv_name,
            Traffic(rate=300, start=-1.0, end=27.0, route=route),
            released_at=RELEASED_AT + 40 * index,
            seed=2 + index,
        )
        done = (replaced[-1] + 5.0) if probed else 6.8
        status = [
            {
                "t": RELEASED_AT + 40 * index + k * 0.25,
                "phase": "Progressing" if k * 0.25 < done else "Healthy",
                "step": None,
                "steps": None,
                "weight": None,
                "stable_hash": None,
                "canary_hash": None,
            }
            for k in range(int(27 / 0.25))
        ]
        events = [
            {
                "t": RELEASED_AT + 40 * index + at,
                "type": "Normal",
                "reason": "ScalingReplicaSet",
                "message": f"Scaled up replica set reference-service-7b9 from {k} to {k + 1}",
                "kind": "Deployment",
                "name": "reference-service",
            }
            for k, at in enumerate(replaced)
        ]
        runs.append(
            {
                "label": label,
                "traffic": csv_name,
                "released_at": RELEASED_AT + 40 * index,
                "status": status,
                "analysis": [],
                "events": events,
                "window": {"blast_radius": None, "rollback_at": None},
                "strategy": "rolling",
            }
        )
    (directory / "timeline.json").write_text(json.dumps({"runs": runs}))
    write_summary(
        directory,
        "readiness-probe",
        verdict="passed",
        headline="client-visible failures: 1,234 without the probe, 0 with it",
        kind="readiness-probe",
        metrics={
            "without_probe": {"requests": 8400, "failures": 1234},
            "with_probe": {"requests": 8400, "failures": 0},
        },
    )
    return directory


def strategy_cost(report: Path) -> Path:
    """The same release rolled out as canary, blue-green and rolling, with resource samples."""
    directory = report / "strategy-cost"
    directory.mkdir(parents=True, exist_ok=True)
    runs = []
    # (pods before, pods at the peak, seconds the peak lasts)
    shapes = {"canary": (4, 5, 14.0), "blue_green": (4, 8, 11.0), "rolling": (4, 5, 6.0)}
    for index, (strategy, (base, peak, lasts)) in enumerate(shapes.items()):
        released = RELEASED_AT + 100 * index
        switch = 6.0

        def route(rel: float, switch: float = switch) -> str | None:
            return "v2" if rel >= switch else "v1"

        csv_name = f"{strategy}.csv"
        write_traffic(
            directory / csv_name,
            Traffic(rate=50, start=-1.0, end=20.0, route=route),
            released_at=released,
            seed=10 + index,
        )
        resources = []
        for k in range(0, 80):
            rel = k * 0.25
            pods = peak if 1.0 <= rel < 1.0 + lasts else base
            not_ready = 1 if 1.0 <= rel < 3.0 else 0
            resources.append(
                {
                    "t": released + rel,
                    "ready": pods - not_ready,
                    "not_ready": not_ready,
                    "memory_bytes": pods * 48 * 2**20,
                }
            )
        runs.append(
            {
                "label": f"strategy-cost/{strategy}",
                "traffic": csv_name,
                "released_at": released,
                "status": [],
                "analysis": [],
                "events": [],
                "window": {"blast_radius": None, "rollback_at": None},
                "resources": resources,
                "strategy": strategy,
            }
        )
    (directory / "timeline.json").write_text(json.dumps({"runs": runs}))
    write_summary(
        directory,
        "strategy-cost",
        verdict="passed",
        kind="strategy-cost",
        headline="peak pods: canary 5, blue-green 8, rolling 5",
    )
    return directory


def not_run(report: Path) -> Path:
    """An experiment whose setup failed: a summary and nothing else."""
    directory = report / "smoke-gate"
    write_summary(
        directory,
        "smoke-gate",
        verdict="error",
        message="the experiment did not run to its end (setup failed or interrupted)",
    )
    return directory


def full_report(report: Path) -> Path:
    write_session(report)
    bad_canary(report)
    readiness_probe(report)
    strategy_cost(report)
    not_run(report)
    return report
