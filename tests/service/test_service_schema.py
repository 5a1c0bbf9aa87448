"""Whether a database's Alembic revisions satisfy the revision a release expects."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from service.config import SkuMode
from service.db import order_columns
from service.schema import (
    BASELINE_REVISION,
    BIG_BANG_REVISION,
    CONTRACT_REVISION,
    EXPAND_REVISION,
    all_revisions,
    check_schema,
    known_revisions,
    migration_action,
    release_script,
    schema_gaps,
    script_directory,
)

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


@pytest.mark.parametrize(
    ("current", "action"),
    [
        ((), "upgraded"),
        (("0001_base",), "upgraded"),
        (("0002_expand_notes",), "at-target"),
        (("0003_contract_legacy",), "beyond"),
        (("0004_written_by_newer_code",), "beyond"),
    ],
)
def test_what_migrate_does_for_a_release_at_the_expand(
    chain: ScriptDirectory, current: tuple[str, ...], action: str
) -> None:
    assert migration_action(chain, "0002_expand_notes", current) == action


def test_the_service_has_one_line_and_the_big_bang_off_it() -> None:
    main = script_directory()
    assert main.get_heads() == [CONTRACT_REVISION]
    assert [rev.revision for rev in main.walk_revisions()] == [
        CONTRACT_REVISION,
        EXPAND_REVISION,
        BASELINE_REVISION,
    ]
    assert BIG_BANG_REVISION not in known_revisions(main)
    big_bang = release_script(BIG_BANG_REVISION)
    assert big_bang.get_revision(BIG_BANG_REVISION).down_revision == BASELINE_REVISION
    assert release_script(None).get_heads() == [CONTRACT_REVISION]
    assert release_script(EXPAND_REVISION).get_heads() == [CONTRACT_REVISION]
    assert set(all_revisions()) == {
        BASELINE_REVISION,
        EXPAND_REVISION,
        CONTRACT_REVISION,
        BIG_BANG_REVISION,
    }


def _orders(*columns: sa.Column[object]) -> sa.engine.Engine:
    engine = sa.create_engine("sqlite://")
    sa.Table("orders", sa.MetaData(), *columns).metadata.create_all(engine)
    return engine


def _base_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("created_by_version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    ]


@pytest.mark.parametrize(
    ("item", "sku", "mode", "gaps"),
    [
        (False, True, SkuMode.OFF, ()),
        (False, None, SkuMode.OFF, ()),
        (None, True, SkuMode.OFF, ("no column orders.item",)),
        (
            None,
            False,
            SkuMode.OFF,
            (
                "no column orders.item",
                "orders.sku is NOT NULL without a default and this release does not write it",
            ),
        ),
        (True, True, SkuMode.DUAL, ()),
        (False, None, SkuMode.DUAL, ("no column orders.sku",)),
        (True, True, SkuMode.ONLY, ()),
        (
            False,
            True,
            SkuMode.ONLY,
            ("orders.item is NOT NULL without a default and this release does not write it",),
        ),
    ],
)
def test_schema_gaps_name_what_the_release_would_trip_over(
    item: bool | None, sku: bool | None, mode: SkuMode, gaps: tuple[str, ...]
) -> None:
    """``item``/``sku``: None for no such column, else whether it is nullable."""
    columns = _base_columns()
    for name, nullable in (("item", item), ("sku", sku)):
        if nullable is not None:
            columns.append(sa.Column(name, sa.String(100), nullable=nullable))
    engine = _orders(*columns)
    try:
        with engine.connect() as connection:
            assert schema_gaps(connection, order_columns(mode)) == gaps
    finally:
        engine.dispose()


def test_a_server_default_makes_an_unwritten_column_harmless() -> None:
    engine = _orders(
        *_base_columns(),
        sa.Column("item", sa.String(100), nullable=False, server_default="unknown"),
        sa.Column("sku", sa.String(100)),
    )
    try:
        with engine.connect() as connection:
            assert schema_gaps(connection, order_columns(SkuMode.ONLY)) == ()
            assert schema_gaps(connection, order_columns(SkuMode.OFF), table="missing") == (
                "no table missing",
            )
    finally:
        engine.dispose()
