"""A safe evaluator for the expr language (github.com/expr-lang/expr), the language of Argo
Rollouts' AnalysisTemplate ``successCondition`` and ``failureCondition``.

Hand-written lexer and precedence-climbing parser to a typed tree, evaluated over an environment
with expr's runtime semantics; nothing is ever handed to Python's ``eval``. Followed:
expr-lang/expr ``parser/lexer/*.go``, ``parser/parser.go``, ``parser/operator/operator.go``,
``vm/runtime/*.go``, ``builtin/*.go``, ``docs/language-definition.md``; argoproj/argo-rollouts
``utils/evaluate/evaluate.go``.

    >>> compile_condition("len(result) > 0 && result[0] < 0.05").evaluate([0.01])
    True
    >>> evaluate("all(xs, # < 3)", {"xs": [1, 2]})
    True
"""

from pytest_rollout.engine.expr.argo import ARGO_NAMES, Condition, argo_env, compile_condition
from pytest_rollout.engine.expr.errors import (
    ExprError,
    ExprEvalError,
    ExprNameError,
    ExprSyntaxError,
    ExprTypeError,
)
from pytest_rollout.engine.expr.evaluator import Function
from pytest_rollout.engine.expr.program import Program, compile_expression, evaluate

__all__ = [
    "ARGO_NAMES",
    "Condition",
    "ExprError",
    "ExprEvalError",
    "ExprNameError",
    "ExprSyntaxError",
    "ExprTypeError",
    "Function",
    "Program",
    "argo_env",
    "compile_condition",
    "compile_expression",
    "evaluate",
]
