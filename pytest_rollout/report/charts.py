"""The timeline chart of an experiment: one column per release run, panels on a shared time axis.

Rows, top to bottom, each only when some run has data for it: pods and memory per strategy
(across the full width, runs overlaid), then per run requests/s by version (stacked), error
rate by version, p99 latency by version, the canary weight and current step over the Rollout
phase, the analysis measurements against their thresholds, and the events. Every time axis is
seconds from the run's release, over the same range in every column, and side-by-side runs get
the same y scales, so that their heights compare at a glance.

Figures are built on matplotlib's object API with the Agg canvas: no pyplot, no global state,
nothing shown on screen.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pytest_rollout.load.traffic import UNKNOWN_VERSION
from pytest_rollout.report import panels
from pytest_rollout.report.panels import RunView

DPI = 100
SINGLE_WIDTH_IN = 13.0
PAIR_WIDTH_IN = 8.5
MANY_WIDTH_IN = 7.0
MAX_COLUMNS = 4
"""Runs side by side at most; more wrap into bands."""
LEGEND_WIDTH_IN = 2.2
MIN_HEIGHT_IN = 5.2

VERSION_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
UNKNOWN_COLOR = "#7f7f7f"

_GAP = "gap"
_HEIGHTS = {
    "pods": 1.7,
    _GAP: 0.3,
    "memory": 1.5,
    "traffic": 2.3,
    "errors": 1.7,
    "latency": 1.6,
    "rollout": 1.5,
}
_ANALYSIS_ROW_IN = 1.15  # one row per metric: each in its own units
_EVENT_LANE_IN = 0.3
_LEFT_IN = 1.5
_TOP_IN = 0.75
_BOTTOM_IN = 0.55
_ROW_GAP_IN = 0.22
_COLUMN_GAP_IN = 1.2
_COST_ROWS = ("pods", "memory")

__all__ = ["RunView", "placeholder_figure", "png", "timeline_figure"]


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes, rendered by Agg."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # attaches itself as the figure's canvas
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def placeholder_figure(title: str, text: str) -> Figure:
    """A chart-sized image that says why there is no timeline."""
    figure = Figure(figsize=(SINGLE_WIDTH_IN, MIN_HEIGHT_IN), dpi=DPI)
    figure.suptitle(title, fontsize=13, x=0.01, ha="left")
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, wrap=True)
    return figure


def timeline_figure(title: str, views: Sequence[RunView]) -> Figure:
    """The experiment's timeline; ``views`` must hold at least one run.

    Up to :data:`MAX_COLUMNS` runs sit side by side; more wrap into bands of that many, one
    under the other, with the same time axis and scales, so that a page stays readable."""
    cost_rows = [r for r in _COST_ROWS if any(v.run.resources for v in views)]
    x_range = _time_range(views)
    lanes = _event_lanes(views, x_range[0])
    per_band = min(len(views), MAX_COLUMNS)
    # Each band has the rows its own runs have data for (their own analysis metrics).
    band_rows = [_run_rows(views[i : i + per_band]) for i in range(0, len(views), per_band)]
    band_rows = band_rows if any(band_rows) else []
    # An empty row between the full-width cost panels and the runs' columns, and between two
    # bands of runs, leaves room for the tick labels above and the runs' titles below.
    slots: list[tuple[str, int]] = [(row, -1) for row in cost_rows]
    for band, rows in enumerate(band_rows):
        if band or cost_rows:
            slots.append((_GAP, band))
        slots += [(row, band) for row in rows]
    heights = [_row_height(row, len(lanes)) for row, _ in slots]
    column_width = _column_width(per_band)
    width = _LEFT_IN + column_width * per_band + LEGEND_WIDTH_IN
    height = max(MIN_HEIGHT_IN, sum(heights) + _TOP_IN + _BOTTOM_IN + _ROW_GAP_IN * len(slots))
    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.suptitle(title, fontsize=13, x=0.01, y=1 - 0.12 / height, ha="left", va="top")
    # Fixed margins in inches rather than a layout engine: as readable, and a third faster.
    axes_width = (width - _LEFT_IN - LEGEND_WIDTH_IN) / per_band - _COLUMN_GAP_IN
    axes_height = (height - _TOP_IN - _BOTTOM_IN) / len(slots) - _ROW_GAP_IN
    grid = figure.add_gridspec(
        len(slots),
        per_band,
        height_ratios=heights,
        left=_LEFT_IN / width,
        right=1 - LEGEND_WIDTH_IN / width,
        top=1 - _TOP_IN / height,
        bottom=_BOTTOM_IN / height,
        wspace=_COLUMN_GAP_IN / axes_width if per_band > 1 else 0,
        hspace=_ROW_GAP_IN / axes_height,
    )
    shared: list[Axes] = []
    # The rows that show the time axis' numbers: each band's last, and the cost panels' last.
    labelled = {(row, -1) for row in cost_rows[-1:]}
    labelled |= {(rows[-1], band) for band, rows in enumerate(band_rows) if rows}

    def axes_at(slot: tuple[str, int], column: slice | int) -> Axes:
        ax = figure.add_subplot(
            grid[slots.index(slot), column], sharex=shared[0] if shared else None
        )
        shared.append(ax)
        ax.grid(True, axis="x", color="#e6e6e6", linewidth=0.6)
        ax.tick_params(labelsize=8)
        ax.tick_params(labelbottom=slot in labelled)
        return ax

    runs = [v.run for v in views]
    if cost_rows:
        panels.cost({row: axes_at((row, -1), slice(None)) for row in cost_rows}, runs)
    columns: list[dict[str, Axes]] = []
    colors = version_colors(views)
    px_per_s = column_width * DPI * 0.8 / (x_range[1] - x_range[0])
    for index, view in enumerate(views if band_rows else ()):
        band, column = divmod(index, per_band)
        run_rows = band_rows[band]
        if not run_rows:
            continue
        axes = {row: axes_at((row, band), column) for row in run_rows}
        panels.draw_run(axes, view, colors, lanes, px_per_s=px_per_s)
        shown = view.run.label
        if view.run.strategy and view.run.strategy not in shown:
            shown += f" ({view.run.strategy})"
        axes[run_rows[0]].set_title(shown, fontsize=11, loc="left")
        axes[run_rows[-1]].set_xlabel("seconds from the release", fontsize=9)
        if column and "events" in axes:
            axes["events"].tick_params(labelleft=False)  # the same lanes as the first column
        columns.append(axes)
    shared[0].set_xlim(*x_range)
    _equal_scales(columns, ["traffic", "errors", "latency", *_analysis_rows(views)])
    if columns:
        _legends(columns[min(per_band, len(columns)) - 1], views, colors)
    return figure


def version_colors(views: Iterable[RunView]) -> dict[str, str]:
    """One colour per serving version, the same in every panel and run."""
    names = sorted(
        {v.version for view in views if view.traffic for v in view.traffic.versions}
        - {UNKNOWN_VERSION}
    )
    colors = {name: VERSION_COLORS[i % len(VERSION_COLORS)] for i, name in enumerate(names)}
    colors[UNKNOWN_VERSION] = UNKNOWN_COLOR
    return colors


def _column_width(runs: int) -> float:
    return SINGLE_WIDTH_IN if runs == 1 else PAIR_WIDTH_IN if runs == 2 else MANY_WIDTH_IN


def _run_rows(views: Sequence[RunView]) -> list[str]:
    rows = []
    if any(v.traffic is not None and v.traffic.requests for v in views):
        rows += ["traffic", "errors", "latency"]
    if any(v.run.status for v in views):
        rows.append("rollout")
    rows += _analysis_rows(views)
    if any(v.run.events for v in views):
        rows.append("events")
    return rows


def _analysis_rows(views: Sequence[RunView]) -> list[str]:
    return [panels.ANALYSIS + m for m in sorted({m.metric for v in views for m in v.run.analysis})]


def _row_height(row: str, lanes: int) -> float:
    if row.startswith(panels.ANALYSIS):
        return _ANALYSIS_ROW_IN
    if row == "events":
        return 0.5 + _EVENT_LANE_IN * lanes
    return _HEIGHTS[row]


def _event_lanes(views: Sequence[RunView], since: float) -> list[str]:
    """The reasons of the events on the chart (from ``since`` seconds), in order of first
    appearance: one lane each, the same in every run."""
    lanes: list[str] = []
    for view in views:
        for event in sorted(view.run.events, key=lambda e: e.timestamp):
            if view.run.rel(event.timestamp) >= since and event.reason not in lanes:
                lanes.append(event.reason)
    return lanes


def _time_range(views: Sequence[RunView]) -> tuple[float, float]:
    """Seconds from the release, over every run: while the load ran when there is a traffic
    log (what happened before it, the initial deploy, is in the event log), else everything
    the run recorded."""
    starts, ends = [0.0], [1.0]
    loaded = [v.traffic for v in views if v.traffic is not None and v.traffic.requests]
    for view in views:
        run = view.run
        times = [s.t for s in run.status] + [m.t for m in run.analysis]
        times += [e.timestamp for e in run.events] + [r.t for r in run.resources]
        if times:
            ends.append(run.rel(max(times)))
            if not loaded:
                starts.append(run.rel(min(times)))
    for traffic in loaded:
        starts.append(traffic.begin)
        ends.append(traffic.end)
    low, high = min(starts), max(ends)
    margin = 0.01 * (high - low)
    return low - margin, high + margin


def _equal_scales(columns: list[dict[str, Axes]], rows: Sequence[str]) -> None:
    if len(columns) < 2:
        return
    for row in rows:
        axes = [c[row] for c in columns if row in c]
        if len(axes) < 2 or any(ax.get_yscale() != "linear" for ax in axes):
            continue
        low = min(ax.get_ylim()[0] for ax in axes)
        high = max(ax.get_ylim()[1] for ax in axes)
        for ax in axes:
            ax.set_ylim(low, high)


def _legends(axes: dict[str, Axes], views: Sequence[RunView], colors: dict[str, str]) -> None:
    """Legends right of the last column, for what any of the runs shows."""
    runs = [v.run for v in views]
    seen = {v.version for view in views if view.traffic for v in view.traffic.versions}
    if "traffic" in axes:
        versions = [Patch(color=colors[name], label=name) for name in colors if name in seen]
        _legend(axes["traffic"], versions, "version")
        _legend(axes["errors"], panels.error_handles(colors, seen), None)
    if "rollout" in axes:
        # Clear of the step axis' labels on the right.
        steps = any(s.step is not None for r in runs for s in r.status)
        _legend(axes["rollout"], panels.rollout_handles(runs), "Rollout", x=1.07 if steps else 1.01)
    analysis = [row for row in axes if row.startswith(panels.ANALYSIS)]
    if analysis:
        _legend(axes[analysis[0]], panels.analysis_handles(runs), "measurement")


def _legend(ax: Axes, handles: Sequence[Artist], title: str | None, *, x: float = 1.01) -> None:
    ax.legend(
        handles=handles,
        title=title,
        title_fontsize=8,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(x, 1.0),
    )
