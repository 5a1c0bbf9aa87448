"""The evidence record of one experiment: its name and what it attaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rollout.errors import ConfigError
from pytest_rollout.evidence import Evidence


@pytest.mark.parametrize("name", ["Bad", "under_score", "-lead", ""])
def test_an_unusable_experiment_name_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"experiment name {name!r}: lower-case letters"):
        Evidence(name, "local")


def test_attachments_are_written_into_the_experiment_directory(tmp_path: Path) -> None:
    evidence = Evidence("exp", "local")
    evidence.attach("notes.txt", lambda path: path.write_text("seen"))
    evidence.write(tmp_path)
    assert (tmp_path / "exp" / "notes.txt").read_text() == "seen"
