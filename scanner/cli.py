"""The lmscan command line: parse, build, run, render. The only place that prints or exits."""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from scanner import __version__, cli_history
from scanner.errors import InputError, ScannerError
from scanner.term import clean

if TYPE_CHECKING:
    from scanner.collect.fleet import NodeOutcome
    from scanner.config import Settings
    from scanner.loader import Rule
    from scanner.rulecache import RuleDoc
    from scanner.model import ScanReport
    from scanner.mail import MailSettings
    from scanner.pipeline import RuleSet

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4
STDOUT = "-"   # a report path of "-" means standard output (then no summary is printed)
REPORT_FLAGS = {"html": "report.html", "junit": "junit.xml", "json": "results.json",
                "sarif": "results.sarif", "markdown": "summary.md"}
# The values of scanner.model.Severity, spelt out so that parsing arguments imports no model
# (``lmscan --help`` starts at once; tests/test_cli.py checks the two agree).
SEVERITIES = ["info", "low", "medium", "high", "critical"]
FILE_FLAGS = (*REPORT_FLAGS, "remediate")   # files a scan writes when asked (--out-dir writes the reports)


class _Parser(argparse.ArgumentParser):
    """argparse that says ``lmscan: error: ...`` on one line and exits 2, as every bad input does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lmscan", description="Policy-as-code scanner for Hyper-V live-migration networks.")
    p.add_argument("--version", action="version", version=f"lmscan {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("scan", help="collect or read snapshots, evaluate the rules, write reports",
                       description="Evaluate the rules against snapshots, a live inventory or the bundled demo.")
    src = s.add_mutually_exclusive_group()   # or from the config file
    src.add_argument("--snapshot", metavar="PATH", type=Path, nargs="+", action="extend",
                     help="snapshot files or directories (read for *.json recursively); repeatable")
    src.add_argument("--inventory", metavar="FILE", type=Path, help="collect live over WinRM from this inventory")
    src.add_argument("--demo", action="store_true", help="scan the bundled demo clusters")
    _add_policy_args(s)
    s.add_argument("--html", metavar="FILE", type=Path, help="write the HTML report here ('-': standard output)")
    s.add_argument("--junit", metavar="FILE", type=Path, help="write the JUnit XML report here ('-': standard output)")
    s.add_argument("--json", metavar="FILE", type=Path, help="write the results JSON here ('-': standard output)")
    s.add_argument("--sarif", metavar="FILE", type=Path,
                   help="write SARIF 2.1.0 for code-scanning UIs here ('-': standard output)")
    s.add_argument("--markdown", metavar="FILE", type=Path,
                   help="write a Markdown summary for CI job pages here, e.g. \"$GITHUB_STEP_SUMMARY\" ('-': standard output)")
    s.add_argument("--remediate", metavar="FILE", type=Path,
                   help="write a PowerShell fix script for the findings here ('-': standard output)")
    s.add_argument("--out-dir", metavar="DIR", type=Path,
                   help="write report.html, junit.xml, results.json, results.sarif and summary.md into DIR "
                        "(--demo: default ./lmscan-demo)")
    s.add_argument("--fail-on", metavar="SEVERITY", choices=SEVERITIES, type=str.casefold, default=None,
                   help="lowest severity whose failures make the exit code 1 "
                        "(default: $LMSCAN_FAIL_ON, the config's fail_on, else low; info never fails)")
    _add_workers_arg(s)
    s.add_argument("--save-snapshots", metavar="DIR", type=Path, help="with --inventory: keep what was collected")
    s.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="colour in the summary")
    s.add_argument("-q", "--quiet", action="store_true", help="print no summary")
    s.add_argument("--only", metavar="ID[,ID...]", action="append",
                   help="run only these rules (ids or globs such as 'HOST*'; repeatable)")
    s.add_argument("--skip", metavar="ID[,ID...]", action="append",
                   help="do not run these rules (ids or globs; repeatable)")
    s.add_argument("--full", action="store_true",
                   help="print every finding line in full on a terminal too (always so when output is not a terminal)")
    s.add_argument("--severity", metavar="SEVERITY", choices=SEVERITIES, type=str.casefold,
                   help="summary lists only findings at or above this severity (reports keep everything)")
    _add_mail_args(s)

    ml = sub.add_parser("mail", help="send a past run's digest and reports by e-mail",
                        description="Send the digest of a results JSON (and the reports re-rendered from it).")
    ml.add_argument("--from-results", metavar="FILE", type=Path, required=True,
                    help="a results JSON written by 'lmscan scan --json'")
    ml.add_argument("--config", metavar="FILE", type=Path,
                    help="take the mail settings from this config file's mail: block (default: $LMSCAN_CONFIG)")
    _add_mail_args(ml)
    cli_history.add_scan_options(s)

    fx = sub.add_parser("remediate", help="write a PowerShell fix script from a results JSON",
                        description="Write the remediation actions of a results JSON as one PowerShell script to "
                                    "review and run on a node of each cluster (what-if unless run with -Apply).")
    fx.add_argument("results", metavar="RESULTS", type=Path, help="a results JSON written by 'lmscan scan --json'")
    fx.add_argument("-o", "--out", metavar="FILE", type=Path, default=Path(STDOUT),
                    help="write the script here (default '-': standard output)")
    fx.add_argument("--cluster", metavar="NAME", action="append", default=[],
                    help="only this cluster (repeatable; default: every cluster with findings)")

    c = sub.add_parser("collect", help="collect snapshots over WinRM without evaluating")
    c.add_argument("--inventory", metavar="FILE", type=Path, required=True)
    c.add_argument("--out", metavar="DIR", type=Path, help="one snapshot file per node goes here")
    c.add_argument("--check-auth", action="store_true",
                   help="only authenticate to every node (open and delete a shell; nothing runs) and print a table")
    _add_workers_arg(c)

    sub.add_parser("collector-script", help="print the PowerShell collector (run it on a node: "
                                            "powershell -NoProfile -File collect.ps1 > node.json)")

    comp = sub.add_parser("completion", help="print shell completion code (bash, zsh or powershell)",
                          description="Print the code that makes your shell complete lmscan's commands "
                                      "and options; see the README for where to put it.")
    comp.add_argument("shell", choices=["bash", "zsh", "powershell"])

    r = sub.add_parser("rules", help="list, show and validate rules")
    rsub = r.add_subparsers(dest="rules_command", metavar="ACTION", parser_class=_Parser)
    rsub.required = True
    rl = rsub.add_parser("list", help="list the rules")
    rl.add_argument("--format", choices=["table", "json"], default="table",
                    help="a table with a header row (default) or JSON")
    _add_policy_args(rl)
    rs = rsub.add_parser("show", help="show one rule: metadata, remediation and its YAML")
    rs.add_argument("rule_id", metavar="ID")
    _add_policy_args(rs)
    rsub.add_parser("facts", help="list the facts rules can use, per scope (for rule authors)")
    rv = rsub.add_parser("validate", help="validate a rule pack or a site policy file")
    rv.add_argument("file", metavar="FILE", type=Path)
    cli_history.add_commands(sub, _Parser)
    return p


def _add_policy_args(p: argparse.ArgumentParser) -> None:
    env = os.environ.get("LMSCAN_POLICY")
    p.add_argument("--policy", metavar="FILE", type=Path, default=Path(env) if env else None,
                   help="site policy YAML (default: $LMSCAN_POLICY, else the built-in default)")
    p.add_argument("--rules", metavar="PATH", type=Path, nargs="+", action="extend", default=[],
                   help="extra rule pack files or directories; repeatable")


def _add_mail_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("mail (README: Sending the report by e-mail)")
    g.add_argument("--mail-to", metavar="ADDRESS", nargs="+", action="extend", help="send the digest to these")
    g.add_argument("--mail-cc", metavar="ADDRESS", nargs="+", action="extend", help="copy to these")
    g.add_argument("--mail-from", metavar="ADDRESS", help="sender address")
    g.add_argument("--mail-reply-to", metavar="ADDRESS", help="where replies go")
    g.add_argument("--mail-when", choices=["always", "fail", "changed"], help="when to send (default: always)")
    g.add_argument("--mail-server", metavar="HOST[:PORT]", help="SMTP server (port default: 587, 465 with tls, 25)")
    g.add_argument("--mail-security", choices=["starttls", "tls", "none"], help="default: starttls")
    g.add_argument("--mail-ca-bundle", metavar="FILE", type=Path, help="CA bundle to verify the server (default: system)")
    g.add_argument("--mail-username", metavar="USER", help="authenticate as USER")
    g.add_argument("--mail-password-env", metavar="VAR", help="the password is in this environment variable")
    g.add_argument("--mail-password-file", metavar="FILE", type=Path, help="the password is in this owner-only file")
    g.add_argument("--mail-attach", metavar="LIST", help="comma list of html,junit,json,sarif,remediation or none "
                                                         "(default: html,json)")


def _add_workers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", metavar="N", type=_positive_int, default=None,
                   help="nodes collected at once (default 64)")


def _positive_int(text: str) -> int:
    """argparse type for counts: ``0``, ``-3`` and ``x`` are usage errors, not a hang or a crash."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, found {value}")
    return value


# ----------------------------------------------------------------------------- commands

#: A scan builds hundreds of thousands of long-lived, mostly acyclic objects; collecting the young
#: generation less often saves about an eighth of a large fleet's run time (benchmarks use it too).
GC_THRESHOLDS = (100_000, 50, 1000)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lmscan`` console script."""
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:   # a shell asking for completions (lmscan completion ...): answer, exit
        import argcomplete
        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)
    restore_signals = _stop_signals_interrupt()
    try:
        if args.command == "scan":
            return cmd_scan(args)
        if args.command == "collect":
            return cmd_collect(args)
        if args.command == "mail":
            return cmd_mail(args)
        if args.command == "remediate":
            return cmd_remediate(args)
        if args.command == "history":
            return cli_history.cmd_history(args)
        if args.command == "config":
            return cli_history.cmd_config(args)
        if args.command == "report":
            return cli_history.cmd_report(args)
        if args.command == "completion":
            from argcomplete.shell_integration import shellcode
            sys.stdout.write(shellcode(["lmscan"], shell=args.shell))
            return EXIT_OK
        if args.command == "collector-script":
            from scanner.collect.script import collector_script
            sys.stdout.write(collector_script())
            return EXIT_OK
        return cmd_rules(args)
    except InputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except ScannerError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        _stdout_gone()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("LMSCAN_DEBUG"):
            raise
        _err(f"internal error: {type(exc).__name__}: {exc} (set LMSCAN_DEBUG=1 for details; please report it)")
        return EXIT_INTERNAL
    finally:
        restore_signals()


def _stop_signals_interrupt() -> Callable[[], None]:
    """Make SIGTERM (kill, systemd, a CI job's timeout) and SIGHUP (a closed terminal or SSH
    session) stop a run as Ctrl-C does: collection winds down, shells are closed, what was
    collected is reported, exit 3 (or 1). A signal already ignored (``nohup``) stays ignored.
    Returns what puts the previous handlers back."""
    import signal
    import threading

    saved: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
                saved[sig] = signal.signal(sig, signal.default_int_handler)

    def restore() -> None:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return restore


def _err(line: str) -> None:
    sys.stderr.write(f"lmscan: error: {clean(line)}\n")


def _warn(line: str) -> None:
    sys.stderr.write(f"lmscan: warning: {clean(line)}\n")


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    out: dict[str, Path] = {}
    out_dir = args.out_dir
    if out_dir is None and args.demo and not any(getattr(args, k) for k in REPORT_FLAGS):
        out_dir = Path("lmscan-demo")
    if out_dir is not None:
        out.update({k: out_dir / name for k, name in REPORT_FLAGS.items()})
    for k in FILE_FLAGS:
        if getattr(args, k, None) is not None:
            out[k] = getattr(args, k)
    out.update(getattr(args, "extra_outputs", {}))
    return out


def _inputs(args: argparse.Namespace, settings: Settings) -> list[Path]:
    """Every file or directory this run reads (or fills), which no report may overwrite."""
    paths = [args.policy, *args.rules, args.inventory, args.save_snapshots, *(args.snapshot or [])]
    history = getattr(args, "history", None) or settings.history
    if settings.source:
        paths.append(Path(settings.source))
    if history and "://" not in str(history):
        paths.append(Path(history))
    return [p for p in paths if p is not None]


def cmd_scan(args: argparse.Namespace) -> int:
    from scanner import pipeline
    from scanner.reportset import check_outputs

    settings = cli_history.apply_config(args)
    outputs = _outputs(args)
    for fmt in [f for f in outputs if f not in FILE_FLAGS]:
        _warn(f"{settings.source}: outputs.{fmt}: this lmscan has no {fmt} report yet; not written")
        del outputs[fmt]
    check_outputs(outputs, _inputs(args, settings))
    mail = _mail_settings(args, settings.mail)
    mail_password = mail.password_value(os.environ) if mail else None
    policy = args.policy
    if args.demo:
        import importlib.resources
        demo = importlib.resources.files("scanner.demo")
        snapshot_paths = [Path(str(demo))]
        if policy is None:
            policy = Path(str(demo.joinpath("policy.yaml")))
        if not args.quiet:
            sys.stderr.write(f"lmscan: scanning the bundled demo clusters ({clean(snapshot_paths[0])})\n")
    ruleset = pipeline.load_ruleset(policy, args.rules)
    if args.only or args.skip:
        from dataclasses import replace

        from scanner.selection import select_rules
        ruleset = replace(ruleset, rules=tuple(select_rules(ruleset.rules, args.only, args.skip)))
    store = cli_history.open_history(args, settings)
    try:
        if args.inventory is not None:
            report, interrupted = _scan_inventory(args, ruleset)
        else:
            report = pipeline.scan_paths(ruleset, snapshot_paths if args.demo else args.snapshot,
                                         fail_on=args.fail_on, scan_id=args.scan_id)
            interrupted = False
        report = cli_history.compare(report, args, store)
        if store is not None:   # recorded before the reports are written: a report never names a lost run
            from scanner.render import render_json
            # The stored document is the JSON written below, byte for byte (render_json keeps it).
            store.record(report, render_json(report), complete=not interrupted)
    finally:
        if store is not None:
            store.close()
    code = exit_code(report)
    code = EXIT_INCOMPLETE if interrupted and code == EXIT_OK else code
    try:
        rendered = _write_reports(report, outputs)
        for note in pipeline.waiver_notes(report, ruleset.policy, _dt.date.today()):
            _warn(note)
        if not args.quiet and not any(str(p) == STDOUT for p in outputs.values()):
            _print_summary(report, outputs, args)
    except BrokenPipeError:
        # The reader of standard output went away (``| head``, ``| true``): the verdict stands,
        # and a report that did not reach its reader is never a success.
        _stdout_gone()
        return code if code != EXIT_OK else EXIT_INCOMPLETE
    if mail is not None and not _deliver(report, mail, mail_password, rendered, outputs, quiet=args.quiet):
        return EXIT_INCOMPLETE if code == EXIT_OK else code   # not sent: incomplete unless failures make it 1
    return code


def _stdout_gone() -> None:
    """Point standard output at /dev/null so nothing (not even the flush at exit) fails again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _mail_settings(args: argparse.Namespace, mapping: object = None) -> MailSettings | None:
    """Mail settings from the config's ``mail:`` block with the command line over it; None: no mail."""
    from scanner import mail

    base = None
    if isinstance(mapping, dict):
        base = mail.MailSettings.from_mapping(mapping, base_dir=getattr(args, "config_dir", None))
    if base is None and not args.mail_to:
        return None
    host, port = mail.parse_server(args.mail_server) if args.mail_server else (None, None)
    password = None
    if args.mail_password_env and args.mail_password_file:
        raise InputError("arguments", "give one of --mail-password-env and --mail-password-file")
    if args.mail_password_env:
        password = mail.PasswordRef("env", args.mail_password_env)
    elif args.mail_password_file:
        password = mail.PasswordRef("file", str(args.mail_password_file))
    settings = (base or mail.MailSettings(source="arguments")).merged(
        to=tuple(args.mail_to) if args.mail_to else None, cc=tuple(args.mail_cc) if args.mail_cc else None,
        sender=args.mail_from, reply_to=args.mail_reply_to, when=args.mail_when, host=host, port=port,
        security=args.mail_security, ca_bundle=args.mail_ca_bundle, username=args.mail_username,
        password=password,
        attach=mail._attach_list(args.mail_attach, "--mail-attach") if args.mail_attach is not None else None)
    return settings.validate()


def _deliver(report: ScanReport, settings: MailSettings, password: str | None, rendered: dict[str, bytes],
             paths: dict[str, Path], *, quiet: bool, original: bytes | None = None) -> bool:
    """Send the digest with the reports attached; False (and one line) when it was not sent."""
    from scanner import mail
    from scanner.render import FORMATS

    send, why = mail.should_send(report, settings.when)
    if not send:
        if not quiet:
            sys.stderr.write(f"lmscan: mail not sent: {clean(why)}\n")
        return True
    attachments = []
    for kind in settings.attach:
        fmt = next((k for k in (kind, "remediate") if k in FORMATS), None) if kind == "remediation" else kind
        if fmt is None or fmt not in FORMATS:
            _warn(f"mail: this lmscan cannot produce the {kind} attachment; it is left out")
            continue
        data = original if kind == "json" and original is not None else rendered.get(fmt) or FORMATS[fmt](report)
        path = paths.get(fmt)
        attachments.append(mail.make_attachment(kind, data, str(path) if path else None, settings.max_attachment_mb))
    message = mail.build_message(report, settings, attachments, date=_dt.datetime.now(_dt.timezone.utc))
    try:
        mail.send(message, settings, password)
    except mail.MailError as exc:
        _err(str(exc))
        return False
    if not quiet:
        sys.stderr.write(f"lmscan: mail sent to {clean(', '.join(settings.to + settings.cc))}\n")
    return True


def cmd_remediate(args: argparse.Namespace) -> int:
    """``lmscan remediate RESULTS -o FILE``: the fix script of a past scan."""
    from scanner.fsutil import atomic_write
    from scanner.remediate import render_fix_script
    from scanner.reportset import check_outputs
    from scanner.resultsfile import load_results

    if str(args.out) != STDOUT:
        check_outputs({"remediate": args.out}, [args.results])
    report = load_results(args.results)
    data = render_fix_script(report, args.cluster)
    if str(args.out) == STDOUT:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return EXIT_OK
    try:
        atomic_write(args.out, data)
    except OSError as exc:
        raise InputError(args.out, f"cannot write the fix script: {exc.strerror}") from None
    changes = data.count(b" -Finding '")
    sys.stderr.write(f"lmscan: wrote {args.out} ({changes} change(s); run it with -Apply on a node of the cluster "
                     "to make them)\n")
    return EXIT_OK


def cmd_mail(args: argparse.Namespace) -> int:
    """``lmscan mail --from-results FILE``: 0 when sent (or not due), 3 when sending failed."""
    from scanner.resultsfile import load_results

    config = args.config or (Path(os.environ["LMSCAN_CONFIG"]) if os.environ.get("LMSCAN_CONFIG") else None)
    mapping = None
    if config is not None:
        from scanner.config import load_config
        mapping = load_config(config).mail
    settings = _mail_settings(args, mapping)
    if settings is None:
        raise InputError("arguments", "no recipient: give --mail-to ADDRESS (or a config file with a mail: block)")
    password = settings.password_value(os.environ)
    report = load_results(args.from_results)
    original = args.from_results.read_bytes()
    sent = _deliver(report, settings, password, {}, {"json": args.from_results}, quiet=False, original=original)
    return EXIT_OK if sent else EXIT_INCOMPLETE


def exit_code(report: ScanReport) -> int:
    """Contracts §6: 1 when a counted failure exists, else 3 when anything is in error, else 0.

    With ``--fail-on-new`` only new and reopened failures count (contracts §7)."""
    if report.gating_failures():
        return EXIT_FAIL
    from scanner.model import Status
    if any(r.status is Status.ERROR for r in report.results):
        return EXIT_INCOMPLETE
    return EXIT_OK


def _write_reports(report: ScanReport, outputs: dict[str, Path]) -> dict[str, bytes]:
    """Render every report, write the files as one set (all or none), then standard output."""
    from scanner.parallel import render_all
    from scanner.reportset import write_files

    rendered = render_all(report, list(outputs))   # render all before writing any
    try:
        write_files({path: rendered[fmt] for fmt, path in outputs.items() if str(path) != STDOUT})
    except OSError as exc:
        raise InputError(exc.filename or "reports", f"cannot write the reports: {exc.strerror or exc} "
                         "(no report was written or changed)") from None
    for fmt, path in outputs.items():
        if str(path) == STDOUT:
            sys.stdout.buffer.write(rendered[fmt])
            sys.stdout.flush()
    return rendered


def _use_color(mode: str, stream: TextIO) -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def _print_summary(report: ScanReport, outputs: dict[str, Path], args: argparse.Namespace) -> None:
    from scanner.render import render_console

    # A CI log keeps every character of every finding; only a terminal is fitted to its width.
    full = args.full or not sys.stdout.isatty()
    import shutil

    from scanner.model import Severity
    width = None if full else min(shutil.get_terminal_size((100, 24)).columns, 120)
    severity = Severity(args.severity) if args.severity else None
    sys.stdout.write(render_console(report, color=_use_color(args.color, sys.stdout), width=width,
                                    min_severity=severity))
    for line in cli_history.summary_lines(report):
        sys.stdout.write(clean(line) + "\n")
    for fmt, path in outputs.items():
        sys.stdout.write(f"{fmt:>5}: {clean(path)}\n")
    sys.stdout.flush()


def _collect(args: argparse.Namespace, save_dir: Path | None) -> tuple[list[NodeOutcome], bool]:
    from scanner.collect import collect_inventory, save_snapshots
    from scanner.collect.inventory import load_inventory
    from scanner.collect.progress import Progress

    inventory = load_inventory(args.inventory, prompt=_prompt if sys.stdin.isatty() else None)
    for w in (*inventory.warnings, inventory.ntlm_notice()):
        if w:
            _warn(w)
    if save_dir is not None:
        _check_can_write(save_dir, "--out" if args.command == "collect" else "--save-snapshots")
    progress = Progress(sys.stderr, sys.stderr.isatty())   # the pool closes it with its summary line
    outcomes = collect_inventory(inventory, workers=args.workers, progress=progress)
    interrupted = any(o.error and "interrupted" in o.error for o in outcomes)
    if save_dir is not None:
        try:
            save_snapshots(outcomes, save_dir)
        except OSError as exc:   # a disk that filled up during the collection: report, say so, exit 3
            _err(f"cannot save the snapshots in {save_dir}: {exc.strerror or exc} ({exc.filename}); "
                 "the collected data is still evaluated, but not every snapshot was saved")
            interrupted = True
    return list(outcomes), interrupted


def _check_auth(args: argparse.Namespace) -> int:
    from scanner.collect.checkauth import check_inventory, render_table
    from scanner.collect.inventory import load_inventory

    inventory = load_inventory(args.inventory, prompt=_prompt if sys.stdin.isatty() else None)
    for w in (*inventory.warnings, inventory.ntlm_notice()):
        if w:
            _warn(w)
    checks = check_inventory(inventory, workers=args.workers)
    sys.stdout.write(clean(render_table(checks), multiline=True))
    return EXIT_OK if all(c.error is None for c in checks) else EXIT_INCOMPLETE


def _check_can_write(directory: Path, option: str) -> None:
    from scanner.fsutil import check_can_write

    try:
        check_can_write(directory)
    except OSError as exc:
        raise InputError(exc.filename or directory, f"{option} cannot be written: {exc.strerror or exc}; "
                         "give a writable directory with free space") from None


def _prompt(text: str) -> str:
    import getpass
    return getpass.getpass(text)


def _scan_inventory(args: argparse.Namespace, ruleset: RuleSet) -> tuple[ScanReport, bool]:
    from scanner import pipeline
    from scanner.normalize import NodeFailure, group_clusters

    outcomes, interrupted = _collect(args, args.save_snapshots)
    snaps = [o.snapshot for o in outcomes if o.snapshot is not None]
    failures = [NodeFailure(o.cluster, o.node, _without_node(o.node, o.error))
                for o in outcomes if o.snapshot is None]
    inv = {o.snapshot.source: o.cluster for o in outcomes if o.snapshot is not None}
    clusters = group_clusters(snaps, failures, inv)
    return pipeline.scan_clusters(ruleset, clusters, fail_on=args.fail_on, scan_id=args.scan_id), interrupted


def _without_node(node: str, error: str | None) -> str:
    """``HV03: authentication failed`` -> ``authentication failed``: reports name the node already."""
    text = error or "not collected"
    prefix = f"{node}: "
    return text[len(prefix):] if text.casefold().startswith(prefix.casefold()) else text


def cmd_collect(args: argparse.Namespace) -> int:
    if args.check_auth:
        return _check_auth(args)
    if args.out is None:
        raise InputError("lmscan collect", "--out DIR is required (or --check-auth)")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "--out must be a directory")
    outcomes, interrupted = _collect(args, args.out)
    ok = sum(1 for o in outcomes if o.snapshot is not None)
    failed = [o for o in outcomes if o.snapshot is None]
    code = EXIT_INCOMPLETE if failed or interrupted else EXIT_OK
    try:
        sys.stdout.write(f"collected {ok} of {len(outcomes)} nodes into {clean(args.out)}\n")
        for o in failed:
            sys.stdout.write(f"  error  {clean(o.cluster)}/{clean(o.node)}: {clean(o.error)}\n")
        sys.stdout.flush()
    except BrokenPipeError:   # as in cmd_scan: the outcome stands, a cut-off list is never success
        _stdout_gone()
        return EXIT_INCOMPLETE
    return code


def cmd_rules(args: argparse.Namespace) -> int:
    if args.rules_command == "validate":
        return _validate(args.file)
    if args.rules_command == "facts":
        return _list_facts()
    rules, overrides = _listed_rules(args)
    if args.rules_command == "list":
        rows = [{"id": r.id, "title": r.title, "severity": str(overrides.get(r.id, {}).get("severity", str(r.severity))),
                 "scope": r.scope, "enabled": overrides.get(r.id, {}).get("enabled") is not False, "pack": r.pack}
                for r in rules]
        if args.format == "json":
            import json
            sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
            return EXIT_OK
        w = max([len("ID")] + [len(r.id) for r in rules])
        sys.stdout.write(f"{'ID':<{w}}  {'SEVERITY':<8}  {'SCOPE':<9}  TITLE\n")
        for row in rows:
            off = "  (disabled by policy)" if not row["enabled"] else ""
            sys.stdout.write(clean(f"{row['id']:<{w}}  {row['severity']:<8}  {row['scope']:<9}  {row['title']}{off}")
                             + "\n")
        return EXIT_OK
    wanted = args.rule_id.casefold()
    for r in rules:
        if r.id.casefold() == wanted:
            sys.stdout.write(clean(_show_rule(r), multiline=True))
            return EXIT_OK
    raise InputError("rules", f"no rule with id {args.rule_id!r}; 'lmscan rules list' shows the ids")


def _listed_rules(args: argparse.Namespace) -> tuple[Sequence[Rule | RuleDoc], Mapping[str, Mapping[str, Any]]]:
    """The rules ``rules list``/``show`` print, with the policy's overrides.

    Without a policy or extra packs the built-in rules come from their cache (scanner.rulecache),
    so these commands start without loading the rule language; a stale cache is not used.
    """
    if args.policy is None and not args.rules:
        from scanner.rulecache import cached_builtin_docs
        docs = cached_builtin_docs()
        if docs is not None:
            return docs, {}
    from scanner import pipeline
    ruleset = pipeline.load_ruleset(args.policy, args.rules)
    return ruleset.rules, ruleset.policy.overrides


def _show_rule(r: Rule | RuleDoc) -> str:
    lines = [f"{r.id}: {r.title}", f"severity:  {r.severity}",
             f"target:    {r.scope}" + (" (one result per VM on Windows Server 2008 R2)" if r.per_vm else ""),
             f"defined:   {r.source}:{r.line} (pack {r.pack})", "", "Rationale:", f"  {r.rationale}", "",
             "Remediation (template; lmscan fills in the real network Ids):"]
    if r.fix:
        from scanner.fixkinds import FIXES
        lines[-1] = f"Remediation: fix '{r.fix}', computed from the site policy: {FIXES[r.fix]}."
        lines.append("  When no change can be computed, the result says instead:")
    lines += [f"  {x}" for x in r.remediation_text.rstrip().splitlines()]
    if r.references:
        lines += ["", "References:"] + [f"  {x}" for x in r.references]
    lines += ["", "Definition:"] + [f"  {x}" for x in r.yaml_text.rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def _list_facts() -> int:
    from scanner.conditions import OPERATORS
    from scanner.facts import FACTS

    values = _fact_values()
    for scope, facts in FACTS.items():
        sys.stdout.write(f"{scope}:\n")
        width = max(len(n) for n in facts)
        for name in sorted(facts):
            f = facts[name]
            kind = f" (a collection of {f.collection} items)" if f.collection else ""
            sys.stdout.write(f"  {name:<{width}}  {f.label}{kind}\n")
            if (scope, name) in values:
                sys.stdout.write(f"  {'':<{width}}    values: {values[(scope, name)]}\n")
    sys.stdout.write(f"operators: {', '.join(OPERATORS)}\n")
    sys.stdout.write("quantifiers: all, any, not, each/where/holds, exists/where, count/where\n")
    return EXIT_OK


def _fact_values() -> dict[tuple[str, str], str]:
    """The values an enum-like fact can take, as lmscan normalizes them (names, whatever the snapshot had)."""
    from scanner import values as v

    def names(mapping: Mapping[int, str]) -> str:
        return ", ".join(dict.fromkeys(mapping.values()))

    classes = ("a class the site policy declares (e.g. iscsi, management, live_migration, guest, cluster, "
               "storage), or unclassified")
    return {
        ("network", "role"): names(v.NETWORK_ROLE), ("network", "state"): names(v.NETWORK_STATE),
        ("network", "interface_state"): names(v.INTERFACE_STATE), ("network", "class"): classes,
        ("node", "state"): names(v.NODE_STATE), ("node", "authentication"): names(v.MIGRATION_AUTH),
        ("node", "performance_option"): names(v.MIGRATION_PERF),
        ("interface", "state"): names(v.INTERFACE_STATE), ("interface", "network_class"): classes,
        ("migration_network", "class"): classes,
    }


def _validate(path: Path) -> int:
    from scanner import pipeline
    from scanner.loader import load_pack
    from scanner.yamlsrc import load_yaml

    doc = load_yaml(path)
    data = doc.data if isinstance(doc.data, dict) else {}
    if "lmscan_policy" in data:
        rs = pipeline.load_ruleset(path)
        sys.stdout.write(clean(f"{path}: valid site policy ({len(rs.policy.entries)} network classes, "
                               f"{len(rs.rules)} rules in force)") + "\n")
        return EXIT_OK
    pack = load_pack(path)
    pipeline.load_ruleset(None, [path])  # also checks ids against the built-in pack
    sys.stdout.write(clean(f"{path}: valid rule pack '{pack.name}' {pack.version} ({len(pack.rules)} rules: "
                           f"{', '.join(r.id for r in pack.rules)})") + "\n")
    return EXIT_OK

