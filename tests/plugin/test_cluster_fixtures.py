"""The cluster fixtures stop everything they start — on pass, failure and Ctrl-C — and give each
xdist worker a cluster of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.plugin.test_foreign_service import make_greeter_project

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

DEPLOY = """
def deploy(namespace, target):
    namespace.apply(target.load_manifests())
    namespace.wait_rolled_out("greeter", timeout=30)
    return namespace.route_url("greeter")
"""


def _processes_under(root: Path) -> list[str]:
    """Live processes whose command line or working directory is inside ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(root) in cmdline or cwd.startswith(str(root))):
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [
        ("pass", {"passed": 1}),
        ("assert False, 'deliberate failure'", {"failed": 1}),
        ("raise KeyboardInterrupt", None),
    ],
    ids=["pass", "failure", "ctrl-c"],
)
def test_nothing_outlives_the_run(
    pytester: pytest.Pytester, ending: str, outcome: dict[str, int] | None
) -> None:
    make_greeter_project(
        pytester,
        DEPLOY
        + f"""

def test_deploys(rollout_namespace, rollout_target):
    url = deploy(rollout_namespace, rollout_target)
    assert url.startswith("http://127.")
    {ending}
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--rollout-report", "report")
    if outcome is None:
        assert result.ret == pytest.ExitCode.INTERRUPTED
    else:
        result.assert_outcomes(**outcome)
    leftovers = _processes_under(pytester.path)
    assert not leftovers, "processes left behind:\n" + "\n".join(leftovers)
    if outcome == {"failed": 1}:
        captured = list((pytester.path / "report" / "_namespaces").iterdir())
        assert len(captured) == 1, "a failed test's namespace is captured before deletion"
        assert "Scaled up replica set greeter-" in (captured[0] / "events.log").read_text()


def test_each_xdist_worker_runs_its_own_cluster(pytester: pytest.Pytester) -> None:
    make_greeter_project(
        pytester,
        DEPLOY
        + """
import os

import httpx
from pytest_rollout import wait_serving
import pytest


@pytest.mark.parametrize("n", range(4))
def test_deploys(rollout_namespace, rollout_target, n):
    url = deploy(rollout_namespace, rollout_target)
    wait_serving(url, rollout_target.serving)
    assert httpx.get(url + "/").status_code == 200
    print("worker", os.environ["PYTEST_XDIST_WORKER"], "url", url)
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-n", "2", "-s")
    result.assert_outcomes(passed=4)
    assert not _processes_under(pytester.path)
