"""Open-loop HTTP load and the traffic log experiments assert on.

Requests are scheduled by the clock at a constant rate — request ``i`` is due at
``start + i / rate`` whatever happened to the previous ones — so a slow or failing release
cannot quietly slow the load down and hide its own damage. Every request is recorded
(:class:`RequestRecord`) and :class:`TrafficLog` answers the questions: who served what, when,
with which outcome, and whether the generator kept its schedule (if not, the run is
*inconclusive*).

Transport: the generator drives aiohttp's client directly — one ``ClientSession`` over one
keep-alive ``TCPConnector`` (at most ``connections`` sockets, 256 by default), one task per
request, on the standard asyncio loop. Measured on a 2-core machine over loopback with the
same open-loop scheduler, an httpx ``AsyncClient`` kept up at 500 req/s but collapsed at 1,000
(198 responses/s, median latency 12.7 s) as its per-request CPU cost saturated the event loop,
while aiohttp held 6,000 req/s at 1.5 ms p99 lateness. Against the reference service at
2,000 req/s it spends ~130 us of CPU per request and keeps p99 lateness at 1.1-3 ms, inside the
5 ms bound, so neither uvloop nor an httpx front end over an aiohttp transport is needed and
the generator adds no dependency. httpx stays where convenience matters more than throughput:
smoke checks and one-off probes.

Experiments run the generator in a child process of its own (:class:`BackgroundLoad`, see
:mod:`pytest_rollout.load.child` and :mod:`pytest_rollout.load.wire`), out of reach of the
interpreter lock that pytest and the local backend's controller hold while they compute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_rollout._lazy import lazy_attributes

if TYPE_CHECKING:
    from pytest_rollout.load.background import BackgroundLoad, run_load
    from pytest_rollout.load.clock import PROCESS_CLOCK, Clock
    from pytest_rollout.load.generator import DISPATCH_GRACE, LoadGenerator, classify_error
    from pytest_rollout.load.mix import (
        CAPTURE_METHODS,
        CHECKOUT,
        DEFAULT_MIX,
        INDEX,
        Route,
        RouteCycle,
        parse_mix,
    )
    from pytest_rollout.load.spec import (
        DEFAULT_CONNECTIONS,
        DEFAULT_TIMEOUT,
        LoadSpec,
        check_target,
    )
    from pytest_rollout.load.traffic import (
        CSV_COLUMNS,
        ERROR_KINDS,
        MAX_P99_LATENESS,
        MIN_ACHIEVED_RATIO,
        ErrorKind,
        RequestRecord,
        TrafficLog,
        lateness_bound,
    )
    from pytest_rollout.load.version import (
        DEFAULT_VERSION_HEADER,
        ResponseView,
        VersionExtractor,
        VersionSource,
        header_version,
        json_version,
    )

# Imported on first use (see pytest_rollout._lazy): the config imports the mix and version
# modules, and must not pay for aiohttp.
_LAZY = {
    "BackgroundLoad": "pytest_rollout.load.background",
    "CAPTURE_METHODS": "pytest_rollout.load.mix",
    "CHECKOUT": "pytest_rollout.load.mix",
    "CSV_COLUMNS": "pytest_rollout.load.traffic",
    "Clock": "pytest_rollout.load.clock",
    "DEFAULT_CONNECTIONS": "pytest_rollout.load.spec",
    "DEFAULT_MIX": "pytest_rollout.load.mix",
    "DEFAULT_TIMEOUT": "pytest_rollout.load.spec",
    "DEFAULT_VERSION_HEADER": "pytest_rollout.load.version",
    "DISPATCH_GRACE": "pytest_rollout.load.generator",
    "ERROR_KINDS": "pytest_rollout.load.traffic",
    "ErrorKind": "pytest_rollout.load.traffic",
    "INDEX": "pytest_rollout.load.mix",
    "LoadGenerator": "pytest_rollout.load.generator",
    "LoadSpec": "pytest_rollout.load.spec",
    "MAX_P99_LATENESS": "pytest_rollout.load.traffic",
    "MIN_ACHIEVED_RATIO": "pytest_rollout.load.traffic",
    "lateness_bound": "pytest_rollout.load.traffic",
    "PROCESS_CLOCK": "pytest_rollout.load.clock",
    "RequestRecord": "pytest_rollout.load.traffic",
    "ResponseView": "pytest_rollout.load.version",
    "Route": "pytest_rollout.load.mix",
    "RouteCycle": "pytest_rollout.load.mix",
    "TrafficLog": "pytest_rollout.load.traffic",
    "VersionExtractor": "pytest_rollout.load.version",
    "VersionSource": "pytest_rollout.load.version",
    "check_target": "pytest_rollout.load.spec",
    "classify_error": "pytest_rollout.load.generator",
    "header_version": "pytest_rollout.load.version",
    "json_version": "pytest_rollout.load.version",
    "parse_mix": "pytest_rollout.load.mix",
    "run_load": "pytest_rollout.load.background",
}

__getattr__ = lazy_attributes(__name__, globals(), _LAZY)

__all__ = [
    "CAPTURE_METHODS",
    "CHECKOUT",
    "CSV_COLUMNS",
    "DEFAULT_CONNECTIONS",
    "DEFAULT_MIX",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VERSION_HEADER",
    "DISPATCH_GRACE",
    "ERROR_KINDS",
    "INDEX",
    "MAX_P99_LATENESS",
    "MIN_ACHIEVED_RATIO",
    "PROCESS_CLOCK",
    "BackgroundLoad",
    "Clock",
    "ErrorKind",
    "LoadGenerator",
    "LoadSpec",
    "RequestRecord",
    "ResponseView",
    "Route",
    "RouteCycle",
    "TrafficLog",
    "VersionExtractor",
    "VersionSource",
    "check_target",
    "classify_error",
    "header_version",
    "json_version",
    "lateness_bound",
    "parse_mix",
    "run_load",
]
