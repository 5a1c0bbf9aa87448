"""Alembic migrations of the service's database, and whether a database satisfies this code.

Revisions live in ``service/migrations/versions``. The code states the revision it needs
(``SERVICE_SCHEMA_REVISION``, by default :data:`BASELINE_REVISION`); a database satisfies it
when one of its applied revisions *is* that revision or descends from it. So an *expand*
revision applied ahead of a release keeps the previous release ready, which is what a rollback
across a schema change relies on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# The first revision: the orders table. Later revisions are named NNNN_expand_* / NNNN_contract_*.
BASELINE_REVISION = "0001_create_orders"


@dataclass(frozen=True)
class SchemaStatus:
    ready: bool
    expected: str
    current: tuple[str, ...]
    detail: str


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config for our migrations directory (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url is not None:
        # Kept out of the ini options: configparser would treat '%' in a password as syntax.
        config.attributes["database_url"] = database_url
    return config


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def known_revisions(script: ScriptDirectory) -> list[str]:
    """Exact revision ids (Alembic's own lookup would also accept unique prefixes)."""
    return sorted(rev.revision for rev in script.walk_revisions())


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``, in one transaction (serialised between processes)."""
    config = alembic_config(database_url)
    engine = make_engine(database_url, immediate_transactions=True)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
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
