"""Compiling an expression once and running it against many environments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pytest_rollout.engine.expr.errors import ExprError, ExprEvalError, ExprSyntaxError
from pytest_rollout.engine.expr.evaluator import Evaluator
from pytest_rollout.engine.expr.nodes import Node
from pytest_rollout.engine.expr.parser import parse


@dataclass(frozen=True, slots=True)
class Program:
    """A parsed expression; ``run`` evaluates it against an environment of names."""

    source: str
    root: Node

    def run(self, env: Mapping[str, Any] | None = None) -> Any:
        """Evaluate against ``env``; raise an ExprError subclass, located in the source."""
        try:
            return Evaluator(env if env is not None else {}).value_of(self.root)
        except ExprError as exc:
            exc.locate(source=self.source)
            raise
        except RecursionError as exc:  # a backstop: parse-time depth limits should prevent it
            raise ExprEvalError("expression is nested too deeply", source=self.source) from exc


def compile_expression(source: str) -> Program:
    """Parse ``source`` once; raise ExprSyntaxError (or ExprNameError) if it is not valid."""
    if not isinstance(source, str):
        raise ExprSyntaxError(f"an expression must be a string, not {type(source).__name__}")
    return Program(source, parse(source))


_compile_cached = lru_cache(maxsize=256)(compile_expression)


def evaluate(source: str, env: Mapping[str, Any] | None = None) -> Any:
    """Compile (cached) and run ``source`` against ``env`` in one step."""
    program = _compile_cached(source) if isinstance(source, str) else compile_expression(source)
    return program.run(env)
