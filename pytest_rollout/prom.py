"""A typed Prometheus query client, and the PromQL builders experiments use.

:class:`PromClient` wraps ``prometheus-api-client`` (``PrometheusConnect``) and turns every
failure into one :class:`~pytest_rollout.errors.PrometheusError` with a single readable line: a
dead server reads ``Prometheus at http://127.0.0.1:9 is unreachable: connection refused``, a
bad query carries Prometheus's own error text. The transport's exception is kept as the cause.

Instant queries give :class:`Sample` values (labels and a float; ``NaN`` and ``±Inf`` kept).
:meth:`QueryResult.as_argo` gives a result in the shape Argo Rollouts' prometheus provider hands
to its conditions: an instant vector becomes a list of floats, a scalar a float, anything else
is the provider's "metric type not supported" error.
"""

from __future__ import annotations

import ast
import errno
import http.client
import json
import math
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import requests
import urllib3
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from pytest_rollout._wait import wait_for
from pytest_rollout.errors import ConfigError, PrometheusError, WaitTimeout

__all__ = [
    "LabelMatcher",
    "PromClient",
    "PromQLError",
    "QueryResult",
    "Sample",
    "duration",
    "error_ratio",
    "parse_result",
    "quote",
    "rate",
    "ratio",
    "selector",
    "total",
]

DEFAULT_TIMEOUT = 10.0


class PromQLError(PrometheusError):
    """Prometheus answered, and rejected the query (its own error text is in the message)."""


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Sample:
    """One element of an instant query's answer: the series' labels and its value."""

    labels: Mapping[str, str] = field(hash=False)
    value: float
    timestamp: float

    @property
    def name(self) -> str | None:
        """The metric name (``__name__``), when the query kept it."""
        return self.labels.get("__name__")

    def __str__(self) -> str:
        return f"{format_labels(self.labels)} {self.value:g}"


ResultType = Literal["vector", "scalar"]


@dataclass(frozen=True)
class QueryResult:
    """The typed answer to an instant query: a vector (0..n samples) or a scalar (one sample)."""

    result_type: ResultType
    samples: tuple[Sample, ...]

    def as_argo(self) -> float | list[float]:
        """The value Argo Rollouts' prometheus provider exposes to conditions as ``result``."""
        if self.result_type == "scalar":
            return self.samples[0].value
        return [sample.value for sample in self.samples]


def parse_result(raw: object, *, promql: str = "") -> QueryResult:
    """Shape the ``data.result`` of ``/api/v1/query`` into a :class:`QueryResult`.

    The HTTP answer's ``resultType`` is not passed on by ``prometheus-api-client``, but the
    result's shape tells them apart: a vector is a list of ``{metric, value}`` objects, a
    matrix a list of ``{metric, values}``, a scalar or string one ``[time, "text"]`` pair.
    """
    where = f" for query {promql!r}" if promql else ""
    if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict | list):
        timestamp, text = raw
        value = _number(text)
        if value is None:
            raise PrometheusError(
                f"Prometheus metric type not supported: string result {text!r}{where}; "
                "only instant vectors and scalars can be measured"
            )
        return QueryResult("scalar", (Sample({}, value, _timestamp(timestamp, where)),))
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise PrometheusError(f"unexpected answer from Prometheus{where}: {_clip(repr(raw))}")
    samples: list[Sample] = []
    for item in cast(list[dict[str, Any]], raw):
        if "values" in item:
            raise PrometheusError(
                f"Prometheus metric type not supported: range vector (matrix){where}; "
                "only instant vectors and scalars can be measured "
                "(wrap the range selector in a function such as rate() or max_over_time())"
            )
        try:
            labels = {str(k): str(v) for k, v in dict(item["metric"]).items()}
            timestamp, text = item["value"]
        except (KeyError, TypeError, ValueError) as exc:
            raise PrometheusError(
                f"unexpected sample in Prometheus's answer{where}: {_clip(repr(item))}"
            ) from exc
        value = _number(text)
        if value is None:
            raise PrometheusError(f"unexpected sample value {text!r} in Prometheus's answer{where}")
        samples.append(Sample(labels, value, _timestamp(timestamp, where)))
    return QueryResult("vector", tuple(samples))


def _number(text: object) -> float | None:
    # Prometheus renders special values as "NaN", "+Inf" and "-Inf", which float() reads.
    if not isinstance(text, str):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _timestamp(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise PrometheusError(f"unexpected sample time {value!r} in Prometheus's answer{where}")


def format_labels(labels: Mapping[str, str]) -> str:
    """``{a="x", b="y"}`` (the metric name in front when present), for messages."""
    name = labels.get("__name__", "")
    inner = ", ".join(f"{k}={quote(v)}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


# --------------------------------------------------------------------------------------------
# PromQL builders (pure)

MatchOp = Literal["=", "!=", "=~", "!~"]
_MATCH_OPS: tuple[str, ...] = ("=", "!=", "=~", "!~")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""A Prometheus label name."""
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
DURATION = re.compile(r"(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?")
"""A Prometheus duration (``1m30s``); the empty string matches too, so callers reject it."""
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class LabelMatcher:
    """One label matcher of a selector: ``name op "value"`` (op is ``= != =~ !~``)."""

    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise ConfigError(
                f"label name {self.name!r} is not valid PromQL: allowed [a-zA-Z_][a-zA-Z0-9_]*"
            )
        if self.op not in _MATCH_OPS:
            raise ConfigError(
                f"label matcher operator {self.op!r} is not valid: allowed {', '.join(_MATCH_OPS)}"
            )

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


Matchers = Mapping[str, str] | Iterable[LabelMatcher]


def quote(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def selector(metric: str, matchers: Matchers | None = None) -> str:
    """An instant-vector selector, e.g. ``http_requests_total{version="v2",code=~"5.."}``.

    ``matchers`` is a mapping (each an equality) or :class:`LabelMatcher` objects.
    """
    if not _METRIC_NAME.fullmatch(metric):
        raise ConfigError(
            f"metric name {metric!r} is not valid PromQL: allowed [a-zA-Z_:][a-zA-Z0-9_:]*"
        )
    inner = ",".join(str(m) for m in _matchers(matchers))
    return f"{metric}{{{inner}}}" if inner else metric


def rate(metric: str, matchers: Matchers | None = None, window: str | float = "1m") -> str:
    """``rate(metric{matchers}[window])``: per-second increase of a counter over ``window``."""
    return f"rate({selector(metric, matchers)}[{duration(window)}])"


def total(expr: str, by: Sequence[str] = ()) -> str:
    """``sum(expr)``, or ``sum by (labels) (expr)``."""
    if isinstance(by, str):
        by = (by,)
    for name in by:
        if not LABEL_NAME.fullmatch(name):
            raise ConfigError(f"label name {name!r} in `by` is not valid PromQL")
    return f"sum by ({', '.join(by)}) ({expr})" if by else f"sum({expr})"


def ratio(numerator: str, denominator: str) -> str:
    """``(numerator) / (denominator)``; no traffic makes it ``0/0 = NaN``, as on a cluster."""
    return f"({numerator}) / ({denominator})"


def error_ratio(
    metric: str,
    matchers: Matchers | None = None,
    window: str | float = "1m",
    *,
    errors: Matchers | None = None,
    by: Sequence[str] = (),
) -> str:
    """Share of ``metric``'s rate that matches ``errors`` (default: ``code=~"5.."``)."""
    base = list(_matchers(matchers))
    bad = list(_matchers(errors)) if errors is not None else [LabelMatcher("code", "=~", "5..")]
    return ratio(
        total(rate(metric, [*base, *bad], window), by), total(rate(metric, base, window), by)
    )


def duration(window: str | float) -> str:
    """A PromQL duration: ``"30s"``, ``"1m30s"`` as given, or seconds as a number."""
    if isinstance(window, int | float) and not isinstance(window, bool):
        if not math.isfinite(window) or window <= 0:
            raise ConfigError(f"window {window!r} must be a positive number of seconds")
        millis = round(window * 1000)
        if millis == 0:
            raise ConfigError(f"window {window!r} is shorter than PromQL's 1ms resolution")
        parts = []
        for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
            count, millis = divmod(millis, size)
            if count:
                parts.append(f"{count}{unit}")
        return "".join(parts)
    if not isinstance(window, str) or not window or not DURATION.fullmatch(window):
        raise ConfigError(
            f"window {window!r} is not a PromQL duration: use e.g. '30s', '1m', '1m30s', or seconds"
        )
    return window


_DURATION_UNITS = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration (``1m30s``, ``250ms``); ConfigError when it is not one."""
    if not text or not DURATION.fullmatch(text):
        raise ConfigError(f"{text!r} is not a Prometheus duration: use e.g. '250ms', '1s', '1m30s'")
    return sum(
        int(count) * (0.001 if unit == "ms" else _UNIT_SECONDS[unit])
        for count, unit in _DURATION_UNITS.findall(text)
    )


def _matchers(matchers: Matchers | None) -> Iterator[LabelMatcher]:
    if matchers is None:
        return
    if isinstance(matchers, Mapping):
        for name, value in matchers.items():
            yield LabelMatcher(name, "=", value)
        return
    for matcher in matchers:
        if not isinstance(matcher, LabelMatcher):
            raise ConfigError(f"label matcher {matcher!r} is not a LabelMatcher")
        yield matcher


# --------------------------------------------------------------------------------------------
# Client


class PromClient:
    """Instant queries against one Prometheus server, with clear errors and deadline waits."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"Prometheus URL {url!r} is not valid: expected http(s)://HOST:PORT")
        if timeout <= 0:
            raise ConfigError(f"Prometheus timeout {timeout!r} must be positive")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        # Each call fails fast and once: retrying is the caller's decision, made with a deadline.
        no_retry = Retry(total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False)
        self._api = PrometheusConnect(
            url=self.url,
            session=self._session,
            retry=no_retry,
            # The library annotates int but hands the value to requests, which takes seconds.
            timeout=cast(int, timeout),
        )

    def __repr__(self) -> str:
        return f"PromClient({self.url!r})"

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> PromClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- readiness ---------------------------------------------------------------------------

    def ready(self) -> bool:
        """True when ``/-/ready`` answers 200; PrometheusError when the server is unreachable."""
        try:
            response = self._session.get(f"{self.url}/-/ready", timeout=self.timeout)
        except requests.RequestException as exc:
            error = self._transport_error(exc, "/-/ready")
            raise error from _shallow(exc)
        return response.status_code == 200

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until ``/-/ready`` answers 200; WaitTimeout naming the URL otherwise."""
        wait_for(
            self.ready,
            what=f"Prometheus at {self.url} to be ready (GET /-/ready answering 200)",
            timeout=timeout,
            interval=0.05,
            retry_on=PrometheusError,
        )

    # -- queries -----------------------------------------------------------------------------

    def instant(self, promql: str, *, at: float | None = None) -> QueryResult:
        """Evaluate ``promql`` now (or at epoch seconds ``at``) and return the typed result."""
        params = {"time": f"{at:.3f}"} if at is not None else {}
        try:
            raw = self._api.custom_query(promql, params=params)
        except PrometheusApiClientException as exc:
            error = self._http_error(exc, promql)
            raise error from _shallow(exc)
        except requests.exceptions.JSONDecodeError as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} answered query {promql!r} with a body that is "
                f"not JSON: is this a Prometheus server? ({exc})"
            ) from _shallow(exc)
        except requests.RequestException as exc:
            error = self._transport_error(exc, f"query {promql!r}")
            raise error from _shallow(exc)
        except (KeyError, TypeError) as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} answered query {promql!r} without data.result "
                f"({type(exc).__name__}: {exc})"
            ) from _shallow(exc)
        return parse_result(raw, promql=promql)

    def query(self, promql: str, *, at: float | None = None) -> list[Sample]:
        """The samples of an instant query (a scalar answer is one sample without labels)."""
        return list(self.instant(promql, at=at).samples)

    def scalar(self, promql: str, *, at: float | None = None) -> float | None:
        """The single value of ``promql``; ``None`` when it returns no data.

        A PrometheusError when the query returns more than one series: say which one you mean
        (aggregate it, or add matchers).
        """
        result = self.instant(promql, at=at)
        if len(result.samples) > 1:
            listing = "; ".join(str(s) for s in result.samples[:5])
            more = f"; ... {len(result.samples) - 5} more" if len(result.samples) > 5 else ""
            raise PrometheusError(
                f"query {promql!r} returned {len(result.samples)} series where one value was "
                f"expected: {listing}{more}"
            )
        return result.samples[0].value if result.samples else None

    def argo_result(self, promql: str, *, at: float | None = None) -> float | list[float]:
        """The query's value as Argo's prometheus provider gives it to conditions."""
        return self.instant(promql, at=at).as_argo()

    def wait_for_data(
        self,
        promql: str,
        *,
        timeout: float,
        predicate: Callable[[list[Sample]], bool] | None = None,
        interval: float = 0.25,
    ) -> list[Sample]:
        """Poll ``promql`` until it returns samples (and ``predicate`` holds); return them.

        A rejected query fails at once; unreachable or not-yet-matching ends in WaitTimeout
        naming the query and the last answer.
        """
        last: list[list[Sample]] = []

        def probe() -> _Outcome | None:
            try:
                samples = self.query(promql)
            except PromQLError as exc:
                return _Outcome([], exc)  # a wrong query will not get right by waiting
            last[:] = [samples]
            if not samples or (predicate is not None and not predicate(samples)):
                return None
            return _Outcome(samples, None)

        condition = " matching the predicate" if predicate is not None else ""
        what = f"Prometheus at {self.url} to return data{condition} for {promql!r}"
        try:
            outcome = wait_for(
                probe, what=what, timeout=timeout, interval=interval, retry_on=PrometheusError
            )
        except WaitTimeout as exc:
            if not last:
                raise
            seen = last[0]
            shown = "; ".join(str(s) for s in seen[:5]) if seen else "empty"
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {what} "
                f"(last answer: {len(seen)} series: {shown})"
            ) from exc
        if outcome.error is not None:
            raise outcome.error
        return outcome.samples

    # -- error translation -------------------------------------------------------------------

    def _http_error(self, exc: PrometheusApiClientException, promql: str) -> PrometheusError:
        status, body = _split_http_error(str(exc))
        detail = _prometheus_error_text(body)
        if detail is not None:
            text, error_type = detail
            kind = f"{error_type}, " if error_type else ""
            # 400 (bad_data) and 422 (execution) are the query's fault; 503 (timeout, canceled)
            # and the rest are the server's, and may pass.
            rejected = status in ("400", "422")
            return (PromQLError if rejected else PrometheusError)(
                f"Prometheus at {self.url} {'rejected' if rejected else 'failed'} query "
                f"{promql!r}: {text} ({kind}HTTP {status})"
            )
        shown = _clip(body.strip()) or "empty body"
        return PrometheusError(
            f"Prometheus at {self.url} answered HTTP {status} to query {promql!r}: {shown}"
        )

    def _transport_error(self, exc: requests.RequestException, doing: str) -> PrometheusError:
        # With retries off, urllib3 reports a read timeout inside a ConnectionError.
        if isinstance(exc, requests.ReadTimeout) or any(
            isinstance(e, urllib3.exceptions.ReadTimeoutError) for e in _walk(exc)
        ):
            return PrometheusError(
                f"Prometheus at {self.url} did not answer {doing} within {self.timeout:g}s"
            )
        if isinstance(exc, requests.ConnectTimeout):
            return PrometheusError(
                f"Prometheus at {self.url} is unreachable: no connection within {self.timeout:g}s"
            )
        if isinstance(exc, requests.ConnectionError):
            return PrometheusError(f"Prometheus at {self.url} is unreachable: {root_cause(exc)}")
        return PrometheusError(f"request to Prometheus at {self.url} failed ({doing}): {exc}")


@dataclass(frozen=True)
class _Outcome:
    samples: list[Sample]
    error: PromQLError | None


_HTTP_ERROR = re.compile(r"HTTP Status Code (\d+) \((b(['\"]).*\3)\)", re.DOTALL)


def _split_http_error(message: str) -> tuple[str, str]:
    # prometheus-api-client reports non-200 answers as "HTTP Status Code N (b'...body...')".
    match = _HTTP_ERROR.fullmatch(message)
    if match is None:
        return "?", message
    try:
        body = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return match.group(1), match.group(2)
    if isinstance(body, bytes):
        return match.group(1), body.decode("utf-8", errors="replace")
    return match.group(1), str(body)


def _prometheus_error_text(body: str) -> tuple[str, str] | None:
    """Prometheus's ``error`` (and ``errorType``) from an API error body, if it is one."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return payload["error"], str(payload.get("errorType") or "")
    return None


_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by peer"),
    (ConnectionAbortedError, "connection aborted"),
    (http.client.RemoteDisconnected, "connection closed without a response"),
    (socket.gaierror, "host name not found"),
)


def root_cause(exc: BaseException) -> str:
    """A few words for what went wrong under a transport error (``connection refused``)."""
    chain = list(_walk(exc))
    for kind, words in _CAUSES:
        if any(isinstance(e, kind) for e in chain):
            return words
    for e in chain:
        if isinstance(e, OSError) and e.errno is not None:
            return (e.strerror or errno.errorcode.get(e.errno, str(e.errno))).lower()
    innermost = chain[-1]
    return f"{type(innermost).__name__}: {innermost}"


def _walk(exc: BaseException) -> Iterator[BaseException]:
    # requests wraps urllib3's MaxRetryError, which holds the socket error as ``reason``; the
    # chain is followed through causes, contexts, ``reason`` and exception arguments alike.
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(current.args)
        queue.extend(e for e in linked if isinstance(e, BaseException))


def _shallow(exc: BaseException) -> BaseException:
    """``exc`` without the library-internal frames and nested exceptions it carries.

    It stays the cause of our error and its message still names the socket error, but a failing
    test shows one line for it instead of pages of requests/urllib3 frames.
    """
    exc.__cause__ = None
    exc.__suppress_context__ = True
    return exc.with_traceback(None)


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
