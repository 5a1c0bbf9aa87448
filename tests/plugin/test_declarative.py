"""Declared experiments are collected from the target config; mistakes in the user's own files
are one line, reported once; the config is found wherever the report goes."""

from __future__ import annotations

import pytest

from tests.plugin.shop import make_shop_project

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

TABLE = """
[tool.pytest-rollout.experiments.contained]
kind = "canary-containment"
manifests = "canary"
variant = "broken"
metric = "error-ratio"
"""


def test_each_table_is_a_rollout_marked_item(pytester: pytest.Pytester) -> None:
    make_shop_project(pytester)
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-m", "rollout")
    result.stdout.fnmatch_lines(
        [
            "pyproject.toml::probe",
            "pyproject.toml::contained",
            "pyproject.toml::orders-gate",
            "pyproject.toml::ships",
            "4/5 tests collected (1 deselected)*",
        ]
    )
    by_kind = pytester.runpytest_subprocess("--collect-only", "-q", "-k", "metric-gate")
    by_kind.stdout.fnmatch_lines(["pyproject.toml::orders-gate", "1/5 tests collected*"])


def test_a_config_outside_testpaths_is_still_collected(pytester: pytest.Pytester) -> None:
    make_shop_project(pytester)
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_unit.py").write_text("def test_unit():\n    pass\n")
    text = (pytester.path / "pyproject.toml").read_text()
    (pytester.path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n\n' + text
    )
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        ["tests/test_unit.py::test_unit", "pyproject.toml::probe", "*5 tests*"]
    )
    narrowed = pytester.runpytest_subprocess("--collect-only", "-q", "tests")
    narrowed.stdout.fnmatch_lines(["tests/test_unit.py::test_unit", "1 test collected*"])


def test_a_report_outside_the_project_keeps_the_config(pytester: pytest.Pytester) -> None:
    # Written with a space, pytest takes the value for a path and may move its rootdir there.
    make_shop_project(pytester)
    outside = pytester.path.parent / f"{pytester.path.name}-evidence"
    outside.mkdir()
    result = pytester.runpytest_subprocess(
        "--collect-only", "-q", "-m", "rollout", "--rollout-report", str(outside)
    )
    assert result.ret == 0, result.stdout.str()
    # Node ids are relative to the rootdir pytest chose; the items are the project's.
    result.stdout.fnmatch_lines(["*pyproject.toml::probe", "4 tests collected*"])
    header = pytester.runpytest_subprocess("--co", "--rollout-report", str(outside))
    header.stdout.fnmatch_lines([f"rollout: *config={pytester.path / 'pyproject.toml'}*"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('kind = "canary-containment"', 'kind = "canary"'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].kind: unknown kind "
            "'canary'; kinds: canary-containment, canary-judge, expand-contract, good-release, "
            "metric-gate, readiness-probe, smoke-gate, strategy-cost",
        ),
        (
            ('metric = "error-ratio"', 'metric = "error-ratio"\nmax_shrae = 0.1'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained]: unknown key "
            "'max_shrae'; allowed: kind, manifests, max_share, metric, rate, route, tail, "
            "timeout, variant, workload",
        ),
        (
            ('manifests = "canary"', 'manifests = "canaries"'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].manifests: no manifest "
            "set 'canaries'; sets: canary, plain, plain-no-probe",
        ),
        (
            ('variant = "broken"', 'variant = "brokn"'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].variant: no variant "
            "'brokn'; variants: broken, orders-broken, two, two-slow-boot",
        ),
        (
            ('metric = "error-ratio"', 'metric = "error-ratio"\nworkload = "shop-v2"'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].workload: 'shop-v2' is "
            "not in manifest set 'canary' (workloads: Rollout/shop)",
        ),
        (
            ('metric = "error-ratio"', 'metric = "error-ratio"\nroute = "shop"'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].route: 'shop' is not "
            "in manifest set 'canary' (HTTPRoutes: shop-route)",
        ),
        (
            ('metric = "error-ratio"', 'metric = "errors"'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].metric: no metric "
            "'errors' in the AnalysisTemplates of manifest set 'canary'; metrics: error-ratio, "
            "order-success",
        ),
        (
            ('metric = "error-ratio"', 'metric = "error-ratio"\nmax_share = 5'),
            "pyproject.toml: [tool.pytest-rollout.experiments.contained].max_share: expected a "
            "share of all requests in (0, 1], got 5",
        ),
    ],
    ids=["kind", "key", "manifests", "variant", "workload", "route", "metric", "max-share"],
)
def test_bad_config_is_a_one_line_collection_error(
    pytester: pytest.Pytester, change: tuple[str, str], message: str
) -> None:
    make_shop_project(pytester, experiments=TABLE.replace(*change))
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert message in result.stdout.lines, output
    assert "Traceback" not in output, output
    assert "pytest_rollout/" not in output, output


def test_a_broken_manifest_is_one_line_reported_once(pytester: pytest.Pytester) -> None:
    make_shop_project(pytester, experiments="")
    (pytester.path / "deploy" / "canary" / "rollout.yaml").write_text("kind: Rollout\nspec: {x\n")
    pytester.makepyfile(
        test_shop="""
        import pytest

        @pytest.mark.rollout
        def test_one(rollout):
            rollout.release("two", manifests="canary")

        @pytest.mark.rollout
        def test_two(rollout):
            rollout.release("two", manifests="canary")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    line = "deploy/canary/rollout.yaml:3: invalid YAML: expected ',' or '}', but got '<stream end>'"
    # The short summary repeats each failure's message, cut to the terminal's width: count the
    # failure sections only.
    failures = output.split("short test summary info")[0]
    assert failures.count(line) == 1, output
    result.stdout.fnmatch_lines(["the same configuration error as test_shop.py::test_one"])
    assert "Traceback" not in output, output
    assert "pytest_rollout/" not in output, output


def test_a_bug_in_a_hand_written_experiment_keeps_its_traceback(
    pytester: pytest.Pytester,
) -> None:
    make_shop_project(pytester, experiments="")
    pytester.makepyfile(
        test_shop="""
        def test_buggy(rollout_target):
            rollout_target.variant("two").nope
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AttributeError*nope*"])
