"""Durations written the way Go's ``time.ParseDuration`` reads them (``30s``, ``1m30s``, ``1.5h``).

Argo Rollouts parses ``interval`` and ``initialDelay`` with ``DurationString.Duration()``, which
is ``time.ParseDuration`` (argoproj/argo-rollouts ``pkg/apis/rollouts/v1alpha1/analysis_types.go``);
the error texts below are Go's own (``src/time/format.go``).
"""

from __future__ import annotations

from fractions import Fraction

from pytest_rollout.engine.expr.builtins import go_quote

_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NANOS = 2**63 - 1


class DurationError(ValueError):
    """The text is not a Go duration; the message is Go's."""


def parse_go_duration(text: str) -> float:
    """Seconds in ``text``; DurationError with Go's message when it is not a duration."""
    return parse_go_duration_nanos(text) / 1e9


def parse_go_duration_nanos(text: str) -> int:
    """Nanoseconds in ``text``, exactly as ``time.ParseDuration`` computes them."""
    invalid = DurationError(f"time: invalid duration {go_quote(text)}")
    rest = text
    negative = False
    if rest and rest[0] in "+-":
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = Fraction(0)
    while rest:
        whole, rest = _take_digits(rest)
        fraction = ""
        if rest.startswith("."):
            fraction, rest = _take_digits(rest[1:])
            if not whole and not fraction:
                raise invalid
        elif not whole:
            raise invalid
        end = 0
        while end < len(rest) and rest[end] != "." and not _is_digit(rest[end]):
            end += 1
        unit, rest = rest[:end], rest[end:]
        if not unit:
            raise DurationError(f"time: missing unit in duration {go_quote(text)}")
        if unit not in _NANOS_PER_UNIT:
            raise DurationError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        amount = Fraction(int(whole or "0"))
        if fraction:
            amount += Fraction(int(fraction), 10 ** len(fraction))
        total += amount * _NANOS_PER_UNIT[unit]
        if total > _MAX_NANOS + (1 if negative else 0):
            raise invalid
    nanos = int(total)  # Go truncates fractional nanoseconds
    return -nanos if negative else nanos


def _is_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _take_digits(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and _is_digit(text[end]):
        end += 1
    return text[:end], text[end:]


def format_seconds(seconds: float) -> str:
    """``12.5`` -> ``12.5s``, for messages."""
    return f"{seconds:g}s"
