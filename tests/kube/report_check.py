"""Fail when an evidence report holds no experiment, or any that did not pass.

``python -m tests.kube.report_check DIR``: CI runs it after the experiments, so a verdict of
failed, error or inconclusive (or an empty report) fails the job even when pytest's exit code
was lost. Skipped experiments are listed with their reason and do not fail it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ACCEPTED = ("passed", "skipped")


def check(report: Path) -> list[str]:
    """The problems with ``report``; empty when every experiment passed or was skipped."""
    summaries = sorted(report.glob("*/summary.json"))
    if not summaries:
        return [f"{report}: no experiment wrote a summary.json"]
    problems: list[str] = []
    for path in summaries:
        try:
            summary = json.loads(path.read_text())
            verdict = str(summary["verdict"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{path}: unreadable summary ({exc})")
            continue
        name = summary.get("experiment", path.parent.name)
        line = f"{name} [{summary.get('backend', '?')}]: {verdict}"
        message = summary.get("message")
        print(f"{line} — {message}" if message else line)
        if verdict not in ACCEPTED:
            problems.append(f"{name}: {verdict}: {message or 'no message'}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.kube.report_check REPORT_DIR", file=sys.stderr)
        return 2
    problems = check(Path(argv[0]))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
