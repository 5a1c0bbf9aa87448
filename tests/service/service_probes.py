"""Helpers for talking to a running service the way a client, a proxy or Prometheus does."""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.config_file import load_config
from service.launcher import REPO_ROOT, RunningService


def client(timeout: float = 10.0) -> httpx.Client:
    """An HTTP client that never goes through a proxy from the environment."""
    return httpx.Client(timeout=timeout, trust_env=False)


@dataclass(frozen=True)
class Scrape:
    """One /metrics exposition: metric families and their samples."""

    types: dict[str, str]
    samples: list[tuple[str, dict[str, str], float]]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the sample ``name`` whose labels include ``labels``; None if absent."""
        matches = [
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and labels.items() <= sample_labels.items()
        ]
        if len(matches) > 1:
            raise AssertionError(f"{name}{labels} matches {len(matches)} samples, expected one")
        return matches[0] if matches else None

    def label_names(self, name: str) -> set[frozenset[str]]:
        return {frozenset(labels) for sample, labels, _ in self.samples if sample == name}


def scrape(service: RunningService) -> Scrape:
    with client() as http:
        response = http.get(f"{service.url}/metrics")
    response.raise_for_status()
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        samples.extend((s.name, dict(s.labels), s.value) for s in family.samples)
    return Scrape(types, samples)


def raw_exchange(host: str, port: int, path: str, timeout: float = 5.0) -> bytes:
    """Send one HTTP/1.1 request on a fresh connection; return every byte received until the
    server closed (or reset) the connection."""
    received = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def order_rows(database_url: str) -> list[tuple[int, str]]:
    """(id, created_by_version) of every order in the database, read directly."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT id, created_by_version FROM orders ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    return [(int(row[0]), str(row[1])) for row in rows]


def release_env(variant: str | None) -> dict[str, str]:
    """The SERVICE_* variables of a release: a variant of the repository's rollout.toml, or
    the manifests' v1 (None)."""
    if variant is None:
        return {"SERVICE_VERSION": "v1"}
    return dict(load_config(REPO_ROOT / "rollout.toml").variant(variant).env)


def migrate_process(
    database_url: str, log_path: Path, env: Mapping[str, str] | None = None, *args: str
) -> ManagedProcess:
    """``python -m service migrate`` for the release in ``env``, not started yet."""
    return ManagedProcess(
        f"service migrate ({log_path.stem})",
        [sys.executable, "-m", "service", "migrate", *args],
        env={"PATH": "/usr/bin:/bin", **(env or {}), "SERVICE_DATABASE_URL": database_url},
        cwd=REPO_ROOT,
        log_path=log_path,
    )


def run_together(processes: Sequence[ManagedProcess], timeout: float = 60) -> list[int]:
    """Start every process, then wait for each; their exit statuses. All are stopped at the
    end, also when one of them hangs."""
    try:
        for process in processes:
            process.start()
        return [process.wait(timeout) for process in processes]
    finally:
        for process in processes:
            process.stop()


def run_migrate(
    tmp_path: Path, database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> tuple[int, list[str]]:
    """Run ``python -m service migrate`` to the end; its exit status and output lines."""
    log = tmp_path / f"migrate-{len(list(tmp_path.glob('migrate-*')))}.log"
    with migrate_process(database_url, log, env, *args) as process:
        returncode = process.wait(60)
    return returncode, log.read_text().splitlines()


def checkout(http: httpx.Client, service: RunningService, item: str, quantity: int = 1) -> int:
    """POST /checkout; the new order's id (the answer must be 200 with an id)."""
    response = http.post(f"{service.url}/checkout", json={"item": item, "quantity": quantity})
    assert response.status_code == 200, (service.env, response.status_code, response.text)
    order_id = response.json()["order_id"]
    assert isinstance(order_id, int), response.text
    return order_id


def read_order(http: httpx.Client, service: RunningService, order_id: int) -> dict[str, Any]:
    """GET /orders/{id} answered 200; the order without the serving version."""
    response = http.get(f"{service.url}/orders/{order_id}")
    assert response.status_code == 200, (service.env, order_id, response.text)
    body = dict(response.json())
    assert body.pop("version") == service.env.get("SERVICE_VERSION", "v1")
    return body
