"""The service's HTTP routes, with the release variants applied to them.

``GET /`` and ``POST /checkout`` carry the injected latency and error rate; ``GET /orders/{id}``
carries the latency only. ``/healthz``, ``/readyz`` and ``/metrics`` are never slowed or failed
on purpose: probes and scrapes must keep telling the truth about a bad release.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from aiohttp import web
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from service.config import ServiceConfig
from service.db import OrderStore
from service.metrics import CONTENT_TYPE, ServiceMetrics
from service.schema import check_schema, release_revision

log = logging.getLogger("service")

T = TypeVar("T")
P = ParamSpec("P")

READINESS_DB_TIMEOUT_S = 3.0
MAX_ORDER_ID = 2**63 - 1
MAX_QUANTITY = 1000
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Lifecycle:
    """Where the process is in its life; the server flips these, /readyz reads them."""

    booted: bool = False
    shutting_down: bool = False


class BadCheckout(ValueError):
    """The checkout request body is not an order the service accepts."""


class ServiceApp:
    """Route handlers bound to one process's settings, database, metrics and lifecycle."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        store: OrderStore,
        script: ScriptDirectory,
        executor: Executor,
        metrics: ServiceMetrics,
        lifecycle: Lifecycle,
    ) -> None:
        self.config = config
        self.store = store
        self.script = script
        self.executor = executor
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.expected_revision = release_revision(config)
        self._rng = random.Random(config.seed)
        self._latency_s = config.latency_ms / 1000.0
        self._index_body = _json_bytes({"version": config.version})

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._observe])
        app.on_response_prepare.append(self._stamp_version)
        app.router.add_get("/", self.index)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_post("/checkout", self.checkout)
        app.router.add_get(r"/orders/{id:\d+}", self.get_order)
        app.router.add_get("/metrics", self.metrics_page)
        return app

    async def index(self, request: web.Request) -> web.Response:
        failed = await self._apply_variant(fail=True)
        if failed is not None:
            return failed
        return web.Response(body=self._index_body, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        return self._json({"status": "ok", "version": self.config.version})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, reason, schema = await self._readiness()
        body: dict[str, Any] = {"ready": ready, "reason": reason, "version": self.config.version}
        if schema is not None:
            body["schema"] = schema
        return self._json(body, status=200 if ready else 503)

    async def checkout(self, request: web.Request) -> web.Response:
        failed = await self._apply_variant(fail=True)
        if failed is not None:
            self.metrics.checkout(success=False)
            return failed
        try:
            item, quantity = _parse_checkout(await request.read())
        except BadCheckout as exc:
            return self._json({"error": str(exc), "version": self.config.version}, status=400)
        if self.config.checkout_broken:
            self.metrics.checkout(success=False)
            return self._json(
                {
                    "order_id": None,
                    "version": self.config.version,
                    "error": "checkout failed: the order was not recorded",
                }
            )
        try:
            order_id = await self._in_thread(
                self.store.create_order, item=item, quantity=quantity, version=self.config.version
            )
        except SQLAlchemyError as exc:
            self.metrics.checkout(success=False)
            log.error("checkout: order not written: %s", _first_line(exc))
            return self._json(
                {"order_id": None, "version": self.config.version, "error": "database error"},
                status=500,
            )
        self.metrics.checkout(success=True)
        return self._json({"order_id": order_id, "version": self.config.version})

    async def get_order(self, request: web.Request) -> web.Response:
        await self._apply_variant(fail=False)
        order_id = int(request.match_info["id"])
        order = None
        if order_id <= MAX_ORDER_ID:  # larger ids cannot exist and do not fit a bind parameter
            order = await self._in_thread(self.store.get_order, order_id)
        if order is None:
            return self._json(
                {"error": f"order {order_id} not found", "version": self.config.version},
                status=404,
            )
        return self._json({**order.as_json(), "version": self.config.version})

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def _readiness(self) -> tuple[bool, str, dict[str, Any] | None]:
        if self.lifecycle.shutting_down:
            return False, "shutting down", None
        if not self.lifecycle.booted:
            return False, "booting", None
        try:
            current = await asyncio.wait_for(
                self._in_thread(self.store.schema_revisions), READINESS_DB_TIMEOUT_S
            )
        except TimeoutError:
            return False, f"database did not answer within {READINESS_DB_TIMEOUT_S:g}s", None
        except SQLAlchemyError as exc:
            return False, f"database unreachable: {_first_line(exc)}", None
        status = check_schema(self.script, self.expected_revision, current)
        schema = {"expected": status.expected, "current": list(status.current)}
        reason = "ready" if status.ready else f"schema not ready: {status.detail}"
        return status.ready, reason, schema

    async def _apply_variant(self, *, fail: bool) -> web.Response | None:
        if self._latency_s > 0:
            await asyncio.sleep(self._latency_s)
        if fail and self.config.error_rate > 0 and self._rng.random() < self.config.error_rate:
            return self._json(
                {"error": "injected failure", "version": self.config.version}, status=500
            )
        return None

    async def _in_thread(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(func, *args, **kwargs))

    def _json(self, body: dict[str, Any], *, status: int = 200) -> web.Response:
        return web.Response(body=_json_bytes(body), status=status, content_type="application/json")

    async def _stamp_version(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Version"] = self.config.version

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED_ROUTE
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        loop = asyncio.get_running_loop()
        started = loop.time()
        code = 500
        self.metrics.request_started(route)
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        except asyncio.CancelledError:
            code = 499  # the client went away (or the drain deadline passed) mid-request
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return self._json(
                {"error": "internal error", "version": self.config.version}, status=500
            )
        finally:
            self.metrics.request_finished(route, method, code, loop.time() - started)


def _parse_checkout(raw: bytes) -> tuple[str, int]:
    """(item, quantity) from an optional JSON object body; defaults to one 'widget'."""
    if not raw.strip():
        return "widget", 1
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadCheckout(f"body must be a JSON object: {exc}") from None
    if not isinstance(body, dict):
        raise BadCheckout("body must be a JSON object")
    item = body.get("item", "widget")
    quantity = body.get("quantity", 1)
    if not isinstance(item, str) or not 1 <= len(item) <= 100:
        raise BadCheckout("item must be a string of 1 to 100 characters")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise BadCheckout(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise BadCheckout(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    return item, quantity


def _json_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
