"""Alembic migrations of the service's database, and whether a database satisfies this code.

Revisions live in ``service/migrations/versions``. A release states the revision it needs
(``SERVICE_SCHEMA_REVISION``, by default :data:`BASELINE_REVISION`). Two checks build on it:

- readiness (:func:`check_schema`): the database satisfies the release when one of its applied
  revisions *is* that revision or descends from it, or is one this code does not know (written
  by a newer release). So an *expand* revision applied ahead of a release keeps the previous
  release ready, which is what a rollback across a schema change relies on;
- migration (:func:`prepare_for_release`, behind ``python -m service migrate``): bring the
  database up to the release's revision when it is behind, leave it alone when it is already
  at or beyond it -- and in every case check, column by column, that the schema the database
  really has still serves this release's code. A rollback onto an expanded database passes;
  onto a database whose old column was renamed or dropped, it fails loudly.

The big-bang counter-example (a rename of ``orders.item`` in one step) lives on a line of its
own, in ``versions/big_bang``: only a release that asks for its revision loads it, so ``head``
stays the one head of the expand/contract line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, make_url

from service.config import ServiceConfig
from service.db import applied_revisions, make_engine, order_columns
from service.migration_lock import migration_lock

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
BIG_BANG_VERSIONS_DIR = VERSIONS_DIR / "big_bang"

# The first revision: the orders table. Later revisions are named NNNN_expand_* / NNNN_contract_*.
BASELINE_REVISION = "0001_create_orders"
EXPAND_REVISION = "0002_expand_order_sku"
CONTRACT_REVISION = "0003_contract_order_item"
BIG_BANG_REVISION = "0002_bigbang_item_to_sku"

# Set when the caller already holds the migration lock on the connection it passes to Alembic.
LOCK_HELD_ATTRIBUTE = "migration_lock_held"

Action = Literal["upgraded", "at-target", "beyond"]


@dataclass(frozen=True)
class SchemaStatus:
    ready: bool
    expected: str
    current: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class MigrationOutcome:
    """What ``migrate`` did for a release: the revisions before and after, and why."""

    target: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    action: Action
    detail: str


class SchemaMismatch(RuntimeError):
    """The database's schema lacks something the release's code uses (one-line message)."""


def alembic_config(database_url: str | None = None, *, big_bang: bool = False) -> Config:
    """An Alembic config for our migrations directory (no alembic.ini needed).

    ``big_bang`` adds the counter-example line (see the module docstring).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    locations = [VERSIONS_DIR, *([BIG_BANG_VERSIONS_DIR] if big_bang else [])]
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in locations))
    if database_url is not None:
        # Kept out of the ini options: configparser would treat '%' in a password as syntax.
        config.attributes["database_url"] = database_url
    return config


def script_directory(*, big_bang: bool = False) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(big_bang=big_bang))


def release_script(revision: str | None) -> ScriptDirectory:
    """The revisions a release needing ``revision`` ships with: the expand/contract line, plus
    the big-bang line when ``revision`` is on it."""
    return script_directory(big_bang=revision is not None and _on_big_bang_line(revision))


def known_revisions(script: ScriptDirectory) -> list[str]:
    """Exact revision ids (Alembic's own lookup would also accept unique prefixes)."""
    return sorted(rev.revision for rev in script.walk_revisions())


def all_revisions() -> list[str]:
    """Every revision any release may name in SERVICE_SCHEMA_REVISION."""
    return known_revisions(script_directory(big_bang=True))


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (serialised between processes by the migration
    lock), without the release checks of :func:`prepare_for_release`."""
    config = alembic_config(database_url, big_bang=_on_big_bang_line(revision))
    engine = make_engine(database_url, immediate_transactions=True)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def release_revision(config: ServiceConfig) -> str:
    """The revision a release needs: SERVICE_SCHEMA_REVISION, else the baseline."""
    return config.schema_revision or BASELINE_REVISION


def prepare_release_database(
    config: ServiceConfig, *, revision: str | None = None
) -> MigrationOutcome:
    """:func:`prepare_for_release` for the release ``config`` describes (what ``python -m
    service migrate`` does); ``revision`` overrides the release's own."""
    return prepare_for_release(
        config.database_url,
        revision or release_revision(config),
        order_columns(config.order_sku),
    )


def prepare_for_release(database_url: str, target: str, columns: Sequence[str]) -> MigrationOutcome:
    """Make the database serve a release that needs revision ``target`` and uses ``columns``
    of ``orders``; raise SchemaMismatch (one line) when the schema does not serve it, and
    Alembic's CommandError for a revision that does not exist.

    Under the migration lock: a database behind ``target`` (or empty) is upgraded to it; one
    at or beyond it -- a rollback, or a release older than the last migration -- is left as
    it is. Then the columns are checked against the live schema, whatever the revisions say.
    """
    big_bang = _on_big_bang_line(target)
    script = script_directory(big_bang=big_bang)
    if target not in known_revisions(script):
        raise CommandError(f"no revision {target!r}; revisions: {', '.join(all_revisions())}")
    config = alembic_config(database_url, big_bang=big_bang)
    engine = make_engine(database_url, immediate_transactions=True)
    try:
        with engine.connect() as connection, migration_lock(connection):
            before = _sorted(applied_revisions(connection))
            connection.rollback()  # Alembic must start outside a transaction
            action = migration_action(script, target, before)
            if action == "upgraded":
                config.attributes["connection"] = connection
                config.attributes[LOCK_HELD_ATTRIBUTE] = True
                command.upgrade(config, target)
            gaps = schema_gaps(connection, columns)
            after = _sorted(applied_revisions(connection))
            connection.rollback()
    finally:
        engine.dispose()
    shown = ", ".join(after) or "no revision"
    if action == "upgraded":
        detail = f"database migrated from {', '.join(before) or 'nothing'} to {shown}"
    elif action == "at-target":
        detail = f"database already at {shown}"
    else:
        detail = f"database at {shown}, beyond the {target} this release needs, left as it is"
    if gaps:
        raise SchemaMismatch(f"{detail}; its schema does not serve this release: {'; '.join(gaps)}")
    return MigrationOutcome(target, before, after, action, detail)


def migration_action(script: ScriptDirectory, target: str, current: Sequence[str]) -> Action:
    """``upgraded`` when every applied revision is ``target``'s ancestor (or none is applied),
    ``at-target`` when ``target`` is applied, else ``beyond``: the database has a revision this
    release does not ship (a newer release's, or another line's), so it must not migrate it."""
    if target in current:
        return "at-target"
    own = {rev.revision for rev in script.iterate_revisions(target, "base")}
    return "upgraded" if all(rev in own for rev in current) else "beyond"


def schema_gaps(
    connection: Connection, columns: Sequence[str], table: str = "orders"
) -> tuple[str, ...]:
    """What the live ``table`` lacks for code that reads and writes exactly ``columns``:
    columns missing, and NOT NULL columns without a default that the code would not write."""
    inspector = sa.inspect(connection)
    if not inspector.has_table(table):
        return (f"no table {table}",)
    present = {column["name"]: column for column in inspector.get_columns(table)}
    gaps = [f"no column {table}.{name}" for name in columns if name not in present]
    for name, column in present.items():
        if name in columns or column["nullable"] or column.get("default") is not None:
            continue
        gaps.append(
            f"{table}.{name} is NOT NULL without a default and this release does not write it"
        )
    return tuple(gaps)


def current_revisions(database_url: str) -> tuple[str, ...]:
    """The Alembic revisions the database at ``database_url`` is at, sorted; empty when it was
    never migrated (an SQLite file that does not exist yet is not created)."""
    url = make_url(database_url)
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not Path(file).exists():
        return ()
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return _sorted(applied_revisions(connection))
    finally:
        engine.dispose()


def check_schema(
    script: ScriptDirectory, expected: str, current: frozenset[str] | None
) -> SchemaStatus:
    """Whether a database at ``current`` revisions satisfies code that expects ``expected``."""
    applied = tuple(sorted(current or ()))
    if not applied:
        return SchemaStatus(
            False,
            expected,
            applied,
            f"database has no Alembic revision; expected {expected} "
            f"(run `python -m service migrate`)",
        )
    known = set(known_revisions(script))
    unknown = [rev for rev in applied if rev not in known]
    if unknown:
        # Written by newer code than ours (a rollback after a migration): newer is "past" us.
        return SchemaStatus(
            True,
            expected,
            applied,
            f"database at {', '.join(applied)} (not known to this code, taken as newer "
            f"than the expected {expected})",
        )
    for revision in applied:
        ancestors = {rev.revision for rev in script.iterate_revisions(revision, "base")}
        if expected in ancestors:
            return SchemaStatus(
                True, expected, applied, f"database at {', '.join(applied)} includes {expected}"
            )
    return SchemaStatus(
        False,
        expected,
        applied,
        f"database at {', '.join(applied)}, code expects {expected} (not applied yet)",
    )


def _on_big_bang_line(revision: str) -> bool:
    return revision not in ("head", "heads", "base") and revision not in known_revisions(
        script_directory()
    )


def _sorted(revisions: frozenset[str] | None) -> tuple[str, ...]:
    return tuple(sorted(revisions or ()))
