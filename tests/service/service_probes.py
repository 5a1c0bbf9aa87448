"""Helpers for talking to a running service the way a client, a proxy or Prometheus does."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from service.launcher import RunningService


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
