"""Whether a database's Alembic revisions satisfy the revision a release expects."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from service.schema import BASELINE_REVISION, check_schema, known_revisions, script_directory

CHAIN = (
    ("0001_base", None),
    ("0002_expand_notes", "0001_base"),
    ("0003_contract_legacy", "0002_expand_notes"),
)


@pytest.fixture
def chain(tmp_path: Path) -> ScriptDirectory:
    """A real Alembic script directory: base, then an expand, then a contract revision."""
    versions = tmp_path / "versions"
    versions.mkdir()
    for revision, down in CHAIN:
        (versions / f"{revision}.py").write_text(
            f"revision = {revision!r}\ndown_revision = {down!r}\n"
            "branch_labels = None\ndepends_on = None\n\n"
            "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
        )
    return ScriptDirectory(str(tmp_path))


@pytest.mark.parametrize(
    ("current", "ready"),
    [
        ({"0001_base"}, False),
        ({"0002_expand_notes"}, True),
        ({"0003_contract_legacy"}, True),
        ({"0004_written_by_newer_code"}, True),
    ],
)
def test_ready_at_or_past_the_expected_revision(
    chain: ScriptDirectory, current: set[str], ready: bool
) -> None:
    status = check_schema(chain, "0002_expand_notes", frozenset(current))
    assert status.ready is ready, status.detail
    assert status.current == tuple(current)
    assert "0002_expand_notes" in status.detail


def test_behind_names_both_revisions(chain: ScriptDirectory) -> None:
    status = check_schema(chain, "0003_contract_legacy", frozenset({"0001_base"}))
    assert not status.ready
    assert (
        status.detail
        == "database at 0001_base, code expects 0003_contract_legacy (not applied yet)"
    )


def test_revisions_match_exactly_not_by_prefix(chain: ScriptDirectory) -> None:
    # Alembic itself resolves unique prefixes: "0002" would pass for 0002_expand_notes.
    assert known_revisions(chain) == [revision for revision, _ in CHAIN]
    status = check_schema(chain, "0003_contract_legacy", frozenset({"0002"}))
    assert "not known to this code" in status.detail


def test_never_migrated_database_is_not_ready(chain: ScriptDirectory) -> None:
    unmigrated: tuple[frozenset[str] | None, ...] = (None, frozenset())
    for current in unmigrated:
        status = check_schema(chain, "0001_base", current)
        assert not status.ready
        assert "no Alembic revision" in status.detail


def test_the_service_migrations_start_with_the_baseline() -> None:
    script = script_directory()
    assert BASELINE_REVISION in known_revisions(script)
    assert script.get_base() == BASELINE_REVISION
