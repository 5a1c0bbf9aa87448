"""Tokenizer for the expr language, following expr-lang/expr ``parser/lexer`` (state.go, lexer.go).

Token kinds and their display (``Operator("+")``, ``EOF``) match expr's, so that error messages
such as ``unexpected token Operator("+")`` read the same. One deliberate difference: a pointer
(``#``, ``#index``) is a single ``Pointer`` token, so ``# index`` is not ``#index``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from pytest_rollout.engine.expr.errors import ExprSyntaxError


class Kind(enum.Enum):
    """What a token is."""

    IDENTIFIER = "Identifier"
    NUMBER = "Number"
    STRING = "String"
    OPERATOR = "Operator"
    BRACKET = "Bracket"
    POINTER = "Pointer"
    EOF = "EOF"


# Words the lexer turns into operators rather than identifiers (expr's lexer does the same).
KEYWORDS = frozenset(
    {"not", "in", "or", "and", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"}
)

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_HEX_ESCAPE_WIDTH = {"x": 2, "u": 4, "U": 8}
_MAX_RUNE = 0x10FFFF
# Operator characters, and which second character may extend each (expr's lexer root state).
_SINGLE_OPERATORS = ",;%+-^/"
_OPERATOR_FOLLOWERS = {
    "?": ".?",
    "|": "|",
    ":": ":",
    ".": ".",
    "&": "&=*",
    "!": "&=*",
    "=": "&=*",
    "*": "&=*",
    "<": "&=*",
    ">": "&=*",
}


@dataclass(frozen=True, slots=True)
class Token:
    """One lexeme: its kind, its value (unescaped for strings) and its start offset."""

    kind: Kind
    value: str
    pos: int

    def is_op(self, *values: str) -> bool:
        return self.kind is Kind.OPERATOR and (not values or self.value in values)

    def is_bracket(self, value: str) -> bool:
        return self.kind is Kind.BRACKET and self.value == value

    def __str__(self) -> str:
        if self.kind is Kind.EOF:
            return "EOF"
        if self.kind is Kind.POINTER:
            return f"Operator({json.dumps('#' + self.value, ensure_ascii=False)})"
        return f"{self.kind.value}({json.dumps(self.value, ensure_ascii=False)})"


def _is_alphabetic(ch: str) -> bool:
    return ch == "_" or ch == "$" or ch.isalpha()


def _is_alphanumeric(ch: str) -> bool:
    return _is_alphabetic(ch) or ch.isdecimal()


def _is_ascii_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.i = 0
        self.tokens: list[Token] = []

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.src[j] if j < len(self.src) else ""

    def error(self, message: str, pos: int) -> ExprSyntaxError:
        return ExprSyntaxError(message, pos=pos, source=self.src)

    def emit(self, kind: Kind, value: str, pos: int) -> None:
        self.tokens.append(Token(kind, value, pos))

    def run(self) -> list[Token]:
        src = self.src
        while self.i < len(src):
            start = self.i
            ch = src[start]
            if ch.isspace():
                self.i += 1
            elif ch in "'\"":
                self.emit(Kind.STRING, self.scan_string(ch), start)
            elif ch == "`":
                self.emit(Kind.STRING, self.scan_raw_string(), start)
            elif _is_ascii_digit(ch) or (ch == "." and _is_ascii_digit(self.peek(1))):
                self.emit(Kind.NUMBER, self.scan_number(), start)
            elif ch == "/" and self.peek(1) in ("/", "*"):
                self.skip_comment()
            elif ch == "#":
                self.i += 1
                while self.i < len(src) and _is_alphanumeric(src[self.i]):
                    self.i += 1
                self.emit(Kind.POINTER, src[start + 1 : self.i], start)
            elif ch in "([{)]}":
                self.i += 1
                self.emit(Kind.BRACKET, ch, start)
            elif _is_alphanumeric(ch):
                while self.i < len(src) and _is_alphanumeric(src[self.i]):
                    self.i += 1
                word = src[start : self.i]
                self.emit(Kind.OPERATOR if word in KEYWORDS else Kind.IDENTIFIER, word, start)
            else:
                self.emit(Kind.OPERATOR, self.scan_operator(ch, start), start)
        self.emit(Kind.EOF, "", len(src))
        return self.tokens

    def scan_operator(self, ch: str, start: int) -> str:
        if ch not in _OPERATOR_FOLLOWERS and ch not in _SINGLE_OPERATORS:
            shown = f" '{ch}'" if ch.isprintable() else ""
            raise self.error(f"unrecognized character: U+{ord(ch):04X}{shown}", start)
        self.i += 1
        following = self.peek()
        if following and following in _OPERATOR_FOLLOWERS.get(ch, ""):
            self.i += 1
            return ch + following
        return ch

    def skip_comment(self) -> None:
        start = self.i
        if self.peek(1) == "/":
            end = self.src.find("\n", start)
            self.i = len(self.src) if end < 0 else end
            return
        end = self.src.find("*/", start + 2)
        if end < 0:
            raise self.error("unclosed comment", len(self.src) - 1)
        self.i = end + 2

    def scan_number(self) -> str:
        start = self.i
        digits = "0123456789_"
        if self.peek() == "0" and self.peek(1) in ("x", "X", "o", "O", "b", "B"):
            digits = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}[
                self.peek(1).lower()
            ]
            self.i += 2
        self.accept_run(digits)
        if self.peek() == "." and self.peek(1) != ".":
            self.i += 1
            self.accept_run(digits)
        if self.peek() in ("e", "E"):
            self.i += 1
            if self.peek() in ("+", "-"):
                self.i += 1
            self.accept_run(digits)
        if self.peek() and _is_alphanumeric(self.peek()):
            self.i += 1
            word = json.dumps(self.src[start : self.i], ensure_ascii=False)
            raise self.error(f"bad number syntax: {word}", self.i - 1)
        return self.src[start : self.i]

    def accept_run(self, allowed: str) -> None:
        while self.i < len(self.src) and self.src[self.i] in allowed:
            self.i += 1

    def scan_raw_string(self) -> str:
        end = self.src.find("`", self.i + 1)
        if end < 0:
            raise self.error("literal not terminated", len(self.src))
        value = self.src[self.i + 1 : end]
        self.i = end + 1
        return value

    def scan_string(self, quote: str) -> str:
        src = self.src
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(src) or src[self.i] == "\n":
                raise self.error("literal not terminated", self.i)
            ch = src[self.i]
            if ch == quote:
                self.i += 1
                return "".join(out)
            if ch != "\\":
                # Like expr, a raw carriage return in a literal reads as a newline.
                out.append("\n" if ch == "\r" else ch)
                self.i += 1
                continue
            out.append(self.scan_escape(quote))

    def scan_escape(self, quote: str) -> str:
        src = self.src
        escape_pos = self.i
        kind = self.peek(1)
        self.i += 2
        if kind in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[kind]
        if kind == quote:
            return quote
        if kind in _HEX_ESCAPE_WIDTH:
            width, base, allowed = _HEX_ESCAPE_WIDTH[kind], 16, "0123456789abcdefABCDEF"
            digits = src[self.i : self.i + width]
            self.i += width
        elif kind and kind in "01234567":
            width, base, allowed = 3, 8, "01234567"
            digits = src[self.i - 1 : self.i + 2]
            self.i += 2
        else:
            raise self.error("invalid char escape", min(self.i, len(src)) - 1)
        if len(digits) < width or any(d not in allowed for d in digits):
            raise self.error("invalid char escape", min(self.i, len(src)) - 1)
        code = int(digits, base)
        if code > _MAX_RUNE or (base == 8 and digits[0] not in "0123"):
            raise self.error("unable to unescape string", escape_pos)
        # Go encodes a surrogate code point as U+FFFD; Python would keep an unprintable one.
        return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens ending with EOF; raise ExprSyntaxError on bad input."""
    return _Lexer(source).run()
