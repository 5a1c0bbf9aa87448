"""A traffic CSV, as the load generator writes it, binned on the run's time axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_rollout.load.traffic import ErrorKind, RequestRecord, TrafficLog
from pytest_rollout.report.model import ReportDataError
from pytest_rollout.report.traffic import is_traffic_log, read_traffic

ORIGIN = 1_000.0


def _log(records: list[RequestRecord]) -> TrafficLog:
    return TrafficLog(records, target_rate=10.0, started_at=ORIGIN - 1)


def _record(
    sent: float,
    *,
    version: str | None = "v1",
    status: int | None = 200,
    error: ErrorKind | None = None,
    latency: float = 0.002,
) -> RequestRecord:
    return RequestRecord(
        intended=sent,
        sent=sent,
        latency=latency,
        route="/",
        status=status,
        error=error,
        version=version,
    )


def test_bins_count_rates_errors_and_p99_by_version(tmp_path: Path) -> None:
    records = [_record(ORIGIN - 1.0 + i * 0.2, latency=0.001 * (i + 1)) for i in range(5)]
    records += [_record(ORIGIN + i * 0.2) for i in range(5)]
    records += [
        _record(ORIGIN + 0.1 + i * 0.2, version="v2", status=500 if i < 3 else 200)
        for i in range(4)
    ]
    records += [_record(ORIGIN + 1.2, version=None, status=None, error="reset")]
    records += [_record(ORIGIN + 1.3, version=None, status=502)]
    records += [_record(ORIGIN + 2.3)]  # in a last second the load did not fill
    path = _log(records).to_csv(tmp_path / "traffic.csv")
    assert is_traffic_log(path)

    series = read_traffic(path, origin=ORIGIN, bin_s=1.0)
    assert series.starts.tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert (series.requests, series.failures) == (17, 5)
    v1, v2, unknown = series.versions
    assert (v1.version, v2.version, unknown.version) == ("v1", "v2", "unknown")
    assert v1.requests == 11, "the unfilled last second still counts"
    assert v1.rate.tolist() == [5.0, 5.0, 0.0]
    assert v2.rate.tolist() == [0.0, 4.0, 0.0]
    assert v2.error_rate[1] == pytest.approx(0.75)
    assert np.isnan(v2.error_rate[0])
    assert unknown.error_rate[2] == 1.0
    assert series.overall_error_rate[1] == pytest.approx(3 / 9)
    # The nearest-rank p99 of the five latencies in the first bin, as TrafficLog computes it.
    first_bin_p99 = _log(records[:5]).latency_p99
    assert first_bin_p99 is not None
    assert v1.p99_ms[0] == pytest.approx(first_bin_p99 * 1e3)


def test_origin_defaults_to_the_first_request(tmp_path: Path) -> None:
    path = _log([_record(ORIGIN + 3.0), _record(ORIGIN + 4.5)]).to_csv(tmp_path / "t.csv")
    series = read_traffic(path, origin=None)
    assert series.origin == ORIGIN + 3.0
    assert (series.begin, series.end) == (0.0, 1.0)
    assert series.versions[0].rate.tolist() == [1.0]
    assert series.versions[0].requests == 2


def test_empty_log_has_no_bins(tmp_path: Path) -> None:
    series = read_traffic(_log([]).to_csv(tmp_path / "t.csv"), origin=ORIGIN)
    assert series.requests == 0
    assert series.versions == ()


def test_other_tables_are_not_traffic_logs(tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("run,failures\nwithout,3\n")
    assert not is_traffic_log(table)
    with pytest.raises(ReportDataError, match=r"table\.csv: header \['run', 'failures'\]"):
        read_traffic(table, origin=0.0)


def test_bad_row_names_the_line(tmp_path: Path) -> None:
    path = _log([_record(ORIGIN)]).to_csv(tmp_path / "t.csv")
    path.write_text(path.read_text() + "1.0,x,0,0.1,/,200,,v1,,\n")
    with pytest.raises(ReportDataError, match=r"t\.csv:3: could not convert string to float"):
        read_traffic(path, origin=ORIGIN)
