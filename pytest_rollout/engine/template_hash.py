"""Hashes that name a pod template and a list of canary steps, in the shape Argo Rollouts gives
them (``rollouts-pod-template-hash``; ``ComputeStepHash`` of ``utils/conditions/conditions.go``):
FNV-1a of the JSON, safe-encoded as ``rand.SafeEncodeString`` does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: map each byte onto an alphabet without vowels."""
    return "".join(_SAFE_ALPHABET[ord(char) % len(_SAFE_ALPHABET)] for char in text)


def _json_hash(value: object) -> str:
    # Sorted keys and no spaces: the same value always hashes the same.
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return safe_encode(str(_fnv32a(canonical.encode())))


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """A stable name for a pod template, in the shape of Argo's ``rollouts-pod-template-hash``.

    FNV-1a of the canonical JSON, safe-encoded as Argo does. The value is not byte-identical to
    the one the controller computes from its Go structs; it only has to change exactly when the
    template changes.
    """
    return _json_hash(template)


def steps_hash(raw_steps: object) -> str:
    """``ComputeStepHash``: FNV-1a of the steps as JSON, safe-encoded."""
    return _json_hash(raw_steps)
