"""Acknowledged writes in a traffic log, read back through the route and compared.

A write is *acknowledged* when its request was answered 2xx with every value the read request's
path needs (the route's ``capture``). It is read back intact when the read request for those
values answers 2xx with a JSON object holding every field of the write's JSON body at the same
value (nested objects alike) and, where the answer carries a captured field, the same captured
value.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import httpx

from pytest_rollout.load import TrafficLog
from pytest_rollout.load.mix import Route, fill_path
from pytest_rollout.load.traffic import RequestRecord
from pytest_rollout.load.version import ResponseView, VersionSource, json_field

READ_BACK_WORKERS = 4
"""Reads in flight at once."""
_HTTP_TIMEOUT = 5.0


def acknowledged_writes(log: TrafficLog, writes: Route, read: Route) -> list[RequestRecord]:
    """The ``writes`` requests answered 2xx with every value ``read``'s path needs."""
    return [
        record
        for record in log.records
        if record.route == writes.name
        and record.status is not None
        and 200 <= record.status < 300
        and all(name in record.captured for name in read.names)
    ]


def by_release(records: Sequence[RequestRecord], stable: frozenset[str]) -> list[RequestRecord]:
    """The records a version other than the stable ones (and not unknown) answered."""
    return [r for r in records if r.version is not None and r.version not in stable]


def content_difference(sent: object, answer: object, path: str = "") -> str | None:
    """None when ``answer`` holds every field of the JSON object ``sent`` at the same value
    (nested objects alike); else the first difference, in one line. A body that is not an
    object has no fields to compare."""
    if not isinstance(sent, dict):
        return None
    if not isinstance(answer, dict):
        return f"{path or 'answer'}: expected an object, read {_short(answer)}"
    for key, value in sent.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in answer:
            return f"{where}: missing"
        if isinstance(value, dict):
            found = content_difference(value, answer[key], where)
            if found is not None:
                return found
        elif not same_json(value, answer[key]):
            return f"{where}: written {_short(value)}, read {_short(answer[key])}"
    return None


def same_json(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


def captured_difference(
    captured: Mapping[str, str], capture: Mapping[str, str], answer: object
) -> str | None:
    """None unless the answer carries a captured field with another value (an answer without
    the field says nothing about it)."""
    for name, source in capture.items():
        if name not in captured:
            continue
        read = json_field(answer, source)
        if read is not None and read != captured[name]:
            return f"{source}: written {captured[name]!r}, read {read!r}"
    return None


@dataclass(frozen=True)
class ReadBack:
    """One acknowledged write, read back through the route."""

    path: str
    written_at: float
    written_by: str | None
    status: int | None = None
    error: str | None = None
    """A transport error's name, when no answer came."""
    answered_by: str | None = None
    difference: str | None = None

    @property
    def intact(self) -> bool:
        return self.reason is None

    @property
    def reason(self) -> str | None:
        """Why the write counts as lost: ``"no answer"``, ``"404"``, ``"different content"``..."""
        if self.error is not None:
            return "no answer"
        if self.status is None or not 200 <= self.status < 300:
            return str(self.status)
        if self.difference is not None:
            return "different content"
        return None

    def describe(self) -> str:
        detail = self.difference or self.error or f"answered {self.status}"
        return f"{self.path} (written by {self.written_by}): {detail}"


def judge_read(
    record: RequestRecord,
    path: str,
    writes: Route,
    *,
    status: int,
    body: bytes,
    answered_by: str | None,
) -> ReadBack:
    """The read-back of ``record``'s write from the answer ``status``/``body``."""
    base = ReadBack(path, record.sent, record.version, status=status, answered_by=answered_by)
    if not 200 <= status < 300:
        return base
    try:
        answer = json.loads(body)
    except ValueError:
        return replace(base, difference="answer is not JSON")
    difference = content_difference(writes.json_body, answer) or captured_difference(
        record.captured, writes.capture, answer
    )
    return replace(base, difference=difference)


def read_back(
    base_url: str,
    records: Sequence[RequestRecord],
    writes: Route,
    read: Route,
    version: VersionSource,
) -> list[ReadBack]:
    """Read every write of ``records`` back through ``base_url``, a few at a time."""
    extract = version.extractor()
    body = read.encoded_body()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    chunks = [records[i::READ_BACK_WORKERS] for i in range(READ_BACK_WORKERS)]

    def read_chunk(chunk: Sequence[RequestRecord]) -> list[ReadBack]:
        results = []
        with httpx.Client(base_url=base_url, timeout=_HTTP_TIMEOUT) as client:
            for record in chunk:
                path = fill_path(read.path, record.captured)
                try:
                    response = client.request(read.method, path, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    results.append(
                        ReadBack(path, record.sent, record.version, error=type(exc).__name__)
                    )
                    continue
                view = ResponseView(response.status_code, response.headers, response.content)
                results.append(
                    judge_read(
                        record,
                        path,
                        writes,
                        status=response.status_code,
                        body=response.content,
                        answered_by=extract(view),
                    )
                )
        return results

    with concurrent.futures.ThreadPoolExecutor(READ_BACK_WORKERS) as pool:
        done = list(pool.map(read_chunk, [c for c in chunks if c]))
    return sorted((r for chunk in done for r in chunk), key=lambda r: r.written_at)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
