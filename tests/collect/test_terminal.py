"""Node-controlled text reaches the terminal inert through lmscan collect and scan (issue 7 item 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import SECRET
from .fakewsman import CommandRequest, FakeWSMan, Reply, clixml_error

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\r\u202eexe.txt\u2066x\u2069\u200b\ufeff\U000e0041"
FORBIDDEN = frozenset("\x1b\x07\x9b\r\u202e\u2066\u2069\u200b\ufeff\U000e0041")


def lmscan(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, NO_COLOR="1", **env)
    full.pop("LMSCAN_POLICY", None)
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
                          encoding="utf-8", errors="surrogateescape", env=full, timeout=120)


def test_issue7_item13_node_text_in_collect_output_and_errors_is_inert(
        tmp_path: Path, wsman: Callable[..., FakeWSMan]) -> None:
    def handler(req: CommandRequest) -> Reply:
        return Reply(stderr=clixml_error("Access denied " + HOSTILE), exit_code=1)

    srv = wsman(handler, username="u", password=SECRET)
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"""\
lmscan_inventory: 1
defaults: {{username: u, password_env: PW, transport: basic, allow_unencrypted: true, timeout: 10}}
clusters:
  - name: "C\\e[2J\\u202e"
    nodes: [{{name: HV01, endpoint: "{srv.url}"}}]
""", encoding="utf-8")
    p = lmscan("collect", "--inventory", str(inv), "--out", str(tmp_path / "out"), env={"PW": SECRET})
    s = lmscan("scan", "--inventory", str(inv), "--json", str(tmp_path / "r.json"), env={"PW": SECRET})
    assert p.returncode == 3, p.stderr
    assert "collector failed" in p.stdout and "Access denied" in p.stdout and "\\u202eexe.txt" in p.stdout
    assert s.returncode == 3, s.stderr
    for text in (p.stdout, p.stderr, s.stdout, s.stderr):
        assert not FORBIDDEN & set(text), text
        assert SECRET not in text
