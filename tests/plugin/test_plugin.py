"""The plugin as a foreign project sees it: auto-loaded, marker and options registered, header."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


def test_plugin_autoloads_from_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--trace-config", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pytest_rollout.plugin*"])


def test_marker_is_registered_and_selects_experiments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rollout
        def test_experiment():
            pass

        def test_plain():
            pass
        """
    )
    markers = pytester.runpytest_subprocess("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.rollout(name=None): a rollout-safety experiment*"])
    selected = pytester.runpytest_subprocess("-m", "rollout", "--strict-markers")
    selected.assert_outcomes(passed=1, deselected=1)


def test_report_header_names_backend_and_tool_versions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--rollout-report", "evidence")
    result.stdout.re_match_lines(
        [
            r"rollout: pytest-rollout \S+, backend=local, report=\S*evidence, config=none, "
            r"endpoint-delay=1s, haproxy (\S+|not installed), "
            r"prometheus (\S+|not installed), python \S+"
        ]
    )


def test_options_are_in_their_own_help_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        [
            "pytest-rollout: rollout-safety experiments:",
            "*--rollout-backend=NAME*",
            "*--rollout-report=DIR*",
            "*--rollout-config=PATH*",
            "*--rollout-endpoint-delay=SECONDS*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rollout-backend", "docker"], "unknown backend 'docker'; allowed: local, kube"),
        (["--rollout-report", ""], "report directory must not be empty"),
        (["--rollout-config", "missing.toml"], "'missing.toml' is not a file"),
        (["--rollout-endpoint-delay", "soon"], "expected a number of seconds, got 'soon'"),
        (["--rollout-endpoint-delay", "-1"], "expected a finite number of seconds >= 0"),
    ],
)
def test_bad_option_values_get_one_clear_line(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert "Traceback" not in result.stderr.str()


def test_report_option_rejects_a_file(pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", evidence="not a directory")
    result = pytester.runpytest_subprocess("--rollout-report", "evidence.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'evidence.txt' exists and is not a directory*"])
