"""Tree-walking evaluator over an environment, with expr's runtime semantics.

Types are checked as values meet operators, on the path actually taken: ``false && x < "a"``
is false, where expr's compile-time checker would reject the whole expression when it knows
``x``'s type. Errors carry the position of the node that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pytest_rollout.engine.expr import values
from pytest_rollout.engine.expr.builtins import FUNCTIONS, PREDICATE_BUILTINS
from pytest_rollout.engine.expr.errors import (
    ExprError,
    ExprEvalError,
    ExprNameError,
    ExprTypeError,
)
from pytest_rollout.engine.expr.nodes import (
    ArrayLit,
    Binary,
    Builtin,
    Call,
    Chain,
    Conditional,
    Let,
    Literal,
    Logical,
    MapLit,
    Member,
    Name,
    Node,
    Pointer,
    Predicate,
    Slice,
    Unary,
)

# How many predicate iterations and range elements one evaluation may spend, as expr's
# memory budget does, so a condition cannot run away with the machine.
BUDGET = 1_000_000

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": values.add,
    "-": values.subtract,
    "*": values.multiply,
    "/": values.divide,
    "%": values.modulo,
    "**": values.power,
    "^": values.power,
    "==": values.equal,
    "!=": lambda a, b: not values.equal(a, b),
    "<": values.less,
    "<=": values.less_equal,
    ">": values.greater,
    ">=": values.greater_equal,
    "in": values.contained_in,
    "contains": values.contains,
    "startsWith": values.starts_with,
    "endsWith": values.ends_with,
    "matches": values.matches,
}


@dataclass(frozen=True, slots=True)
class Function:
    """A function offered to expressions through the environment, with a fixed arity."""

    name: str
    arity: int
    impl: Callable[..., Any]

    def __call__(self, *args: Any) -> Any:
        if len(args) < self.arity:
            raise ExprTypeError(f"not enough arguments to call {self.name}")
        if len(args) > self.arity:
            raise ExprTypeError(f"too many arguments to call {self.name}")
        return self.impl(*args)


class _NilInChain(Exception):
    """A ``?.`` met nil: the enclosing Chain turns the whole chain into nil."""


_MISSING = object()


class Evaluator:
    """Evaluates syntax trees against one environment; make one per evaluation."""

    __slots__ = ("_budget", "_elements", "_env", "_variables")

    def __init__(self, env: Mapping[str, Any]) -> None:
        self._env = env
        self._variables: dict[str, Any] = {}
        self._elements: list[tuple[Any, int]] = []
        self._budget = BUDGET

    def value_of(self, node: Node) -> Any:
        try:
            return self._DISPATCH[type(node)](self, node)
        except ExprError as exc:
            exc.locate(pos=node.pos)
            raise

    def _spend(self, amount: int) -> None:
        self._budget -= amount
        if self._budget < 0:
            raise ExprEvalError("memory budget exceeded")

    # -- leaves ------------------------------------------------------------------------------

    def _literal(self, node: Literal) -> Any:
        return node.value

    def _array(self, node: ArrayLit) -> Any:
        return [self.value_of(item) for item in node.items]

    def _map(self, node: MapLit) -> Any:
        result: dict[str, Any] = {}
        for key_node, value_node in node.pairs:
            key = self.value_of(key_node)
            if not isinstance(key, str):
                raise ExprTypeError(f"map keys must be strings (got {values.type_name(key)})")
            result[key] = self.value_of(value_node)
        return result

    def _lookup(self, name: str) -> Any:
        value = self._variables.get(name, _MISSING)
        if value is _MISSING:
            value = self._env.get(name, _MISSING)
        if value is _MISSING:
            raise ExprNameError(f"unknown name {name}")
        return value

    def _name(self, node: Name) -> Any:
        return self._lookup(node.name)

    def _pointer(self, node: Pointer) -> Any:
        if not self._elements:
            raise ExprEvalError("cannot use pointer accessor outside predicate")
        element, index = self._elements[-1]
        return index if node.name == "index" else element

    # -- operators ---------------------------------------------------------------------------

    def _unary(self, node: Unary) -> Any:
        operand = self.value_of(node.operand)
        if node.op == "!":
            result: Any = (not operand) if isinstance(operand, bool) else values.MISMATCH
        elif node.op == "-":
            result = values.negate(operand)
        else:
            result = values.plus(operand)
        if result is values.MISMATCH:
            raise ExprTypeError(
                f"invalid operation: {node.op} (mismatched type {values.type_name(operand)})"
            )
        return result

    def _binary(self, node: Binary) -> Any:
        left = self.value_of(node.left)
        right = self.value_of(node.right)
        if node.op == "..":
            return self._range(left, right)
        result = _BINARY[node.op](left, right)
        if isinstance(result, str):
            self._spend(len(result) // 8)
        elif result is values.MISMATCH:
            raise ExprTypeError(
                f"invalid operation: {values.type_name(left)} {node.op} {values.type_name(right)}"
            )
        return result

    def _range(self, low: Any, high: Any) -> list[int]:
        if not (values.is_int(low) and values.is_int(high)):
            raise ExprTypeError(
                "invalid operation: .. (mismatched types "
                f"{values.type_name(low)} and {values.type_name(high)})"
            )
        self._spend(max(high - low + 1, 0))
        return list(range(low, high + 1))

    def _logical(self, node: Logical) -> Any:
        left = self.value_of(node.left)
        if node.op == "??":
            return self.value_of(node.right) if left is None else left
        self._require_bool(left, node.op)
        if node.op in ("||", "or"):
            if left:
                return True
        elif not left:
            return False
        right = self.value_of(node.right)
        self._require_bool(right, node.op)
        return right

    @staticmethod
    def _require_bool(value: Any, op: str) -> None:
        if not isinstance(value, bool):
            raise ExprTypeError(
                f"non-bool expression (type {values.type_name(value)}) used as operand of {op}"
            )

    def _conditional(self, node: Conditional) -> Any:
        condition = self.value_of(node.cond)
        if not isinstance(condition, bool):
            raise ExprTypeError(
                f"non-bool expression (type {values.type_name(condition)}) used as condition"
            )
        return self.value_of(node.then if condition else node.otherwise)

    # -- access ------------------------------------------------------------------------------

    def _member(self, node: Member) -> Any:
        container = self.value_of(node.obj)
        if container is None and node.optional:
            raise _NilInChain
        return values.fetch(container, self.value_of(node.key))

    def _slice(self, node: Slice) -> Any:
        container = self.value_of(node.obj)
        start = None if node.start is None else self.value_of(node.start)
        stop = None if node.stop is None else self.value_of(node.stop)
        return values.slice_of(container, start, stop)

    def _chain(self, node: Chain) -> Any:
        try:
            return self.value_of(node.node)
        except _NilInChain:
            return None

    def _let(self, node: Let) -> Any:
        bound = self.value_of(node.value)
        saved = self._variables.get(node.name, _MISSING)
        self._variables[node.name] = bound
        try:
            return self.value_of(node.body)
        finally:
            if saved is _MISSING:
                del self._variables[node.name]
            else:
                self._variables[node.name] = saved

    # -- calls -------------------------------------------------------------------------------

    def _call(self, node: Call) -> Any:
        if isinstance(node.callee, Name):
            label = node.callee.name
            function = self._lookup(label)
        else:
            function = self.value_of(node.callee)
            label = _describe(node.callee)
        args = [self.value_of(arg) for arg in node.args]
        if not callable(function):
            raise ExprTypeError(f"{label} is not a function (type {values.type_name(function)})")
        try:
            return function(*args)
        except ExprError:
            raise
        except Exception as exc:  # a function from the environment failed: report, like expr
            raise ExprEvalError(f"{label}: {type(exc).__name__}: {exc}") from exc

    def _builtin(self, node: Builtin) -> Any:
        if node.name in PREDICATE_BUILTINS:
            return self._predicate_builtin(node)
        return FUNCTIONS[node.name]([self.value_of(arg) for arg in node.args])

    def _predicate(self, node: Predicate) -> Any:
        raise ExprEvalError("a predicate can only be an argument of a builtin")

    def _predicate_builtin(self, node: Builtin) -> Any:
        name = node.name
        items = self.value_of(node.args[0])
        if not values.is_array(items):
            raise ExprTypeError(f"builtin {name} takes only array (got {values.type_name(items)})")
        predicate = node.args[1] if len(node.args) > 1 else None
        body = predicate.body if isinstance(predicate, Predicate) else None
        where = node.pos if predicate is None else predicate.pos

        def apply(item: Any, index: int) -> Any:
            if body is None:
                return item
            self._spend(1)
            self._elements.append((item, index))
            try:
                return self.value_of(body)
            finally:
                self._elements.pop()

        def holds(item: Any, index: int) -> bool:
            outcome = apply(item, index)
            if not isinstance(outcome, bool):
                raise ExprTypeError(
                    f"predicate should return boolean (got {values.type_name(outcome)})", pos=where
                )
            return outcome

        return _PREDICATE_RUNNERS[name](items, apply, holds)

    _DISPATCH: ClassVar[dict[type, Callable[[Evaluator, Any], Any]]] = {
        Literal: _literal,
        ArrayLit: _array,
        MapLit: _map,
        Name: _name,
        Pointer: _pointer,
        Unary: _unary,
        Binary: _binary,
        Logical: _logical,
        Conditional: _conditional,
        Member: _member,
        Slice: _slice,
        Chain: _chain,
        Let: _let,
        Call: _call,
        Builtin: _builtin,
        Predicate: _predicate,
    }


def _describe(node: Node) -> str:
    if isinstance(node, Member) and isinstance(node.key, Literal):
        return str(node.key.value)
    return "value"


_Apply = Callable[[Any, int], Any]
_Holds = Callable[[Any, int], bool]


def _sum(items: Sequence[Any], apply: _Apply, _holds: _Holds) -> Any:
    total: Any = 0
    for index, item in enumerate(items):
        term = apply(item, index)
        if not values.is_number(term):
            raise ExprTypeError(f"invalid argument for sum (type {values.type_name(term)})")
        total = values.add(total, term)
    return total


def _find(items: Sequence[Any], holds: _Holds, *, last: bool) -> int:
    order = range(len(items) - 1, -1, -1) if last else range(len(items))
    return next((index for index in order if holds(items[index], index)), -1)


def _element_at(items: Sequence[Any], index: int) -> Any:
    return items[index] if index >= 0 else None


_PREDICATE_RUNNERS: dict[str, Callable[[Sequence[Any], _Apply, _Holds], Any]] = {
    "all": lambda items, _a, holds: all(holds(x, i) for i, x in enumerate(items)),
    "any": lambda items, _a, holds: any(holds(x, i) for i, x in enumerate(items)),
    "none": lambda items, _a, holds: not any(holds(x, i) for i, x in enumerate(items)),
    "one": lambda items, _a, holds: [holds(x, i) for i, x in enumerate(items)].count(True) == 1,
    "filter": lambda items, _a, holds: [x for i, x in enumerate(items) if holds(x, i)],
    "map": lambda items, apply, _h: [apply(x, i) for i, x in enumerate(items)],
    "count": lambda items, _a, holds: sum(1 for i, x in enumerate(items) if holds(x, i)),
    "sum": _sum,
    "find": lambda items, _a, holds: _element_at(items, _find(items, holds, last=False)),
    "findIndex": lambda items, _a, holds: _find(items, holds, last=False),
    "findLast": lambda items, _a, holds: _element_at(items, _find(items, holds, last=True)),
    "findLastIndex": lambda items, _a, holds: _find(items, holds, last=True),
}
