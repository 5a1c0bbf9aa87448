"""The request mix: which requests the generator sends, and in what proportion."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_rollout.errors import ConfigError

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class Route:
    """One kind of request in the mix.

    ``json_body`` (any JSON-serialisable value) is sent as ``application/json`` when set.
    ``weight`` is relative to the other routes of the mix.
    """

    name: str
    method: str = "GET"
    path: str = "/"
    json_body: object = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        where = f"load mix route {self.name!r}"
        if not self.name:
            raise ConfigError("load mix route: name must not be empty")
        if self.method not in HTTP_METHODS:
            allowed = ", ".join(sorted(HTTP_METHODS))
            raise ConfigError(f"{where}: method {self.method!r} is not one of {allowed}")
        if not self.path.startswith("/"):
            raise ConfigError(f"{where}: path {self.path!r} must start with '/'")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ConfigError(f"{where}: weight must be a positive number, got {self.weight!r}")
        try:
            self.encoded_body()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: json_body is not JSON-serialisable: {exc}") from exc

    def encoded_body(self) -> bytes | None:
        if self.json_body is None:
            return None
        return json.dumps(self.json_body, separators=(",", ":")).encode()


INDEX = Route("index", "GET", "/", weight=9)
CHECKOUT = Route("checkout", "POST", "/checkout", json_body={"item": "load-test", "quantity": 1})
DEFAULT_MIX: tuple[Route, ...] = (INDEX, CHECKOUT)
"""Nine reads of ``GET /`` to one ``POST /checkout``."""

_KNOWN = {(route.method, route.path): route for route in DEFAULT_MIX}


def parse_mix(text: str) -> tuple[Route, ...]:
    """Parse ``"GET /=9,POST /checkout=1"``: comma-separated ``METHOD PATH[=WEIGHT]``.

    ``GET /`` and ``POST /checkout`` keep the names and bodies of :data:`DEFAULT_MIX`; other
    routes are named ``"METHOD PATH"`` and sent without a body.
    """
    routes: list[Route] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise ConfigError(f"load mix {text!r}: empty item; expected METHOD PATH[=WEIGHT], ...")
        spec, weight = _split_weight(item, text)
        parts = spec.split()
        if len(parts) != 2:
            raise ConfigError(
                f"load mix item {item!r}: expected METHOD PATH[=WEIGHT], e.g. 'POST /checkout=1'"
            )
        method, path = parts[0].upper(), parts[1]
        known = _KNOWN.get((method, path))
        if known is not None:
            routes.append(Route(known.name, method, path, known.json_body, weight))
        else:
            routes.append(Route(f"{method} {path}", method, path, None, weight))
    return tuple(routes)


def _split_weight(item: str, text: str) -> tuple[str, float]:
    spec, sep, weight_text = item.rpartition("=")
    if not sep:
        return item, 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        raise ConfigError(
            f"load mix item {item!r} in {text!r}: weight {weight_text!r} is not a number"
        ) from None
    return spec.strip(), weight


class RouteCycle:
    """Picks routes in exact proportion to their weights, evenly interleaved.

    Smooth weighted round-robin: deterministic, so two runs with the same mix send the same
    sequence, and every prefix of it stays close to the exact proportions (no bursts of one
    route), which a random draw does not promise over a short window.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        if not routes:
            raise ConfigError("load mix: at least one route is needed")
        self._routes = tuple(routes)
        self._weights = [route.weight for route in self._routes]
        self._total = sum(self._weights)
        self._credit = [0.0] * len(self._routes)

    def next_index(self) -> int:
        credit = self._credit
        best = 0
        for index, weight in enumerate(self._weights):
            credit[index] += weight
            if credit[index] > credit[best]:
                best = index
        credit[best] -= self._total
        return best

    def next(self) -> Route:
        return self._routes[self.next_index()]
