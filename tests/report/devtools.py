"""A small Chrome DevTools Protocol client: headless Chromium driven over its websocket.

Chromium is the system's (Debian package ``chromium``); nothing is downloaded. It is started
with ``--remote-debugging-port=0`` and a fresh profile, and writes the port it chose into
``DevToolsActivePort`` in that profile. The client speaks CDP over aiohttp's websocket, with
one flattened session per page.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from pytest_rollout._proc import ManagedProcess
from pytest_rollout._wait import wait_for

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0

Json = dict[str, Any]


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


@contextlib.contextmanager
def chromium(executable: str, workdir: Path) -> Iterator[str]:
    """Run headless Chromium with a fresh profile under ``workdir``; yield its websocket URL."""
    profile = workdir / "profile"
    profile.mkdir(parents=True)
    process = ManagedProcess(
        "chromium",
        [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        log_path=workdir / "chromium.log",
    )
    with process:
        port_file = profile / "DevToolsActivePort"

        def endpoint() -> str | None:
            if not process.running():
                raise RuntimeError(f"chromium exited ({process.returncode}): {process.log_tail()}")
            lines = port_file.read_text().split("\n") if port_file.is_file() else []
            if len(lines) < 2 or not lines[0].isdigit():
                return None
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"

        yield wait_for(
            endpoint, what=f"chromium to write {port_file}", timeout=START_TIMEOUT, interval=0.1
        )


@dataclass
class DevTools:
    """One websocket to the browser; calls and events of every session go through it."""

    socket: aiohttp.ClientWebSocketResponse
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[Json]] = field(default_factory=dict)
    events: list[tuple[str | None, str, Json]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def call(
        self, method: str, params: Json | None = None, session: str | None = None
    ) -> Json:
        message: Json = {"id": next(self._ids), "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[message["id"]] = future
        await self.socket.send_json(message)
        reply = await asyncio.wait_for(future, CALL_TIMEOUT)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: Json = reply.get("result", {})
        return result

    async def wait_event(
        self, method: str, session: str | None, *, after: int, timeout: float = CALL_TIMEOUT
    ) -> Json:
        """The first ``method`` event of ``session`` at index ``after`` or later."""

        def found() -> Json | None:
            for event_session, name, params in self.events[after:]:
                if name == method and event_session == session:
                    return params
            return None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        params = found()
        if params is None:
            raise AssertionError(f"{method} vanished from the event list")
        return params

    async def read(self) -> None:
        async for message in self.socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data: Json = message.json()
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
                continue
            async with self._changed:
                self.events.append((data.get("sessionId"), data["method"], data.get("params", {})))
                self._changed.notify_all()


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[DevTools]:
    async with aiohttp.ClientSession() as client, client.ws_connect(url, max_msg_size=0) as ws:
        devtools = DevTools(ws)
        reader = asyncio.create_task(devtools.read())
        try:
            yield devtools
        finally:
            await ws.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@dataclass
class Page:
    """A tab with console, log and network events recorded."""

    devtools: DevTools
    session: str

    @classmethod
    async def open(cls, devtools: DevTools, *, width: int = 1600, height: int = 1000) -> Page:
        target = await devtools.call("Target.createTarget", {"url": "about:blank"})
        attached = await devtools.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = cls(devtools, attached["sessionId"])
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.call(f"{domain}.enable")
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    async def call(self, method: str, params: Json | None = None) -> Json:
        return await self.devtools.call(method, params, self.session)

    async def goto(self, url: str) -> None:
        mark = len(self.devtools.events)
        navigated = await self.call("Page.navigate", {"url": url})
        if navigated.get("errorText"):
            raise RuntimeError(f"navigating to {url}: {navigated['errorText']}")
        await self.devtools.wait_event("Page.loadEventFired", self.session, after=mark)

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def screenshot(self, *, max_height: int = 12_000) -> bytes:
        """The whole page (up to ``max_height`` CSS pixels) as PNG."""
        metrics = await self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": min(size["height"], max_height),
            "scale": 1,
        }
        shot = await self.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
        )
        return base64.b64decode(shot["data"])

    def console_errors(self) -> list[str]:
        """Errors the page logged: console.error, uncaught exceptions, failed loads."""
        return self._collect(_error_text)

    def requested_urls(self) -> list[str]:
        return self._collect(
            lambda name, params: (
                params["request"]["url"] if name == "Network.requestWillBeSent" else None
            )
        )

    def _collect(self, pick: Callable[[str, Json], str | None]) -> list[str]:
        found = []
        for session, name, params in self.devtools.events:
            if session == self.session and (text := pick(name, params)) is not None:
                found.append(text)
        return found


def _error_text(name: str, params: Json) -> str | None:
    if name == "Runtime.consoleAPICalled" and params.get("type") == "error":
        return " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"])
    if name == "Runtime.exceptionThrown":
        return str(params["exceptionDetails"].get("text"))
    if name == "Log.entryAdded" and params["entry"].get("level") == "error":
        return f"{params['entry'].get('text')} ({params['entry'].get('url', '')})"
    return None
