"""Building the HTML report from a report directory.

Rendering tests run on synthetic sample directories (``sample_report.py``) in the experiments'
format; the experiments' own data is not needed to test how it is drawn.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pytest_rollout.report.__main__ import main
from pytest_rollout.report.build import build_report, render_experiment
from pytest_rollout.report.markdown import index_markdown
from pytest_rollout.report.model import read_session, read_summary
from tests.report.sample_report import (
    RELEASED_AT,
    Traffic,
    bad_canary,
    full_report,
    write_summary,
    write_traffic,
)

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

MIN_WIDTH, MIN_HEIGHT = 1000, 500
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


def test_every_experiment_gets_a_page_and_a_timeline(tmp_path: Path) -> None:
    report = full_report(tmp_path / "report")
    result = build_report(report)

    assert not result.problems
    assert result.experiments == 4
    assert sorted(r.name for r in result.rendered) == [
        "bad-canary",
        "readiness-probe",
        "smoke-gate",
        "strategy-cost",
    ]
    for rendered in result.rendered:
        with Image.open(rendered.timeline) as image:
            assert image.size == rendered.size
            assert image.width >= MIN_WIDTH, rendered
            assert image.height >= MIN_HEIGHT, rendered
        page = rendered.page.read_text()
        assert "<script" not in page
        assert not EXTERNAL.search(page), f"{rendered.page} refers outside the report"
        assert 'src="data:image/png;base64,' in page
        print(f"{rendered.name}: {rendered.size[0]}x{rendered.size[1]} px, {rendered.seconds:.2f}s")

    index = result.index.read_text()
    for name in ("bad-canary", "readiness-probe", "smoke-gate", "strategy-cost"):
        assert f'<a href="{name}/index.html">{name}</a>' in index
    assert "bad share 3.1% &lt;= 5% (90 of 2,877 requests)" in index
    assert "haproxy 2.6.12" in index, "the session header"
    assert "pytest -m rollout --rollout-report rollout-report" in index


def test_experiment_page_shows_analysis_events_and_what_a_bare_weight_event_changed(
    tmp_path: Path,
) -> None:
    page = render_experiment(bad_canary(tmp_path)).page.read_text()
    assert '<span class="verdict passed">passed</span>' in page
    # Argo's text as it is, beside the change the status samples saw.
    assert (
        "<td><code>Traffic weight updated </code></td>"
        "<td>canary hash 5d8c7b9f4 → 6f7c9d8b5</td>" in page
    )
    assert "<td>weight 0 → 5</td>" in page
    assert "success: result[0] &lt;= 0.05" in page
    assert '<td class="num">0.4712</td>' in page
    assert "+0.0s to +15.2s" in page, "the blast-radius window"
    assert "<td>+12.2s</td>" in page, "the rollback moment"
    for name in ("traffic.csv", "events.log", "timeline.json", "summary.json", "timeline.png"):
        assert f'<a href="{name}">{name}</a>' in page


def test_text_from_the_report_is_escaped(tmp_path: Path) -> None:
    write_summary(
        tmp_path / "hostile",
        "hostile",
        verdict="failed",
        headline='<script>alert("x")</script>',
        message="<img src=x onerror=alert(1)>",
        metrics={"<b>": "</td>"},
    )
    result = build_report(tmp_path)
    page = (tmp_path / "hostile" / "index.html").read_text()
    for html in (page, result.index.read_text()):
        assert "<script>alert" not in html
        assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_without_a_timeline_each_traffic_log_is_a_run(tmp_path: Path) -> None:
    directory = tmp_path / "legacy"
    write_summary(directory, "legacy", verdict="passed")
    write_traffic(
        directory / "run-a.csv",
        Traffic(rate=50, start=0.0, end=10.0, route=lambda rel: "v1" if rel < 5 else "v2"),
        released_at=RELEASED_AT,
        seed=7,
    )
    (directory / "table.csv").write_text("run,failures\nrun-a,0\n")
    rendered = render_experiment(directory)
    page = rendered.page.read_text()
    assert "<td>run-a</td>" in page
    assert "table.csv" in page, "listed among the files, not drawn"
    assert rendered.size[0] >= MIN_WIDTH


def test_an_experiment_with_no_data_still_gets_a_timeline_saying_so(tmp_path: Path) -> None:
    write_summary(tmp_path / "nothing", "nothing", verdict="error", message="setup failed")
    rendered = render_experiment(tmp_path / "nothing")
    assert rendered.size[0] >= MIN_WIDTH
    assert rendered.size[1] >= MIN_HEIGHT
    assert "No events recorded." in rendered.page.read_text()


def test_unreadable_experiment_is_listed_and_the_others_built(tmp_path: Path) -> None:
    report = full_report(tmp_path)
    (report / "smoke-gate" / "summary.json").write_text("{")
    result = build_report(report)
    assert len(result.problems) == 1
    assert "smoke-gate/summary.json: not JSON" in result.problems[0]
    assert len(result.rendered) == 3
    assert "unreadable: " in result.index.read_text()
    assert "1 unreadable" in result.describe()


def test_only_outdated_pages_are_rebuilt(tmp_path: Path) -> None:
    report = full_report(tmp_path)
    build_report(report)
    assert build_report(report, only_outdated=True).rendered == ()
    summary = report / "bad-canary" / "summary.json"
    later = (report / "bad-canary" / "index.html").stat().st_mtime + 5
    os.utime(summary, (later, later))
    rebuilt = build_report(report, only_outdated=True)
    assert [r.name for r in rebuilt.rendered] == ["bad-canary"]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = full_report(tmp_path / "report")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_rollout.report", str(report)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "4 experiment(s); 4 page(s) rebuilt in" in completed.stdout
    assert (report / "index.html").is_file()

    (report / "smoke-gate" / "summary.json").write_text("[]")
    assert main([str(report)]) == 1
    assert "smoke-gate/summary.json: expected an object" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exited:
        main([str(tmp_path / "missing")])
    assert exited.value.code == 2


def test_job_summary_markdown(tmp_path: Path) -> None:
    report = full_report(tmp_path)
    summaries = [read_summary(p) for p in sorted(report.glob("*/summary.json"))]
    failing = json.loads((report / "bad-canary" / "summary.json").read_text())
    failing.update(verdict="failed", experiment="pipes", headline="a | b")
    (report / "pipes").mkdir()
    (report / "pipes" / "summary.json").write_text(json.dumps(failing))
    summaries.append(read_summary(report / "pipes" / "summary.json"))
    text = index_markdown(summaries, read_session(report), problems=["x/summary.json: not JSON"])
    assert "| bad-canary | passed | bad share 3.1% <= 5% (90 of 2,877 requests) |" in text
    assert "| pipes | **failed** | a \\| b |" in text
    assert "| smoke-gate | **error** | the experiment did not run to its end" in text
    assert "- x/summary.json: not JSON" in text
    assert "haproxy 2.6.12" in text
