"""(Re)build the HTML report of a report directory from what is in it.

``render_experiment(DIR/<experiment>)`` writes that experiment's ``index.html`` and
``timeline.png``; ``build_report(DIR)`` does so for every experiment and writes
``DIR/index.html``.
"""

from __future__ import annotations

import gc
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from pytest_rollout.report import charts, pages
from pytest_rollout.report.model import (
    SUMMARY_FILE,
    TIMELINE_FILE,
    Experiment,
    ReportDataError,
    RunTimeline,
    experiment_dirs,
    read_experiment,
    read_session,
    read_summary,
)
from pytest_rollout.report.traffic import TrafficSeries, is_traffic_log, read_traffic

INDEX = "index.html"
TIMELINE_PNG = "timeline.png"


@dataclass(frozen=True)
class RenderedExperiment:
    name: str
    verdict: str
    page: Path
    timeline: Path
    size: tuple[int, int]
    """timeline.png in pixels (width, height)"""
    seconds: float


@dataclass(frozen=True)
class BuildResult:
    index: Path
    rendered: tuple[RenderedExperiment, ...]
    problems: tuple[str, ...]
    experiments: int
    seconds: float

    def describe(self) -> str:
        """One line: what was built and how long it took."""
        parts = [f"{r.name} {r.seconds:.2f}s" for r in self.rendered]
        timing = f" ({', '.join(parts)})" if parts else ""
        problems = f"; {len(self.problems)} unreadable" if self.problems else ""
        return (
            f"{self.index}: {self.experiments} experiment(s); {len(self.rendered)} page(s) "
            f"rebuilt in {self.seconds:.2f}s{timing}{problems}"
        )


def render_experiment(directory: Path) -> RenderedExperiment:
    """Write ``index.html`` and ``timeline.png`` of one experiment directory."""
    started = time.perf_counter()
    experiment = read_experiment(directory)
    runs, traffic = _runs_and_traffic(experiment)
    views = [charts.RunView(run, traffic.get(run.label)) for run in runs]
    summary = experiment.summary
    title = f"{summary.experiment} — {summary.verdict}" + (
        f": {summary.headline}" if summary.headline else ""
    )
    figure = (
        charts.timeline_figure(title, views)
        if views and _has_data(views)
        else charts.placeholder_figure(
            title, "No release run was recorded for this experiment (no timeline, no traffic log)."
        )
    )
    timeline = _chart("Timeline", figure, f"timeline of {summary.experiment}")
    (directory / TIMELINE_PNG).write_bytes(timeline.png)
    shown = [timeline]
    files = sorted(
        p.name for p in directory.iterdir() if p.is_file() and p.name != INDEX and p.suffix
    )
    experiment = Experiment(experiment.directory, summary, runs)
    page = directory / INDEX
    page.write_text(pages.experiment_page(experiment, shown, traffic, files))
    # A figure is a web of reference cycles: collect it now, between experiments, rather than
    # in a full collection while the next experiment's load generator keeps its schedule.
    del figure
    gc.collect()
    return RenderedExperiment(
        name=directory.name,
        verdict=summary.verdict,
        page=page,
        timeline=directory / TIMELINE_PNG,
        size=(timeline.width, timeline.height),
        seconds=time.perf_counter() - started,
    )


def build_report(report_dir: Path, *, only_outdated: bool = False) -> BuildResult:
    """Render every experiment page (or only those older than their data) and the index.

    An experiment whose files cannot be read is listed on the index with the reason and in
    ``problems``; the others are rendered regardless.
    """
    started = time.perf_counter()
    report_dir.mkdir(parents=True, exist_ok=True)
    rendered: list[RenderedExperiment] = []
    problems: list[str] = []
    rows: list[pages.IndexRow] = []
    for directory in experiment_dirs(report_dir):
        try:
            summary = read_summary(directory / SUMMARY_FILE)
            if not only_outdated or _outdated(directory):
                rendered.append(render_experiment(directory))
        except ReportDataError as exc:
            problems.append(str(exc))
            rows.append(pages.IndexRow(directory.name, None, str(exc)))
            continue
        rows.append(pages.IndexRow(directory.name, summary))
    index = report_dir / INDEX
    index.write_text(pages.index_page(rows, read_session(report_dir)))
    return BuildResult(
        index=index,
        rendered=tuple(rendered),
        problems=tuple(problems),
        experiments=len(rows),
        seconds=time.perf_counter() - started,
    )


def _runs_and_traffic(
    experiment: Experiment,
) -> tuple[tuple[RunTimeline, ...], dict[str, TrafficSeries]]:
    """The experiment's runs with their binned traffic. Without a timeline, each traffic log
    in the directory is a run whose axis starts at its first request."""
    directory = experiment.directory
    traffic: dict[str, TrafficSeries] = {}
    if experiment.runs:
        for run in experiment.runs:
            if run.traffic is not None:
                traffic[run.label] = read_traffic(directory / run.traffic, origin=run.released_at)
        return experiment.runs, traffic
    runs = []
    for path in sorted(directory.glob("*.csv")):
        if not is_traffic_log(path):
            continue
        series = read_traffic(path, origin=None)
        runs.append(RunTimeline(label=path.stem, traffic=path.name, released_at=series.origin))
        traffic[path.stem] = series
    return tuple(runs), traffic


def _has_data(views: Sequence[charts.RunView]) -> bool:
    return any(
        (v.traffic is not None and v.traffic.requests)
        or v.run.status
        or v.run.events
        or v.run.analysis
        for v in views
    )


def _chart(title: str, figure: Figure, alt: str) -> pages.Chart:
    data = charts.png(figure)
    # The size written in the PNG's IHDR chunk, right after the 8-byte signature.
    width, height = struct.unpack(">II", data[16:24])
    return pages.Chart(title, data, width, height, alt)


def _outdated(directory: Path) -> bool:
    """Whether the page is missing or older than any data file it is rendered from."""
    page = directory / INDEX
    if not page.is_file() or not (directory / TIMELINE_PNG).is_file():
        return True
    built = page.stat().st_mtime
    sources = [directory / SUMMARY_FILE, directory / TIMELINE_FILE, *directory.glob("*.csv")]
    return any(p.is_file() and os.stat(p).st_mtime > built for p in sources)
