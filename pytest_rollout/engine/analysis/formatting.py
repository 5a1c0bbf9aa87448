"""Measurement values written the way Argo's Go code writes them into ``measurement.value``.

Prometheus samples use ``model.SampleValue.String`` (``strconv.FormatFloat(v, 'f', -1, 64)``,
``metricproviders/prometheus/prometheus.go`` joins a vector as ``[a,b]``); the web provider
uses ``encoding/json``'s ``Marshal`` (``metricproviders/webmetric/webmetric.go``).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'f', -1, 64)``: shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    return format(Decimal(repr(value)).normalize(), "f")


def prometheus_value(result: float | list[float]) -> str:
    """A scalar as one number, a vector as ``[a,b,...]``."""
    if isinstance(result, list):
        return "[" + ",".join(go_float(v) for v in result) + "]"
    return go_float(result)


def go_json(value: Any) -> str:
    """``json.Marshal`` of a value decoded from JSON (maps with sorted keys, HTML-escaped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _json_number(float(value))
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for char, escaped in _HTML_ESCAPES.items():
            text = text.replace(char, escaped)
        return text
    if isinstance(value, dict):
        items = (f"{go_json(str(k))}:{go_json(value[k])}" for k in sorted(value, key=str))
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(item) for item in value) + "]"
    return go_json(str(value))


def _json_number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        # Go's encoder refuses these; JSON decoding never produces them.
        return go_float(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        sign = exponent[0] if exponent[:1] in "+-" else "+"
        digits = exponent.lstrip("+-").lstrip("0") or "0"
        return f"{mantissa}e{sign}{digits}"
    return go_float(value)
