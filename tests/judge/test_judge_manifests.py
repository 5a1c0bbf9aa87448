"""The canary-judge manifests and image: the AnalysisTemplate's conditions read the judge's
real answers, the local backend runs the image against its own Prometheus, and the container
image's requirements cover what the service imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout.backends.local.commands import local_command
from pytest_rollout.backends.local.scrape import INTERVAL_ANNOTATION
from pytest_rollout.config import TargetConfig
from pytest_rollout.config_file import load_target_config
from pytest_rollout.engine.analysis.evaluate import evaluate_result
from pytest_rollout.engine.analysis.model import AnalysisTemplate, Metric, resolve_metrics
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.errors import ConfigError
from pytest_rollout.judge import JudgeConfig, Snapshot, VersionCounts, judge
from pytest_rollout.judge.__main__ import INTERVAL_ENV, SETTLE_ENV
from pytest_rollout.prom import duration_seconds

REPO = Path(__file__).resolve().parents[2]
IMAGE = "pytest-rollout/canary-judge:dev"


@pytest.fixture(scope="module")
def target() -> TargetConfig:
    return load_target_config([REPO])


@pytest.fixture(scope="module")
def metric(target: TargetConfig) -> Metric:
    manifests = target.load_manifests("canary-judge-sequential")
    template = AnalysisTemplate.from_manifest(manifests.get("AnalysisTemplate", "sequential-judge"))
    args = {"namespace": "team-a", "canary-hash": "6f8d9c", "stable-hash": "5b7c4d"}
    (resolved,) = resolve_metrics(template.metrics, args)
    return resolved


def test_the_template_asks_the_judge_through_its_service(metric: Metric) -> None:
    assert metric.count is None  # a background analysis: until the rollout completes
    assert getattr(metric.provider, "url", "") == (
        "http://canary-judge.team-a.svc.cluster.local/judge"
        "?namespace=team-a&canary-hash=6f8d9c&stable-hash=5b7c4d"
    )


def test_the_judge_looks_as_often_as_the_pods_it_judges_are_scraped(
    target: TargetConfig, metric: Metric
) -> None:
    """The analysis interval, the Rollout's scrape-interval annotation and the judge's
    JUDGE_INTERVAL_SECONDS are written in three files and must agree: a judge that compares
    intervals shorter than the scrape interval sees intervals without a scrape."""
    manifests = target.load_manifests("canary-judge-sequential")
    template = manifests.get("Rollout", "reference-service").body["spec"]["template"]
    scrape = duration_seconds(template["metadata"]["annotations"][INTERVAL_ANNOTATION])
    (container,) = manifests.get("Deployment", "canary-judge").body["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert float(env[INTERVAL_ENV]) == scrape == metric.interval == 0.25
    assert 0 < float(env[SETTLE_ENV]) < scrape


def _answer(canary_errors: int, canary_requests: int, config: JudgeConfig) -> dict[str, Any]:
    snapshots = [
        Snapshot(
            VersionCounts(canary_requests * t / 10, canary_errors * t / 10),
            VersionCounts(190 * t, 0),
        )
        for t in range(1, 11)
    ]
    body = json.dumps(judge(snapshots, config).as_json(), allow_nan=False)
    # As Argo's web provider decodes it: numbers are floats.
    answer: dict[str, Any] = json.loads(body, parse_int=float)
    return answer


@pytest.mark.parametrize(
    ("canary_errors", "canary_requests", "decision", "phase"),
    [
        (50, 100, "fail", AnalysisPhase.FAILED),
        (0, 100, "continue", AnalysisPhase.SUCCESSFUL),
        (0, 2000, "pass", AnalysisPhase.SUCCESSFUL),
    ],
)
def test_the_conditions_read_the_judge_s_answers(
    metric: Metric, canary_errors: int, canary_requests: int, decision: str, phase: AnalysisPhase
) -> None:
    answer = _answer(canary_errors, canary_requests, JudgeConfig())
    assert answer["decision"] == decision
    assert evaluate_result(answer, metric)[0] is phase


def test_an_unknown_decision_is_inconclusive(metric: Metric) -> None:
    assert evaluate_result({"decision": "maybe"}, metric)[0] is AnalysisPhase.INCONCLUSIVE


def test_locally_the_image_runs_the_package_against_the_local_prometheus(
    target: TargetConfig, tmp_path: Path
) -> None:
    command = local_command(
        target,
        IMAGE,
        host="127.0.5.6",
        port=8080,
        ports={"http": 8080},
        data_dir=tmp_path,
        container_env={},
        prometheus_url="http://127.0.0.1:9090",
    )
    assert command.argv == (
        sys.executable, "-m", "pytest_rollout.judge",
        "--host", "127.0.5.6", "--port", "8080", "--prometheus", "http://127.0.0.1:9090",
    )  # fmt: skip
    run = target.image(IMAGE)
    assert run.build is not None
    assert run.build.dockerfile == REPO / "pytest_rollout/judge/Dockerfile"
    with pytest.raises(ConfigError, match=r"cannot fill \{prometheus_url\}.*no Prometheus"):
        local_command(
            target,
            IMAGE,
            host="127.0.5.6",
            port=8080,
            ports={},
            data_dir=tmp_path,
            container_env={},
        )


def test_the_image_requirements_cover_what_the_service_imports() -> None:
    probe = (
        "import sys, importlib.metadata as md\n"
        "import pytest_rollout.judge.__main__\n"
        "names = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        "by_module = md.packages_distributions()\n"
        "print('\\n'.join(sorted({d for n in names for d in by_module.get(n, [])})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    imported = {name.lower() for name in result.stdout.split()} - {"pytest-rollout"}
    lines = (REPO / "pytest_rollout/judge/requirements.txt").read_text().splitlines()
    pinned = {line.split("==")[0].lower() for line in lines if "==" in line}
    # Direct imports must be pinned; the distributions they pull in come along with them.
    direct = {"aiohttp", "numpy", "prometheus-api-client", "requests", "tenacity", "urllib3"}
    assert direct <= imported
    assert direct == pinned
    assert "scipy" not in imported
