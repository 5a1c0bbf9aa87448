"""The report's index as Markdown, for a CI job summary (``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_rollout.report.model import SessionInfo, Summary

_QUIET_VERDICTS = ("passed", "skipped")


def index_markdown(
    summaries: Sequence[Summary], session: SessionInfo | None, *, problems: Sequence[str] = ()
) -> str:
    lines = ["## Rollout evidence", ""]
    if session is not None:
        lines += [f"backend `{session.backend or '?'}`, started {session.started or '?'}", ""]
        if session.header:
            lines += ["```", *session.header, "```", ""]
    if problems:
        lines += ["Unreadable evidence:", "", *(f"- {_cell(p)}" for p in problems), ""]
    if not summaries:
        return "\n".join([*lines, "No experiment wrote evidence.", ""])
    lines += ["| experiment | verdict | headline |", "|---|---|---|"]
    for summary in summaries:
        verdict = (
            summary.verdict if summary.verdict in _QUIET_VERDICTS else f"**{summary.verdict}**"
        )
        headline = summary.headline or summary.message
        lines.append(f"| {_cell(summary.experiment)} | {verdict} | {_cell(headline)} |")
    lines += [
        "",
        "The HTML dashboard (`index.html`, one page and `timeline.png` per experiment) is in "
        "the report directory.",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Table-safe: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
