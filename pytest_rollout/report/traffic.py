"""A run's traffic CSV binned on its time axis: requests/s, error rate and p99 latency by version.

Requests are placed by their send time, as :class:`~pytest_rollout.load.TrafficLog` windows
are; a request fails when it got a 5xx or no answer at all (refused, reset, timeout), as the
experiments count client-visible failures.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pytest_rollout.load.traffic import CSV_COLUMNS, UNKNOWN_VERSION
from pytest_rollout.report.model import ReportDataError

FloatArray = npt.NDArray[np.float64]

P99 = 99.0


@dataclass(frozen=True)
class VersionSeries:
    """One serving version's numbers per bin (NaN where the version served nothing)."""

    version: str
    requests: int
    failures: int
    rate: FloatArray
    """requests/s"""
    error_rate: FloatArray
    """failed share of the version's requests, 0..1"""
    p99_ms: FloatArray


@dataclass(frozen=True)
class TrafficSeries:
    """A traffic log on the run's time axis: ``starts`` are the bins' left edges in seconds."""

    origin: float
    """epoch seconds of 0 on the axis"""
    starts: FloatArray
    bin_s: float
    versions: tuple[VersionSeries, ...]
    overall_error_rate: FloatArray
    requests: int
    failures: int

    @property
    def end(self) -> float:
        return float(self.starts[-1] + self.bin_s) if len(self.starts) else 0.0

    @property
    def begin(self) -> float:
        return float(self.starts[0]) if len(self.starts) else 0.0


_NEEDED = ("sent", "latency", "status", "error", "version")
"""The columns the charts read, found by name (the log may carry more)."""


@dataclass(frozen=True)
class _Rows:
    sent: FloatArray
    latency: FloatArray
    failed: npt.NDArray[np.bool_]
    version: list[str]


def is_traffic_log(path: Path) -> bool:
    """Whether ``path`` is a CSV with the traffic log's columns (other tables may sit beside)."""
    try:
        with path.open(newline="") as handle:
            return set(_NEEDED) <= set(next(csv.reader(handle), ()))
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def read_traffic(path: Path, *, origin: float | None, bin_s: float = 1.0) -> TrafficSeries:
    """Bin the CSV at ``path`` into ``bin_s`` slots of seconds from ``origin`` (epoch s; None:
    the first request's send time)."""
    rows = _read_rows(path)
    if not len(rows.sent):
        empty = np.zeros(0)
        return TrafficSeries(origin or 0.0, empty, bin_s, (), empty, 0, 0)
    if origin is None:
        origin = float(rows.sent.min())
    rel = rows.sent - origin
    # Bins start at the first request, and a last bin the load did not fill is left out of the
    # rates (it would read as a drop); the counts keep every request.
    first = float(rel.min())
    index = np.floor((rel - first) / bin_s).astype(np.int64)
    bins = max(1, int((rel.max() - first) // bin_s))
    binned = index < bins
    starts = first + np.arange(bins, dtype=np.float64) * bin_s
    versions = np.array(rows.version, dtype=object)
    order = sorted(set(rows.version), key=_version_order)
    series = tuple(
        _version_series(name, versions == name, binned, index, rows, bins, bin_s) for name in order
    )
    totals = np.bincount(index[binned], minlength=bins).astype(np.float64)
    failed = np.bincount(
        index[binned], weights=rows.failed[binned].astype(np.float64), minlength=bins
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.where(totals > 0, failed / totals, np.nan)
    return TrafficSeries(
        origin=origin,
        starts=starts,
        bin_s=bin_s,
        versions=series,
        overall_error_rate=overall,
        requests=len(rows.sent),
        failures=int(rows.failed.sum()),
    )


def _version_series(
    name: str,
    mask: npt.NDArray[np.bool_],
    binned: npt.NDArray[np.bool_],
    index: npt.NDArray[np.int64],
    rows: _Rows,
    bins: int,
    bin_s: float,
) -> VersionSeries:
    shown = mask & binned
    where = index[shown]
    counts = np.bincount(where, minlength=bins).astype(np.float64)
    failed = np.bincount(where, weights=rows.failed[shown].astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(counts > 0, failed / counts, np.nan)
    return VersionSeries(
        version=name,
        requests=int(mask.sum()),
        failures=int(rows.failed[mask].sum()),
        rate=counts / bin_s,
        error_rate=error_rate,
        p99_ms=_p99_per_bin(where, rows.latency[shown] * 1e3, bins),
    )


def _p99_per_bin(
    index: npt.NDArray[np.int64], values: FloatArray, bins: int
) -> npt.NDArray[np.float64]:
    result = np.full(bins, np.nan)
    if not len(index):
        return result
    order = np.lexsort((values, index))
    index, values = index[order], values[order]
    bounds = np.flatnonzero(np.diff(index)) + 1
    for chunk_index, chunk in zip(np.split(index, bounds), np.split(values, bounds), strict=True):
        # The same nearest-rank quantile as TrafficLog's, so chart and summary agree.
        rank = max(1, int(np.ceil(P99 / 100 * len(chunk))))
        result[chunk_index[0]] = chunk[min(rank, len(chunk)) - 1]
    return result


def _read_rows(path: Path) -> _Rows:
    sent: list[float] = []
    latency: list[float] = []
    failed: list[bool] = []
    version: list[str] = []
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or not set(_NEEDED) <= set(header):
                raise ReportDataError(
                    f"{path}: header {header}; expected the traffic log columns "
                    f"{','.join(CSV_COLUMNS)}"
                )
            at = [header.index(column) for column in _NEEDED]
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise ReportDataError(
                        f"{path}:{line}: {len(row)} fields, expected {len(header)}"
                    )
                sent_s, latency_s, status, error, served_by = (row[i] for i in at)
                try:
                    sent.append(float(sent_s))
                    latency.append(float(latency_s))
                    code = int(status) if status else None
                except ValueError as exc:
                    raise ReportDataError(f"{path}:{line}: {exc}") from exc
                failed.append(bool(error) or code is None or code >= 500)
                version.append(served_by or UNKNOWN_VERSION)
    except OSError as exc:
        raise ReportDataError(f"{path}: cannot read: {exc}") from exc
    return _Rows(
        np.asarray(sent, dtype=np.float64),
        np.asarray(latency, dtype=np.float64),
        np.asarray(failed, dtype=np.bool_),
        version,
    )


def _version_order(version: str) -> tuple[int, str]:
    """Versions by name, with the unknown version (no answer, or none in it) last."""
    return (version == UNKNOWN_VERSION, version)
