"""Each release variant knob of the reference service, observed on the real process."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from pytest_rollout._proc import free_port
from pytest_rollout._wait import wait_for
from service.launcher import RunningService, run_service
from service.schema import upgrade
from tests.service.service_probes import order_rows, raw_exchange, scrape

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


def test_booting_service_accepts_connections_and_drops_them_then_serves(
    http: httpx.Client,
) -> None:
    boot_seconds = 3.0
    with run_service({"SERVICE_BOOT_SECONDS": str(boot_seconds)}) as service:
        for path in ("/healthz", "/readyz", "/"):
            # started_at precedes the bind, so this bounds the boot time already spent.
            elapsed = time.monotonic() - service.started_at
            assert elapsed < boot_seconds, f"boot period over before probing ({elapsed:.2f}s)"
            received = raw_exchange(service.host, service.port, path)
            assert received == b"", f"GET {path} during boot answered {received[:80]!r}"

        def healthy() -> bool:
            try:
                return http.get(f"{service.url}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, what="GET /healthz to answer 200 after boot", timeout=15)
        first_success = time.monotonic() - service.started_at
        assert first_success >= boot_seconds, (
            f"served after {first_success:.2f}s, before the {boot_seconds}s boot period ended"
        )
        assert http.get(f"{service.url}/readyz").status_code == 200
        assert http.get(f"{service.url}/").json() == {"version": "v1"}


def test_error_rate_fails_that_share_of_index_and_checkout(http: httpx.Client) -> None:
    rate, gets, posts = 0.25, 400, 200
    env = {"SERVICE_ERROR_RATE": str(rate), "SERVICE_SEED": "7", "SERVICE_VERSION": "v-err"}
    with run_service(env) as service:
        index = [http.get(f"{service.url}/").status_code for _ in range(gets)]
        checkout = [http.post(f"{service.url}/checkout") for _ in range(posts)]
        healthz = [http.get(f"{service.url}/healthz").status_code for _ in range(50)]
        rows = order_rows(service.database_url)
        metrics = scrape(service)

    assert set(index) <= {200, 500}
    assert set(healthz) == {200}
    # Binomial bounds at 4.5 standard deviations: fails by chance about once in 150,000 runs.
    for name, codes in (("GET /", index), ("POST /checkout", [r.status_code for r in checkout])):
        n, failed = len(codes), codes.count(500)
        margin = 4.5 * (n * rate * (1 - rate)) ** 0.5
        assert abs(failed - n * rate) <= margin, (
            f"{name}: {failed} of {n} answered 500, expected {n * rate:.0f} +- {margin:.0f}"
        )
    succeeded = [r.json()["order_id"] for r in checkout if r.status_code == 200]
    assert [order_id for order_id, _ in rows] == succeeded
    failed_checkouts = posts - len(succeeded)
    assert metrics.value("checkout_results_total", outcome="failure") == failed_checkouts
    assert metrics.value("checkout_results_total", outcome="success") == len(succeeded)
    index_500 = metrics.value("http_requests_total", route="/", method="GET", code="500")
    assert index_500 == index.count(500)


def test_added_latency_slows_app_routes_but_not_probes(
    default_service: RunningService, http: httpx.Client
) -> None:
    latency_s = 0.25

    def timings(service: RunningService, path: str, n: int = 5) -> list[float]:
        seen = []
        for _ in range(n):
            started = time.perf_counter()
            assert http.get(f"{service.url}{path}").status_code in (200, 404)
            seen.append(time.perf_counter() - started)
        return seen

    baseline = statistics.median(timings(default_service, "/"))
    with run_service({"SERVICE_LATENCY_MS": str(latency_s * 1000)}) as slow:
        index = timings(slow, "/")
        orders = timings(slow, "/orders/1", n=2)
        healthz = statistics.median(timings(slow, "/healthz"))

    assert min(index) >= latency_s, f"GET / took {min(index):.3f}s, latency is {latency_s}s"
    assert min(orders) >= latency_s
    added = statistics.median(index) - baseline
    assert latency_s <= added < latency_s + 0.5, (
        f"median GET / {statistics.median(index):.3f}s vs baseline {baseline:.3f}s: "
        f"added {added:.3f}s, expected {latency_s}s"
    )
    assert healthz < latency_s, f"/healthz took {healthz:.3f}s; probes must not be slowed"


def test_broken_checkout_answers_200_but_writes_nothing(http: httpx.Client) -> None:
    env = {"SERVICE_CHECKOUT_BROKEN": "true", "SERVICE_VERSION": "v-broken"}
    with run_service(env) as service:
        responses = [http.post(f"{service.url}/checkout") for _ in range(3)]
        rows = order_rows(service.database_url)
        metrics = scrape(service)

    assert [r.status_code for r in responses] == [200, 200, 200]
    for response in responses:
        body = response.json()
        assert body["order_id"] is None
        assert body["version"] == "v-broken"
        assert "checkout failed" in body["error"]
    assert rows == []
    assert metrics.value("checkout_results_total", version="v-broken", outcome="failure") == 3
    assert metrics.value("checkout_results_total", version="v-broken", outcome="success") == 0
    assert metrics.value("http_requests_total", route="/checkout", method="POST", code="200") == 3


def test_readyz_is_503_until_the_expected_revision_is_applied(http: httpx.Client) -> None:
    env = {"SERVICE_SCHEMA_REVISION": "0001_create_orders"}
    with run_service(env, migrate_to=None) as service:
        response = http.get(f"{service.url}/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["ready"] is False
        assert body["schema"] == {"expected": "0001_create_orders", "current": []}
        assert "expected 0001_create_orders" in body["reason"]
        assert http.get(f"{service.url}/healthz").status_code == 200

        upgrade(service.database_url, "0001_create_orders")
        wait_for(
            lambda: http.get(f"{service.url}/readyz").status_code == 200,
            what="/readyz to turn 200 once the migration is applied",
            timeout=10,
        )


def test_readyz_is_503_naming_the_reason_when_the_database_is_unreachable(
    http: httpx.Client,
) -> None:
    # A PostgreSQL URL on a closed loopback port: the real psycopg path, failing to connect.
    url = f"postgresql+psycopg://orders:secret@127.0.0.1:{free_port()}/orders"
    with run_service(database_url=url, migrate_to=None) as service:
        assert http.get(f"{service.url}/healthz").status_code == 200
        response = http.get(f"{service.url}/readyz")
        checkout = http.post(f"{service.url}/checkout")
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database unreachable: OperationalError")
    assert "secret" not in response.text
    assert checkout.status_code == 500
    assert checkout.json()["order_id"] is None
