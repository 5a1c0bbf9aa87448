"""Errors raised while compiling or evaluating a condition expression.

``message`` is the bare text, worded like expr's own (Argo Rollouts reports exactly that text as
the measurement's message); ``str(error)`` adds the location and a caret line the way expr's
``file.Error`` formats it::

    unexpected token Operator(")") (1:5)
     | 1 + )
     | ....^
"""

from __future__ import annotations

from pytest_rollout.errors import RolloutError


class ExprError(RolloutError):
    """Base of every error the expression language raises."""

    def __init__(self, message: str, *, pos: int | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.source = source

    def locate(self, *, pos: int | None = None, source: str | None = None) -> None:
        """Fill in the position and source text if they are not known yet."""
        if self.pos is None:
            self.pos = pos
        if self.source is None:
            self.source = source

    @property
    def line(self) -> int | None:
        """1-based line of the error, when it is located."""
        if self.pos is None or self.source is None:
            return None
        return self.source.count("\n", 0, self.pos) + 1

    @property
    def column(self) -> int | None:
        """1-based column of the error, when it is located."""
        if self.pos is None or self.source is None:
            return None
        return self.pos - (self.source.rfind("\n", 0, self.pos) + 1) + 1

    @property
    def snippet(self) -> str:
        """The offending source line and a caret under the error, or "" when not located."""
        line, column = self.line, self.column
        if line is None or column is None or self.source is None:
            return ""
        text = self.source.split("\n")[line - 1].replace("\t", " ")
        return f" | {text}\n | {'.' * (column - 1)}^"

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"{self.message} ({self.line}:{self.column})\n{self.snippet}"


class ExprSyntaxError(ExprError):
    """The text is not a well-formed expression (lexing or parsing failed)."""


class ExprNameError(ExprError):
    """An identifier or function is not defined in the environment or not supported."""


class ExprTypeError(ExprError):
    """An operation was applied to values of types it does not accept."""


class ExprEvalError(ExprError):
    """Evaluation failed for a reason other than types: bad index, division by zero, budget."""
