"""The request mix: which requests the generator sends, and in what proportion.

A route may ``capture`` fields of its JSON responses under names, and a route listed after it
may write ``{NAME}`` in its path: each request of that route is sent with a value drawn
uniformly from those captured so far (percent-encoded as one path segment). Until every name in
its path has a value, a templated route is out of the mix, as if its weight were 0: its turns go
to the other routes, so a request still leaves at every due time, and it joins the rotation at
its own weight from the first value on — with no burst to make up for the turns it missed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from pytest_rollout.errors import ConfigError
from pytest_rollout.load.version import FIELD_PATH

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CAPTURE_METHODS = ("PATCH", "POST", "PUT")
"""Methods whose responses may be captured from: the ones that create or change something."""
CAPTURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_PATH_TOKEN = re.compile(r"\{([^{}]*)\}|[{}]")


def path_names(path: str) -> tuple[str, ...]:
    """The captured names a path is templated with, in order of first use.

    Raises ``ValueError`` (with a one-line reason) on a stray brace or a malformed name.
    """
    names: dict[str, None] = {}
    for match in _PATH_TOKEN.finditer(path):
        name = match.group(1)
        if name is None:
            raise ValueError(
                f"unmatched {match.group(0)!r} in {path!r}; a captured value is written {{NAME}}"
            )
        if not CAPTURE_NAME.fullmatch(name):
            raise ValueError(
                f"{{{name}}} in {path!r}: a name is letters, digits and '_', not starting "
                "with a digit"
            )
        names.setdefault(name)
    return tuple(names)


def check_capture(method: str, capture: Mapping[str, str]) -> None:
    """Raise ``ValueError`` (a one-line reason) unless ``capture`` suits a ``method`` request."""
    if capture and method not in CAPTURE_METHODS:
        raise ValueError(
            f"a {method} creates nothing to capture; capture is allowed with "
            f"{', '.join(CAPTURE_METHODS)}"
        )
    for name, source in capture.items():
        if not CAPTURE_NAME.fullmatch(name):
            raise ValueError(
                f"capture name {name!r}: expected letters, digits and '_', "
                "not starting with a digit"
            )
        if not isinstance(source, str) or not FIELD_PATH.fullmatch(source):
            raise ValueError(
                f"capture {name!r}: expected a response field name, dotted for nested objects "
                f"(e.g. 'order.id'), got {source!r}"
            )


def fill_path(path: str, values: Mapping[str, str]) -> str:
    """``path`` with each ``{NAME}`` replaced by ``values[NAME]`` as one encoded path segment."""
    return _PATH_TOKEN.sub(lambda match: quote(values[match.group(1)], safe=""), path)


@dataclass(frozen=True)
class Route:
    """One kind of request in the mix.

    ``json_body`` (any JSON-serialisable value) is sent as ``application/json`` when set.
    ``weight`` is relative to the other routes of the mix. ``capture`` maps a name to a
    (dotted) field of the JSON answer; a 2xx answer's values are kept under those names for
    later routes' ``{NAME}`` paths (see the module docstring).
    """

    name: str
    method: str = "GET"
    path: str = "/"
    json_body: object = None
    weight: float = 1.0
    capture: Mapping[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    """The captured names the path is templated with."""

    def __post_init__(self) -> None:
        where = f"load mix route {self.name!r}"
        if not self.name:
            raise ConfigError("load mix route: name must not be empty")
        if self.method not in HTTP_METHODS:
            allowed = ", ".join(sorted(HTTP_METHODS))
            raise ConfigError(f"{where}: method {self.method!r} is not one of {allowed}")
        if not self.path.startswith("/"):
            raise ConfigError(f"{where}: path {self.path!r} must start with '/'")
        # A plain dict, so that a spec pickles into the generator's process.
        object.__setattr__(self, "capture", dict(self.capture))
        try:
            object.__setattr__(self, "names", path_names(self.path))
            check_capture(self.method, self.capture)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
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


def first_uncaptured(routes: Sequence[Route]) -> tuple[int, str] | None:
    """The first route (index) whose path uses a name no route before it captures, and the name."""
    captured: set[str] = set()
    for index, route in enumerate(routes):
        for name in route.names:
            if name not in captured:
                return index, name
        captured.update(route.capture)
    return None


def check_captures(routes: Sequence[Route]) -> None:
    """Refuse a mix in which a route's path uses a name no earlier route captures."""
    found = first_uncaptured(routes)
    if found is not None:
        index, name = found
        route = routes[index]
        known = sorted({n for r in routes[:index] for n in r.capture})
        raise ConfigError(
            f"load mix route {route.name!r}: {{{name}}} in {route.path!r} is not captured by "
            f"an earlier route (captured before it: {', '.join(known) or 'none'})"
        )


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
        self._credit = [0.0] * len(self._routes)

    def next_index(self, eligible: Sequence[bool] | None = None) -> int:
        """The next route; with ``eligible``, only among the routes marked ``True``.

        A route left out neither gains nor spends credit, so it rejoins at its own share.
        """
        credit = self._credit
        best = -1
        total = 0.0
        for index, weight in enumerate(self._weights):
            if eligible is not None and not eligible[index]:
                continue
            total += weight
            credit[index] += weight
            if best < 0 or credit[index] > credit[best]:
                best = index
        if best < 0:
            raise ConfigError("load mix: no route can be sent (every one waits for a capture)")
        credit[best] -= total
        return best

    def next(self) -> Route:
        return self._routes[self.next_index()]
