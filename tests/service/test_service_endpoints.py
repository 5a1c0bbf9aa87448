"""Every endpoint of the reference service, against the real process over HTTP."""

from __future__ import annotations

import httpx
import pytest

from service.launcher import RunningService, run_service
from tests.service.service_probes import order_rows, scrape

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


def test_index_answers_version_in_body_and_header(
    default_service: RunningService, http: httpx.Client
) -> None:
    response = http.get(f"{default_service.url}/")
    assert response.status_code == 200
    assert response.json() == {"version": "v-default"}
    assert response.headers["X-Version"] == "v-default"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/orders/424242", 404),
        ("GET", "/orders/not-a-number", 404),
        ("GET", "/no-such-route", 404),
        ("POST", "/checkout", 200),
        ("POST", "/", 405),
    ],
)
def test_every_response_carries_x_version(
    default_service: RunningService, http: httpx.Client, method: str, path: str, status: int
) -> None:
    response = http.request(method, f"{default_service.url}{path}")
    assert (response.status_code, response.headers.get("X-Version")) == (status, "v-default")


def test_healthz_and_readyz_when_booted_and_migrated(
    default_service: RunningService, http: httpx.Client
) -> None:
    health = http.get(f"{default_service.url}/healthz")
    assert health.json() == {"status": "ok", "version": "v-default"}
    ready = http.get(f"{default_service.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True
    assert ready.json()["schema"] == {
        "expected": "0001_create_orders",
        "current": ["0001_create_orders"],
    }


def test_checkout_writes_an_order_that_can_be_read_back(
    default_service: RunningService, http: httpx.Client
) -> None:
    before = len(order_rows(default_service.database_url))
    response = http.post(f"{default_service.url}/checkout", json={"item": "book", "quantity": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "v-default"
    order_id = body["order_id"]
    assert isinstance(order_id, int)
    assert (order_id, "v-default") in order_rows(default_service.database_url)
    assert len(order_rows(default_service.database_url)) == before + 1

    order = http.get(f"{default_service.url}/orders/{order_id}")
    assert order.status_code == 200
    assert order.json() | {"created_at": "-"} == {
        "order_id": order_id,
        "item": "book",
        "quantity": 3,
        "created_by_version": "v-default",
        "created_at": "-",
        "version": "v-default",
    }
    assert order.json()["created_at"].endswith("+00:00")


def test_checkout_without_body_orders_one_default_item(
    default_service: RunningService, http: httpx.Client
) -> None:
    order_id = http.post(f"{default_service.url}/checkout").json()["order_id"]
    order = http.get(f"{default_service.url}/orders/{order_id}").json()
    assert (order["item"], order["quantity"]) == ("widget", 1)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"quantity": 0}', b'{"quantity": true}', b'{"item": ""}'],
)
def test_checkout_rejects_a_malformed_order(
    default_service: RunningService, http: httpx.Client, body: bytes
) -> None:
    before = len(order_rows(default_service.database_url))
    response = http.post(f"{default_service.url}/checkout", content=body)
    assert response.status_code == 400
    assert "error" in response.json()
    assert len(order_rows(default_service.database_url)) == before


def test_missing_order_is_404(default_service: RunningService, http: httpx.Client) -> None:
    for order_id in ("987654", str(2**70)):
        response = http.get(f"{default_service.url}/orders/{order_id}")
        assert response.status_code == 404
        assert response.json()["error"] == f"order {order_id} not found"


def test_metrics_count_requests_durations_and_checkouts_with_contract_labels(
    http: httpx.Client,
) -> None:
    with run_service({"SERVICE_VERSION": "v-metrics"}) as service:
        for _ in range(3):
            http.get(f"{service.url}/")
        for _ in range(2):
            order_id = http.post(f"{service.url}/checkout").json()["order_id"]
        http.get(f"{service.url}/orders/{order_id}")
        http.get(f"{service.url}/orders/999999")
        http.get(f"{service.url}/no-such-route")
        response = http.get(f"{service.url}/metrics")
        metrics = scrape(service)

    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert metrics.types["http_requests"] == "counter"
    assert metrics.types["http_request_duration_seconds"] == "histogram"
    assert metrics.types["checkout_results"] == "counter"
    assert metrics.label_names("http_requests_total") == {
        frozenset({"version", "route", "method", "code"})
    }
    assert metrics.label_names("http_request_duration_seconds_count") == {
        frozenset({"version", "route"})
    }
    assert metrics.label_names("checkout_results_total") == {frozenset({"version", "outcome"})}

    def requests(route: str, method: str, code: str) -> float | None:
        return metrics.value(
            "http_requests_total", version="v-metrics", route=route, method=method, code=code
        )

    assert requests("/", "GET", "200") == 3
    assert requests("/checkout", "POST", "200") == 2
    assert requests("/orders/{id}", "GET", "200") == 1
    assert requests("/orders/{id}", "GET", "404") == 1
    assert requests("unmatched", "GET", "404") == 1
    duration = "http_request_duration_seconds"
    assert metrics.value(f"{duration}_count", version="v-metrics", route="/") == 3
    assert metrics.value(f"{duration}_bucket", version="v-metrics", route="/", le="+Inf") == 3
    assert metrics.value("checkout_results_total", version="v-metrics", outcome="success") == 2
    assert metrics.value("checkout_results_total", version="v-metrics", outcome="failure") == 0
