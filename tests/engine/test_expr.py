"""The condition language: expressions as Argo Rollouts users write them, expr's semantics,
error wording, resistance to hostile input, and agreement with an independent model."""

from __future__ import annotations

import itertools
import math
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout.engine.expr import (
    Condition,
    ExprError,
    ExprEvalError,
    ExprNameError,
    ExprSyntaxError,
    ExprTypeError,
    argo_env,
    compile_condition,
    compile_expression,
    evaluate,
)
from pytest_rollout.errors import RolloutError

NAN = math.nan
INF = math.inf

# -- conditions as they appear in AnalysisTemplates ----------------------------------------------

ARGO_CONDITIONS: list[tuple[str, Any, bool]] = [
    ("result[0] < 0.05", [0.01], True),
    ("result[0] < 0.05", [0.2], False),
    ("len(result) > 0 && result[0] >= 0.95", [0.99], True),
    ("len(result) > 0 && result[0] >= 0.95", [0.5], False),
    # An empty Prometheus vector: the guard short-circuits before the index can fail.
    ("len(result) > 0 && result[0] >= 0.95", [], False),
    ("len(result) == 0 || result[0] < 0.05", [], True),
    ("isNaN(result[0]) || result[0] < 1", [NAN], True),
    ("isNaN(result[0]) || result[0] < 1", [0.5], True),
    ("isNaN(result[0]) || result[0] < 1", [3.0], False),
    # NaN compares false with everything, true only with !=.
    ("result[0] < 1", [NAN], False),
    ("result[0] >= 1", [NAN], False),
    ("result[0] == result[0]", [NAN], False),
    ("result[0] != result[0]", [NAN], True),
    ("isInf(result[0])", [INF], True),
    ("isInf(result[0])", [1e308], False),
    ("all(result, # < 1000)", [1.0, 999.9], True),
    ("all(result, # < 1000)", [1.0, 1000.0], False),
    ("all(result, # < 1000)", [], True),
    ("all(result, {# < 1000})", [5.0], True),
    ("any(result, # > 0.5)", [0.1, 0.9], True),
    ("any(result, # > 0.5)", [], False),
    ("none(result, # > 0.5)", [0.1, 0.2], True),
    ("count(result, # > 0.5) <= 1", [0.9, 0.1, 0.7], False),
    ("len(filter(result, # > 0.5)) == 2", [0.9, 0.1, 0.7], True),
    ("sum(result) / len(result) < 0.5", [0.2, 0.4], True),
    ("result[-1] < 0.1", [0.5, 0.05], True),
    ("(result[0] - result[1]) / result[1] < 0.1", [1.05, 1.0], True),
    ("result[0] / 0 > 1", [1.0], True),
    ("0.5 in result", [0.25, 0.5], True),
    ("default(result, 0) < 5", None, True),
    ("default(result, 0) < 5", 7.0, False),
    ("isNil(result)", None, True),
    ("isNil(result)", [], False),
    # A Prometheus scalar, not a vector.
    ("result < 0.01 || result > 0.99", 0.5, False),
    ("result > 0 and result < 1", 0.5, True),
    ("not (result > 1)", 0.5, True),
    # Web provider results: JSON maps (jsonPath) and plain strings.
    ("result.ok == true", {"ok": True}, True),
    ("result.ok", {"ok": False}, False),
    ('result["ok"] == true', {"ok": True}, True),
    ("result.data.ready && result.data.count >= 3", {"data": {"ready": True, "count": 3.0}}, True),
    ("result.missing == nil", {"ok": True}, True),
    ('result == "ok"', "ok", True),
    ('result == "ok"', "degraded", False),
    ('result != "ok"', "degraded", True),
    ("asInt(result) == 200", "200", True),
    ("asFloat(result) > 0.5", "0.75", True),
    ("asInt(result) < 5", 3.9, True),
]


@pytest.mark.parametrize(("source", "result", "expected"), ARGO_CONDITIONS)
def test_argo_style_condition(source: str, result: Any, expected: bool) -> None:
    assert compile_condition(source).evaluate(result) is expected


def test_a_compiled_condition_is_reused_across_measurements() -> None:
    condition = compile_condition("len(result) > 0 && result[0] < 0.05")
    verdicts = [condition.evaluate(r) for r in ([0.01], [0.5], [], [0.04, 9.0])]
    assert verdicts == [True, False, False, True]
    assert condition.source == "len(result) > 0 && result[0] < 0.05"
    assert isinstance(condition, Condition)


# -- the language: precedence, associativity, literals, builtins --------------------------------

EXPRESSIONS: list[tuple[str, Any]] = [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 4 - 3", 3),
    ("2 * 3 % 4", 2),
    ("2 * (3 % 4)", 6),
    ("10 / 4 * 2", 5.0),
    ("2 ** 3 ** 2", 512.0),
    ("(2 ** 3) ** 2", 64.0),
    ("2 ^ 3", 8.0),
    ("-2 ** 2", -4.0),
    ("(-2) ** 2", 4.0),
    ("2 ** -1", 0.5),
    ("0 ** -1", INF),
    ("1 - -1", 2),
    ("--1", 1),
    ("- 1 + 2", 1),
    ("+3", 3),
    ("7 / 2", 3.5),
    ("6 / 3", 2.0),
    ("1 / 0", INF),
    ("-1 / 0", -INF),
    ("7 % 3", 1),
    ("-7 % 3", -1),
    ("7 % -3", 1),
    ("1 + 2.5", 3.5),
    ("9223372036854775807 + 1", -9223372036854775808),
    ("3000000000 * 4000000000", -6446744073709551616),
    ("1 + 2 == 3", True),
    ("1 < 2 < 3", True),
    ("3 > 2 > 1", True),
    ("1 < 3 < 2", False),
    # Comparisons chain (a < b == c is a < b && b == c), as in expr.
    ("1 < 2 == true", False),
    ("(1 < 2) == true", True),
    ("true || false && false", True),
    ("(true || false) && false", False),
    ("!true || true", True),
    ("!(true || true)", False),
    ("not true == false", True),
    ("true and not false", True),
    ("false or true", True),
    ("1 + 2 > 2 && 3 > 2", True),
    ("true ? 1 : 2 + 3", 1),
    ("false ? 1 : true ? 2 : 3", 2),
    ("true ?: false", True),
    ("1 + (nil ?? 2)", 3),
    ("nil ?? nil ?? 4", 4),
    ("0x1F", 31),
    ("0o17", 15),
    ("0b101", 5),
    ("1_000", 1000),
    ("1e-3", 0.001),
    (".5", 0.5),
    ("1.", 1.0),
    ("'it\\'s'", "it's"),
    ('"tab\\tnew\\nline"', "tab\tnew\nline"),
    ('"\\u00e9\\x41\\101"', "éAA"),
    ("`raw\\n`", "raw\\n"),
    ('"cr\\r"', "cr\r"),
    ('"raw\rcr"', "raw\ncr"),
    ("[1, 'a', nil, true, false]", [1, "a", None, True, False]),
    ("[1, 2,]", [1, 2]),
    ("{a: 1, 'b': 2, (\"c\"): 3, 4: 5}", {"a": 1, "b": 2, "c": 3, "4": 5}),
    ("1 // a comment", 1),
    ("/* a\ncomment */ 2", 2),
    ('"a" + "b"', "ab"),
    ('"abc" contains "b"', True),
    ('"abc" startsWith "a"', True),
    ('"abc" endsWith "c"', True),
    ('"v1.2" matches "^v[0-9]+"', True),
    ('"abc" not contains "z"', True),
    ('"a" not in ["b"]', True),
    ('"a" in ["a", "b"]', True),
    ("1 in [1.0]", True),
    ("'k' in {k: 1}", True),
    ("'z' in {k: 1}", False),
    ("1 in nil", False),
    ("[1, 2, 3][1:2]", [2]),
    ("[1, 2, 3][:-1]", [1, 2]),
    ("[1, 2, 3][5:]", []),
    ("[1, 2, 3][:]", [1, 2, 3]),
    ("'hello'[1:3]", "el"),
    ("1..3", [1, 2, 3]),
    ("3..1", []),
    ("let y = 2; y * y", 4),
    ("let y = 2; let z = y + 1; y * z", 6),
    ("len('héllo')", 6),
    ("len([1, 2])", 2),
    ("len({a: 1})", 1),
    ("abs(-2.5)", 2.5),
    ("abs(-3)", 3),
    ("ceil(1.2)", 2.0),
    ("floor(-1.2)", -2.0),
    ("round(2.5)", 3.0),
    ("round(-0.5)", -1.0),
    ("round(2)", 2.0),
    ("int(3.9)", 3),
    ("int(-3.9)", -3),
    ("int('12')", 12),
    ("float('1.5')", 1.5),
    ("float(2)", 2.0),
    ("max(1, 5, 3)", 5),
    ("max([1, 7.5], 2)", 7.5),
    ("min([4, 2.5])", 2.5),
    ("max([])", None),
    ("mean([1, 2, 3, 4])", 2.5),
    ("mean([])", 0.0),
    ("median([5, 1, 3, 2])", 2.5),
    ("median([5, 1, 3])", 3.0),
    ("first([])", None),
    ("first([7, 8])", 7),
    ("last([1, 2])", 2),
    ("keys({a: 1})", ["a"]),
    ("values({a: 1})", [1]),
    ("type(nil)", "nil"),
    ("type(1)", "int"),
    ("type(1.5)", "float"),
    ("type([1])", "array"),
    ("type({})", "map"),
    ("one([1, 2], # > 1)", True),
    ("one([2, 2], # > 1)", False),
    ("map(1..3, # * 10)", [10, 20, 30]),
    ("map([5, 6], #index)", [0, 1]),
    ("filter([{v: 1}, {v: 5}], .v > 2)", [{"v": 5}]),
    ("filter([{v: 1}, {v: 5}], #.v > 2)", [{"v": 5}]),
    ("find([1, 2, 3], # > 1)", 2),
    ("find([1, 2, 3], # > 5)", None),
    ("findIndex([1, 2, 3], # > 5)", -1),
    ("findLast([1, 2, 3], # < 3)", 2),
    ("findLastIndex([1, 2, 3], # < 3)", 1),
    ("count([true, false, true])", 2),
    ("sum([1, 2, 3])", 6),
    ("sum([1, 2], # * 0.5)", 1.5),
    ("sum([])", 0),
    ("all([[1, 2], [3]], all(#, # > 0))", True),
    ("map([[1, 2], [3]], map(#, # + 1))", [[2, 3], [4]]),
    ("[1, 2] | map(# * 2) | sum()", 6),
    ("[3, 4] | len()", 2),
    ("1 == 1.0", True),
    ("1 == true", False),
    ("'a' == 1", False),
    ("nil == nil", True),
    ("nil == false", False),
    ("[1, 2] == [1, 2.0]", True),
    ("[1, 2] == [1]", False),
    ("{a: [1]} == {a: [1]}", True),
    ("{a: 1} == {b: 1}", False),
]


@pytest.mark.parametrize(("source", "expected"), EXPRESSIONS)
def test_expression(source: str, expected: Any) -> None:
    assert _same(evaluate(source), expected)


def test_nan_arithmetic() -> None:
    assert math.isnan(evaluate("0 / 0"))
    assert math.isnan(evaluate("x - x", {"x": INF}))


def test_environment_values_and_optional_chaining() -> None:
    env = {"m": {"k": 1, "inner": None}, "n": None, "xs": (1, 2, 3)}
    assert evaluate('m["k"]', env) == 1
    assert evaluate("m.missing", env) is None
    assert evaluate("m.missing ?? 'fallback'", env) == "fallback"
    assert evaluate("n?.y", env) is None
    assert evaluate("n?.y.z", env) is None
    assert evaluate("m.inner?.z", env) is None
    assert evaluate("n?.[0]", env) is None
    assert evaluate("xs[1] + len(xs)", env) == 5
    assert evaluate("m.keys", env) is None  # a map key, never a Python attribute


def test_environment_functions_are_called_with_their_arguments() -> None:
    assert evaluate("f(2) + 1", {"f": lambda x: x * 10}) == 21
    assert evaluate("m.f(3)", {"m": {"f": lambda x: -x}}) == -3


def test_short_circuit_skips_what_would_fail() -> None:
    env: dict[str, Any] = {"xs": [], "n": None}
    assert evaluate("false && xs[5] > 1", env) is False
    assert evaluate("true || xs[5] > 1", env) is True
    assert evaluate("n == nil || n.x > 1", env) is True
    assert evaluate("true ? 1 : xs[5]", env) == 1
    assert evaluate("1 ?? xs[5]", env) == 1
    assert evaluate("false && undefined_name", env) is False
    # all/any stop at the first element that decides.
    assert evaluate("all([1, 'a'], # > 5)", env) is False
    assert evaluate("any([9, 'a'], # > 5)", env) is True


def test_argo_binds_isnil_and_default_to_the_whole_result() -> None:
    # As in Argo Rollouts: the argument is ignored, the measurement's value is what counts.
    assert compile_condition("isNil(1)").evaluate(None) is True
    assert compile_condition("isNil(nil)").evaluate([0.5]) is False
    with pytest.raises(ExprTypeError, match=r"invalid operation: \[\]interface \{\} < int"):
        compile_condition("default(result[0], 0) < 1").evaluate([5.0])


def test_python_is_never_reached() -> None:
    class Secret:
        token = "hunter2"

    with pytest.raises(ExprNameError, match="unknown name __import__"):
        evaluate('__import__("os").system("true")')
    with pytest.raises(ExprTypeError, match="cannot fetch token from Secret"):
        evaluate("s.token", {"s": Secret()})
    with pytest.raises(ExprTypeError, match="array elements can only be selected"):
        evaluate("xs.__class__", {"xs": [1]})


# -- errors: typed, worded like expr, located ---------------------------------------------------

ERRORS: list[tuple[str, Any, type[ExprError], str]] = [
    ("1 +", None, ExprSyntaxError, "unexpected token EOF"),
    ("1 + )", None, ExprSyntaxError, 'unexpected token Bracket(")")'),
    ("(1", None, ExprSyntaxError, "unexpected token EOF"),
    ("1 2", None, ExprSyntaxError, 'unexpected token Number("2")'),
    ("a b", None, ExprSyntaxError, 'unexpected token Identifier("b")'),
    ("1 not 2", None, ExprSyntaxError, 'unexpected token Number("2")'),
    ("x.", None, ExprSyntaxError, "expected name"),
    ("'abc", None, ExprSyntaxError, "literal not terminated"),
    ('"a\\qb"', None, ExprSyntaxError, "invalid char escape"),
    ('"\\777"', None, ExprSyntaxError, "unable to unescape string"),
    ("@", None, ExprSyntaxError, "unrecognized character: U+0040 '@'"),
    ("12abc", None, ExprSyntaxError, 'bad number syntax: "12a"'),
    ("/* x", None, ExprSyntaxError, "unclosed comment"),
    (
        "99999999999999999999",
        None,
        ExprSyntaxError,
        'invalid integer literal: strconv.ParseInt: parsing "99999999999999999999":'
        " value out of range",
    ),
    (
        "1e999",
        None,
        ExprSyntaxError,
        'invalid float literal: strconv.ParseFloat: parsing "1e999": value out of range',
    ),
    (
        "0x",
        None,
        ExprSyntaxError,
        'invalid hex literal: strconv.ParseInt: parsing "0x": invalid syntax',
    ),
    ("#", None, ExprSyntaxError, "cannot use pointer accessor outside predicate"),
    (".x", None, ExprSyntaxError, "cannot use pointer accessor outside predicate"),
    ("map([1], #acc)", None, ExprSyntaxError, "unknown pointer #acc"),
    ("all([1])", None, ExprSyntaxError, "expected at least 2 arguments"),
    (
        "nil ?? 1 + 1",
        None,
        ExprSyntaxError,
        "Operator (+) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.",
    ),
    ("split('a', ',')", None, ExprNameError, "builtin split is not supported by this evaluator"),
    (
        "reduce([1], #acc + #)",
        None,
        ExprNameError,
        "builtin reduce is not supported by this evaluator",
    ),
    ("foo > 1", None, ExprNameError, "unknown name foo"),
    ("foo(1)", None, ExprNameError, "unknown name foo"),
    ("result[3]", [1.0], ExprEvalError, "index out of range: 3 (array length is 1)"),
    ("result[-3]", [1.0], ExprEvalError, "index out of range: -2 (array length is 1)"),
    (
        "result['a']",
        [1.0],
        ExprTypeError,
        "array elements can only be selected using an integer (got string)",
    ),
    (
        "result[0.0]",
        [1.0],
        ExprTypeError,
        "array elements can only be selected using an integer (got float64)",
    ),
    ("result.x", 1.0, ExprTypeError, "cannot fetch x from float64"),
    ("result.x", None, ExprTypeError, "cannot fetch x from nil"),
    ("result[0]", "abc", ExprTypeError, "cannot fetch 0 from string"),
    ("'a' < 1", None, ExprTypeError, "invalid operation: string < int"),
    ("result > 0.5", "high", ExprTypeError, "invalid operation: string > float64"),
    ("'a' - 'b'", None, ExprTypeError, "invalid operation: string - string"),
    ("nil + 1", None, ExprTypeError, "invalid operation: nil + int"),
    ("1.5 % 2", None, ExprTypeError, "invalid operation: float64 % int"),
    ("5 % 0", None, ExprEvalError, "integer divide by zero"),
    ("!1", None, ExprTypeError, "invalid operation: ! (mismatched type int)"),
    ("-'a'", None, ExprTypeError, "invalid operation: - (mismatched type string)"),
    ("1 && true", None, ExprTypeError, "non-bool expression (type int) used as operand of &&"),
    ("true and 1", None, ExprTypeError, "non-bool expression (type int) used as operand of and"),
    ("1 ? 2 : 3", None, ExprTypeError, "non-bool expression (type int) used as condition"),
    ("all(1, # > 0)", None, ExprTypeError, "builtin all takes only array (got int)"),
    ("all(result, # > 0)", None, ExprTypeError, "builtin all takes only array (got nil)"),
    ("all([1], # + 1)", None, ExprTypeError, "predicate should return boolean (got int)"),
    ("count([1])", None, ExprTypeError, "predicate should return boolean (got int)"),
    ("sum(['a'])", None, ExprTypeError, "invalid argument for sum (type string)"),
    ("len(1)", None, ExprTypeError, "invalid argument for len (type int)"),
    ("len()", None, ExprTypeError, "invalid number of arguments (expected 1, got 0)"),
    ("abs('x')", None, ExprTypeError, "invalid argument for abs (type string)"),
    ("max(1, 'a')", None, ExprTypeError, "invalid argument for max (type string)"),
    ("first(1)", None, ExprTypeError, "cannot get first element from int"),
    ("int('x')", None, ExprEvalError, "invalid operation: int(x)"),
    ("int(1e30)", None, ExprEvalError, "int(): 1e+30 does not fit in int64"),
    ("1 in 2", None, ExprTypeError, 'operator "in" not defined on int'),
    ("1.5..3", None, ExprTypeError, "invalid operation: .. (mismatched types float64 and int)"),
    ("1..2000000", None, ExprEvalError, "memory budget exceeded"),
    ("map(1..2000, map(1..2000, #))", None, ExprEvalError, "memory budget exceeded"),
    ("{(1): 2}", None, ExprTypeError, "map keys must be strings (got int)"),
    (
        "isNaN('x')",
        None,
        ExprTypeError,
        "cannot use string as argument (type float64) to call isNaN",
    ),
    ("isNaN()", None, ExprTypeError, "not enough arguments to call isNaN"),
    ("isNaN(1, 2)", None, ExprTypeError, "too many arguments to call isNaN"),
    ("default(1)", None, ExprTypeError, "not enough arguments to call default"),
    ("asInt('1.5')", None, ExprEvalError, 'strconv.ParseInt: parsing "1.5": invalid syntax'),
    (
        "asInt('99999999999999999999')",
        None,
        ExprEvalError,
        'strconv.ParseInt: parsing "99999999999999999999": value out of range',
    ),
    ("asFloat('abc')", None, ExprEvalError, 'strconv.ParseFloat: parsing "abc": invalid syntax'),
    ("asFloat(' 1')", None, ExprEvalError, 'strconv.ParseFloat: parsing " 1": invalid syntax'),
    ("asInt(true)", None, ExprTypeError, "asInt() not supported on bool true"),
    ("asInt(nil)", None, ExprTypeError, "asInt() not supported on <nil> <nil>"),
    ("asFloat([1, 2])", None, ExprTypeError, "asFloat() not supported on []interface {} [1 2]"),
    ("asInt(result)", NAN, ExprEvalError, "asInt(): nan does not fit in int64"),
    ("result(1)", 1.0, ExprTypeError, "result is not a function (type float64)"),
]


@pytest.mark.parametrize(("source", "result", "error", "message"), ERRORS)
def test_error(source: str, result: Any, error: type[ExprError], message: str) -> None:
    with pytest.raises(error) as info:
        evaluate(source, argo_env(result))
    assert info.value.message == message
    assert isinstance(info.value, RolloutError)


def test_regex_errors_are_evaluation_errors() -> None:
    for pattern in ("(", "a{99999999999}"):
        with pytest.raises(ExprEvalError, match="error parsing regexp"):
            evaluate(f"'a' matches '{pattern}'")


def test_syntax_error_shows_position_and_caret_like_expr() -> None:
    with pytest.raises(ExprSyntaxError) as info:
        compile_expression("1 + )")
    assert (info.value.line, info.value.column) == (1, 5)
    assert str(info.value) == 'unexpected token Bracket(")") (1:5)\n | 1 + )\n | ....^'


def test_runtime_error_points_at_the_failing_operation_on_its_line() -> None:
    condition = compile_condition("len(result) > 0 &&\n  result[3] < 1")
    with pytest.raises(ExprEvalError) as info:
        condition.evaluate([0.5])
    error = info.value
    assert (error.line, error.column) == (2, 9)
    assert str(error) == (
        "index out of range: 3 (array length is 1) (2:9)\n |   result[3] < 1\n | ........^"
    )


def test_condition_must_yield_a_bool() -> None:
    for source, result, shown in [
        ("result[0]", [0.5], "float64"),
        ("result", None, "<nil>"),
        ("result", [1], "[]interface {}"),
        ("len(result)", [1], "int"),
    ]:
        with pytest.raises(ExprTypeError) as info:
            compile_condition(source).evaluate(result)
        assert info.value.message == f"expected bool, but got {shown}"


def test_condition_rejects_unknown_names_when_compiled() -> None:
    with pytest.raises(ExprNameError) as info:
        compile_condition("result[0] < limit")
    assert info.value.message == "unknown name limit"
    assert info.value.column == 13
    # A let-bound name is known.
    assert compile_condition("let limit = 1; result[0] < limit").evaluate([0.5]) is True


def test_condition_source_must_be_text() -> None:
    with pytest.raises(ExprSyntaxError, match="unexpected token EOF"):
        compile_condition("")
    with pytest.raises(ExprSyntaxError, match="must be a string, not int"):
        compile_condition(5)  # type: ignore[arg-type]


def test_errors_raised_by_environment_functions_are_wrapped() -> None:
    def broken() -> float:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(ExprEvalError) as info:
        evaluate("f() > 1", {"f": broken})
    assert info.value.message == "f: ZeroDivisionError: division by zero"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


# -- hostile input ------------------------------------------------------------------------------

DEEP_INPUTS = [
    "(" * 5000 + "1" + ")" * 5000,
    "-" * 5000 + "1",
    "!" * 5000 + "true",
    "not " * 3000 + "true",
    "1" + " + 1" * 5000,
    "2" + " ** 2" * 5000,
    "1" + " < 1" * 5000,
    "true" + " && true" * 5000,
    "[" * 5000 + "]" * 5000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "result" + ".a" * 5000,
    "result" + "[0]" * 5000,
    "len(" * 3000 + "1" + ")" * 3000,
    "all(result, " * 1000 + "true" + ")" * 1000,
    "let x = 1; " * 3000 + "x",
    "true ? " * 3000 + "1" + " : 2" * 3000,
    "nil ?? " * 5000 + "1",
]


@pytest.mark.parametrize("source", DEEP_INPUTS, ids=lambda s: s[:12])
def test_deep_nesting_is_a_clear_syntax_error(source: str) -> None:
    with pytest.raises(ExprSyntaxError, match="nested too deeply"):
        compile_expression(source)


def test_moderate_nesting_is_fine() -> None:
    assert evaluate("(" * 60 + "1" + ")" * 60) == 1
    assert evaluate("1" + " + 1" * 140) == 141
    assert evaluate("-" * 60 + "1") == 1


def _doubling(first: str, double: str, tail: str) -> str:
    """``let a = first; let b = double(a); ... let z = double(y); tail``: 25 doublings."""
    steps = "".join(
        f"let {new} = {double.format(old)}; "
        for old, new in itertools.pairwise(string.ascii_lowercase)
    )
    return f"let a = {first}; {steps}{tail}"


def test_doubling_strings_hits_the_budget() -> None:
    with pytest.raises(ExprEvalError, match="memory budget exceeded"):
        evaluate(_doubling("'xxxxxxxxxxxxxxxx'", "{0} + {0}", "len(z)"))


@pytest.mark.slow
def test_comparing_shared_nested_arrays_hits_the_budget() -> None:
    with pytest.raises(ExprEvalError, match="memory budget exceeded"):
        evaluate(_doubling("[1, 1]", "[{0}, {0}]", "z == z"))


VOCABULARY = [
    "result",
    "x",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "?",
    "??",
    "?.",
    ".",
    "..",
    "#",
    "#index",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "^",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "not",
    "and",
    "or",
    "in",
    "not in",
    "matches",
    "contains",
    "startsWith",
    "let",
    "=",
    ";",
    "|",
    "0",
    "1",
    "2.5",
    "1e-3",
    "0x1F",
    "9223372036854775807",
    "'a'",
    '"b"',
    "`c`",
    "'('",
    "true",
    "false",
    "nil",
    "len",
    "all",
    "any",
    "none",
    "one",
    "filter",
    "map",
    "count",
    "sum",
    "find",
    "abs",
    "int",
    "float",
    "max",
    "min",
    "mean",
    "median",
    "first",
    "type",
    "isNaN",
    "isInf",
    "isNil",
    "default",
    "asInt",
    "asFloat",
    "split",
    "1..3",
    "@",
    "\\",
    "'",
    '"',
    "//",
    "/*",
    "\n",
]
RESULTS = st.sampled_from(
    [None, [], [0.5, NAN], [1.0, 2.0, 3.0], 1.0, INF, "ok", "12", {"ok": True, "n": [1, 2]}]
)
ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(VOCABULARY), max_size=30).map(" ".join),
    st.lists(st.sampled_from(VOCABULARY), max_size=30).map("".join),
)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=ANY_TEXT, result=RESULTS)
def test_any_text_yields_a_value_or_a_typed_error(source: str, result: Any) -> None:
    env = {**argo_env(result), "x": [1, 2]}
    value = _value_or_error(lambda: evaluate(source, env))
    if isinstance(value, ExprError):
        assert value.message, "an error must say what went wrong"
    verdict = _value_or_error(lambda: compile_condition(source).evaluate(result))
    assert isinstance(verdict, bool | ExprError)


def _value_or_error(run: Callable[[], Any]) -> Any:
    """What ``run`` returns, or the expression error it raises; anything else propagates."""
    try:
        return run()
    except ExprError as exc:
        return exc


# -- agreement with an independent model of expr's integer and float arithmetic -----------------

INT64 = 2**64


@dataclass(frozen=True)
class Lit:
    value: int | bool


@dataclass(frozen=True)
class Neg:
    operand: Tree


@dataclass(frozen=True)
class Not:
    operand: Tree
    spelling: str


@dataclass(frozen=True)
class Bin:
    op: str
    left: Tree
    right: Tree


Tree = Lit | Neg | Not | Bin

# Operator -> (precedence, right-associative), from expr's language definition.
PRECEDENCE = {
    "||": (10, False),
    "or": (10, False),
    "&&": (15, False),
    "and": (15, False),
    "==": (20, False),
    "!=": (20, False),
    "<": (20, False),
    "<=": (20, False),
    ">": (20, False),
    ">=": (20, False),
    "+": (30, False),
    "-": (30, False),
    "*": (60, False),
    "/": (60, False),
    "%": (60, False),
    "**": (100, True),
    "^": (100, True),
}
ATOM = 1000


def render(tree: Tree) -> tuple[str, int]:
    """Source text with only the parentheses the precedence rules need, and its binding."""
    if isinstance(tree, Lit):
        return (str(tree.value).lower() if isinstance(tree.value, bool) else str(tree.value)), ATOM
    if isinstance(tree, Neg | Not):
        text, binding = render(tree.operand)
        level = 90 if isinstance(tree, Neg) else 50
        if binding < level:
            text = f"({text})"
        return ("-" if isinstance(tree, Neg) else tree.spelling) + text, level
    level, right_assoc = PRECEDENCE[tree.op]
    left, left_binding = render(tree.left)
    right, right_binding = render(tree.right)
    comparison = level == 20
    if left_binding < level or (left_binding == level and (right_assoc or comparison)):
        left = f"({left})"
    if right_binding < level or (right_binding == level and (not right_assoc or comparison)):
        right = f"({right})"
    return f"{left} {tree.op} {right}", level


class ModelError(Exception):
    pass


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _wrap(value: int) -> int:
    value %= INT64
    return value - INT64 if value >= 2**63 else value


def model(tree: Tree) -> Any:
    """What expr computes, written independently of the evaluator under test."""
    if isinstance(tree, Lit):
        return tree.value
    if isinstance(tree, Neg):
        value = model(tree.operand)
        if not _number(value):
            raise ModelError
        return _wrap(-value) if isinstance(value, int) else -value
    if isinstance(tree, Not):
        value = model(tree.operand)
        if not isinstance(value, bool):
            raise ModelError
        return not value
    if tree.op in ("&&", "and", "||", "or"):
        left = model(tree.left)
        if not isinstance(left, bool):
            raise ModelError
        if left == (tree.op in ("||", "or")):
            return left
        right = model(tree.right)
        if not isinstance(right, bool):
            raise ModelError
        return right
    left, right = model(tree.left), model(tree.right)
    if tree.op in ("==", "!="):
        if _number(left) and _number(right):
            same = float(left) == float(right) if type(left) is not type(right) else left == right
        else:
            same = type(left) is type(right) and left == right
        return same if tree.op == "==" else not same
    if not (_number(left) and _number(right)):
        raise ModelError
    mixed = isinstance(left, float) or isinstance(right, float)
    a, b = (float(left), float(right)) if mixed else (left, right)
    if tree.op in ("<", "<=", ">", ">="):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[tree.op]
    if tree.op in ("+", "-", "*"):
        if mixed:
            return {"+": a + b, "-": a - b, "*": a * b}[tree.op]
        return _wrap({"+": left + right, "-": left - right, "*": left * right}[tree.op])
    if tree.op == "/":
        a, b = float(left), float(right)
        if b == 0:
            if a == 0 or math.isnan(a):
                return math.nan
            return math.copysign(math.inf, a) * math.copysign(1.0, b)
        return a / b
    if tree.op == "%":
        if mixed:
            raise ModelError
        if b == 0:
            raise ModelError
        quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return _wrap(a - b * quotient)
    # ** only ever joins small integer leaves, where float power is exact.
    base, exponent = float(left), float(right)
    if base == 0 and exponent < 0:
        # Go's math.Pow: Pow(±0, y) is ±Inf for an odd integer y < 0, +Inf for other y < 0.
        return math.copysign(math.inf, base) if exponent % 2 == 1 else math.inf
    return base**exponent


ARITHMETIC = ["+", "-", "*", "/", "%"]
ORDERING = ["==", "!=", "<", "<=", ">", ">="]
LOGICAL = ["&&", "and", "||", "or"]
NOT_SPELLINGS = st.sampled_from(["!", "not "])
POWER_SPELLINGS = st.sampled_from(["**", "^"])

small_ints = st.integers(min_value=0, max_value=20)
int_leaves = st.one_of(
    small_ints.map(Lit),
    small_ints.map(Lit),
    st.integers(min_value=0, max_value=2**63 - 1).map(Lit),
)
# Powers stay small (at most 9 ** 4 or 4 ** 4) so float results are exact, yet they nest enough
# to check that ** is right-associative and binds tighter than a leading minus.
digits = st.integers(0, 9).map(Lit)
small_power = st.builds(
    Bin, POWER_SPELLINGS, st.integers(0, 2).map(Lit), st.integers(0, 2).map(Lit)
)
powers = st.builds(
    Bin,
    POWER_SPELLINGS,
    st.one_of(digits, digits.map(Neg), small_power, small_power.map(Neg)),
    st.one_of(
        st.integers(0, 3).map(Lit), st.integers(0, 3).map(lambda n: Neg(Lit(n))), small_power
    ),
)
numbers = st.recursive(
    st.one_of(int_leaves, powers),
    lambda children: st.one_of(
        st.builds(Neg, children), st.builds(Bin, st.sampled_from(ARITHMETIC), children, children)
    ),
    max_leaves=8,
)
booleans = st.recursive(
    st.one_of(st.booleans().map(Lit), st.builds(Bin, st.sampled_from(ORDERING), numbers, numbers)),
    lambda children: st.one_of(
        st.builds(Not, children, NOT_SPELLINGS),
        st.builds(Bin, st.sampled_from([*LOGICAL, "==", "!="]), children, children),
    ),
    max_leaves=6,
)
# Anything goes: ill-typed mixtures must fail with a typed error exactly where the model does.
untyped = st.recursive(
    st.one_of(int_leaves, st.booleans().map(Lit), powers),
    lambda children: st.one_of(
        st.builds(Neg, children),
        st.builds(Not, children, NOT_SPELLINGS),
        st.builds(Bin, st.sampled_from(ARITHMETIC + ORDERING + LOGICAL), children, children),
    ),
    max_leaves=10,
)


def _pairs(ops: list[str], leaf: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    """Two operators sharing an operand, ``a op1 b op2 c``: every pair of precedences."""
    return st.builds(
        lambda outer, inner, a, b, c, nest_left: (
            Bin(outer, Bin(inner, a, b), c) if nest_left else Bin(outer, a, Bin(inner, b, c))
        ),
        st.sampled_from(ops),
        st.sampled_from(ops),
        leaf,
        leaf,
        leaf,
        st.booleans(),
    )


trees = st.one_of(
    numbers,
    booleans,
    untyped,
    _pairs(ARITHMETIC, st.one_of(small_ints.map(Lit), small_ints.map(lambda n: Neg(Lit(n))))),
    _pairs(
        LOGICAL,
        st.one_of(st.booleans().map(Lit), st.builds(Not, st.booleans().map(Lit), NOT_SPELLINGS)),
    ),
)


def _same(actual: Any, expected: Any) -> bool:
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        return actual == expected or (math.isnan(actual) and math.isnan(expected))
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(_same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            _same(actual[k], expected[k]) for k in expected
        )
    return bool(actual == expected)


@pytest.mark.slow
@settings(max_examples=800, deadline=None)
@given(tree=trees)
def test_arithmetic_and_logic_agree_with_an_independent_model(tree: Tree) -> None:
    source, _ = render(tree)
    try:
        expected = model(tree)
    except ModelError:
        with pytest.raises((ExprTypeError, ExprEvalError)):
            evaluate(source)
        return
    actual = evaluate(source)
    assert _same(actual, expected), f"{source!r}: evaluator {actual!r}, model {expected!r}"


def test_the_model_renderer_keeps_needed_parentheses() -> None:
    tree = Bin("**", Neg(Lit(2)), Lit(2))
    assert render(tree)[0] == "(-2) ** 2"
    assert render(Neg(Bin("**", Lit(2), Lit(2))))[0] == "-2 ** 2"
    assert render(Bin("-", Lit(1), Bin("-", Lit(2), Lit(3))))[0] == "1 - (2 - 3)"
    assert render(Bin("<", Bin("<", Lit(1), Lit(2)), Lit(True)))[0] == "(1 < 2) < true"


# -- speed --------------------------------------------------------------------------------------


def test_typical_conditions_compile_and_evaluate_well_under_a_millisecond() -> None:
    cases = [
        ("result[0] < 0.05", [0.01]),
        ("len(result) > 0 && result[0] >= 0.95", [0.99]),
        ("isNaN(result[0]) || result[0] < 1", [0.5]),
        ("all(result, # < 1000)", [1.0, 2.0, 3.0, 4.0, 5.0]),
        ("default(result, 0) < 5", None),
        ("result.ok == true", {"ok": True}),
    ]
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        for source, result in cases:
            compile_condition(source).evaluate(result)
    per_condition = (time.perf_counter() - started) / (rounds * len(cases))
    assert per_condition < 1e-3, f"{per_condition * 1e6:.0f} µs per compile+evaluate"
