"""The stream from the generator's process: every record comes back exactly as it was sent."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.errors import RolloutError
from pytest_rollout.load import ERROR_KINDS, RequestRecord, Route
from pytest_rollout.load.wire import (
    BATCH,
    END,
    STRINGS,
    RecordDecoder,
    RecordEncoder,
    frame,
    read_frame,
)

ROUTES = (
    Route("index", weight=9),
    Route("checkout", "POST", "/checkout", json_body={}, capture={"order": "id", "cart": "c.id"}),
    Route("read", "GET", "/orders/{order}/lines/{cart}"),
)

texts = st.text(min_size=1, max_size=12)
times = st.floats(1.7e9, 1.8e9)


@st.composite
def records(draw: st.DrawFn) -> RequestRecord:
    route = draw(st.sampled_from(ROUTES))
    intended = draw(times)
    answered = draw(st.booleans())
    captured = (
        draw(st.dictionaries(st.sampled_from(("order", "cart")), texts))
        if route.capture and answered
        else {}
    )
    used = {name: draw(texts) for name in route.names}
    return RequestRecord(
        intended=intended,
        sent=intended + draw(st.floats(0, 0.1)),
        latency=draw(st.floats(0, 5)),
        route=route.name,
        status=draw(st.integers(100, 599)) if answered else None,
        error=None if answered else draw(st.sampled_from(ERROR_KINDS)),
        version=draw(st.none() | texts),
        captured=captured,
        used=used,
    )


def decode(stream: bytes, decoder: RecordDecoder) -> list[RequestRecord]:
    found: list[RequestRecord] = []
    reader = io.BytesIO(stream)
    while (item := read_frame(reader)) is not None:
        kind, payload = item
        if kind == STRINGS:
            decoder.strings(payload)
        else:
            assert kind == BATCH
            found += decoder.batch(payload)
    return found


@pytest.mark.slow
@given(st.lists(st.lists(records(), max_size=20), max_size=5))
def test_batches_decode_to_the_records_encoded(batches: list[list[RequestRecord]]) -> None:
    encoder, decoder = RecordEncoder(ROUTES), RecordDecoder(ROUTES)
    stream = b""
    for number, batch in enumerate(batches):
        for record in batch:
            encoder.add(record)
        stream += encoder.flush(started_at=1.7e9 + number, dropped=number, peak_in_flight=7)
    assert decode(stream, decoder) == [record for batch in batches for record in batch]
    if batches:
        assert (decoder.started_at, decoder.dropped) == (1.7e9 + len(batches) - 1, len(batches) - 1)
        assert decoder.peak_in_flight == 7


def test_a_string_is_sent_once_and_a_record_is_compact() -> None:
    encoder = RecordEncoder(ROUTES)
    record = RequestRecord(1.7e9, 1.7e9, 0.001, "index", status=200, version="v1")
    first = encoder.flush(started_at=0, dropped=0, peak_in_flight=0)
    encoder.add(record)
    with_string = encoder.flush(started_at=0, dropped=0, peak_in_flight=0)
    encoder.add(record)
    without = encoder.flush(started_at=0, dropped=0, peak_in_flight=0)
    assert b'["v1"]' in with_string
    assert b"v1" not in without
    assert len(without) - len(first) == 33


def test_an_end_frame_and_a_truncated_stream() -> None:
    assert read_frame(io.BytesIO(frame(END, b""))) == (END, b"")
    assert read_frame(io.BytesIO(b"")) is None
    with pytest.raises(RolloutError, match="ended inside a frame"):
        read_frame(io.BytesIO(frame(BATCH, b"12345")[:-2]))
