"""Values and operators with the semantics of expr's runtime (Go), not Python's.

Followed: expr-lang/expr ``vm/runtime/helpers/main.go`` (Equal, Less, Add, ..., Divide, Modulo:
int op int stays int, any float makes float64, ``/`` is always float division) and
``vm/runtime/runtime.go`` (Fetch, Slice, In, Exponent). The Go behaviours kept on purpose:
int arithmetic wraps at 64 bits, ``%`` truncates toward zero and only takes ints, division by
zero gives ±Inf/NaN, ``**`` is ``math.Pow`` on float64, int/float comparisons convert to float64,
``==`` between different kinds is false rather than an error.

Values are plain Python: None (nil), bool, int, float, str, list/tuple (arrays), dict (maps) and
callables. ``bool`` is never a number here, unlike in Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, TypeGuard

from pytest_rollout.engine.expr.errors import ExprEvalError, ExprTypeError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Nested values may share parts (``let a = [x, x]; let b = [a, a]; ...``), so walks over them
# are bounded like expr's memory budget.
WALK_LIMIT = 1_000_000

# Returned by an operator for operand types it does not take; the evaluator words the error.
MISMATCH: Any = NotImplemented


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_array(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, list | tuple)


def type_name(value: object) -> str:
    """The Go type name expr's messages use for a value."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if is_array(value):
        return "[]interface {}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if callable(value):
        return "func"
    return type(value).__name__


def wrap_int(value: int) -> int:
    """Two's-complement wrap to int64, as Go's int arithmetic does on overflow."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    return (value - INT64_MIN) % 2**64 + INT64_MIN


def to_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.copysign(math.inf, value)


def add(a: Any, b: Any) -> Any:
    if is_int(a) and is_int(b):
        return wrap_int(a + b)
    if is_number(a) and is_number(b):
        return to_float(a) + to_float(b)
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    return MISMATCH


def subtract(a: Any, b: Any) -> Any:
    if is_int(a) and is_int(b):
        return wrap_int(a - b)
    if is_number(a) and is_number(b):
        return to_float(a) - to_float(b)
    return MISMATCH


def multiply(a: Any, b: Any) -> Any:
    if is_int(a) and is_int(b):
        return wrap_int(a * b)
    if is_number(a) and is_number(b):
        return to_float(a) * to_float(b)
    return MISMATCH


def float_divide(x: float, y: float) -> float:
    """IEEE division as Go does it: x/0 is ±Inf, 0/0 and NaN/0 are NaN."""
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def divide(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return float_divide(to_float(a), to_float(b))
    return MISMATCH


def modulo(a: Any, b: Any) -> Any:
    if not (is_int(a) and is_int(b)):
        return MISMATCH
    if b == 0:
        raise ExprEvalError("integer divide by zero")
    remainder = abs(a) % abs(b)
    return wrap_int(-remainder if a < 0 else remainder)


def _is_odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0


def float_power(x: float, y: float) -> float:
    """``math.Pow`` of Go: overflow and domain cases give ±Inf or NaN instead of raising."""
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and _is_odd_integer(y) else math.inf
    except ValueError:
        if x == 0:
            negative_zero = math.copysign(1.0, x) < 0
            return -math.inf if negative_zero and _is_odd_integer(y) else math.inf
        return math.nan


def power(a: Any, b: Any) -> Any:
    if is_number(a) and is_number(b):
        return float_power(to_float(a), to_float(b))
    return MISMATCH


def negate(a: Any) -> Any:
    if is_int(a):
        return wrap_int(-a)
    if isinstance(a, float):
        return -a
    return MISMATCH


def plus(a: Any) -> Any:
    return a if is_number(a) else MISMATCH


def equal(a: Any, b: Any) -> bool:
    """expr's ``==``: numbers by value across int/float, arrays element-wise, else same kind."""
    pending = [(a, b)]
    steps = 0
    while pending:
        steps += 1
        if steps > WALK_LIMIT:
            raise ExprEvalError("memory budget exceeded")
        x, y = pending.pop()
        if is_number(x) and is_number(y):
            same = to_float(x) == to_float(y) if type(x) is not type(y) else x == y
        elif isinstance(x, str | bool) and type(x) is type(y):
            same = x == y
        elif x is None or y is None:
            same = x is None and y is None
        elif is_array(x) and is_array(y):
            same = len(x) == len(y)
            pending.extend(zip(x, y, strict=False))
        elif isinstance(x, Mapping) and isinstance(y, Mapping):
            same = len(x) == len(y) and all(key in y for key in x)
            if same:
                pending.extend((x[key], y[key]) for key in x)
        else:
            same = x is y
        if not same:
            return False
    return True


def _ordered(a: Any, b: Any, compare: Callable[[Any, Any], bool]) -> Any:
    if is_number(a) and is_number(b):
        if type(a) is not type(b):
            return compare(to_float(a), to_float(b))
        return compare(a, b)
    if isinstance(a, str) and isinstance(b, str):
        return compare(a, b)
    return MISMATCH


def less(a: Any, b: Any) -> Any:
    return _ordered(a, b, lambda x, y: x < y)


def less_equal(a: Any, b: Any) -> Any:
    return _ordered(a, b, lambda x, y: x <= y)


def greater(a: Any, b: Any) -> Any:
    return _ordered(a, b, lambda x, y: x > y)


def greater_equal(a: Any, b: Any) -> Any:
    return _ordered(a, b, lambda x, y: x >= y)


def _hashable_key(key: object) -> bool:
    return key is None or isinstance(key, str | int | float)


def _map_has(mapping: Mapping[Any, Any], key: object) -> bool:
    if isinstance(key, str):
        return key in mapping
    if not _hashable_key(key):
        raise ExprTypeError(f"cannot use {type_name(key)} as a map key")
    # Python treats True, 1 and 1.0 as one key; Go's map lookup compares type and value.
    return key in mapping and any(k == key and type(k) is type(key) for k in mapping)


def _map_get(mapping: Mapping[Any, Any], key: object) -> Any:
    return mapping[key] if _map_has(mapping, key) else None


def contained_in(needle: Any, haystack: Any) -> Any:
    """expr's ``in``: element of an array (by ``==``) or key of a map; nil holds nothing."""
    if haystack is None:
        return False
    if is_array(haystack):
        return any(equal(item, needle) for item in haystack)
    if isinstance(haystack, Mapping):
        return _map_has(haystack, needle)
    raise ExprTypeError(f'operator "in" not defined on {type_name(haystack)}')


def fetch(container: Any, key: Any) -> Any:
    """``container[key]`` / ``container.key``: arrays by (negative) int index, maps by key."""
    if is_array(container):
        if not is_int(key):
            raise ExprTypeError(
                f"array elements can only be selected using an integer (got {type_name(key)})"
            )
        index = key + len(container) if key < 0 else key
        if not 0 <= index < len(container):
            raise ExprEvalError(f"index out of range: {index} (array length is {len(container)})")
        return container[index]
    if isinstance(container, Mapping):
        return _map_get(container, key)
    shown = key if isinstance(key, str | int | float | bool) else type_name(key)
    raise ExprTypeError(f"cannot fetch {shown} from {type_name(container)}")


def _slice_bound(value: Any, default: int, length: int) -> int:
    if value is None:
        return default
    if not is_int(value):
        raise ExprTypeError(f"slice indices must be integers (got {type_name(value)})")
    bound = int(value)
    if bound < 0:
        bound += length
    return min(max(bound, 0), length)


def slice_of(container: Any, start: Any, stop: Any) -> Any:
    """``container[start:stop]``: bounds may be negative and are clamped, as in expr."""
    if not (is_array(container) or isinstance(container, str)):
        raise ExprTypeError(f"cannot slice {type_name(container)}")
    length = len(container)
    lo = _slice_bound(start, 0, length)
    hi = _slice_bound(stop, length, length)
    return list(container[lo:hi]) if is_array(container) else container[lo:hi]


@lru_cache(maxsize=128)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ExprEvalError(f"error parsing regexp: {exc}") from exc


def _strings(a: Any, b: Any, test: Callable[[str, str], bool]) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return test(a, b)
    return MISMATCH


def contains(a: Any, b: Any) -> Any:
    return _strings(a, b, lambda x, y: y in x)


def starts_with(a: Any, b: Any) -> Any:
    return _strings(a, b, str.startswith)


def ends_with(a: Any, b: Any) -> Any:
    return _strings(a, b, str.endswith)


def matches(a: Any, b: Any) -> Any:
    return _strings(a, b, lambda x, y: _regex(y).search(x) is not None)
