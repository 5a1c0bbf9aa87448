"""``python -m service migrate`` on real databases: the revision a release migrates to, what it
does with a database that is already newer, the migration lock, and the batched backfill."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from pytest_rollout._wait import wait_for
from service.config import SkuMode, load_config
from service.db import OrderStore, make_engine
from service.launcher import run_service
from service.migration_lock import migration_lock
from service.migration_steps import BackfillError, copy_in_batches
from service.schema import (
    BASELINE_REVISION,
    BIG_BANG_REVISION,
    CONTRACT_REVISION,
    EXPAND_REVISION,
    alembic_config,
    current_revisions,
    prepare_release_database,
    upgrade,
)
from tests.service.postgres_server import PostgresServer
from tests.service.service_probes import (
    client,
    migrate_process,
    release_env,
    run_migrate,
    run_together,
)

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

V1 = release_env(None)


def _prepared(database_url: str, variant: str | None) -> None:
    """The database as the release ``variant`` leaves it."""
    env = {**release_env(variant), "SERVICE_DATABASE_URL": database_url}
    prepare_release_database(load_config(env))


def _seed(database_url: str, rows: int) -> None:
    """``rows`` orders as v1 writes them (one multi-row insert: fast, and no service needed)."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO orders (item, quantity, created_by_version, created_at) "
                    "VALUES (:item, 1, 'v1', CURRENT_TIMESTAMP)"
                ),
                [{"item": f"seeded-{i}"} for i in range(rows)],
            )
    finally:
        engine.dispose()


def _expanded_with_rows(database_url: str, rows: int, *statements: str) -> None:
    """A database at the expand revision with ``rows`` orders, then ``statements`` applied."""
    upgrade(database_url, EXPAND_REVISION)
    _seed(database_url, rows)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _scalar(database_url: str, query: str) -> object:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


# --- which revision, and what about a newer database -----------------------------------------


@pytest.mark.parametrize(
    ("variant", "revision"),
    [
        (None, BASELINE_REVISION),
        ("expand", EXPAND_REVISION),
        ("contract", CONTRACT_REVISION),
        ("big-bang", BIG_BANG_REVISION),
    ],
)
def test_migrate_brings_an_empty_database_to_the_release_revision(
    tmp_path: Path, variant: str | None, revision: str
) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    returncode, output = run_migrate(tmp_path, url, env=release_env(variant))
    assert returncode == 0, output
    assert current_revisions(url) == (revision,)
    assert output[-1].endswith(f"database migrated from nothing to {revision}"), output


def test_head_is_the_contract_and_the_big_bang_is_off_the_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url)
    assert current_revisions(url) == (CONTRACT_REVISION,)


def test_a_rollback_target_accepts_the_expanded_database_and_leaves_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    _prepared(url, "expand")
    returncode, output = run_migrate(tmp_path, url, env=V1)
    assert returncode == 0, output
    assert current_revisions(url) == (EXPAND_REVISION,)
    assert output[-1].endswith(
        f"database at {EXPAND_REVISION}, beyond the {BASELINE_REVISION} this release needs, "
        "left as it is"
    ), output


@pytest.mark.parametrize(
    ("database_release", "release", "gap"),
    [
        ("big-bang", None, "no column orders.item"),
        ("big-bang", "expand", "no column orders.item"),
        ("contract", "expand", "no column orders.item"),
        ("contract", None, "orders.sku is NOT NULL without a default"),
    ],
)
def test_a_release_refuses_a_newer_database_that_lost_what_it_uses(
    tmp_path: Path, database_release: str, release: str | None, gap: str
) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    _prepared(url, database_release)
    before = current_revisions(url)
    returncode, output = run_migrate(tmp_path, url, env=release_env(release))
    assert returncode == 1, output
    assert len(output) == 1, output
    assert output[0].startswith(f"service: sqlite:///{tmp_path}"), output
    assert "its schema does not serve this release" in output[0]
    assert gap in output[0], output
    assert current_revisions(url) == before


def test_a_revision_this_code_does_not_know_is_judged_by_the_schema(tmp_path: Path) -> None:
    # What a real rollback meets: the old image has no file for the newer revision at all.
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url, BASELINE_REVISION)
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE orders ADD COLUMN note VARCHAR(20)")
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0009_from_later'")
    accepted = run_migrate(tmp_path, url, env=V1)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE orders RENAME COLUMN item TO name")
    engine.dispose()
    refused = run_migrate(tmp_path, url, env=V1)
    assert accepted[0] == 0, accepted[1]
    assert "database at 0009_from_later, beyond the 0001_create_orders" in accepted[1][-1]
    assert refused[0] == 1, refused[1]
    assert "no column orders.item" in refused[1][-1]


def test_a_release_whose_code_outruns_its_revision_fails_at_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    returncode, output = run_migrate(tmp_path, url, env={"SERVICE_ORDER_SKU": "dual"})
    assert returncode == 1, output
    assert "database migrated from nothing to 0001_create_orders" in output[-1]
    assert output[-1].endswith("no column orders.sku"), output


# --- the migration lock ---------------------------------------------------------------------


def test_migrations_started_together_take_turns_while_v1_serves(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url, BASELINE_REVISION)
    _seed(url, 3_000)
    logs = [tmp_path / f"pod-{i}.log" for i in range(4)]
    processes = [migrate_process(url, log, release_env("expand")) for log in logs]
    with run_service(V1, database_url=url) as v1, ThreadPoolExecutor(1) as pool:

        def checkouts_until_migrated() -> list[int]:
            statuses: list[int] = []
            with client() as http:
                while any(p.running() for p in processes) or not statuses:
                    response = http.post(f"{v1.url}/checkout", json={"item": "during"})
                    statuses.append(response.status_code)
            return statuses

        try:
            for process in processes:
                process.start()
            during = pool.submit(checkouts_until_migrated)
            codes = [process.wait(60) for process in processes]
            statuses = during.result(timeout=60)
        finally:
            for process in processes:
                process.stop()
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0, 0, 0], outputs
    migrated = [
        o for o in outputs if f"migrated from {BASELINE_REVISION} to {EXPAND_REVISION}" in o
    ]
    assert len(migrated) == 1, outputs
    assert sum(f"already at {EXPAND_REVISION}" in o for o in outputs) == 3, outputs
    assert set(statuses) == {200}, f"{len(statuses)} checkouts during the migration: {statuses}"
    assert _scalar(url, "SELECT count(*) FROM orders WHERE sku IS NULL OR sku != item") == 0


def test_migrate_waits_for_the_lock_another_process_holds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url, BASELINE_REVISION)
    log = tmp_path / "waiting.log"
    process = migrate_process(url, log, release_env("expand"))
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            with migration_lock(connection):
                process.start()
                wait_for(
                    lambda: "waiting for another migration" in log.read_text(),
                    what="the migrate process to report that it waits for the lock",
                    timeout=30,
                )
                assert process.running()
                assert current_revisions(url) == (BASELINE_REVISION,)
            returncode = process.wait(60)
    finally:
        process.stop()
        engine.dispose()
    assert returncode == 0, log.read_text()
    assert current_revisions(url) == (EXPAND_REVISION,)


def test_first_migrations_of_an_empty_postgres_database_take_turns(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    pods = 4
    url = postgres.create_database("first_deploy")
    logs = [tmp_path / f"pod-{i}.log" for i in range(pods)]
    codes = run_together([migrate_process(url, log, release_env("expand")) for log in logs])
    outputs = [log.read_text() for log in logs]
    assert codes == [0] * pods, outputs
    assert sum(f"migrated from nothing to {EXPAND_REVISION}" in o for o in outputs) == 1, outputs
    assert sum(f"already at {EXPAND_REVISION}" in o for o in outputs) == pods - 1, outputs


def test_migrate_waits_for_the_postgres_advisory_lock(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database("locked")
    log = tmp_path / "waiting.log"
    process = migrate_process(url, log, release_env("expand"))
    holder = make_engine(url)
    observer = make_engine(url)

    def waiting_for_advisory_lock() -> bool:
        with observer.connect() as connection:
            waiting = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            return bool(waiting.scalar_one())

    try:
        with holder.connect() as connection:
            with migration_lock(connection):
                process.start()
                wait_for(
                    waiting_for_advisory_lock,
                    what="the migrate process to wait on the advisory lock in pg_locks",
                    timeout=30,
                )
                assert process.running()
                assert current_revisions(url) == ()
            returncode = process.wait(60)
    finally:
        process.stop()
        holder.dispose()
        observer.dispose()
    assert returncode == 0, log.read_text()
    assert current_revisions(url) == (EXPAND_REVISION,)


# --- the backfill ---------------------------------------------------------------------------


def test_the_backfill_commits_every_batch_so_writers_get_in_between(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    url = f"sqlite:///{path}"
    _expanded_with_rows(url, 2_500, "UPDATE orders SET sku = NULL")
    engine = make_engine(url)
    # A writer that gives up at once when any transaction holds the write lock.
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)
    progress: list[tuple[int, int]] = []

    def write_between_batches(last_id: int, max_id: int) -> None:
        writer.execute(
            "INSERT INTO orders (item, quantity, created_by_version, created_at) "
            "VALUES ('between', 1, 'v1', CURRENT_TIMESTAMP)"
        )
        progress.append((last_id, max_id))

    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            copied = copy_in_batches(
                connection,
                source="item",
                target="sku",
                batch_rows=1_000,
                progress=write_between_batches,
            )
    finally:
        writer.close()
        engine.dispose()
    assert progress == [(1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]
    assert copied == 2_500
    # The rows written between batches got sku from the expand's trigger, not the backfill.
    assert _scalar(url, "SELECT count(*) FROM orders WHERE sku IS NULL OR sku != item") == 0
    assert _scalar(url, "SELECT count(*) FROM orders") == 2_503


def test_the_backfill_refuses_to_run_as_one_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url, EXPAND_REVISION)
    engine = make_engine(url)
    try:
        with engine.connect() as connection, pytest.raises(BackfillError, match="AUTOCOMMIT"):
            copy_in_batches(connection, source="item", target="sku")
    finally:
        engine.dispose()


def test_an_expand_interrupted_during_its_backfill_resumes(tmp_path: Path) -> None:
    # The DDL committed, the backfill stopped half-way, the revision was never stamped.
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    _expanded_with_rows(
        url,
        1_500,
        "UPDATE orders SET sku = NULL WHERE id > 700",
        f"UPDATE alembic_version SET version_num = '{BASELINE_REVISION}'",
    )
    _prepared(url, "expand")
    assert current_revisions(url) == (EXPAND_REVISION,)
    assert _scalar(url, "SELECT count(*) FROM orders WHERE sku IS NULL") == 0


def test_the_contract_and_the_expand_downgrade_back_to_the_item_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade(url, EXPAND_REVISION)
    store = OrderStore(make_engine(url), SkuMode.ONLY)
    try:
        written = store.create_order(item="sku-only", quantity=4, version="v3")
        upgrade(url, CONTRACT_REVISION)
        command.downgrade(alembic_config(url), BASELINE_REVISION)
        legacy = OrderStore(make_engine(url), SkuMode.OFF)
        order = legacy.get_order(written)
        legacy.close()
    finally:
        store.close()
    assert current_revisions(url) == (BASELINE_REVISION,)
    assert order is not None
    assert (order.item, order.quantity) == ("sku-only", 4)


# --- the schema revision, read from outside -------------------------------------------------


def test_current_revisions_of_a_database_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    assert current_revisions(f"sqlite:///{path}") == ()
    assert not path.exists(), "reading the revision must not create the database"
    _prepared(f"sqlite:///{path}", "big-bang")
    assert current_revisions(f"sqlite:///{path}") == (BIG_BANG_REVISION,)
