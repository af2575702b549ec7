"""scanner.term.clean: nothing printed to a terminal can steer it (issue 7 item 13)."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

from scanner.term import clean

ROOT = Path(__file__).parents[1]
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\r\u202eexe.txt\u2066x\u2069\u200b\ufeff\U000e0041\x00"
#: Characters a terminal must never receive from field or pack text.
FORBIDDEN = frozenset("\x1b\x07\x9b\r\x00\u202e\u2066\u2069\u200b\ufeff\U000e0041")


def _unsafe(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return (cat in ("Cc", "Cf", "Cs", "Zl", "Zp") and ch != "\t") or ch in "\u034f\u115f\u1160\u3164\uffa0"


def test_every_control_format_and_separator_character_is_escaped() -> None:
    """The class, not a list of cases: every Cc/Cf/Cs/Zl/Zp code point this Python knows."""
    missed = [f"U+{c:04X}" for c in range(sys.maxunicode + 1)
              if _unsafe(chr(c)) and clean(chr(c)) == chr(c)]
    assert not missed, missed[:20]


def test_escapes_are_visible_and_plain_text_is_unchanged() -> None:
    assert clean("\x1b[2J") == "\\x1b[2J"
    assert clean("a\u202eb") == "a\\u202eb"
    assert clean("tag\U000e0041") == "tag\\U000e0041"
    assert clean("two\nlines") == "two\\nlines"
    assert clean("two\r\nlines\rx", multiline=True) == "two\nlines\\rx"
    for text in ("LM Zürich 東京", "CONTOSO\\svc-lmscan", "tab\tstays", "emoji 🚀", "", "Ω≈ç√"):
        assert clean(text) == text
    assert clean(None) == "" and clean(42) == "42"
    out = clean(HOSTILE)
    assert not FORBIDDEN & set(out) and out.isprintable()


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, NO_COLOR="1", **(env or {}))
    full.pop("LMSCAN_POLICY", None)
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
                          encoding="utf-8", errors="surrogateescape", env=full, timeout=120)


def test_issue7_item13_rules_list_and_show_print_pack_text_inert(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    title = "Evil \\e]0;pwned\\a\\e[2J \\u202Etxt.exe\\u2066 title"
    pack.write_text(f"""\
lmscan_rules: 1
pack: {{name: "evil\\e[31m", version: "1"}}
rules:
  - id: SITE001
    title: "{title}"
    severity: low
    scope: cluster
    expect: {{fact: name, present: true}}
    message: {{fail: "x"}}
    rationale: "line one\\r\\e[1Aline two \\u202E"
    remediation: "# nothing \\x9b2J"
""", encoding="utf-8")
    outputs = [_run("rules", "list", "--rules", str(pack)), _run("rules", "show", "SITE001", "--rules", str(pack)),
               _run("rules", "validate", str(pack))]
    for p in outputs:
        assert p.returncode == 0, p.stderr
        assert not FORBIDDEN & set(p.stdout + p.stderr), (p.stdout + p.stderr)
    assert "\\x1b]0;pwned\\x07" in outputs[0].stdout and "\\u202etxt.exe" in outputs[0].stdout
    assert "\\x1b[1Aline two" in outputs[1].stdout
