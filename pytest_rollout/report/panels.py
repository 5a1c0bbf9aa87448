"""The panels of a timeline chart, each drawn on the axes it is given (see :mod:`.charts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pytest_rollout.load.traffic import UNKNOWN_VERSION
from pytest_rollout.report.changes import short_label
from pytest_rollout.report.model import RunTimeline
from pytest_rollout.report.traffic import TrafficSeries

MEASUREMENT_COLORS = {
    "Successful": "#2ca02c",
    "Failed": "#d62728",
    "Error": "#9467bd",
    "Inconclusive": "#ff7f0e",
    "Running": "#7f7f7f",
}
ROLLOUT_PHASE_COLORS = {
    "Healthy": "#dff0d8",
    "Progressing": "#d9edf7",
    "Paused": "#fcefc7",
    "Degraded": "#f2dede",
}
ANALYSIS = "analysis:"
"""Prefix of an analysis row's name: ``analysis:<metric>``."""
STRATEGY_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
WINDOW_COLOR = "#c62828"
WEIGHT_COLOR = "#1f77b4"
STEP_COLOR = "#444444"
_OTHER = "#7f7f7f"
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
# Vertical offsets (points) tried in turn for an event label that would overlap the previous
# one in its lane: on the lane, above it, below it.
_LABEL_LEVELS = (-3.0, 5.0, -11.0)
_LABEL_FONT_PT = 6.5
_LABELLED_MEASUREMENTS = 12
"""Up to this many measurements of a metric in a run, each is labelled; beyond, the
non-Successful ones only."""


@dataclass(frozen=True)
class RunView:
    """A release run with its traffic binned on the run's time axis (None: no traffic log)."""

    run: RunTimeline
    traffic: TrafficSeries | None


def draw_run(
    axes: dict[str, Axes],
    view: RunView,
    colors: dict[str, str],
    lanes: list[str],
    *,
    px_per_s: float,
) -> None:
    run = view.run
    if view.traffic is not None and "traffic" in axes:
        traffic(axes, view.traffic, colors)
    if "rollout" in axes:
        rollout(axes["rollout"], run)
    for row, ax in axes.items():
        if row.startswith(ANALYSIS):
            analysis(ax, run, row.removeprefix(ANALYSIS))
    if "events" in axes:
        events(axes["events"], run, lanes, px_per_s=px_per_s)
    windows(list(axes.values()), run)


def traffic(axes: dict[str, Axes], series: TrafficSeries, colors: dict[str, str]) -> None:
    x = series.starts + series.bin_s / 2
    versions = series.versions
    rate = axes["traffic"]
    if versions:
        rate.stackplot(
            x,
            *[v.rate for v in versions],
            colors=[colors[v.version] for v in versions],
            alpha=0.85,
            linewidth=0,
        )
    rate.set_ylabel("requests/s\n(stacked)", fontsize=9)
    rate.set_ylim(bottom=0)

    errors = axes["errors"]
    # A request with no version got no answer from any version: it fails by definition, so it
    # counts in the "all requests" line only.
    answered = [v for v in versions if v.version != UNKNOWN_VERSION]
    for v in answered:
        errors.plot(
            x, v.error_rate * 100, color=colors[v.version], linewidth=1.4, marker=".", markersize=3
        )
    errors.plot(x, series.overall_error_rate * 100, color="black", linestyle="--", linewidth=0.9)
    errors.set_ylabel("error rate (%)\n5xx + no answer", fontsize=9)
    curves = [series.overall_error_rate * 100, *(v.error_rate * 100 for v in answered)]
    peak = float(np.nanmax(np.concatenate([*curves, [0.0]])))
    errors.set_ylim(0, min(105.0, max(5.0, peak * 1.15)))

    latency = axes["latency"]
    extremes: list[float] = []
    for v in versions:
        latency.plot(x, v.p99_ms, color=colors[v.version], linewidth=1.4)
        if np.isfinite(v.p99_ms).any():
            extremes += [float(np.nanmin(v.p99_ms)), float(np.nanmax(v.p99_ms))]
    latency.set_ylabel("p99 latency (ms)", fontsize=9)
    if extremes and min(extremes) > 0 and max(extremes) / min(extremes) > 50:
        latency.set_yscale("log")
    else:
        latency.set_ylim(bottom=0)


def error_handles(colors: dict[str, str], seen: set[str]) -> list[Line2D | Patch]:
    handles: list[Line2D | Patch] = [
        Line2D([], [], color=colors[name], marker=".", label=name)
        for name in colors
        if name in seen and name != UNKNOWN_VERSION
    ]
    handles.append(
        Line2D([], [], color="black", linestyle="--", label="all requests\n(incl. no answer)")
    )
    return handles


def rollout(ax: Axes, run: RunTimeline) -> None:
    """The Rollout phase as background, the canary weight, and the current step on the right."""
    samples = run.status
    ax.set_ylim(0, 109)
    if not any(s.weight is not None for s in samples):
        # A Deployment has no weight: the panel shows its phase only.
        ax.set_ylabel("phase", fontsize=9)
        ax.set_yticks([])
    else:
        ax.set_ylabel("canary weight (%)", fontsize=9)
    if not samples:
        return
    t = [run.rel(s.t) for s in samples]
    start = 0
    for i in range(1, len(samples) + 1):
        if i == len(samples) or samples[i].phase != samples[start].phase:
            stop = t[i] if i < len(samples) else t[-1]
            color = ROLLOUT_PHASE_COLORS.get(samples[start].phase, "#eeeeee")
            ax.axvspan(t[start], stop, color=color, linewidth=0, zorder=0)
            start = i
    weights = [(x, s.weight) for x, s in zip(t, samples, strict=True) if s.weight is not None]
    if weights:
        ax.step(
            [w[0] for w in weights],
            [w[1] for w in weights],
            where="post",
            color=WEIGHT_COLOR,
            linewidth=1.8,
        )
        previous: int | None = None
        for x, weight in weights:
            if weight != previous:
                ax.annotate(
                    f"{weight}%",
                    (x, weight),
                    fontsize=7,
                    color=WEIGHT_COLOR,
                    xytext=(2, 3),
                    textcoords="offset points",
                )
                previous = weight
    steps = [(x, s.step, s.steps) for x, s in zip(t, samples, strict=True) if s.step is not None]
    if steps:
        twin = ax.twinx()
        twin.step(
            [s[0] for s in steps],
            [s[1] for s in steps],
            where="post",
            color=STEP_COLOR,
            linestyle=":",
            linewidth=1.4,
        )
        total = max(max(s[2] or 0, s[1] or 0) for s in steps)
        twin.set_ylim(0, total + 0.5)
        twin.set_yticks(range(total + 1))
        twin.set_ylabel("step", fontsize=9)
        twin.tick_params(labelsize=8)


def rollout_handles(runs: Sequence[RunTimeline]) -> list[Line2D | Patch]:
    handles: list[Line2D | Patch] = []
    if any(s.weight is not None for r in runs for s in r.status):
        handles.append(Line2D([], [], color=WEIGHT_COLOR, linewidth=1.8, label="canary weight"))
    if any(s.step is not None for r in runs for s in r.status):
        handles.append(Line2D([], [], color=STEP_COLOR, linestyle=":", label="current step"))
    phases = list(dict.fromkeys(s.phase for r in runs for s in r.status))
    handles += [Patch(color=ROLLOUT_PHASE_COLORS.get(p, "#eeeeee"), label=p or "?") for p in phases]
    return handles


def analysis(ax: Axes, run: RunTimeline, metric: str) -> None:
    """The measurements of one metric at their values, coloured by phase, against the
    thresholds of its conditions."""
    measurements = [m for m in run.analysis if m.metric == metric]
    ax.set_ylabel(metric.replace("-", "-\n", 1) if len(metric) > 12 else metric, fontsize=9)
    thresholds = sorted({th for m in measurements for th in m.thresholds})
    scale = [m.value for m in measurements if m.value is not None] + thresholds + [0.0]
    ax.set_ylim(min(min(scale), 0.0), max(scale) * 1.3 or 1.0)
    for threshold in thresholds:
        ax.axhline(threshold, color="#555555", linestyle="--", linewidth=0.9)
        ax.annotate(
            f"threshold {threshold:g}",
            (1.0, threshold),
            xycoords=("axes fraction", "data"),
            fontsize=7,
            ha="right",
            va="bottom",
            color="#555555",
        )
    for m in measurements:
        color = MEASUREMENT_COLORS.get(m.phase, _OTHER)
        shown = 0.0 if m.value is None else m.value
        # A measurement without a value (an Error, a failed web check) sits hollow on zero.
        ax.scatter(
            [run.rel(m.t)],
            [shown],
            marker="o",
            s=38,
            zorder=3,
            color=color if m.value is not None else "none",
            edgecolors=color,
            linewidths=1.3,
        )
        if len(measurements) > _LABELLED_MEASUREMENTS and m.phase == "Successful":
            continue  # a background analysis looks every second: label only what stands out
        # A value that is no number (a web answer's JSON) is in the page's table.
        text = f"{m.value:.3g} " if m.value is not None else "" if m.value_text else "no value "
        ax.annotate(
            f"{text}{m.phase}",
            (run.rel(m.t), shown),
            fontsize=7,
            color=color,
            xytext=(4, 4),
            textcoords="offset points",
        )


def analysis_handles(runs: Sequence[RunTimeline]) -> list[Line2D | Patch]:
    phases = sorted({m.phase for r in runs for m in r.analysis})
    handles: list[Line2D | Patch] = [
        Patch(color=MEASUREMENT_COLORS.get(p, _OTHER), label=p) for p in phases
    ]
    handles.append(Line2D([], [], color="#555555", linestyle="--", label="threshold"))
    return handles


def events(ax: Axes, run: RunTimeline, lanes: list[str], *, px_per_s: float) -> None:
    """One lane per event reason; Warnings as red triangles; a short label beside each."""
    ax.set_ylim(len(lanes) - 0.4, -0.6)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels(lanes, fontsize=7)
    for lane in range(len(lanes)):
        ax.axhline(lane, color="#eeeeee", linewidth=0.6, zorder=0)
    # Where each label level of each lane is taken up to, in seconds.
    taken: dict[tuple[int, int], float] = {}
    char_s = _LABEL_FONT_PT * 0.6 * (100 / 72) / px_per_s
    for event in sorted(run.events, key=lambda e: e.timestamp):
        if event.reason not in lanes:
            continue  # before the chart's time range
        lane = lanes.index(event.reason)
        warning = event.type == "Warning"
        x = run.rel(event.timestamp)
        color = WINDOW_COLOR if warning else "#333333"
        ax.scatter(
            [x],
            [lane],
            marker="v" if warning else "o",
            s=30 if warning else 18,
            color=color,
            zorder=3,
        )
        label = short_label(event, run)
        if not label:
            continue
        level = next(
            (i for i in range(len(_LABEL_LEVELS)) if taken.get((lane, i), -np.inf) < x),
            0,
        )
        taken[(lane, level)] = x + (len(label) + 2) * char_s
        ax.annotate(
            label,
            (x, lane),
            fontsize=_LABEL_FONT_PT,
            color=color,
            xytext=(4, _LABEL_LEVELS[level]),
            textcoords="offset points",
        )


def windows(axes: list[Axes], run: RunTimeline) -> None:
    """The blast-radius window (shaded) and the rollback moment (dashed) on every panel."""
    for index, ax in enumerate(axes):
        if run.blast_radius is not None:
            start, end = (run.rel(t) for t in run.blast_radius)
            ax.axvspan(start, end, color=WINDOW_COLOR, alpha=0.07, linewidth=0, zorder=0)
            if index == 0:
                ax.annotate(
                    f"blast-radius window {start:+.1f}s to {end:+.1f}s",
                    (start, 1.0),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color=WINDOW_COLOR,
                    va="top",
                    xytext=(2, -2),
                    textcoords="offset points",
                    bbox=_LABEL_BOX,
                    zorder=4,
                )
        if run.rollback_at is not None:
            x = run.rel(run.rollback_at)
            ax.axvline(x, color=WINDOW_COLOR, linestyle="--", linewidth=1.2, zorder=3)
            if index == 0:
                ax.annotate(
                    f"rollback {x:+.1f}s",
                    (x, 0.78),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color=WINDOW_COLOR,
                    xytext=(3, 0),
                    textcoords="offset points",
                    bbox=_LABEL_BOX,
                    zorder=4,
                )


def cost(axes: dict[str, Axes], runs: Sequence[RunTimeline]) -> None:
    """Pods (ready solid, all dashed) and memory over time, one colour per run's strategy."""
    pods, memory = axes["pods"], axes["memory"]
    sampled = [r for r in runs if r.resources]
    for index, run in enumerate(sampled):
        color = STRATEGY_COLORS[index % len(STRATEGY_COLORS)]
        name = run.strategy or run.label
        t = np.array([run.rel(p.t) for p in run.resources])
        ready = np.array([p.ready for p in run.resources])
        total = ready + np.array([p.not_ready for p in run.resources])
        mib = np.array([p.memory_bytes for p in run.resources]) / 2**20
        pods.step(t, total, where="post", color=color, linestyle="--", linewidth=1.0)
        pods.step(t, ready, where="post", color=color, linewidth=1.8, label=name)
        memory.plot(t, mib, color=color, linewidth=1.8, label=name)
        for ax, values, text in ((pods, total, "{:,.0f}"), (memory, mib, "{:,.0f} MiB")):
            top = int(values.argmax())
            ax.annotate(
                f"{name} peak {text.format(values[top])}",
                (t[top], values[top]),
                fontsize=7,
                color=color,
                xytext=(3, 3 + 9 * index),
                textcoords="offset points",
            )
    pods.set_ylabel("pods\n(solid: ready,\ndashed: all)", fontsize=9)
    memory.set_ylabel("memory (MiB)", fontsize=9)
    for ax in (pods, memory):
        ax.set_ylim(0, ax.get_ylim()[1] * 1.2)
        ax.grid(True, axis="y", color="#e6e6e6", linewidth=0.6)
    pods.set_title("pods and memory by strategy (runs overlaid)", fontsize=11, loc="left")
    pods.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="strategy", title_fontsize=8
    )
