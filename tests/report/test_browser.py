"""The rendered report in a real browser: headless Chromium driven over the DevTools protocol.

The report is rendered from synthetic sample data (``sample_report.py``): what is tested here
is how the pages behave in a browser — they load without errors, fetch nothing, show their
charts at a real size, and link to pages that exist — not the numbers in them.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

from pytest_rollout.report.build import build_report
from tests.report.devtools import Page, chromium, connect, find_chromium
from tests.report.sample_report import full_report

CHROMIUM = find_chromium()

pytestmark = [
    pytest.mark.slow,  # starts a browser
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (Debian: apt-get install chromium; `make test` does it)",
    ),
]

CHARTS = """Array.from(document.querySelectorAll('img.chart')).map(img => {
  const box = img.getBoundingClientRect();
  return {width: box.width, height: box.height, natural: img.naturalWidth, alt: img.alt};
})"""
LINKS = "Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"


@dataclass(frozen=True)
class Visit:
    """What a page showed: its screenshot and what the browser recorded on the way."""

    url: str
    title: str
    screenshot: bytes
    console_errors: list[str]
    network: list[str]
    """requests to anything but a file: or data: URL"""
    links: list[str]
    charts: list[dict[str, Any]]


async def _visit(page: Page, url: str) -> Visit:
    errors_before = len(page.console_errors())
    await page.goto(url)
    return Visit(
        url=url,
        title=await page.evaluate("document.title"),
        screenshot=await page.screenshot(),
        console_errors=page.console_errors()[errors_before:],
        network=[u for u in page.requested_urls() if not u.startswith(("file:", "data:"))],
        links=await page.evaluate(LINKS),
        charts=await page.evaluate(CHARTS),
    )


def _visit_report(index: Path, workdir: Path) -> list[Visit]:
    """Open the index, then the bad-canary page through the index's own link."""
    assert CHROMIUM is not None

    async def scenario(endpoint: str) -> list[Visit]:
        async with connect(endpoint) as devtools:
            page = await Page.open(devtools)
            first = await _visit(page, index.as_uri())
            canary = [link for link in first.links if "/bad-canary/" in link]
            assert canary, f"no link to bad-canary on the index: {first.links}"
            return [first, await _visit(page, canary[0])]

    with chromium(CHROMIUM, workdir) as endpoint:
        return asyncio.run(scenario(endpoint))


def _blank_share(png: bytes) -> float:
    """The share of the screenshot's pixels that have its most common colour."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colors = image.getcolors(maxcolors=image.width * image.height) or []
    return max(count for count, _ in colors) / (image.width * image.height)


def _file(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(unquote(parsed.path))


def test_index_and_experiment_page_in_chromium(tmp_path: Path) -> None:
    report = full_report(tmp_path / "report")
    result = build_report(report)
    assert not result.problems, result.problems
    shots = tmp_path / "screenshots"
    shots.mkdir()

    index, canary = _visit_report(report / "index.html", tmp_path / "chromium")

    for visit, name in ((index, "index.png"), (canary, "bad-canary.png")):
        (shots / name).write_bytes(visit.screenshot)
        assert not visit.console_errors, f"{visit.url}: console errors: {visit.console_errors}"
        assert not visit.network, f"{visit.url} fetched from the network: {visit.network}"
        assert _blank_share(visit.screenshot) < 0.97, f"{shots / name} looks blank"
        for link in visit.links:
            assert _file(link).is_file(), f"{visit.url} links to a missing file: {link}"
    print(f"screenshots: {shots}")

    experiments = sorted(p.parent.name for p in report.glob("*/summary.json"))
    linked = sorted(_file(link).parent.name for link in index.links)
    assert linked == experiments, f"the index links {linked}, the report holds {experiments}"

    assert canary.title == "bad-canary — passed"
    assert canary.charts, "no chart on the experiment page"
    for chart in canary.charts:
        assert chart["natural"] >= 1000, chart
        assert chart["width"] > 0, chart
        assert chart["height"] > 0, chart
