"""``python -m pytest_rollout.judge --host H --port P --prometheus URL``: the judge service."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from pytest_rollout.errors import ConfigError
from pytest_rollout.judge.sequential import (
    DEFAULT_ALPHA,
    DEFAULT_LATENCY_FLOOR_S,
    DEFAULT_PASS_AFTER_REQUESTS,
    JudgeConfig,
)
from pytest_rollout.judge.service import JudgeService
from pytest_rollout.judge.watch import DEFAULT_INTERVAL_S, DEFAULT_SETTLE_S, JudgeQueries, Timing

PROMETHEUS_ENV = "JUDGE_PROMETHEUS_URL"
INTERVAL_ENV = "JUDGE_INTERVAL_SECONDS"
SETTLE_ENV = "JUDGE_SETTLE_SECONDS"


def parser() -> argparse.ArgumentParser:
    defaults = JudgeQueries()
    p = argparse.ArgumentParser(
        prog="python -m pytest_rollout.judge",
        description=(
            "The sequential canary judge: GET /judge?namespace=NS&canary-hash=C&stable-hash=S "
            "answers fail, pass or continue from the two versions' Prometheus counters."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default %(default)s)")
    p.add_argument(
        "--prometheus",
        default=os.environ.get(PROMETHEUS_ENV),
        help=f"Prometheus base URL (default: ${PROMETHEUS_ENV})",
    )
    p.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="false-abort bound")
    p.add_argument(
        "--pass-after-requests",
        type=float,
        default=DEFAULT_PASS_AFTER_REQUESTS,
        help="canary requests after which an unrejected canary is 'pass' (default %(default)s)",
    )
    p.add_argument(
        "--latency-floor-seconds",
        type=float,
        default=DEFAULT_LATENCY_FLOOR_S,
        help="latency bounds below this are not tested (default %(default)s)",
    )
    p.add_argument(
        "--interval-seconds",
        type=float,
        # A string default goes through type=, so a bad environment value is a usage error.
        default=os.environ.get(INTERVAL_ENV, str(DEFAULT_INTERVAL_S)),
        help="shortest interval the versions are compared in: the scrape interval of the pods "
        f"judged (default ${INTERVAL_ENV}, else {DEFAULT_INTERVAL_S:g})",
    )
    p.add_argument(
        "--settle-seconds",
        type=float,
        default=os.environ.get(SETTLE_ENV, str(DEFAULT_SETTLE_S)),
        help="how old an instant must be before it is read: longer than a scrape takes "
        f"(default ${SETTLE_ENV}, else {DEFAULT_SETTLE_S:g})",
    )
    p.add_argument("--requests-metric", default=defaults.requests_metric)
    p.add_argument(
        "--latency-metric",
        default=defaults.latency_metric,
        help="histogram name without _bucket; '' disables the latency test",
    )
    p.add_argument("--error-codes", default=defaults.error_codes, help="regex of error codes")
    p.add_argument("--excluded-routes", default=defaults.excluded_routes, help="regex of routes")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.prometheus:
        print(f"error: --prometheus URL or ${PROMETHEUS_ENV} is required", file=sys.stderr)
        return 2
    try:
        service = JudgeService(
            args.prometheus,
            JudgeConfig(
                alpha=args.alpha,
                pass_after_requests=args.pass_after_requests,
                latency_floor_s=args.latency_floor_seconds,
            ),
            JudgeQueries(
                requests_metric=args.requests_metric,
                latency_metric=args.latency_metric,
                error_codes=args.error_codes,
                excluded_routes=args.excluded_routes,
            ),
            Timing(interval_s=args.interval_seconds, settle_s=args.settle_seconds),
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("pytest_rollout.judge").info(
        "judging canaries from %s on %s:%d", args.prometheus, args.host, args.port
    )
    web.run_app(service.app(), host=args.host, port=args.port, print=None, shutdown_timeout=2.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
