"""The move of an order's item from ``item`` to ``sku``, release by release, on real databases.

Each step runs the new release beside the one it replaces (its rollback target) on one
database, as a canary does, and checks that each reads what the other wrote with the same
content. The big-bang counter-example shows the old release failing as soon as the one-step
rename is applied. Every test runs on SQLite and on PostgreSQL (skipped where no server starts).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import pytest
import sqlalchemy as sa

from service.launcher import RunningService, run_service
from service.schema import (
    BASELINE_REVISION,
    BIG_BANG_REVISION,
    CONTRACT_REVISION,
    EXPAND_REVISION,
    current_revisions,
)
from tests.service.service_probes import checkout, read_order, release_env, scrape

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

# Each deploy of the change: the release it brings, and the revision it leaves the database at.
DEPLOYS = (
    (None, BASELINE_REVISION),  # v1, before the change
    ("expand", EXPAND_REVISION),
    ("sku-only", EXPAND_REVISION),
    ("contract", CONTRACT_REVISION),
)


@contextmanager
def release(variant: str | None, database_url: str) -> Iterator[RunningService]:
    """The release running on ``database_url``, which it first migrates (as its pods would)."""
    with run_service(release_env(variant), database_url=database_url) as service:
        yield service


def _columns(database_url: str, order_id: int) -> dict[str, object]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT * FROM orders WHERE id = :id"), {"id": order_id}
            ).one()
    finally:
        engine.dispose()
    return dict(row._mapping)


def test_every_release_shares_orders_with_its_rollback_target(
    database_url: str, http: httpx.Client
) -> None:
    written: dict[int, str] = {}  # order id -> item, over the whole history
    with ExitStack() as everything:
        running = everything.enter_context(ExitStack())
        previous = running.enter_context(release(None, database_url))
        written[checkout(http, previous, "before-the-change", 2)] = "before-the-change"
        for variant, revision in DEPLOYS[1:]:
            step = f"release {variant} beside {previous.env['SERVICE_VERSION']}"
            following = everything.enter_context(ExitStack())
            current = following.enter_context(release(variant, database_url))
            assert current_revisions(database_url) == (revision,), step
            for service in (previous, current):
                item = f"{variant}-written-by-{service.env['SERVICE_VERSION']}"
                written[checkout(http, service, item, 3)] = item
            # Both ways, every order so far, with the same content: after an abort the
            # rollback target serves all of them again.
            for order_id, item in written.items():
                seen = [read_order(http, service, order_id) for service in (previous, current)]
                assert seen[0] == seen[1], f"{step}: order {order_id} differs: {seen}"
                assert seen[0]["item"] == item, f"{step}: order {order_id}: {seen[0]}"
            running.close()  # promoted: the replaced release is scaled down
            running, previous = following, current


def test_the_expand_keeps_both_columns_filled_whoever_writes(
    database_url: str, http: httpx.Client
) -> None:
    with release(None, database_url) as v1:
        before = checkout(http, v1, "old-row")
        with release("expand", database_url) as v2:
            by_v1 = checkout(http, v1, "written-by-v1")
            by_v2 = checkout(http, v2, "written-by-v2")
    backfilled, triggered, dual = (_columns(database_url, i) for i in (before, by_v1, by_v2))
    assert (backfilled["item"], backfilled["sku"]) == ("old-row", "old-row")
    assert (triggered["item"], triggered["sku"]) == ("written-by-v1", "written-by-v1")
    assert (dual["item"], dual["sku"]) == ("written-by-v2", "written-by-v2")


def test_the_big_bang_rename_breaks_the_running_release_and_its_rollback(
    database_url: str, http: httpx.Client
) -> None:
    with release(None, database_url) as v1:
        old = checkout(http, v1, "widget")
        assert read_order(http, v1, old)["item"] == "widget"
        with release("big-bang", database_url) as v2:
            assert current_revisions(database_url) == (BIG_BANG_REVISION,)
            # The new release works, on every order ...
            assert read_order(http, v2, old)["item"] == "widget"
            new = checkout(http, v2, "gadget")
            # ... and the old one, still serving (and the target of any rollback), does not.
            failed_write = http.post(f"{v1.url}/checkout", json={"item": "x", "quantity": 1})
            failed_reads = [http.get(f"{v1.url}/orders/{i}") for i in (old, new)]
            index = http.get(f"{v1.url}/")
            ready = http.get(f"{v1.url}/readyz")
        metrics = scrape(v1)
    assert failed_write.status_code == 500, failed_write.text
    assert failed_write.json() == {"order_id": None, "version": "v1", "error": "database error"}
    assert [r.status_code for r in failed_reads] == [500, 500]
    assert failed_reads[0].headers["X-Version"] == "v1"
    # Nothing that does not touch the orders table notices: the pods stay in rotation.
    assert index.status_code == 200
    assert ready.status_code == 200, ready.text
    assert metrics.value("checkout_results_total", version="v1", outcome="failure") == 1


def test_the_first_release_must_be_gone_before_one_stops_writing_item(
    database_url: str, http: httpx.Client
) -> None:
    # Why the releases go one deploy at a time: v1 reads item alone, so the orders of a
    # release that no longer writes item come back to v1 without one.
    with release(None, database_url) as v1, release("sku-only", database_url) as v3:
        order_id = checkout(http, v3, "sku-only-order")
        assert read_order(http, v3, order_id)["item"] == "sku-only-order"
        assert read_order(http, v1, order_id)["item"] is None
