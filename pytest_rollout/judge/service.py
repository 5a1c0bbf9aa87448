"""The judge as an HTTP service that Argo Rollouts' ``web`` metric provider asks every second.

``GET /judge?namespace=NS&canary-hash=C&stable-hash=S`` reads both pod-template hashes'
counters from Prometheus up to a settled instant (:mod:`.watch`; counts since the judge first
looked at that canary, :mod:`.counters`) and answers the judge's verdict as JSON::

    {"decision": "continue", "e_value": 1.7, "p_value": 0.58, "alpha": 0.01, "reason": "...",
     "looks": 12, "counts": {"canary": {...}, "stable": {...}}, "tests": {...}}

``GET /healthz`` answers 200 while the process serves. A bad query string is a 400 and an
unreachable Prometheus a 503, both with ``{"error": "..."}``: the web provider records an Error
measurement, never a verdict the judge did not reach.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from pytest_rollout.errors import PrometheusError
from pytest_rollout.judge.sequential import JudgeConfig, Verdict, judge
from pytest_rollout.judge.watch import CanaryRef, CanaryWatch, JudgeQueries, QueryError, Timing
from pytest_rollout.prom import PromClient

LOG = logging.getLogger("pytest_rollout.judge")

MAX_WATCHED_CANARIES = 256


class JudgeService:
    """The watched canaries (the least recently asked beyond ``max_watched`` are forgotten)."""

    def __init__(
        self,
        prometheus_url: str,
        config: JudgeConfig | None = None,
        queries: JudgeQueries | None = None,
        timing: Timing | None = None,
        *,
        timeout: float = 5.0,
        max_watched: int = MAX_WATCHED_CANARIES,
    ) -> None:
        PromClient(prometheus_url, timeout=timeout).close()  # validates the URL at start
        self.prometheus_url = prometheus_url
        self.config = config or JudgeConfig()
        self.queries = queries or JudgeQueries()
        self.timing = timing or Timing()
        self.timeout = timeout
        self.max_watched = max_watched
        self._watches: OrderedDict[CanaryRef, CanaryWatch] = OrderedDict()

    async def judge(self, ref: CanaryRef) -> Verdict:
        """Look at ``ref`` once more and judge its history."""
        watch = self._watch(ref)
        async with watch.lock:
            await asyncio.to_thread(watch.look, time.time())
            verdict = judge(watch.snapshots, self.config)
        if verdict.decision != watch.last_decision:
            LOG.info("%s: %s (%s)", ref, verdict.decision, verdict.reason)
            watch.last_decision = verdict.decision
        return verdict

    def _watch(self, ref: CanaryRef) -> CanaryWatch:
        watch = self._watches.get(ref)
        if watch is None:
            client = PromClient(self.prometheus_url, timeout=self.timeout)
            watch = self._watches[ref] = CanaryWatch(ref, self.queries, client, self.timing)
            while len(self._watches) > self.max_watched:
                _, forgotten = self._watches.popitem(last=False)
                forgotten.client.close()
        self._watches.move_to_end(ref)
        return watch

    def close(self) -> None:
        for watch in self._watches.values():
            watch.client.close()
        self._watches.clear()

    def app(self) -> web.Application:
        """The aiohttp application: ``/judge`` and ``/healthz``."""
        app = web.Application()
        app.router.add_get("/judge", self._handle_judge)
        app.router.add_get("/healthz", _handle_health)

        async def close(_: web.Application) -> None:
            self.close()

        app.on_cleanup.append(close)
        return app

    async def _handle_judge(self, request: web.Request) -> web.Response:
        try:
            ref = CanaryRef.from_query(request.query)
        except QueryError as exc:
            return _error(400, str(exc))
        try:
            verdict = await self.judge(ref)
        except PrometheusError as exc:
            LOG.warning("%s: %s", ref, exc)
            return _error(503, str(exc))
        return _json(200, verdict.as_json())


async def _handle_health(_: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": message})


def _json(status: int, body: Mapping[str, Any]) -> web.Response:
    # No NaN or Infinity: Go's decoder in Argo's web provider rejects them.
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(body: Any) -> str:
    return json.dumps(body, allow_nan=False, separators=(",", ":"))
