"""``python -m pytest_rollout.load URL --rate R --duration S [--json]``."""

from __future__ import annotations

import sys

from pytest_rollout.load.cli import main

if __name__ == "__main__":
    sys.exit(main())
