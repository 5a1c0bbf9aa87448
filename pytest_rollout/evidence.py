"""The evidence report: per experiment a directory with summary.json, the event log, attachments.

Layout under ``--rollout-report DIR``::

    DIR/<experiment>/summary.json   {"experiment", "backend", "verdict", "headline", "kind",
                                     "metrics", "events", "finished", ...}
    DIR/<experiment>/summary.md     the same, as a Markdown table for humans
    DIR/<experiment>/events.log     the ordered event lines, when the experiment has any
    DIR/<experiment>/<file>         what the experiment attached: traffic logs (CSV) and others

``pytest_rollout.report`` renders the directory as HTML (``index.html``, ``timeline.png``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.errors import ConfigError
from pytest_rollout.report.session import utc_timestamp

VERDICTS = ("passed", "failed", "inconclusive", "error")

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass
class Evidence:
    """What one experiment measured; written to the report when the experiment ends."""

    experiment: str
    backend: str
    metrics: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    attachments: dict[str, Callable[[Path], object]] = field(default_factory=dict)
    """Files written into the experiment's directory at the end: filename -> writer(path)."""
    verdict: str | None = None
    message: str = ""
    headline: str = ""
    """One line for the report's index: the number that decided."""
    kind: str | None = None
    """The declarative kind the experiment ran, if any."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.experiment):
            raise ConfigError(
                f"experiment name {self.experiment!r}: lower-case letters, digits and '-' only"
            )

    def record(self, **metrics: Any) -> None:
        """Add or replace metrics (JSON-serialisable values)."""
        self.metrics.update(metrics)

    def attach(self, filename: str, writer: Callable[[Path], object]) -> None:
        """Have ``writer(path)`` write ``filename`` into the experiment's directory at the end."""
        self.attachments[filename] = writer

    def summary(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "backend": self.backend,
            "verdict": self.verdict,
            "message": self.message,
            "headline": self.headline,
            "kind": self.kind,
            "metrics": jsonable(self.metrics),
            "events": list(self.events),
        }

    def write(self, report_dir: Path) -> Path:
        """Write the experiment's directory; returns it."""
        out = report_dir / self.experiment
        out.mkdir(parents=True, exist_ok=True)
        summary = {**self.summary(), "finished": utc_timestamp(time.time())}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
        (out / "summary.md").write_text(render_markdown(summary))
        if self.events:
            (out / "events.log").write_text("\n".join(self.events) + "\n")
        for filename, writer in self.attachments.items():
            writer(out / filename)
        return out


def render_markdown(summary: Mapping[str, Any]) -> str:
    lines = [
        f"# {summary['experiment']} — {summary['verdict']}",
        "",
        f"backend: `{summary['backend']}`",
        "",
        *([str(summary["headline"]), ""] if summary.get("headline") else []),
        "| metric | value |",
        "|---|---|",
    ]
    for key, value in summary["metrics"].items():
        lines.append(f"| {key} | {_cell(value)} |")
    if summary.get("message"):
        lines += ["", "```", str(summary["message"]), "```"]
    if summary.get("events"):
        lines += ["", "## Events", "", "```", *summary["events"], "```"]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | Sequence) and not isinstance(value, str):
        return f"`{json.dumps(value)}`"
    return str(value)


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that JSON can hold: JSON has no NaN or Infinity, so a number that
    was not measured (NaN) or not finite is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value
