"""Kubernetes ``intstr.IntOrString`` sizes, as manifests write them: ``3`` or ``"25%"``.

Followed from kubernetes/kubernetes: ``apimachinery/pkg/util/intstr``
(``GetScaledValueFromIntOrPercent``) and ``pkg/apis/apps/validation/validation.go``
(``ValidatePositiveIntOrPercent``, ``getIntOrPercentValue``; the error wording). Argo Rollouts
validates ``maxSurge`` / ``maxUnavailable`` with the same functions, so both readers share them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pytest_rollout.errors import ConfigError

IntOrPercent = int | str
"""An ``intstr.IntOrString`` as written in a manifest: ``3`` or ``"25%"``."""

PERCENT = re.compile(r"[0-9]+%")
PERCENT_MESSAGE = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)
NOT_INT_OR_PERCENT_MESSAGE = "must be an integer or percentage (e.g '5%')"
NEGATIVE_MESSAGE = "must be greater than or equal to 0"


def validated(value: object, invalid: Callable[[str], Exception]) -> IntOrPercent:
    """``value`` if it is a non-negative integer or a percent string; else raise what
    ``invalid`` makes of the API server's reason (each reader words the field its own way)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(NOT_INT_OR_PERCENT_MESSAGE)
    if isinstance(value, str) and not PERCENT.fullmatch(value):
        raise invalid(PERCENT_MESSAGE)
    if isinstance(value, int) and value < 0:
        raise invalid(NEGATIVE_MESSAGE)
    return value


def scaled_value(value: IntOrPercent, total: int, *, round_up: bool) -> int:
    """An int-or-percent resolved against ``total``: ``"25%"`` of 10 is 3 up, 2 down."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"expected an integer or a percentage, got {value!r}")
    if isinstance(value, int):
        return value
    if not PERCENT.fullmatch(value):
        raise ConfigError(f"invalid value {value!r}: {PERCENT_MESSAGE}")
    share = int(value[:-1]) * total
    return -(-share // 100) if round_up else share // 100


def written_value(value: IntOrPercent) -> int:
    """``getIntOrPercentValue``: the number as written, percent or not (0 for a string that is
    no percent)."""
    if isinstance(value, str):
        return int(value[:-1]) if PERCENT.fullmatch(value) else 0
    return value
