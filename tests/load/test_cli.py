"""``python -m pytest_rollout.load`` end to end, as a real process."""

from __future__ import annotations

import csv
import json
import signal
import sys
from pathlib import Path

import pytest

from pytest_rollout._proc import ManagedProcess
from pytest_rollout._wait import wait_for
from service.launcher import RunningService
from tests.load.load_servers import served_requests

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


def cli(tmp_path: Path, *args: str) -> ManagedProcess:
    return ManagedProcess(
        "load cli",
        [sys.executable, "-m", "pytest_rollout.load", *args],
        log_path=tmp_path / "cli.out",
    )


def run_cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    with cli(tmp_path, *args) as process:
        code = process.wait(timeout=60)
    return code, (tmp_path / "cli.out").read_text()


def test_json_summary_and_csv(service: RunningService, tmp_path: Path) -> None:
    csv_path = tmp_path / "traffic.csv"
    args = (service.url, "--rate", "200", "--duration", "1", "--json", "--csv", str(csv_path))
    code, out = run_cli(tmp_path, *args)
    assert code == 0, out
    summary = json.loads(out)
    assert summary["target_rate"] == 200
    assert summary["requests"] == 200
    assert summary["errors"] == 0
    assert summary["by_version"] == {"v-load": 200}
    assert summary["by_route"] == {"checkout": 20, "index": 180}
    assert isinstance(summary["achieved_rate"], float)
    assert isinstance(summary["lateness_p99_ms"], float)
    assert isinstance(summary["inconclusive"], bool)
    with csv_path.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 200


def test_human_summary_with_a_custom_mix_and_json_version(
    service: RunningService, tmp_path: Path
) -> None:
    args = (service.url, "--rate", "100", "--count", "20", "--mix", "GET /healthz=1")
    code, out = run_cli(tmp_path, *args, "--version-field", "version")
    assert code == 0, out
    assert "target 100 req/s" in out
    assert "versions   v-load=20" in out
    assert "status     2xx=20" in out


def test_first_interrupt_stops_early_and_still_prints_the_summary(
    service: RunningService, tmp_path: Path
) -> None:
    before = served_requests(service)
    with cli(tmp_path, service.url, "--rate", "100", "--duration", "60", "--json") as process:
        wait_for(
            lambda: served_requests(service) - before >= 20,
            what="the CLI's first 20 requests to reach the service",
            timeout=15,
        )
        process.signal(signal.SIGINT)
        code = process.wait(timeout=15)
    out = (tmp_path / "cli.out").read_text()
    assert code == 0, out
    summary = json.loads(out)
    assert 20 <= summary["requests"] < 60 * 100 / 2
    assert summary["requests"] == served_requests(service) - before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("http://127.0.0.1:1", "--rate", "abc", "--count", "1"), "argument --rate: 'abc' is not"),
        (("http://127.0.0.1:1", "--rate", "0", "--count", "1"), "must be a positive number"),
        (("http://127.0.0.1:1", "--rate", "10"), "give --duration, --count, or both"),
        (("http://127.0.0.1:1", "--rate", "10", "--count", "1.5"), "'1.5' is not a whole"),
        (("http://10.1.2.3:80", "--rate", "10", "--count", "1"), "not loopback"),
        (("http://127.0.0.1:1", "--rate", "1", "--count", "1", "--mix", "GET"), "METHOD PATH"),
        (("not-a-url", "--rate", "1", "--count", "1"), "expected http://HOST"),
    ],
)
def test_bad_arguments_give_one_error_line_not_a_traceback(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    code, out = run_cli(tmp_path, *args)
    assert code == 2, out
    assert "Traceback" not in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("python -m pytest_rollout.load: error:"), out
    assert message in last
