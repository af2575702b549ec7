"""The command line of nightly scans: config file, history, change marks and their commands.

Part of the CLI layer (it prints and returns exit codes, as :mod:`scanner.cli` does); kept in
its own module so the scan command itself stays short. ``lmscan scan`` calls
:func:`apply_config` before anything else, then :func:`Nightly` around the scan.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.errors import InputError

if TYPE_CHECKING:
    from scanner.config import Settings
    from scanner.history import HistoryStore
    from scanner.model import ScanReport

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
REPORT_NAMES = {"html": "report.html", "junit": "junit.xml", "json": "results.json",
                "sarif": "results.sarif", "markdown": "summary.md"}


# ----------------------------------------------------------------------------- options

def add_scan_options(s: argparse.ArgumentParser) -> None:
    """Options ``lmscan scan`` gains for nightly runs."""
    s.add_argument("--config", metavar="FILE", type=Path,
                   help="read settings from this config file (default: $LMSCAN_CONFIG); options given here win")
    s.add_argument("--history", metavar="PATH|URL",
                   help="record the run and compare with earlier ones here: a SQLite file or a postgresql:// URL "
                        "(default: the config's, else ~/.local/share/lmscan/history.db)")
    s.add_argument("--no-history", action="store_true", help="neither record this run nor compare with history")
    s.add_argument("--baseline", metavar="FILE", type=Path,
                   help="compare with this results JSON instead of the history")
    s.add_argument("--fail-on-new", action="store_true", default=None,
                   help="exit 1 only for new or reopened failures at or above --fail-on (tolerate known ones)")


def _add_store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", metavar="PATH|URL", help="the history store (default: the config's, else "
                   "~/.local/share/lmscan/history.db)")
    p.add_argument("--config", metavar="FILE", type=Path, help="take the history store from this config file")


def add_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                 parser_class: type[argparse.ArgumentParser]) -> None:
    """``lmscan history ...``, ``lmscan config ...`` and ``lmscan report --from-history``."""
    h = sub.add_parser("history", help="list, show, compare and prune recorded runs")
    hs = h.add_subparsers(dest="history_command", metavar="ACTION", parser_class=parser_class)
    hs.required = True
    hl = hs.add_parser("list", help="one line per recorded run")
    hl.add_argument("--cluster", metavar="NAME", help="only runs that covered this cluster")
    hl.add_argument("--since", metavar="WHEN", help="only runs since then: a date, a time, or an age like 7d, 24h")
    _add_store_option(hl)
    hw = hs.add_parser("show", help="re-render a recorded run (its JSON byte for byte as written then)")
    hw.add_argument("scan_id", metavar="SCAN_ID", help="a scan id or a unique prefix of one")
    for fmt in REPORT_NAMES:
        hw.add_argument(f"--{fmt}", metavar="FILE", type=Path, help=f"write the {fmt} report here ('-': stdout)")
    hw.add_argument("--out-dir", metavar="DIR", type=Path, help="write every report into DIR")
    _add_store_option(hw)
    hd = hs.add_parser("diff", help="what changed from run A to run B")
    hd.add_argument("a", metavar="A")
    hd.add_argument("b", metavar="B")
    _add_store_option(hd)
    hp = hs.add_parser("prune", help="delete runs older than N days (the last run that reached a cluster stays)")
    hp.add_argument("--keep-days", metavar="N", type=int, required=True)
    _add_store_option(hp)

    c = sub.add_parser("config", help="check a config file, or print a commented example")
    cs = c.add_subparsers(dest="config_command", metavar="ACTION", parser_class=parser_class)
    cs.required = True
    cc = cs.add_parser("check", help="validate a config file")
    cc.add_argument("file", metavar="FILE", type=Path)
    cs.add_parser("example", help="print a commented example config")

    r = sub.add_parser("report", help="render one report of the latest run of every cluster in the history")
    r.add_argument("--from-history", action="store_true", required=True,
                   help="take the latest run of every cluster from the history store")
    r.add_argument("--since", metavar="AGE", help="only runs since then (e.g. 24h, 7d, or a date)")
    r.add_argument("--max-age", metavar="AGE", default="36h",
                   help="flag clusters whose latest scan is older than this (default 36h)")
    for fmt in REPORT_NAMES:
        r.add_argument(f"--{fmt}", metavar="FILE", type=Path, help=f"write the {fmt} report here ('-': stdout)")
    r.add_argument("--out-dir", metavar="DIR", type=Path, help="write every report into DIR")
    r.add_argument("-q", "--quiet", action="store_true", help="print no summary")
    _add_store_option(r)


# ----------------------------------------------------------------------------- config merge

def _load_settings(path: Path | None) -> Settings:
    from scanner.config import Settings, load_config
    if path is None:
        env = os.environ.get("LMSCAN_CONFIG")
        path = Path(env) if env else None
    return load_config(path) if path is not None else Settings()


def apply_config(args: argparse.Namespace) -> Settings:
    """Merge the config file under the command line: an option given here wins over its key.

    Fills ``args`` in place (source, policy, rules, fail_on, workers, outputs, history) and
    gives the run its scan id and date, which output paths may use.
    """
    import uuid

    from scanner.config import expand

    settings = _load_settings(args.config)
    args.scan_id = str(uuid.uuid4())
    args.scan_date = _dt.date.today().isoformat()
    if not (args.snapshot or args.inventory is not None or args.demo):
        if settings.snapshots:
            args.snapshot = list(settings.snapshots)
        elif settings.inventory is not None:
            args.inventory = settings.inventory
        else:
            raise InputError("arguments", "give --snapshot, --inventory or --demo (or a config file that "
                             "names snapshots or an inventory)")
    if args.policy is None and settings.policy is not None:
        args.policy = settings.policy
    if not args.rules and settings.rules:
        args.rules = list(settings.rules)
    if args.fail_on is None:
        from scanner.model import Severity
        env = os.environ.get("LMSCAN_FAIL_ON", "").strip()
        if env and env.casefold() not in {s.value for s in Severity}:
            raise InputError("LMSCAN_FAIL_ON", f"unknown severity {env!r}; use one of "
                             f"{', '.join(s.value for s in Severity)} (any case)")
        args.fail_on = (env or settings.fail_on or "low").casefold()
    if args.fail_on_new is None:
        args.fail_on_new = bool(settings.fail_on_new)
    if args.workers is None and settings.workers is not None:
        args.workers = settings.workers
    # Outputs: --out-dir wins over outputs.dir, --html over outputs.html, and so on.
    outs = {k: expand(v, args.scan_date, args.scan_id) for k, v in settings.outputs.items()}
    out_dir = args.out_dir if args.out_dir is not None else (Path(outs["dir"]) if "dir" in outs else None)
    named = [k for k in outs if k != "dir"]
    args.extra_outputs = {}
    if named:
        for fmt in named:
            path = Path(outs[fmt])
            if out_dir is not None and not path.is_absolute():
                path = out_dir / path
            if getattr(args, fmt, None) is None:
                if hasattr(args, fmt):
                    setattr(args, fmt, path)
                else:
                    args.extra_outputs[fmt] = path   # a format this lmscan does not render (yet)
    elif out_dir is not None and args.out_dir is None:
        args.out_dir = out_dir
    args.settings = settings
    return settings


# ----------------------------------------------------------------------------- the nightly run

def history_location(args: argparse.Namespace, settings: Settings) -> str | None:
    """Where this scan is recorded, or None: --no-history, ``history: false``, or the demo
    without an explicit store (the bundled demo clusters do not belong in a real history)."""
    from scanner.history import default_path
    if getattr(args, "no_history", False):
        return None
    if getattr(args, "history", None):
        return str(args.history)
    if settings.history_off:
        return None
    if settings.history:
        return settings.history
    env = _env_history()
    if env is not None:
        return env or None
    if getattr(args, "demo", False):
        return None
    return str(default_path())


def _env_history() -> str | None:
    """``$LMSCAN_HISTORY``: a store, "" when it says off, None when unset."""
    value = os.environ.get("LMSCAN_HISTORY")
    if not value:
        return None
    return "" if value.strip().lower() in ("off", "none", "false", "0", "no") else value


def _check_url(location: str) -> None:
    from urllib.parse import urlsplit

    from scanner.history import is_url
    if is_url(location):
        try:
            has = urlsplit(location).password is not None or "password=" in location
        except ValueError:
            raise InputError("--history", "not a valid URL") from None
        if has:
            raise InputError("--history", "the URL holds a password; remove it and name an environment variable "
                             "with history_password_env in the config file (or use ~/.pgpass)")


def open_history(args: argparse.Namespace, settings: Settings) -> HistoryStore | None:
    """Open (and migrate) the store before anything is scanned, so a bad one stops the run early."""
    from scanner.history import open_store
    location = history_location(args, settings)
    if location is None:
        return None
    _check_url(location)
    return open_store(location, settings.history_password_env).open()


def compare(report: ScanReport, args: argparse.Namespace, store: HistoryStore | None) -> ScanReport:
    """Mark changes against ``--baseline`` or the history (when either is in use)."""
    from scanner.changes import baselines_from_report, mark_changes
    if args.baseline is not None:
        from scanner.resultsfile import load_results
        base = load_results(args.baseline)
        return mark_changes(report, baselines_from_report(base), "baseline", fail_on_new=args.fail_on_new)
    if store is not None:
        return mark_changes(report, store.baselines([c.name for c in report.clusters]), "history",
                            fail_on_new=args.fail_on_new)
    if args.fail_on_new:
        raise InputError("--fail-on-new", "needs something to compare with: a history (not --no-history) "
                         "or --baseline FILE")
    return report


def summary_lines(report: ScanReport) -> list[str]:
    """What the console adds after its summary when changes were marked."""
    from scanner.changes import new_failures
    from scanner.render._common import one_line, target_label
    ch = report.changes
    if ch is None:
        return []
    what = "the baseline" if ch.source == "baseline" else "the last run"
    since = f" (scan {ch.scan_id[:8]} of {ch.scan_time})" if ch.scan_id else " (no earlier run)"
    new = new_failures(report.results)
    c = ch.counts
    lines = [f"Since {what}{since}: {c['new']} new, {c['reopened']} reopened, {c['resolved']} resolved, "
             f"{c['unchanged']} unchanged; {len(new)} new or reopened failure{'s' if len(new) != 1 else ''}"]
    for r in new[:10]:
        lines.append(f"  {r.change.value if r.change else '':<9}{r.severity.value:<9}{one_line(r.rule):<8}"
                     f"{one_line(r.cluster)} {target_label(r.target)}")
    if len(new) > 10:
        lines.append(f"  ... and {len(new) - 10} more")
    for cmp in ch.clusters:
        if cmp.state in ("stopped", "started", "unreachable"):
            lines.append(f"  {one_line(cmp.cluster)}: {cmp.note}")
    if ch.fail_on_new:
        lines.append(f"--fail-on-new: {ch.tolerated} known failure{'s' if ch.tolerated != 1 else ''} tolerated")
    return lines


# ----------------------------------------------------------------------------- commands

def _store_for(args: argparse.Namespace) -> HistoryStore:
    from scanner.history import default_path, open_store
    settings = _load_settings(getattr(args, "config", None))
    location = args.history or settings.history or _env_history() or str(default_path())
    _check_url(location)
    if not re.match(r"^[a-z]+://", location) and not Path(location).expanduser().exists():
        raise InputError(location, "no history store here yet (a scan creates it); give --history or --config")
    return open_store(location, settings.history_password_env).open()


_AGE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


def parse_when(text: str, now: _dt.datetime | None = None) -> str:
    """``24h``, ``7d``, ``2026-11-01`` or ``2026-11-01T02:00:00Z`` -> an ISO UTC time string."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    m = _AGE.match(text)
    if m:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        moment = now - _dt.timedelta(**{unit: int(m.group(1))})
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        moment = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError("arguments", f"{text!r} is neither an age (30m, 24h, 7d, 2w) nor a date "
                         "(2026-11-01 or 2026-11-01T02:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_config(args: argparse.Namespace) -> int:
    from scanner.config import EXAMPLE, load_config
    if args.config_command == "example":
        sys.stdout.write(EXAMPLE)
        return EXIT_OK
    s = load_config(args.file)
    source = f"{len(s.snapshots)} snapshot path(s)" if s.snapshots else \
        (f"inventory {s.inventory}" if s.inventory else "no source (give --snapshot or --inventory)")
    history = "off" if s.history_off else (s.history or "default (~/.local/share/lmscan/history.db)")
    if s.history and "://" in s.history:
        from scanner.history import _redact
        history = _redact(s.history)
    sys.stdout.write(f"{args.file}: valid config ({source}; history {history}"
                     f"{'; mail to ' + ', '.join(s.mail['to']) if s.mail else ''})\n")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    with _store_for(args) as store:
        if args.history_command == "list":
            return _list(store, args)
        if args.history_command == "show":
            return _show(store, args)
        if args.history_command == "diff":
            return _diff(store, args)
        if args.keep_days < 0:
            raise InputError("--keep-days", "must be 0 or more")
        n = store.prune(args.keep_days)
        sys.stdout.write(f"pruned {n} run{'s' if n != 1 else ''} older than {args.keep_days} days "
                         f"from {store.where}\n")
        return EXIT_OK


def _list(store: HistoryStore, args: argparse.Namespace) -> int:
    from scanner.render._common import one_line
    since = parse_when(args.since) if args.since else None
    runs = store.runs(cluster=args.cluster, since=since)
    if not runs:
        sys.stdout.write("no recorded runs" + (" match" if args.cluster or since else "") + "\n")
        return EXIT_OK
    for run in runs:
        c = run.counts
        names = ", ".join(one_line(n) for n in run.clusters[:4]) + (f" +{len(run.clusters) - 4}"
                                                                       if len(run.clusters) > 4 else "")
        flag = "" if run.complete else " (interrupted)"
        sys.stdout.write(f"{run.started_at}  {run.scan_id}  {one_line(run.scanner_host):<16}  "
                         f"{run.verdict.upper():<10}  fail {c['fail']:>4}  error {c['error']:>4}  "
                         f"pass {c['pass']:>5}  {len(run.clusters)} cluster(s): {names}{flag}\n")
    return EXIT_OK


def _outputs(args: argparse.Namespace) -> dict[str, Path]:
    from scanner.render import FORMATS
    out: dict[str, Path] = {}
    if args.out_dir is not None:
        out.update({k: args.out_dir / name for k, name in REPORT_NAMES.items() if k in FORMATS})
    for k in REPORT_NAMES:
        if getattr(args, k, None) is not None:
            out[k] = getattr(args, k)
    return out


def _write(report: ScanReport, outputs: dict[str, Path], raw_json: bytes | None = None) -> None:
    from scanner.fsutil import atomic_write
    from scanner.render import FORMATS
    missing = [f for f in outputs if f not in FORMATS]
    if missing:
        raise InputError("arguments", f"this lmscan cannot render {', '.join(missing)} yet")
    rendered = {f: (raw_json if f == "json" and raw_json is not None else FORMATS[f](report)) for f in outputs}
    for fmt, path in outputs.items():
        if str(path) == "-":
            sys.stdout.buffer.write(rendered[fmt])
            sys.stdout.flush()
        else:
            try:
                atomic_write(path, rendered[fmt])
            except OSError as exc:
                raise InputError(path, f"cannot write the {fmt} report: {exc.strerror}") from None


def _show(store: HistoryStore, args: argparse.Namespace) -> int:
    from scanner.resultsfile import parse_results
    scan_id = store.find(args.scan_id)
    raw = store.document(scan_id)
    outputs = _outputs(args) or {"json": Path("-")}
    report = parse_results(raw, f"history scan {scan_id}")
    _write(report, outputs, raw_json=raw)
    if not any(str(p) == "-" for p in outputs.values()):
        for fmt, path in outputs.items():
            sys.stdout.write(f"{fmt:>8}: {path}\n")
    return EXIT_OK


def _diff(store: HistoryStore, args: argparse.Namespace) -> int:
    from scanner.changes import baselines_from_report, mark_changes
    from scanner.model import Change, Status
    from scanner.render._common import one_line, target_label
    from scanner.resultsfile import parse_results
    a_id, b_id = store.find(args.a), store.find(args.b)
    a = parse_results(store.document(a_id), f"history scan {a_id}")
    b = parse_results(store.document(b_id), f"history scan {b_id}")
    marked = mark_changes(b, baselines_from_report(a), "baseline")
    ch = marked.changes
    assert ch is not None
    sys.stdout.write(f"from {a_id} ({a.scan.started_at}) to {b_id} ({b.scan.started_at}): "
                     f"{ch.counts['new']} new, {ch.counts['reopened']} reopened, "
                     f"{ch.counts['resolved']} resolved, {ch.counts['unchanged']} unchanged\n")
    for r in marked.results:
        if r.status is Status.FAIL and r.change in (Change.NEW, Change.REOPENED):
            sys.stdout.write(f"+ {r.change.value:<9}{r.severity.value:<9}{one_line(r.rule):<8}"
                             f"{one_line(r.cluster)} {target_label(r.target)}: {one_line(r.message, 160)}\n")
    for f in ch.resolved:
        gone = " (target gone)" if f.gone else ""
        sys.stdout.write(f"- resolved {f.severity:<9}{one_line(f.rule):<8}{one_line(f.cluster)} "
                         f"{target_label(f.target)}{gone}\n")
    for c in ch.clusters:
        if c.state in ("stopped", "started", "first"):
            sys.stdout.write(f"  {one_line(c.cluster)}: {c.note}\n")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from scanner.merged import merged_report
    since = parse_when(args.since) if args.since else None
    max_age = parse_when(args.max_age)
    with _store_for(args) as store:
        report = merged_report(store, since=since, stale_before=max_age)
    outputs = _outputs(args) or ({"html": Path("lmscan-fleet.html")})
    _write(report, outputs)
    if not args.quiet and not any(str(p) == "-" for p in outputs.values()):
        from scanner.render._common import one_line
        sys.stdout.write(f"{len(report.origins)} cluster(s) from the history:\n")
        for o in report.origins:
            flag = "  STALE" if o.stale else ""
            sys.stdout.write(f"  {one_line(o.cluster):<24} {o.scan_time}  {one_line(o.scanner_host)}{flag}\n")
        for fmt, path in outputs.items():
            sys.stdout.write(f"{fmt:>8}: {path}\n")
    return EXIT_OK


def ensure_parent_dirs(paths: Sequence[Path]) -> None:
    """Output directories named by the config (``reports/{date}``) are made when needed."""
    for p in paths:
        if str(p) != "-":
            p.parent.mkdir(parents=True, exist_ok=True)
