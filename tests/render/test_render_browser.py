"""The HTML report in a real browser: no errors, nothing fetched, hostile text stays text.

Needs headless Chromium at /usr/bin/chromium (the Debian package; no ``playwright install``).
Without it the test is skipped locally but fails in CI (``CI=true``), where it is installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
