"""The config file (contracts §7): validation with file:line, secrets by reference, merge under the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.config import EXAMPLE, load_config
from scanner.errors import InputError

DEMO = Path(__file__).parents[1] / "scanner" / "demo"


def write(tmp_path: Path, text: str, name: str = "lmscan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as err:
        load_config(path)
    return str(err.value)


def test_the_printed_example_passes_config_check(tmp_path, capsys):
    assert main(["config", "example"]) == 0
    text = capsys.readouterr().out
    assert text == EXAMPLE and text.count("\n#") > 5          # it is commented
    path = write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 0
    assert "valid config" in capsys.readouterr().out
    s = load_config(path)
    assert s.inventory == tmp_path / "inventory.yaml"          # relative to the config file
    assert s.history == str(tmp_path / "history.db")
    assert s.mail is not None and s.mail["to"] == ["cab@contoso.com"] and s.mail["password_env"] == "LMSCAN_SMTP_PASSWORD"


def test_every_contract_key_is_accepted(tmp_path):
    path = write(tmp_path, """\
        lmscan_config: 1
        snapshots: [snaps, /srv/lmscan/snapshots]
        policy: site-policy.yaml
        rules: [rules.d]
        fail_on: high
        fail_on_new: true
        workers: 32
        outputs:
          dir: reports/{date}
          html: report-{scan_id}.html
          junit: junit.xml
          json: results.json
          sarif: results.sarif
          markdown: summary.md
        history: postgresql://lmscan@pg.contoso.com/lmscan
        history_password_env: LMSCAN_PG_PASSWORD
        mail:
          to: [cab@contoso.com]
          cc: []
          from: lmscan@contoso.com
          smtp_host: smtp.contoso.com
          smtp_port: 587
          security: starttls
          ca_bundle: certs/corp-ca.pem
          username: svc-lmscan
          password_file: secrets/smtp
          when: changed
          attach: [html, json, remediation]
        """)
    s = load_config(path)
    assert s.snapshots == (tmp_path / "snaps", Path("/srv/lmscan/snapshots"))
    assert s.rules == (tmp_path / "rules.d",) and s.fail_on == "high" and s.fail_on_new is True and s.workers == 32
    assert s.outputs["dir"] == str(tmp_path / "reports/{date}") and s.outputs["sarif"] == "results.sarif"
    assert s.history == "postgresql://lmscan@pg.contoso.com/lmscan" and s.history_password_env == "LMSCAN_PG_PASSWORD"
    assert s.mail is not None
    assert s.mail["ca_bundle"] == str(tmp_path / "certs/corp-ca.pem")
    assert s.mail["password_file"] == str(tmp_path / "secrets/smtp") and s.mail["when"] == "changed"


@pytest.mark.parametrize("text, expected", [
    ("lmscan_config: 1\nworkerz: 3\n", "lmscan.yaml:2: workerz: unknown key 'workerz' (did you mean 'workers'?)"),
    ("lmscan_config: 2\n", "lmscan.yaml:1: lmscan_config: "),
    ("fail_on: severe\n", "lmscan.yaml:1: fail_on: 'severe' is not one of"),
    ("outputs:\n  html: r.html\n  pdf: r.pdf\n", "lmscan.yaml:3: outputs.pdf: unknown key 'pdf' (allowed: dir, html"),
    ("outputs:\n  dir: reports/{day}\n", "lmscan.yaml:2: outputs.dir: unknown placeholder {day}"),
    ("outputs:\n  json: 'r-{scan_id.json'\n", "lmscan.yaml:2: outputs.json: bad placeholder"),
    ("snapshots: [a]\ninventory: inv.yaml\n", "lmscan.yaml:2: inventory: give either snapshots or inventory"),
    ("history: postgresql://lmscan:hunter2@pg/lmscan\n", "lmscan.yaml:1: history: the URL holds a password"),
    ("history: postgresql://lmscan@pg/lmscan?password=hunter2\n", "history: the URL holds a password"),
    ("history: mysql://x@y/z\n", "history: unknown store mysql://"),
    ("history: h.db\nhistory_password_env: X\n", "history_password_env: only for a postgresql:// history"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  password: hunter2\n",
     "lmscan.yaml:5: mail.password: secrets are not allowed in clear text"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  smtp_token: abc\n", "mail.smtp_token: secrets are not"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  username: u\n  password_env: A\n  password_file: f\n",
     "lmscan.yaml:7: mail.password_file: give one password source"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  password_env: A\n", "a password needs a username"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  security: none\n  username: u\n  password_env: A\n",
     "security: none would send the SMTP password in clear text"),
    ("mail:\n  to: [not-an-address]\n  from: x@y.z\n  smtp_host: s\n", "lmscan.yaml:2: mail.to"),
    ("mail:\n  to: [a@b.c]\n  smtp_host: s\n", "mail: 'from' is required"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  attach: [pdf]\n", "mail.attach[0]: 'pdf' is not one of"),
    ("mail:\n  to: [a@b.c]\n  from: x@y.z\n  smtp_host: s\n  smtp_port: 70000\n", "mail.smtp_port"),
    ("- a\n- b\n", "lmscan.yaml:1: a config file is a mapping"),
    ("workers: [\n", "lmscan.yaml:2: invalid YAML"),
])
def test_bad_config_is_one_line_with_file_and_line(tmp_path, text, expected):
    assert expected in error_of(write(tmp_path, text))


def test_config_check_exit_codes(tmp_path, capsys):
    bad = write(tmp_path, "lmscan_config: 1\nworkers: 0\n")
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lmscan: error: {bad}:2: workers:") and err.count("\n") == 1
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2


def _scan_config(tmp_path: Path, extra: str = "") -> Path:
    return write(tmp_path, f"""\
        lmscan_config: 1
        snapshots: [{DEMO / "HVCLU19"}]
        policy: {DEMO / "policy.yaml"}
        fail_on: critical
        outputs:
          dir: out/{{date}}
          json: results-{{scan_id}}.json
          html: report.html
        history: hist/history.db
        """ + extra)


def test_scan_with_a_config_file(tmp_path, capsys):
    import datetime as dt
    config = _scan_config(tmp_path)
    assert main(["scan", "--config", str(config), "-q"]) == 0        # fail_on: critical; HVCLU19 fails high
    day = dt.date.today().isoformat()
    written = sorted(p.name for p in (tmp_path / "out" / day).iterdir())
    assert len(written) == 2 and "report.html" in written
    doc = json.loads(next((tmp_path / "out" / day).glob("results-*.json")).read_text())
    assert written[1] == f"results-{doc['scan']['id']}.json"          # {scan_id} is this run's id
    assert doc["scan"]["fail_on"] == "critical" and doc["changes"]["source"] == "history"
    assert (tmp_path / "hist" / "history.db").exists()


def test_command_line_options_win_over_the_config(tmp_path, monkeypatch, capsys):
    config = _scan_config(tmp_path)
    monkeypatch.setenv("LMSCAN_CONFIG", str(config))                  # found through the environment
    out = tmp_path / "mine.json"
    assert main(["scan", "--fail-on", "high", "--json", str(out), "--no-history", "-q"]) == 1
    doc = json.loads(out.read_text())
    assert doc["scan"]["fail_on"] == "high" and "changes" not in doc
    assert not (tmp_path / "hist").exists()
    # A source on the command line replaces the config's.
    assert main(["scan", "--snapshot", str(DEMO / "HVCLU22"), "--json", str(out), "-q"]) == 0
    assert {r["cluster"] for r in json.loads(out.read_text())["results"]} == {"HVCLU22"}


def test_unknown_output_formats_are_said_not_silently_dropped(tmp_path, capsys):
    from scanner.render import FORMATS
    config = _scan_config(tmp_path, "")
    text = config.read_text().replace("  html: report.html\n", "  html: report.html\n  markdown: summary.md\n")
    config.write_text(text)
    main(["scan", "--config", str(config), "-q"])
    err = capsys.readouterr().err
    assert ("markdown" in FORMATS) or "outputs.markdown: this lmscan has no markdown report yet" in err


def test_no_source_anywhere_is_a_usage_error(capsys):
    assert main(["scan", "-q"]) == 2
    assert "give --snapshot, --inventory or --demo" in capsys.readouterr().err
