"""Command line of the load generator: run one open-loop load and print its summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_rollout.errors import ConfigError
from pytest_rollout.load.generator import LoadGenerator
from pytest_rollout.load.mix import DEFAULT_MIX, Route, parse_mix
from pytest_rollout.load.spec import DEFAULT_CONNECTIONS, DEFAULT_TIMEOUT, LoadSpec
from pytest_rollout.load.traffic import TrafficLog
from pytest_rollout.load.version import DEFAULT_VERSION_HEADER, VersionSource

_EPILOG = (
    "Exits 0 when the run completed, whatever the service answered (read 'inconclusive' "
    "for whether the generator kept its schedule), 2 on bad arguments, 130 on a second Ctrl-C. "
    "The first Ctrl-C ends the schedule early and still prints the summary."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rollout.load",
        description="Send open-loop HTTP load at a constant rate and report what came back.",
        epilog=_EPILOG,
    )
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080 (loopback only)")
    parser.add_argument(
        "--rate", type=_positive_float, required=True, metavar="R", help="requests per second"
    )
    parser.add_argument("--duration", type=_positive_float, metavar="S", help="seconds to run")
    parser.add_argument("--count", type=_positive_int, metavar="N", help="requests to send")
    parser.add_argument(
        "--mix",
        type=_mix,
        default=DEFAULT_MIX,
        metavar="MIX",
        help="weighted routes, e.g. 'GET /=9,POST /checkout=1' (the default)",
    )
    version = parser.add_mutually_exclusive_group()
    version.add_argument(
        "--version-header",
        default=DEFAULT_VERSION_HEADER,
        metavar="NAME",
        help=f"response header naming the serving version (default {DEFAULT_VERSION_HEADER})",
    )
    version.add_argument(
        "--version-field", metavar="FIELD", help="JSON body field naming the version instead"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"per-request timeout (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int,
        default=DEFAULT_CONNECTIONS,
        metavar="N",
        help=f"most connections open at once (default {DEFAULT_CONNECTIONS})",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a target that is not loopback"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="also write every request here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.duration is None and args.count is None:
        parser.error("give --duration, --count, or both")
    mix: tuple[Route, ...] = args.mix
    version = (
        VersionSource(header=None, json_field=args.version_field)
        if args.version_field
        else VersionSource(header=args.version_header)
    )
    try:
        spec = LoadSpec(
            args.url,
            rate=args.rate,
            duration=args.duration,
            count=args.count,
            mix=mix,
            version=version,
            timeout=args.timeout,
            connections=args.connections,
            allow_remote=args.allow_remote,
        )
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        log = asyncio.run(_run_until_done_or_interrupted(spec))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.csv is not None:
        log.to_csv(args.csv)
    print(json.dumps(log.summary(), indent=2) if args.json else render(log))
    return 0


async def _run_until_done_or_interrupted(spec: LoadSpec) -> TrafficLog:
    generator = LoadGenerator(spec)
    loop = asyncio.get_running_loop()

    def stop_on_first_interrupt() -> None:
        generator.stop()
        loop.remove_signal_handler(signal.SIGINT)

    loop.add_signal_handler(signal.SIGINT, stop_on_first_interrupt)
    try:
        return await generator.run()
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def render(log: TrafficLog) -> str:
    """The summary as a few human-readable lines."""
    s = log.summary()

    def counts(key: str) -> str:
        value = s[key]
        assert isinstance(value, dict)
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"

    def ms(key: str) -> str:
        return "n/a" if s[key] is None else f"{s[key]} ms"

    verdict = f"INCONCLUSIVE: {s['inconclusive_reason']}" if s["inconclusive"] else "conclusive"
    return "\n".join(
        (
            f"rate       target {s['target_rate']:g} req/s, achieved {s['achieved_rate']} req/s "
            f"over {s['duration_s']} s ({s['requests']} requests, {s['dropped']} dropped)",
            f"lateness   p50 {ms('lateness_p50_ms')}, p99 {ms('lateness_p99_ms')} "
            f"(bound {s['max_p99_lateness_ms']:g} ms)",
            f"latency    p50 {ms('latency_p50_ms')}, p99 {ms('latency_p99_ms')}",
            f"status     {counts('by_status_class')}",
            f"errors     {counts('by_error')}",
            f"versions   {counts('by_version')}",
            f"verdict    {verdict}",
        )
    )


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _mix(text: str) -> tuple[Route, ...]:
    try:
        return parse_mix(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
