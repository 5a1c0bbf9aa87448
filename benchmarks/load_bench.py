"""Can the load generator hold its rate against the real service on this machine?

    python -m benchmarks.load_bench [--rate 2000] [--duration 10] [--runs 1]

Starts the reference service (one process, on loopback), drives it open-loop with the default
mix (nine ``GET /`` to one ``POST /checkout``) and prints, per run, target and achieved rate,
lateness and latency percentiles, status and error counts, and the CPU the generator and the
service spent. Exits 1 when any run fell behind (achieved < 97% of target or p99 lateness over
the bound) or the service failed requests, so the numbers would not mean what they say.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout.load import (
    MAX_P99_LATENESS,
    MIN_ACHIEVED_RATIO,
    LoadSpec,
    TrafficLog,
    run_load,
)
from service.launcher import run_service


@dataclass(frozen=True)
class Costs:
    """What a run cost, beside what it measured."""

    generator_cpu: float
    service_cpu: float
    load_average: float
    """The machine's 1-minute load average just before the run."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0, help="req/s (default 2000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--runs", type=int, default=1, help="back-to-back runs (default 1)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.runs < 1:
        parser.error("--rate and --duration must be positive and --runs at least 1")

    failures = 0
    with run_service({"SERVICE_VERSION": "bench"}) as service:
        pid = service.process.pid
        if pid is None:
            parser.error("the service process has no pid")
        print(f"service  {service.url} (1 process, pid {pid})")
        for run in range(1, args.runs + 1):
            load_average = os.getloadavg()[0]
            own_before, service_before = _own_cpu_seconds(), _cpu_seconds_of(pid)
            log = run_load(LoadSpec(service.url, rate=args.rate, duration=args.duration))
            costs = Costs(
                generator_cpu=_own_cpu_seconds() - own_before,
                service_cpu=_cpu_seconds_of(pid) - service_before,
                load_average=load_average,
            )
            problems = _problems(log)
            failures += bool(problems)
            print(_report(run, log, costs, problems))
    return 1 if failures else 0


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds_of(pid: int) -> float:
    # utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks; the command name
    # (field 2) may hold spaces, so count from its closing parenthesis.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _problems(log: TrafficLog) -> list[str]:
    problems = [log.inconclusive_reason] if log.inconclusive_reason else []
    failed = len(log) - log.by_status_class().get("2xx", 0)
    if failed:
        problems.append(f"the service failed {failed} of {len(log)} requests")
    return problems


def _report(run: int, log: TrafficLog, costs: Costs, problems: list[str]) -> str:
    s = log.summary()
    per_request_us = costs.generator_cpu / max(len(log), 1) * 1e6
    verdict = "FAIL: " + "; ".join(problems) if problems else "ok"
    return "\n".join(
        (
            f"run {run}",
            f"  rate      target {log.target_rate:g} req/s, achieved {log.achieved_rate:.1f} "
            f"req/s ({log.achieved_rate / log.target_rate:.2%}; needs >= "
            f"{MIN_ACHIEVED_RATIO:.0%}) over {log.duration:.2f} s",
            f"  lateness  p50 {s['lateness_p50_ms']} ms, p99 {s['lateness_p99_ms']} ms "
            f"(bound {MAX_P99_LATENESS * 1e3:g} ms), max {s['lateness_max_ms']} ms",
            f"  latency   p50 {s['latency_p50_ms']} ms, p99 {s['latency_p99_ms']} ms "
            "(from intended send time)",
            f"  requests  {len(log)} sent, {log.dropped} dropped, peak {log.peak_in_flight} "
            f"in flight; by route {s['by_route']}",
            f"  outcomes  {s['by_status_class']}; errors {s['by_error'] or 'none'}",
            f"  cpu       generator {costs.generator_cpu:.2f} s ({per_request_us:.0f} us per "
            f"request); service {costs.service_cpu:.2f} s "
            f"({costs.service_cpu / log.duration:.0%} of one core)",
            # Other work on the machine competes with the generator for CPU: show how much.
            f"  machine   1-min load average {costs.load_average:.2f} before the run, "
            f"{os.cpu_count()} cores",
            f"  verdict   {verdict}",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
