"""``python -m pytest_rollout.report DIR``: (re)build the HTML report of a report directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rollout.report",
        description="(Re)build DIR/index.html and each DIR/<experiment>/index.html and "
        "timeline.png from the evidence in DIR.",
    )
    parser.add_argument(
        "directory", type=Path, metavar="DIR", help="the --rollout-report directory"
    )
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        parser.error(f"{args.directory}: not a directory")

    from pytest_rollout.report.build import build_report

    result = build_report(args.directory)
    print(result.describe())
    for rendered in result.rendered:
        width, height = rendered.size
        print(
            f"  {rendered.page} ({rendered.verdict}; timeline {width}x{height} px, "
            f"{rendered.seconds:.2f}s)"
        )
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
