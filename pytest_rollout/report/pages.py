"""The report's HTML pages: the index and one page per experiment.

Pages are self-contained (styles inline, charts as ``data:`` PNGs, no script, nothing fetched)
so that a CI artifact opens offline; the only links are relative ones within the report.
Every piece of text from the report directory is escaped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from pytest_rollout.report.changes import WEIGHT_EVENT, status_change
from pytest_rollout.report.model import Experiment, Measurement, RunTimeline, SessionInfo, Summary
from pytest_rollout.report.traffic import TrafficSeries

EXPERIMENT_PAGE = "index.html"

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;
max-width:1500px;padding:0 1rem;color:#222}
h1{font-size:1.5rem;margin:.2rem 0 .6rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}h3{font-size:1rem;margin:1rem 0 .4rem}
table{border-collapse:collapse;margin:.4rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;
font-variant-numeric:tabular-nums}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12.5px}pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;white-space:pre-wrap}
td code{overflow-wrap:anywhere}
img.chart{max-width:100%;height:auto;display:block;border:1px solid #eee}
.verdict{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;font-size:.85rem;
font-weight:600;color:#fff;background:#777}.verdict.passed{background:#2e7d32}
.verdict.failed{background:#c62828}.verdict.inconclusive{background:#ef6c00}
.verdict.error{background:#6a1b9a}.verdict.skipped{background:#757575}
.headline{font-size:1.05rem}.muted{color:#666}tr.warning td{background:#fff4f4}
.stale{color:#8a6d3b}nav{margin-bottom:.6rem}details summary{cursor:pointer}
"""


@dataclass(frozen=True)
class Chart:
    """A PNG to inline, with what it shows."""

    title: str
    png: bytes
    width: int
    height: int
    alt: str


@dataclass(frozen=True)
class IndexRow:
    """One experiment on the index; ``problem`` when its directory could not be read."""

    name: str
    summary: Summary | None
    problem: str | None = None


def experiment_page(
    experiment: Experiment,
    charts: Sequence[Chart],
    traffic: Mapping[str, TrafficSeries],
    files: Sequence[str],
) -> str:
    """The experiment's page; ``traffic`` by run label, ``files`` the directory's files."""
    summary = experiment.summary
    body = [
        '<nav><a href="../index.html">&larr; all experiments</a></nav>',
        f"<h1>{_e(summary.experiment)} {_verdict(summary.verdict)}</h1>",
        f'<p class="muted">backend <code>{_e(summary.backend)}</code>'
        + (f", kind <code>{_e(summary.kind)}</code>" if summary.kind else "")
        + (f", finished {_e(summary.finished)}" if summary.finished else "")
        + "</p>",
    ]
    if summary.headline:
        body.append(f'<p class="headline">{_e(summary.headline)}</p>')
    if summary.message:
        body.append(f"<pre>{_e(summary.message)}</pre>")
    for chart in charts:
        body += [f"<h2>{_e(chart.title)}</h2>", _image(chart)]
    if experiment.runs:
        body += ["<h2>Release runs</h2>", _runs_table(experiment.runs, traffic)]
    body += ["<h2>Summary</h2>", _metrics_table(summary.metrics)]
    measurements = [(run, m) for run in experiment.runs for m in run.analysis]
    if measurements:
        body += ["<h2>Analysis measurements</h2>", _measurements_table(measurements)]
    body += ["<h2>Event log</h2>", *_event_log(experiment)]
    if files:
        links = ", ".join(f'<a href="{_href(f)}">{_e(f)}</a>' for f in files)
        body += ["<h2>Files</h2>", f"<p>{links}</p>"]
    return _document(f"{summary.experiment} — {summary.verdict}", body)


def index_page(rows: Sequence[IndexRow], session: SessionInfo | None) -> str:
    body = ["<h1>Rollout evidence</h1>", *_session_block(session)]
    body.append(
        "<table><tr><th>experiment</th><th>verdict</th><th>headline</th><th>kind</th>"
        "<th>backend</th><th>finished</th></tr>"
    )
    started = session.started if session else None
    for row in rows:
        link = f'<a href="{_href(row.name)}/{EXPERIMENT_PAGE}">{_e(row.name)}</a>'
        summary = row.summary
        if summary is None:
            body.append(
                f"<tr><td>{link}</td><td>{_verdict('error')}</td>"
                f'<td colspan="4">unreadable: {_e(row.problem or "")}</td></tr>'
            )
            continue
        finished = _e(summary.finished or "")
        if started and summary.finished and summary.finished < started:
            finished += ' <span class="stale">(an earlier session)</span>'
        headline = summary.headline or summary.message
        body.append(
            f"<tr><td>{link}</td><td>{_verdict(summary.verdict)}</td><td>{_e(headline)}</td>"
            f"<td>{_e(summary.kind or '')}</td><td>{_e(summary.backend)}</td>"
            f"<td>{finished}</td></tr>"
        )
    body.append("</table>")
    if not rows:
        body.append('<p class="muted">No experiment has written to this report yet.</p>')
    return _document("Rollout evidence", body)


def _session_block(session: SessionInfo | None) -> list[str]:
    if session is None:
        return [
            '<p class="muted">No session record (<code>_session.json</code>) in this directory.</p>'
        ]
    facts = [
        f"backend <code>{_e(session.backend or '?')}</code>",
        f"started {_e(session.started or '?')}",
        f"finished {_e(session.finished or 'not yet (or interrupted)')}",
    ]
    block = [f"<p>{', '.join(facts)}</p>"]
    if session.header:
        block.append(f"<pre>{_e(chr(10).join(session.header))}</pre>")
    if session.argv:
        block.append(f"<p>command: <code>{_e(' '.join(session.argv))}</code></p>")
    return block


def _runs_table(runs: Sequence[RunTimeline], traffic: Mapping[str, TrafficSeries]) -> str:
    rows = [
        "<table><tr><th>run</th><th>strategy</th><th>released (UTC)</th><th>requests</th>"
        "<th>failed (5xx or no answer)</th><th>by version</th><th>blast-radius window</th>"
        "<th>rollback</th></tr>"
    ]
    for run in runs:
        series = traffic.get(run.label)
        by_version = (
            ", ".join(
                f"{v.version}: {v.requests:,} ({v.failures:,} failed)" for v in series.versions
            )
            if series
            else ""
        )
        window = (
            f"{run.rel(run.blast_radius[0]):+.1f}s to {run.rel(run.blast_radius[1]):+.1f}s"
            if run.blast_radius
            else ""
        )
        rollback = f"{run.rel(run.rollback_at):+.1f}s" if run.rollback_at is not None else ""
        rows.append(
            f"<tr><td>{_e(run.label)}</td><td>{_e(run.strategy or '')}</td>"
            f"<td>{_utc(run.released_at)}</td>"
            f'<td class="num">{f"{series.requests:,}" if series else ""}</td>'
            f'<td class="num">{f"{series.failures:,}" if series else ""}</td>'
            f"<td>{_e(by_version)}</td><td>{window}</td><td>{rollback}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _metrics_table(metrics: Mapping[str, object]) -> str:
    if not metrics:
        return '<p class="muted">No metrics recorded.</p>'
    rows = ["<table><tr><th>metric</th><th>value</th></tr>"]
    for key, value in metrics.items():
        rows.append(f"<tr><td><code>{_e(key)}</code></td><td>{_value(value)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _measurements_table(measurements: Sequence[tuple[RunTimeline, Measurement]]) -> str:
    rows = [
        "<table><tr><th>run</th><th>t</th><th>AnalysisRun</th><th>metric</th><th>phase</th>"
        "<th>value</th><th>condition</th><th>message</th></tr>"
    ]
    for run, m in measurements:
        conditions = "; ".join(
            f"{word}: {text}"
            for word, text in (("success", m.success_condition), ("failure", m.failure_condition))
            if text
        )
        value = (
            f'<td class="num">{m.value:.4g}</td>'
            if m.value is not None
            else f"<td><code>{_e(m.value_text)}</code></td>"
        )
        warn = ' class="warning"' if m.phase in ("Failed", "Error", "Inconclusive") else ""
        rows.append(
            f"<tr{warn}><td>{_e(run.label)}</td><td>{run.rel(m.t):+.1f}s</td><td>{_e(m.run)}</td>"
            f"<td>{_e(m.metric)}</td><td>{_e(m.phase)}</td>{value}"
            f"<td><code>{_e(conditions)}</code></td><td>{_e(m.message)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _event_log(experiment: Experiment) -> list[str]:
    runs = [run for run in experiment.runs if run.events]
    if not runs:
        lines = experiment.summary.events
        return [
            f"<pre>{_e(chr(10).join(lines))}</pre>"
            if lines
            else '<p class="muted">No events recorded.</p>'
        ]
    block: list[str] = []
    for run in runs:
        if len(experiment.runs) > 1:
            block.append(f"<h3>{_e(run.label)}</h3>")
        rows = [
            "<table><tr><th>t</th><th>type</th><th>reason</th><th>object</th><th>message</th>"
            "<th>status change seen</th></tr>"
        ]
        for event in sorted(run.events, key=lambda e: e.timestamp):
            change = status_change(run, event.timestamp) if event.reason == WEIGHT_EVENT else ""
            warn = ' class="warning"' if event.type == "Warning" else ""
            target = f"{event.kind}/{event.name}" if event.kind or event.name else ""
            rows.append(
                f"<tr{warn}><td>{run.rel(event.timestamp):+.1f}s</td><td>{_e(event.type)}</td>"
                f"<td>{_e(event.reason)}</td><td>{_e(target)}</td>"
                # Argo's text kept as it is, trailing space included.
                f"<td><code>{_e(event.message)}</code></td><td>{_e(change)}</td></tr>"
            )
        rows.append("</table>")
        block.append("".join(rows))
    return block


def _image(chart: Chart) -> str:
    data = base64.b64encode(chart.png).decode("ascii")
    return (
        f'<img class="chart" src="data:image/png;base64,{data}" width="{chart.width}" '
        f'height="{chart.height}" alt="{_e(chart.alt)}">'
    )


def _value(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return f"<code>{_e(json.dumps(value))}</code>"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return _e(value)
    if isinstance(value, Mapping):
        return "; ".join(f"{_e(str(k))}: {_value(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, Iterable):
        items = list(value)
        if len(items) <= 3 and all(not isinstance(i, Mapping | list) for i in items):
            return ", ".join(_value(i) for i in items) or "[]"
        shown = "\n".join(i if isinstance(i, str) else json.dumps(i) for i in items)
        return f"<details><summary>{len(items)} items</summary><pre>{_e(shown)}</pre></details>"
    return _e(str(value))


def _verdict(verdict: str) -> str:
    return f'<span class="verdict {_e(verdict)}">{_e(verdict)}</span>'


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _href(name: str) -> str:
    return quote(name)


def _e(text: str) -> str:
    return escape(text, quote=True)


def _document(title: str, body: Sequence[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{_STYLE}</style>'
        "</head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
