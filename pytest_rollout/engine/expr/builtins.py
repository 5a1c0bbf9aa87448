"""The language's builtin functions, after expr-lang/expr ``builtin/builtin.go`` and ``lib.go``.

Plain builtins take their evaluated arguments; the predicate builtins (``all(result, # < 1)``)
are run by the evaluator, which owns ``#``. Known expr builtins this evaluator does not implement
(string, date and JSON helpers, reduce/groupBy/sortBy) are rejected by name when compiling, so
a condition never silently means something else here than in Argo Rollouts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_rollout.engine.expr.errors import ExprEvalError, ExprTypeError
from pytest_rollout.engine.expr.values import (
    INT64_MAX,
    INT64_MIN,
    WALK_LIMIT,
    is_array,
    is_int,
    is_number,
    to_float,
    type_name,
    wrap_int,
)

BuiltinFunction = Callable[[Sequence[Any]], Any]

# name -> whether the predicate argument may be left out (``count(flags)``, ``sum(values)``).
PREDICATE_BUILTINS: dict[str, bool] = {
    "all": False,
    "any": False,
    "none": False,
    "one": False,
    "filter": False,
    "map": False,
    "find": False,
    "findIndex": False,
    "findLast": False,
    "findLastIndex": False,
    "count": True,
    "sum": True,
}

UNSUPPORTED_BUILTINS = frozenset(
    {
        "reduce",
        "groupBy",
        "sortBy",
        "sort",
        "trim",
        "trimPrefix",
        "trimSuffix",
        "upper",
        "lower",
        "split",
        "splitAfter",
        "replace",
        "repeat",
        "join",
        "indexOf",
        "lastIndexOf",
        "hasPrefix",
        "hasSuffix",
        "toJSON",
        "fromJSON",
        "toBase64",
        "fromBase64",
        "now",
        "duration",
        "date",
        "timezone",
        "get",
        "take",
        "toPairs",
        "fromPairs",
        "concat",
        "flatten",
        "uniq",
        "string",
        "bitand",
        "bitor",
        "bitxor",
        "bitnand",
        "bitnot",
        "bitshl",
        "bitshr",
        "bitushr",
    }
)


def go_quote(text: str) -> str:
    """A string quoted the way Go's ``%q`` shows it (close enough for messages)."""
    return json.dumps(text, ensure_ascii=False)


_GO_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}
_GO_DECIMAL_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GO_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
)
_GO_SPECIAL_FLOAT = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)


def go_parse_int(text: str, base: int = 10) -> int:
    """``strconv.ParseInt(text, base, 64)``; ValueError carries Go's reason."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or any(d not in _GO_DIGITS[base] for d in digits):
        raise ValueError("invalid syntax")
    significant = digits.lstrip("0")
    # Checked before int(): Python refuses to convert very long decimal strings.
    if len(significant) > 64:
        raise ValueError("value out of range")
    value = int(significant or "0", base) * (-1 if text.startswith("-") else 1)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("value out of range")
    return value


def go_parse_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``; ValueError carries Go's reason."""
    if _GO_SPECIAL_FLOAT.fullmatch(text):
        return float(text.lower().replace("infinity", "inf"))
    if _GO_HEX_FLOAT.fullmatch(text):
        try:
            value = float.fromhex(text)
        except OverflowError as exc:
            raise ValueError("value out of range") from exc
    elif _GO_DECIMAL_FLOAT.fullmatch(text):
        value = float(text)
    else:
        raise ValueError("invalid syntax")
    if math.isinf(value):
        raise ValueError("value out of range")
    return value


def check_arity(name: str, args: Sequence[Any], expected: int) -> None:
    if len(args) != expected:
        raise ExprTypeError(f"invalid number of arguments (expected {expected}, got {len(args)})")


def _invalid(name: str, value: object) -> ExprTypeError:
    return ExprTypeError(f"invalid argument for {name} (type {type_name(value)})")


def _len(args: Sequence[Any]) -> Any:
    check_arity("len", args, 1)
    (value,) = args
    if isinstance(value, str):
        # Go's len counts the bytes of the UTF-8 encoding.
        return len(value.encode("utf-8", "surrogatepass"))
    if is_array(value) or isinstance(value, Mapping):
        return len(value)
    raise _invalid("len", value)


def _abs(args: Sequence[Any]) -> Any:
    check_arity("abs", args, 1)
    (value,) = args
    if is_int(value):
        return wrap_int(-value) if value < 0 else value
    if isinstance(value, float):
        return -value if value < 0 else value
    raise _invalid("abs", value)


def _rounding(name: str, rounder: Callable[[float], float]) -> BuiltinFunction:
    def apply(args: Sequence[Any]) -> Any:
        check_arity(name, args, 1)
        (value,) = args
        if is_int(value):
            return to_float(value)
        if isinstance(value, float):
            return value if not math.isfinite(value) else rounder(value)
        raise _invalid(name, value)

    return apply


def _round_half_away(value: float) -> float:
    magnitude = abs(value)
    whole = math.floor(magnitude)
    if magnitude - whole >= 0.5:
        whole += 1
    return math.copysign(float(whole), value)


def float_to_int(value: float, what: str) -> int:
    """Truncate toward zero; NaN, Inf and beyond-int64 values are errors (undefined in Go)."""
    if not math.isfinite(value) or not INT64_MIN <= math.trunc(value) <= INT64_MAX:
        raise ExprEvalError(f"{what}: {value!r} does not fit in int64")
    return math.trunc(value)


def _int(args: Sequence[Any]) -> Any:
    check_arity("int", args, 1)
    (value,) = args
    if is_int(value):
        return value
    if isinstance(value, float):
        return float_to_int(value, "int()")
    if isinstance(value, str):
        try:
            return go_parse_int(value)
        except ValueError:
            raise ExprEvalError(f"invalid operation: int({value})") from None
    raise ExprTypeError(f"invalid operation: int({type_name(value)})")


def _float(args: Sequence[Any]) -> Any:
    check_arity("float", args, 1)
    (value,) = args
    if is_number(value):
        return to_float(value)
    if isinstance(value, str):
        try:
            return go_parse_float(value)
        except ValueError:
            raise ExprEvalError(f"invalid operation: float({value})") from None
    raise ExprTypeError(f"invalid operation: float({type_name(value)})")


def _numbers(name: str, args: Sequence[Any]) -> list[int | float]:
    """Numbers from the arguments, arrays flattened (without recursion)."""
    found: list[int | float] = []
    pending: list[Any] = list(reversed(args))
    steps = 0
    while pending:
        steps += 1
        if steps > WALK_LIMIT:
            raise ExprEvalError("memory budget exceeded")
        item = pending.pop()
        if is_array(item):
            pending.extend(reversed(item))
        elif is_number(item):
            found.append(item)
        else:
            raise _invalid(name, item)
    return found


def _extreme(name: str, replaces: Callable[[float, float], bool]) -> BuiltinFunction:
    def apply(args: Sequence[Any]) -> Any:
        if not args:
            raise ExprTypeError(f"not enough arguments to call {name}")
        if len(args) == 1 and not (is_array(args[0]) or is_number(args[0])):
            return args[0]
        best: int | float | None = None
        for number in _numbers(name, args):
            if best is None or replaces(to_float(best), to_float(number)):
                best = number
        return best

    return apply


def _mean(args: Sequence[Any]) -> Any:
    if not args:
        raise ExprTypeError("not enough arguments to call mean")
    numbers = _numbers("mean", args)
    if not numbers:
        return 0.0
    total = 0.0
    for number in numbers:
        total += to_float(number)
    return total / len(numbers)


def _median(args: Sequence[Any]) -> Any:
    if not args:
        raise ExprTypeError("not enough arguments to call median")
    # Go's sort.Float64s puts NaN first.
    values = sorted(
        (to_float(n) for n in _numbers("median", args)), key=lambda v: (not math.isnan(v), v)
    )
    if not values:
        return 0.0
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def _end(name: str, index: int) -> BuiltinFunction:
    def apply(args: Sequence[Any]) -> Any:
        check_arity(name, args, 1)
        (value,) = args
        if value is None:
            return None
        if not is_array(value):
            raise ExprTypeError(f"cannot get {name} element from {type_name(value)}")
        return value[index] if value else None

    return apply


def _map_part(name: str, part: Callable[[Mapping[Any, Any]], list[Any]]) -> BuiltinFunction:
    def apply(args: Sequence[Any]) -> Any:
        check_arity(name, args, 1)
        (value,) = args
        if not isinstance(value, Mapping):
            raise _invalid(name, value)
        return part(value)

    return apply


def _type(args: Sequence[Any]) -> Any:
    check_arity("type", args, 1)
    (value,) = args
    name = type_name(value)
    return {
        "float64": "float",
        "[]interface {}": "array",
        "map[string]interface {}": "map",
    }.get(name, name if name in ("nil", "bool", "int", "string", "func") else "unknown")


FUNCTIONS: dict[str, BuiltinFunction] = {
    "len": _len,
    "abs": _abs,
    "ceil": _rounding("ceil", lambda v: float(math.ceil(v))),
    "floor": _rounding("floor", lambda v: float(math.floor(v))),
    "round": _rounding("round", _round_half_away),
    "int": _int,
    "float": _float,
    "max": _extreme("max", lambda best, x: best < x),
    "min": _extreme("min", lambda best, x: best > x),
    "mean": _mean,
    "median": _median,
    "first": _end("first", 0),
    "last": _end("last", -1),
    "keys": _map_part("keys", lambda m: list(m.keys())),
    "values": _map_part("values", lambda m: list(m.values())),
    "type": _type,
}
