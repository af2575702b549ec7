"""The HTML report in a real browser: no errors, nothing fetched, hostile text stays text.

Needs headless Chromium at /usr/bin/chromium (the Debian package; no ``playwright install``).
Without it the test is skipped locally but fails in CI (``CI=true``), where it is installed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scanner.model import Status
from scanner.render.html import render_html

from .conftest import HOSTILE_NAME, build_sample

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; install the chromium package"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_bytes(render_html(build_sample(hostile=True, default_policy=True)))
    return path


def _open(browser: Any, path: Path, width: int) -> tuple[Any, dict[str, list[str]]]:
    seen: dict[str, list[str]] = {"requests": [], "console": [], "pageerror": []}
    context = browser.new_context(viewport={"width": width, "height": 900})

    def guard(route: Any) -> None:
        # Record every request; let only the report itself through, never the network.
        seen["requests"].append(route.request.url)
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda m: seen["console"].append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: seen["pageerror"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


def test_report_loads_clean_and_offline(browser: Any, report_file: Path) -> None:
    page, seen = _open(browser, report_file, 1200)
    try:
        assert seen["pageerror"] == []
        assert seen["console"] == []
        assert set(seen["requests"]) == {report_file.as_uri()}
        assert page.locator("script").count() == 0
        hostile = page.get_by_text(HOSTILE_NAME, exact=False)
        assert hostile.count() >= 2
        assert hostile.first.is_visible()
        assert page.evaluate("window.__xss === undefined")
        assert page.get_by_text("WARNING: no site policy.").is_visible()
    finally:
        page.context.close()


def test_report_fits_a_narrow_window(browser: Any, report_file: Path) -> None:
    page, seen = _open(browser, report_file, 600)
    try:
        assert seen["pageerror"] == [] and seen["console"] == []
        assert page.evaluate("document.documentElement.scrollWidth") <= 600
    finally:
        page.context.close()


# ----------------------------------------------------------------------------- widths, order, print

WIDTHS = (320, 390, 800, 1400)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's full report and its mail digest, as files a browser opens."""
    from scanner.changes import baselines_from_report, mark_changes
    from scanner.pipeline import run_scan
    from scanner.render.digest import render_digest

    root = Path(__file__).parents[2]
    report = run_scan([root / "scanner" / "demo"], root / "scanner" / "demo" / "policy.yaml")
    out = tmp_path_factory.mktemp("pages")
    (out / "report.html").write_bytes(render_html(report))
    (out / "digest.html").write_text(render_digest(report)[0], encoding="utf-8")
    # With a history: the "since the last run" part and change marks must fit a phone too.
    failing = [r for r in report.results if r.status is Status.FAIL]
    before = replace(report, results=tuple(replace(r, status=Status.PASS) if r is failing[1] else r
                                           for r in report.results) + (replace(failing[2], id="gone"),))
    marked = mark_changes(report, baselines_from_report(before), "baseline")
    (out / "history.html").write_bytes(render_html(marked))
    return {"report": out / "report.html", "digest": out / "digest.html", "history": out / "history.html"}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["report", "digest", "history"])
def test_fits_the_width_offline_most_severe_first(browser: Any, pages: dict[str, Path], name: str,
                                                  width: int) -> None:
    page, seen = _open(browser, pages[name], width)
    try:
        assert seen["pageerror"] == [] and seen["console"] == []
        assert set(seen["requests"]) == {pages[name].as_uri()}          # nothing fetched
        assert page.evaluate("document.documentElement.scrollWidth") == width
        # No element sticks out of the page either (a code block scrolls inside itself).
        wide = page.evaluate("""w => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > w + 0.5 && !e.closest('pre'))
            .map(e => e.tagName + '.' + e.className).slice(0, 5)""", width)
        assert wide == []
        first = page.locator(".flist tr").first
        assert first.is_visible()
        assert first.locator(".sev").inner_text().strip().lower() == "critical"
        assert "LM001" in first.inner_text() and "HVCLU08" in first.inner_text()
        page.screenshot(path=str(pages[name].with_name(f"{name}-{width}.png")))
    finally:
        page.context.close()


@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_page_one_of_the_print_holds_the_summary_and_the_critical_findings(
        browser: Any, pages: dict[str, Path], paper: str) -> None:
    pypdf = pytest.importorskip("pypdf")
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(pages["report"].as_uri(), wait_until="load")
        pdf = pages["report"].with_name(f"report-{paper}.pdf")
        page.pdf(path=str(pdf), format=paper, print_background=True)
    finally:
        context.close()
    reader = pypdf.PdfReader(str(pdf))
    first = " ".join(reader.pages[0].extract_text().split())
    print(f"{paper}: {len(reader.pages)} pages")
    assert "3 of 4 clusters are not compliant." in first
    assert "Clusters" in first and "What failed (14)" in first
    assert "LM001 iSCSI networks are excluded from live migration" in first and "HVCLU08 · vm APP02" in first
    # A command continued for print is still one command: joined at its backticks it is the original.
    text = re.sub(r" `\s*\n\s*", " ", "\n".join(p.extract_text() for p in reader.pages))
    assert ("Get-ClusterResource -Name 'Virtual Machine APP02' | Set-ClusterParameter -Name MigrationExcludeNetworks "
            "-Value '6eb0da4e-ef30-4373-a127-06cd2b9e6af3;33deb962-cb86-4fb6-b4a8-8a34b0b0af31'") in text


def test_a_fleet_prints_its_most_severe_findings_on_page_one(browser: Any, tmp_path: Path) -> None:
    """500 clusters: page 1 still holds the verdict and the critical findings, before any long table."""
    pypdf = pytest.importorskip("pypdf")
    from .conftest import build_big

    report = build_big(500)
    path = tmp_path / "fleet.html"
    path.write_bytes(render_html(report))
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(path.as_uri(), wait_until="load")
        pdf = tmp_path / "fleet.pdf"
        page.pdf(path=str(pdf), format="A4")
    finally:
        context.close()
    first = " ".join(pypdf.PdfReader(str(pdf)).pages[0].extract_text().split())
    assert "71 of 500 clusters are not compliant" in first
    assert "What failed (71)" in first and "CRITICAL LM001 iSCSI networks are excluded from live migration" in first
