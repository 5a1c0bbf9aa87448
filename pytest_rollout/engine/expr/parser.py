"""Precedence-climbing parser for the expr language, after expr-lang/expr ``parser/parser.go``
and ``parser/operator/operator.go``.

Binding, loosest first (all binary operators left-associative except ``**``/``^``)::

    |  (pipe)                          0
    || or                             10
    && and                            15
    == != < > <= >= in matches
       contains startsWith endsWith   20   comparisons chain: a < b < c is a < b && b < c
    ..                                25
    + -                               30
    ! not  (unary)                    50
    * / %                             60
    - +    (unary)                    90
    ** ^                             100
    ??                               500
    ?: (ternary)                  lowest, right-nested
    postfix . ?. [i] [a:b] (args)     tightest

Unlike expr, ``not in`` (and ``not matches`` ...) keeps its negation inside chained comparisons.
Nesting is limited (MAX_NESTING levels of recursion, MAX_HEIGHT levels of tree) so that hostile
input gets an ExprSyntaxError instead of exhausting Python's stack.
"""

from __future__ import annotations

from typing import NamedTuple

from pytest_rollout.engine.expr.builtins import (
    FUNCTIONS,
    PREDICATE_BUILTINS,
    UNSUPPORTED_BUILTINS,
    go_parse_float,
    go_parse_int,
    go_quote,
)
from pytest_rollout.engine.expr.errors import ExprNameError, ExprSyntaxError
from pytest_rollout.engine.expr.lexer import KEYWORDS, Kind, Token, tokenize
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
    height,
)

MAX_NESTING = 64
MAX_HEIGHT = 150


class _Op(NamedTuple):
    precedence: int
    right_associative: bool = False


BINARY: dict[str, _Op] = {
    "|": _Op(0),
    "or": _Op(10),
    "||": _Op(10),
    "and": _Op(15),
    "&&": _Op(15),
    "==": _Op(20),
    "!=": _Op(20),
    "<": _Op(20),
    ">": _Op(20),
    ">=": _Op(20),
    "<=": _Op(20),
    "in": _Op(20),
    "matches": _Op(20),
    "contains": _Op(20),
    "startsWith": _Op(20),
    "endsWith": _Op(20),
    "..": _Op(25),
    "+": _Op(30),
    "-": _Op(30),
    "*": _Op(60),
    "/": _Op(60),
    "%": _Op(60),
    "**": _Op(100, right_associative=True),
    "^": _Op(100, right_associative=True),
    "??": _Op(500),
}
UNARY: dict[str, int] = {"not": 50, "!": 50, "-": 90, "+": 90}
COMPARISON_PRECEDENCE = 20
NEGATABLE = frozenset({"in", "matches", "contains", "startsWith", "endsWith"})
SHORT_CIRCUIT = frozenset({"&&", "and", "||", "or", "??"})
POINTER_NAMES = frozenset({"", "index"})
_INT_LITERALS = {"0x": ("hex", 16), "0o": ("octal", 8), "0b": ("binary", 2)}


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.k = 0
        self.nesting = 0
        self.predicate_depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.k]

    def lookahead(self) -> Token:
        return self.tokens[min(self.k + 1, len(self.tokens) - 1)]

    def advance(self) -> None:
        if self.k < len(self.tokens) - 1:
            self.k += 1

    def error(self, message: str, token: Token | None = None) -> ExprSyntaxError:
        where = self.current if token is None else token
        return ExprSyntaxError(message, pos=where.pos, source=self.source)

    def unexpected(self, token: Token | None = None) -> ExprSyntaxError:
        return self.error(f"unexpected token {token or self.current}", token)

    def expect_op(self, value: str) -> None:
        if not self.current.is_op(value):
            raise self.unexpected()
        self.advance()

    def expect_bracket(self, value: str) -> None:
        if not self.current.is_bracket(value):
            raise self.unexpected()
        self.advance()

    # -- entry -------------------------------------------------------------------------------

    def parse(self) -> Node:
        root = self.parse_expression(0)
        if self.current.kind is not Kind.EOF:
            raise self.unexpected()
        tree_height, deepest = height(root)
        if tree_height > MAX_HEIGHT:
            raise ExprSyntaxError(
                f"expression is nested too deeply (more than {MAX_HEIGHT} levels)",
                pos=deepest.pos,
                source=self.source,
            )
        return root

    # -- operators ---------------------------------------------------------------------------

    def parse_expression(self, precedence: int) -> Node:
        self.nesting += 1
        try:
            if self.nesting > MAX_NESTING:
                raise self.error(
                    f"expression is nested too deeply (more than {MAX_NESTING} levels)"
                )
            return self._parse_expression(precedence)
        finally:
            self.nesting -= 1

    def _parse_expression(self, precedence: int) -> Node:
        if precedence == 0 and self.current.is_op("let"):
            return self.parse_let()
        left = self.parse_primary()
        previous = ""
        while self.current.kind is Kind.OPERATOR:
            op_token, negate = self.current, False
            if op_token.value == "not":
                following = self.lookahead()
                if not (following.is_op() and following.value in NEGATABLE):
                    raise self.unexpected(following)
                op_token, negate = following, True
            op = BINARY.get(op_token.value)
            if op is None or op.precedence < precedence:
                break
            if negate:
                self.advance()
            self.advance()
            if op_token.value == "|":
                callee = self.current
                if callee.kind is not Kind.IDENTIFIER:
                    raise self.unexpected()
                self.advance()
                left = self.parse_call(callee, [left])
            elif previous == "??" and op_token.value != "??":
                raise self.error(
                    f"Operator ({op_token.value}) and coalesce expressions (??) cannot be mixed."
                    " Wrap either by parentheses.",
                    op_token,
                )
            elif op.precedence == COMPARISON_PRECEDENCE:
                left = self.parse_comparison(left, op_token, negate)
            else:
                right = self.parse_expression(
                    op.precedence if op.right_associative else op.precedence + 1
                )
                left = _binary(op_token, left, right)
            previous = op_token.value
        if precedence == 0:
            left = self.parse_conditional(left)
        return left

    def parse_comparison(self, left: Node, op_token: Token, negate: bool) -> Node:
        chain: Node | None = None
        while True:
            right = self.parse_expression(COMPARISON_PRECEDENCE + 1)
            link: Node = Binary(op_token.value, left, right, op_token.pos)
            if negate:
                link = Unary("!", link, op_token.pos)
            chain = link if chain is None else Logical("&&", chain, link, op_token.pos)
            left, op_token, negate = right, self.current, False
            if op_token.is_op("not"):
                following = self.lookahead()
                if not (following.is_op() and following.value in NEGATABLE):
                    break
                self.advance()
                op_token, negate = following, True
            elif not (
                op_token.is_op()
                and BINARY.get(op_token.value, _Op(-1)).precedence == COMPARISON_PRECEDENCE
            ):
                break
            self.advance()
        return chain

    def parse_conditional(self, node: Node) -> Node:
        while self.current.is_op("?"):
            question = self.current
            self.advance()
            if self.current.is_op(":"):
                self.advance()
                then, otherwise = node, self.parse_expression(0)
            else:
                then = self.parse_expression(0)
                self.expect_op(":")
                otherwise = self.parse_expression(0)
            node = Conditional(node, then, otherwise, question.pos)
        return node

    def parse_let(self) -> Node:
        self.advance()
        name = self.current
        if name.kind is not Kind.IDENTIFIER:
            raise self.unexpected()
        self.advance()
        self.expect_op("=")
        value = self.parse_expression(0)
        self.expect_op(";")
        body = self.parse_expression(0)
        return Let(name.value, value, body, name.pos)

    # -- operands ----------------------------------------------------------------------------

    def parse_primary(self) -> Node:
        token = self.current
        if token.kind is Kind.OPERATOR and token.value in UNARY:
            self.advance()
            operand = self.parse_expression(UNARY[token.value])
            op = "!" if token.value == "not" else token.value
            return self.parse_postfix(Unary(op, operand, token.pos))
        if token.is_bracket("("):
            self.advance()
            inner = self.parse_expression(0)
            self.expect_bracket(")")
            return self.parse_postfix(inner)
        if token.kind is Kind.POINTER or token.is_op("."):
            if self.predicate_depth == 0:
                raise self.error("cannot use pointer accessor outside predicate")
            name = ""
            if token.kind is Kind.POINTER:
                if token.value not in POINTER_NAMES:
                    raise self.error(f"unknown pointer #{token.value}")
                name = token.value
                self.advance()
            # A bare ".field" is "#.field": the postfix loop reads the dot.
            return self.parse_postfix(Pointer(name, token.pos))
        return self.parse_secondary()

    def parse_secondary(self) -> Node:
        token = self.current
        node: Node
        if token.kind is Kind.IDENTIFIER:
            self.advance()
            constants = {"true": True, "false": False, "nil": None}
            if token.value in constants:
                return Literal(constants[token.value], token.pos)
            if self.current.is_bracket("("):
                node = self.parse_call(token, [])
            else:
                node = Name(token.value, token.pos)
        elif token.kind is Kind.NUMBER:
            self.advance()
            return Literal(self.number(token), token.pos)
        elif token.kind is Kind.STRING:
            self.advance()
            node = Literal(token.value, token.pos)
        elif token.is_bracket("["):
            node = self.parse_array()
        elif token.is_bracket("{"):
            node = self.parse_map()
        else:
            raise self.unexpected()
        return self.parse_postfix(node)

    def number(self, token: Token) -> int | float:
        # expr decides in this order: hex, then float (a "." or "e"), then binary, octal, decimal.
        text = token.value.replace("_", "")
        lower = text.lower()
        quoted = go_quote(text)
        prefix = lower[:2]
        if prefix != "0x" and ("." in lower or "e" in lower):
            try:
                return go_parse_float(lower)
            except ValueError as exc:
                raise self.error(
                    f"invalid float literal: strconv.ParseFloat: parsing {quoted}: {exc}", token
                ) from None
        kind, base = _INT_LITERALS.get(prefix, ("integer", 10))
        digits = lower[2:] if base != 10 else lower
        try:
            return go_parse_int(digits, base)
        except ValueError as exc:
            raise self.error(
                f"invalid {kind} literal: strconv.ParseInt: parsing {quoted}: {exc}", token
            ) from None

    def parse_array(self) -> Node:
        start = self.current
        self.advance()
        items: list[Node] = []
        while not self.current.is_bracket("]"):
            if items:
                self.expect_op(",")
                if self.current.is_bracket("]"):
                    break
            items.append(self.parse_expression(0))
        self.advance()
        return ArrayLit(tuple(items), start.pos)

    def parse_map(self) -> Node:
        start = self.current
        self.advance()
        pairs: list[tuple[Node, Node]] = []
        while not self.current.is_bracket("}"):
            if pairs:
                self.expect_op(",")
                if self.current.is_bracket("}"):
                    break
            token = self.current
            key: Node
            if token.kind in (Kind.NUMBER, Kind.STRING, Kind.IDENTIFIER):
                key = Literal(token.value, token.pos)
                self.advance()
            elif token.is_bracket("("):
                key = self.parse_expression(0)
            else:
                raise self.error(
                    "a map key must be a quoted string, a number, a identifier, or an expression"
                    f" enclosed in parentheses (unexpected token {token})"
                )
            self.expect_op(":")
            pairs.append((key, self.parse_expression(0)))
        self.advance()
        return MapLit(tuple(pairs), start.pos)

    def parse_call(self, name: Token, arguments: list[Node]) -> Node:
        if name.value in PREDICATE_BUILTINS:
            return self.parse_predicate_call(name, arguments)
        if name.value in UNSUPPORTED_BUILTINS:
            raise ExprNameError(
                f"builtin {name.value} is not supported by this evaluator",
                pos=name.pos,
                source=self.source,
            )
        args = tuple(self.parse_arguments(arguments))
        if name.value in FUNCTIONS:
            return Builtin(name.value, args, name.pos)
        return Call(Name(name.value, name.pos), args, name.pos)

    def parse_predicate_call(self, name: Token, arguments: list[Node]) -> Node:
        self.expect_bracket("(")
        # Each predicate builtin takes an array, then a predicate (optional for count and sum).
        specs = [("array", False), ("predicate", PREDICATE_BUILTINS[name.value])][len(arguments) :]
        args = list(arguments)
        for i, (kind, optional) in enumerate(specs):
            if self.current.is_bracket(")"):
                if optional:
                    break
                raise self.error(f"expected at least {len(specs)} arguments")
            if i > 0:
                self.expect_op(",")
            args.append(self.parse_predicate() if kind == "predicate" else self.parse_expression(0))
        if self.current.is_op(","):
            self.advance()
        self.expect_bracket(")")
        return Builtin(name.value, tuple(args), name.pos)

    def parse_predicate(self) -> Node:
        start = self.current
        braced = start.is_bracket("{")
        if braced:
            self.advance()
        self.predicate_depth += 1
        try:
            body = self.parse_expression(0)
        finally:
            self.predicate_depth -= 1
        if braced:
            self.expect_bracket("}")
        return Predicate(body, start.pos)

    def parse_arguments(self, arguments: list[Node]) -> list[Node]:
        args = list(arguments)
        self.expect_bracket("(")
        while not self.current.is_bracket(")"):
            if len(args) > len(arguments):
                self.expect_op(",")
                if self.current.is_bracket(")"):
                    break
            args.append(self.parse_expression(0))
        self.advance()
        return args

    def parse_postfix(self, node: Node) -> Node:
        optional_chain = False
        while True:
            token = self.current
            if token.is_op(".", "?."):
                optional = token.value == "?."
                optional_chain |= optional
                self.advance()
                if optional and self.current.is_bracket("["):
                    node = self.parse_index(node, optional=True)
                    continue
                prop = self.current
                if not (
                    prop.kind is Kind.IDENTIFIER
                    or (prop.kind is Kind.OPERATOR and prop.value in KEYWORDS)
                ):
                    raise self.error("expected name", prop)
                self.advance()
                member = Member(node, Literal(prop.value, prop.pos), optional, prop.pos)
                if self.current.is_bracket("("):
                    node = Call(member, tuple(self.parse_arguments([])), prop.pos)
                else:
                    node = member
            elif token.is_bracket("["):
                node = self.parse_index(node, optional=False)
            else:
                break
        return Chain(node, node.pos) if optional_chain else node

    def parse_index(self, node: Node, *, optional: bool) -> Node:
        bracket = self.current
        self.advance()
        start: Node | None = None
        if not self.current.is_op(":"):
            start = self.parse_expression(0)
            if not self.current.is_op(":"):
                self.expect_bracket("]")
                return Member(node, start, optional, bracket.pos)
        self.advance()
        stop = None if self.current.is_bracket("]") else self.parse_expression(0)
        self.expect_bracket("]")
        return Slice(node, start, stop, bracket.pos)


def _binary(op_token: Token, left: Node, right: Node) -> Node:
    if op_token.value in SHORT_CIRCUIT:
        return Logical(op_token.value, left, right, op_token.pos)
    return Binary(op_token.value, left, right, op_token.pos)


def parse(source: str) -> Node:
    """Parse ``source`` into a syntax tree; raise ExprSyntaxError (or ExprNameError for a builtin
    this evaluator does not implement)."""
    try:
        return _Parser(source).parse()
    except RecursionError as exc:  # a backstop: the nesting limits should make this unreachable
        raise ExprSyntaxError("expression is nested too deeply", source=source) from exc
