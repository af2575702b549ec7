"""Report renderers: each takes one ScanReport and returns the finished document.

Renderers never open files, never see the engine and never decide the exit code; the CLI
writes what they return. :data:`FORMATS` maps the name of each report-file option of the
CLI (``--html``, ``--junit``, ``--json``, ``--sarif``, ``--markdown``) to its renderer, so adding a format is one entry
here plus one module.
"""

from __future__ import annotations

from collections.abc import Callable

from scanner.model import ScanReport
from scanner.remediate import render_fix_script
from scanner.render.console import render_console
from scanner.render.html import render_html
from scanner.render.jsonfmt import render_json
from scanner.render.junit import render_junit
from scanner.render.markdown import render_markdown
from scanner.render.sarif import render_sarif

Renderer = Callable[[ScanReport], bytes]

#: Report file formats by CLI option name (``--html FILE`` uses ``FORMATS["html"]``).
FORMATS: dict[str, Renderer] = {
    "html": render_html,
    "junit": render_junit,
    "json": render_json,
    "sarif": render_sarif,
    "markdown": render_markdown,
    "remediate": render_fix_script,   # the PowerShell fix script (scan --remediate FILE)
}

__all__ = ["FORMATS", "Renderer", "render_console", "render_html", "render_json",
           "render_junit", "render_markdown", "render_sarif"]
