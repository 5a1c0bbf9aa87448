"""Who uses the CPU while a command runs: its processes by kind, and everyone else's.

    python -m benchmarks.cpu_census [--interval 0.25] [--csv PATH] -- COMMAND [ARG...]

Runs COMMAND and samples ``/proc`` every interval: the CPU time of each process descended from
it, grouped by what it is (pytest and its workers, the load generator, pods of the service,
HAProxy, Prometheus, anything else by program name), and the machine's busy time from
``/proc/stat``, so that what *other* users of the machine spent shows as the difference. A
process that starts and ends between two samples is missed; at 0.25 s that is rare for the
long-lived parts of an experiment. Prints a table when the command ends and exits with its
status.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class _Kind:
    """CPU seconds of one kind of process, per sample interval."""

    total: float = 0.0
    per_interval: list[float] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu_census", description=__doc__)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--csv", type=Path, help="also write every sample here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or args.interval <= 0:
        parser.error("give a positive --interval and a command after --")

    load_before = os.getloadavg()
    machine_before = _machine_busy()
    started = time.monotonic()
    child = subprocess.Popen(command)
    kinds: dict[str, _Kind] = defaultdict(_Kind)
    machine: list[float] = []
    intervals: list[float] = []
    last_cpu: dict[int, float] = {}
    last_machine = machine_before
    last_sample = started
    rows: list[dict[str, float | str]] = []
    while True:
        done = child.poll() is not None
        seen = _descendants(child.pid)
        used: dict[str, float] = defaultdict(float)
        for pid, (kind, cpu) in seen.items():
            used[kind] += cpu - last_cpu.get(pid, 0.0)
            last_cpu[pid] = cpu
            kinds[kind].pids.add(pid)
        busy = _machine_busy()
        machine.append(busy - last_machine)
        last_machine = busy
        now = time.monotonic()
        intervals.append(max(now - last_sample, 1e-3))
        last_sample = now
        for kind in set(kinds) | set(used):
            kinds[kind].total += used.get(kind, 0.0)
            kinds[kind].per_interval.append(used.get(kind, 0.0))
        rows.append({"t": round(time.monotonic() - started, 3), "machine": machine[-1], **used})
        if done:
            break
        time.sleep(args.interval)
    if args.csv is not None:
        _write_csv(args.csv, rows)
    print(_table(kinds, machine, intervals, load_before, os.getloadavg()))
    return child.returncode


def _descendants(root: int) -> dict[int, tuple[str, float]]:
    """Every live process under ``root`` (itself included): its kind and CPU seconds so far."""
    parents: dict[int, int] = {}
    stats: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The command name (field 2) may hold spaces: count fields from its closing parenthesis.
        fields = stat.rpartition(")")[2].split()
        parents[pid] = int(fields[1])
        cpu = (int(fields[11]) + int(fields[12])) / _TICK
        stats[pid] = (_kind([part.decode(errors="replace") for part in cmdline if part]), cpu)
    under: set[int] = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in under and pid not in under:
                under.add(pid)
                changed = True
    return {pid: stats[pid] for pid in under if pid in stats}


def _kind(argv: list[str]) -> str:
    text = " ".join(argv)
    program = os.path.basename(argv[0]) if argv else "?"
    if program == "haproxy":
        return "haproxy"
    if program == "prometheus":
        return "prometheus"
    if "pytest_rollout.load" in text:
        return "load generator"
    if "-m service" in text:
        return "pods (service)"
    if "pytest" in text or "sys.stdin.readline()" in text:  # xdist workers run via execnet
        return "pytest (+ controller, in-process)"
    return program


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle since boot, over all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / _TICK


def _table(
    kinds: dict[str, _Kind],
    machine: list[float],
    intervals: list[float],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> str:
    elapsed = sum(intervals)
    ours = sum(kind.total for kind in kinds.values())
    busy = sum(machine)
    lines = [
        f"wall {elapsed:.1f} s on {os.cpu_count()} cores; load average before "
        f"{' '.join(f'{v:.2f}' for v in load_before)}, after "
        f"{' '.join(f'{v:.2f}' for v in load_after)}",
        f"{'kind':<36}{'procs':>6}{'cpu s':>9}{'mean core%':>12}{'p95 core%':>11}",
    ]
    for name, kind in sorted(kinds.items(), key=lambda item: -item[1].total):
        lines.append(
            f"{name:<36}{len(kind.pids):>6}{kind.total:>9.1f}"
            f"{kind.total / elapsed:>12.0%}{_p95_rate(kind.per_interval, intervals):>11.0%}"
        )
    lines += [
        f"{'all of the command':<36}{'':>6}{ours:>9.1f}{ours / elapsed:>12.0%}",
        f"{'machine, everyone':<36}{'':>6}{busy:>9.1f}{busy / elapsed:>12.0%}"
        f"{_p95_rate(machine, intervals):>11.0%}",
        f"{'others on the machine':<36}{'':>6}{busy - ours:>9.1f}{(busy - ours) / elapsed:>12.0%}",
    ]
    return "\n".join(lines)


def _p95_rate(cpu: list[float], intervals: list[float]) -> float:
    """The 95th percentile, over the sample intervals, of CPU seconds per second."""
    if not cpu:
        return 0.0
    # A kind first seen late has fewer samples: align them with the last intervals.
    ordered = sorted(c / i for c, i in zip(cpu, intervals[-len(cpu) :], strict=True))
    return ordered[min(len(ordered), max(1, math.ceil(0.95 * len(ordered)))) - 1]


def _write_csv(path: Path, rows: list[dict[str, float | str]]) -> None:
    columns = sorted({key for row in rows for key in row} - {"t", "machine"})
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["t", "machine", *columns], restval=0.0)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
