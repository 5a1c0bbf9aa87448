"""The typed syntax tree the parser produces and the evaluator walks.

Every node is immutable and carries ``pos``, the offset in the source that errors point at
(for operators, the operator itself, as expr does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: int, float, str, bool or None (``nil``)."""

    value: Any
    pos: int

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class ArrayLit:
    """``[a, b, ...]``."""

    items: tuple[Node, ...]
    pos: int

    def children(self) -> tuple[Node, ...]:
        return self.items


@dataclass(frozen=True, slots=True)
class MapLit:
    """``{key: value, ...}``; keys are expressions (bare words and numbers become strings)."""

    pairs: tuple[tuple[Node, Node], ...]
    pos: int

    def children(self) -> tuple[Node, ...]:
        return tuple(part for pair in self.pairs for part in pair)


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier looked up in ``let`` bindings, then in the environment."""

    name: str
    pos: int

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Pointer:
    """``#`` (the current element) or ``#index`` inside a predicate."""

    name: str
    pos: int

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Unary:
    """``!x`` / ``not x`` (op ``!``), ``-x``, ``+x``."""

    op: str
    operand: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Binary:
    """A strict binary operator; ``op`` is spelled as written (``**`` or ``^``)."""

    op: str
    left: Node
    right: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Logical:
    """A short-circuit operator: ``&&`` (also ``and``), ``||`` (also ``or``), ``??``."""

    op: str
    left: Node
    right: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Conditional:
    """``cond ? then : otherwise``."""

    cond: Node
    then: Node
    otherwise: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.cond, self.then, self.otherwise)


@dataclass(frozen=True, slots=True)
class Member:
    """``obj.name``, ``obj[key]``; ``optional`` for ``?.`` (nil object gives nil)."""

    obj: Node
    key: Node
    optional: bool
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.obj, self.key)


@dataclass(frozen=True, slots=True)
class Slice:
    """``obj[start:stop]`` with either bound optional."""

    obj: Node
    start: Node | None
    stop: Node | None
    pos: int

    def children(self) -> tuple[Node, ...]:
        return tuple(node for node in (self.obj, self.start, self.stop) if node is not None)


@dataclass(frozen=True, slots=True)
class Chain:
    """The extent of an optional chain: a nil met by ``?.`` inside makes the whole chain nil."""

    node: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.node,)


@dataclass(frozen=True, slots=True)
class Call:
    """A call of a function value from the environment (``isNaN(x)``) or a member (``m.f()``)."""

    callee: Node
    args: tuple[Node, ...]
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.callee, *self.args)


@dataclass(frozen=True, slots=True)
class Builtin:
    """A call of one of the language's builtins; predicate arguments are Predicate nodes."""

    name: str
    args: tuple[Node, ...]
    pos: int

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, slots=True)
class Predicate:
    """A closure over ``#``: the body is evaluated once per element."""

    body: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.body,)


@dataclass(frozen=True, slots=True)
class Let:
    """``let name = value; body``."""

    name: str
    value: Node
    body: Node
    pos: int

    def children(self) -> tuple[Node, ...]:
        return (self.value, self.body)


Node = (
    Literal
    | ArrayLit
    | MapLit
    | Name
    | Pointer
    | Unary
    | Binary
    | Logical
    | Conditional
    | Member
    | Slice
    | Chain
    | Call
    | Builtin
    | Predicate
    | Let
)


def height(root: Node) -> tuple[int, Node]:
    """The tree's height and its deepest node, computed without recursion."""
    best, deepest = 0, root
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > best:
            best, deepest = depth, node
        stack.extend((child, depth + 1) for child in node.children())
    return best, deepest


def free_names(root: Node) -> list[Name]:
    """Identifiers the tree reads from its environment (not bound by an enclosing ``let``)."""
    found: list[Name] = []
    stack: list[tuple[Node, frozenset[str]]] = [(root, frozenset())]
    while stack:
        node, bound = stack.pop()
        if isinstance(node, Name):
            if node.name not in bound:
                found.append(node)
        elif isinstance(node, Let):
            stack.append((node.value, bound))
            stack.append((node.body, bound | {node.name}))
        else:
            stack.extend((child, bound) for child in node.children())
    found.sort(key=lambda name: name.pos)
    return found
