"""Can the load generator hold its rate against the real service on this machine?

    python -m benchmarks.load_bench [--rate 2000] [--duration 10] [--runs 1]
                                    [--background] [--busy-parent FRACTION]

Starts the reference service (one process, on loopback), drives it open-loop with the default
mix (nine ``GET /`` to one ``POST /checkout``) and prints, per run, target and achieved rate,
lateness and latency percentiles, status and error counts, and the CPU the generator and the
service spent. Exits 1 when any run fell behind (achieved < 97% of target or p99 lateness over
the bound) or the service failed requests, so the numbers would not mean what they say.

``--background`` runs the load as experiments do, through :class:`BackgroundLoad`, instead of
on this process's own event loop. ``--busy-parent F`` keeps a thread of this process computing
pure Python for the fraction ``F`` of every 50 ms while the load runs — what pytest and the
local backend's controller do during an experiment — to show whether the generator is
sheltered from them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_rollout.load import (
    MIN_ACHIEVED_RATIO,
    BackgroundLoad,
    LoadSpec,
    TrafficLog,
    run_load,
)
from service.launcher import run_service


@dataclass(frozen=True)
class Costs:
    """What a run cost, beside what it measured."""

    generator_cpu: float
    """CPU of this process (less the busy thread) and of the children it reaped during the
    run (a background load's process)."""
    child_cpu: float
    """The part of :attr:`generator_cpu` spent in reaped children: the generator's process."""
    service_cpu: float
    load_average: float
    """The machine's 1-minute load average just before the run."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_bench", description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0, help="req/s (default 2000)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--runs", type=int, default=1, help="back-to-back runs (default 1)")
    parser.add_argument(
        "--background", action="store_true", help="run the load through BackgroundLoad"
    )
    parser.add_argument(
        "--busy-parent",
        type=float,
        default=0.0,
        metavar="F",
        help="keep a thread of this process busy for this fraction of the time (0-1)",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.runs < 1:
        parser.error("--rate and --duration must be positive and --runs at least 1")
    if not 0 <= args.busy_parent <= 1:
        parser.error("--busy-parent must be between 0 and 1")

    failures = 0
    with run_service({"SERVICE_VERSION": "bench"}) as service:
        pid = service.process.pid
        if pid is None:
            parser.error("the service process has no pid")
        where = "in a BackgroundLoad" if args.background else "on this process's event loop"
        print(f"service  {service.url} (1 process, pid {pid}); load runs {where}")
        if args.busy_parent:
            print(f"busy     a thread of this process computes {args.busy_parent:.0%} of the time")
        for run in range(1, args.runs + 1):
            load_average = os.getloadavg()[0]
            own_before, service_before = _own_cpu_seconds(), _cpu_seconds_of(pid)
            children_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
            spec = LoadSpec(service.url, rate=args.rate, duration=args.duration)
            startup: float | None = None
            with _busy_thread(args.busy_parent) as busy_cpu:
                if args.background:
                    with BackgroundLoad(spec) as load:
                        startup = load.startup
                        log = load.wait()
                else:
                    log = run_load(spec)
            costs = Costs(
                generator_cpu=_own_cpu_seconds() - own_before - sum(busy_cpu),
                child_cpu=_cpu_seconds(resource.RUSAGE_CHILDREN) - children_before,
                service_cpu=_cpu_seconds_of(pid) - service_before,
                load_average=load_average,
            )
            problems = _problems(log)
            failures += bool(problems)
            print(_report(run, log, costs, problems))
            if startup is not None:
                print(f"  start-up  {startup:.3f} s from start() to the generator's loop running")
    return 1 if failures else 0


_BUSY_PERIOD = 0.05


@contextlib.contextmanager
def _busy_thread(fraction: float) -> Iterator[list[float]]:
    """A thread that holds the GIL computing for ``fraction`` of every 50 ms, until exit.

    Yields a list that holds the thread's CPU seconds once the block is left.
    """
    spent: list[float] = []
    if fraction <= 0:
        yield spent
        return
    done = threading.Event()

    def compute() -> None:
        while not done.is_set():
            until = time.monotonic() + fraction * _BUSY_PERIOD
            while time.monotonic() < until:
                sum(range(200))
            done.wait((1 - fraction) * _BUSY_PERIOD)
        spent.append(time.thread_time())

    thread = threading.Thread(target=compute, name="busy-parent", daemon=True)
    thread.start()
    try:
        yield spent
    finally:
        done.set()
        thread.join()


def _own_cpu_seconds() -> float:
    return _cpu_seconds(resource.RUSAGE_SELF) + _cpu_seconds(resource.RUSAGE_CHILDREN)


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
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
            f"(bound {s['max_p99_lateness_ms']:g} ms), max {s['lateness_max_ms']} ms",
            f"  latency   p50 {s['latency_p50_ms']} ms, p99 {s['latency_p99_ms']} ms "
            "(from intended send time)",
            f"  requests  {len(log)} sent, {log.dropped} dropped, peak {log.peak_in_flight} "
            f"in flight; by route {s['by_route']}",
            f"  outcomes  {s['by_status_class']}; errors {s['by_error'] or 'none'}",
            f"  cpu       generator {costs.generator_cpu:.2f} s ({per_request_us:.0f} us per "
            f"request; {costs.child_cpu:.2f} s in its own process, start-up included); "
            f"service {costs.service_cpu:.2f} s "
            f"({costs.service_cpu / log.duration:.0%} of one core)",
            # Other work on the machine competes with the generator for CPU: show how much.
            f"  machine   1-min load average {costs.load_average:.2f} before the run, "
            f"{os.cpu_count()} cores",
            f"  verdict   {verdict}",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
