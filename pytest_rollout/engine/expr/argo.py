"""AnalysisTemplate ``successCondition`` / ``failureCondition`` the way Argo Rollouts runs them.

Followed: argoproj/argo-rollouts ``utils/evaluate/evaluate.go`` (EvalCondition). The environment
is ``result`` plus Argo's helpers ``asInt``, ``asFloat``, ``isNaN``, ``isInf``, ``isNil`` and
``default``; expr's own builtins (``len``, ``all`` ...) come with the language. The output must
be a bool, otherwise the condition fails with ``expected bool, but got <type>``.

Two Argo quirks are kept on purpose, because a condition must mean here what it means there:
``isNil(x)`` and ``default(x, d)`` ignore ``x`` and look at the whole ``result`` (Argo binds them
to the measurement's value), so ``default(result[0], 0)`` is not a per-element default.
Unknown names are rejected when compiling, as expr does when compiling against Argo's env.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pytest_rollout.engine.expr.builtins import float_to_int, go_parse_float, go_parse_int, go_quote
from pytest_rollout.engine.expr.errors import ExprEvalError, ExprNameError, ExprTypeError
from pytest_rollout.engine.expr.evaluator import Function
from pytest_rollout.engine.expr.nodes import free_names
from pytest_rollout.engine.expr.program import Program, compile_expression
from pytest_rollout.engine.expr.values import is_array, is_int, is_number, type_name, wrap_int

ARGO_NAMES = frozenset({"result", "asInt", "asFloat", "isNaN", "isInf", "isNil", "default"})


def _go_value(value: object, depth: int = 0) -> str:
    """A value shown roughly the way Go's ``%v`` shows it (nesting cut short)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if (is_array(value) or isinstance(value, dict)) and depth >= 2:
        return "..."
    if is_array(value):
        return "[" + " ".join(_go_value(item, depth + 1) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{k}:{_go_value(v, depth + 1)}" for k, v in value.items())
        return "map[" + " ".join(items) + "]"
    return str(value)


def _go_type(value: object) -> str:
    return "<nil>" if value is None else type_name(value)


def _as_int(value: Any) -> int:
    if is_int(value):
        return wrap_int(value)
    if isinstance(value, float):
        return float_to_int(value, "asInt()")
    if isinstance(value, str):
        try:
            return go_parse_int(value)
        except ValueError as exc:
            raise ExprEvalError(f"strconv.ParseInt: parsing {go_quote(value)}: {exc}") from None
    raise ExprTypeError(f"asInt() not supported on {_go_type(value)} {_go_value(value)}")


def _as_float(value: Any) -> float:
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return go_parse_float(value)
        except ValueError as exc:
            raise ExprEvalError(f"strconv.ParseFloat: parsing {go_quote(value)}: {exc}") from None
    raise ExprTypeError(f"asFloat() not supported on {_go_type(value)} {_go_value(value)}")


def _float_test(name: str, test: Callable[[float], bool]) -> Function:
    def apply(value: Any) -> bool:
        if isinstance(value, float):
            return test(value)
        if is_int(value):
            return False
        raise ExprTypeError(
            f"cannot use {type_name(value)} as argument (type float64) to call {name}"
        )

    return Function(name, 1, apply)


_AS_INT = Function("asInt", 1, _as_int)
_AS_FLOAT = Function("asFloat", 1, _as_float)
_IS_NAN = _float_test("isNaN", math.isnan)
_IS_INF = _float_test("isInf", math.isinf)


def argo_env(result: Any) -> dict[str, Any]:
    """The environment Argo Rollouts evaluates a metric's conditions in."""
    return {
        "result": result,
        "asInt": _AS_INT,
        "asFloat": _AS_FLOAT,
        "isNaN": _IS_NAN,
        "isInf": _IS_INF,
        "isNil": Function("isNil", 1, lambda _ignored: result is None),
        "default": Function(
            "default", 2, lambda _ignored, fallback: fallback if result is None else result
        ),
    }


class Condition:
    """A compiled success or failure condition; ``evaluate`` it against each measurement."""

    __slots__ = ("program",)

    def __init__(self, program: Program) -> None:
        self.program = program

    @property
    def source(self) -> str:
        return self.program.source

    def evaluate(self, result: Any) -> bool:
        """The condition's verdict for ``result``; ExprError subclasses when it has none."""
        value = self.program.run(argo_env(result))
        if not isinstance(value, bool):
            raise ExprTypeError(f"expected bool, but got {_go_type(value)}", source=self.source)
        return value

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"


def compile_condition(source: str) -> Condition:
    """Parse a condition once; reject syntax errors and names Argo's environment lacks."""
    program = compile_expression(source)
    for name in free_names(program.root):
        if name.name not in ARGO_NAMES:
            raise ExprNameError(f"unknown name {name.name}", pos=name.pos, source=source)
    return Condition(program)
