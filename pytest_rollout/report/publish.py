"""What the plugin does with the report directory around a session: the session record, and
at the end the HTML report and the CI job summary.

Nothing is written for a session that wrote no evidence (a run of unit tests leaves the report
directory alone).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_rollout.report.markdown import index_markdown
from pytest_rollout.report.model import (
    SUMMARY_FILE,
    ReportDataError,
    SessionInfo,
    experiment_dirs,
    read_session,
    read_summary,
)
from pytest_rollout.report.session import utc_timestamp, write_session

if TYPE_CHECKING:
    from pytest_rollout.report.build import BuildResult

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def record_session(report_dir: Path, info: SessionInfo) -> None:
    """Write the session record unless this session (or a later one) already did: called
    after each experiment, so an interrupted session still leaves its header."""
    try:
        existing = read_session(report_dir)
    except ReportDataError:
        existing = None
    if existing is None or (existing.started or "") < (info.started or ""):
        write_session(report_dir, info)


def wrote_evidence(report_dir: Path, since: float) -> bool:
    """Whether an experiment wrote its summary at or after ``since`` (epoch seconds)."""
    return any(
        (directory / SUMMARY_FILE).stat().st_mtime >= since
        for directory in experiment_dirs(report_dir)
    )


def finish_session(report_dir: Path, info: SessionInfo, *, since: float) -> BuildResult | None:
    """At the end of a session that wrote evidence: stamp the session record finished,
    (re)build the HTML report and, on GitHub Actions, append the job summary. Returns the
    :class:`~pytest_rollout.report.build.BuildResult`, or None when there was nothing to do."""
    if not wrote_evidence(report_dir, since):
        return None
    finished = replace(info, finished=utc_timestamp(time.time()))
    write_session(report_dir, finished)
    from pytest_rollout.report.build import build_report  # matplotlib: only when needed

    result = build_report(report_dir, only_outdated=True)
    step_summary = os.environ.get(STEP_SUMMARY_ENV)
    if step_summary:
        summaries = []
        for directory in experiment_dirs(report_dir):
            try:
                summaries.append(read_summary(directory / SUMMARY_FILE))
            except ReportDataError:
                continue  # among the build's problems, which the summary lists
        with Path(step_summary).open("a") as handle:
            handle.write(index_markdown(summaries, finished, problems=result.problems))
    return result
