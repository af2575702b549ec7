"""The fix script: every remediation action of a scan as one PowerShell script to approve and run.

Built from the results alone (``lmscan remediate results.json``, or ``scan --remediate FILE``).
Per cluster it holds the exact commands, each block commented with the findings it fixes and
the networks by name; it shows what it would do unless run with ``-Apply``, refuses to run on a
node of another cluster, keeps a transcript, and skips a list that changed since the scan.
Field text reaches the script only through ``scanner.pwsh`` (values quoted, comments inert).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scanner.actions import (Action, AddDelegation, RemoveDefaultRoute, RemoveMigrationNetwork, SetAtcOverride,
                             SetClusterProperty, SetHost, SetLMList, SetNetworkRole)
from scanner.errors import InputError
from scanner.fixps import ATC_HOST_NOTE, ATC_LISTS_NOTE, commands, describe, ps_comment, setting_target
from scanner.model import ClusterInfo, Result, ScanReport, Status
from scanner.pwsh import comment, quote

# PowerShell 2.0 (Windows Server 2008 R2) compatible helpers: no [ordered], no -in, no ::new.
PRELUDE = r"""param([switch]$Apply)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$script:Failed = 0

function ConvertTo-LmIdList([string]$Value) {
    $ids = @()
    foreach ($part in ([string]$Value).Split(';')) {
        $id = $part.Trim().Trim('{', '}').Trim().ToLowerInvariant()
        if ($id) { $ids += $id }
    }
    return ,$ids
}

function Test-LmList([string]$Current, [string[]]$Expected, [switch]$Ordered) {
    # The list as the scan saw it? (exclude: same set; order: same sequence)
    $now = ConvertTo-LmIdList $Current
    if ($now.Count -ne $Expected.Count) { return $false }
    for ($i = 0; $i -lt $now.Count; $i++) {
        if ($Ordered) {
            if ($now[$i] -ne $Expected[$i]) { return $false }
        } elseif ($Expected -notcontains $now[$i]) {
            return $false
        }
    }
    return $true
}

function Invoke-LmChange([string]$Finding, [string]$What, [scriptblock]$Change) {
    if (-not $Apply) {
        Write-Host "What if: $What  [$Finding]"
        return
    }
    Write-Host "Changing: $What  [$Finding]"
    try {
        & $Change
    } catch {
        $script:Failed++
        Write-Warning "Failed: $What  [$Finding]: $($_.Exception.Message)"
    }
}

function Invoke-LmListChange([scriptblock]$Read, [string[]]$Previous, [switch]$Ordered,
                             [string]$Finding, [string]$What, [scriptblock]$Change) {
    $current = [string](& $Read)
    if (-not (Test-LmList $current $Previous -Ordered:$Ordered)) {
        $script:Failed++
        Write-Warning "Skipped: $What  [$Finding]: the value changed since the scan (now '$current'); scan again"
        return
    }
    Invoke-LmChange $Finding $What $Change
}
"""


@dataclass
class _Block:
    """One change of a cluster and the findings it fixes."""

    action: Action
    findings: list[Result] = field(default_factory=list)


def _order_key(a: Action) -> tuple[int, str]:
    """ATC overrides first (they must let go of the lists), then lists, roles, cluster, hosts."""
    if isinstance(a, SetAtcOverride):
        return (0, "")
    if isinstance(a, SetLMList):
        return (1, f"{a.vm or ''}|{a.list}")
    if isinstance(a, SetNetworkRole):
        return (2, a.network_id)
    if isinstance(a, SetClusterProperty):
        return (3, a.name)
    if isinstance(a, (SetHost, RemoveMigrationNetwork, AddDelegation, RemoveDefaultRoute)):
        return (4, a.node.casefold())
    return (5, "")  # pragma: no cover - every kind is listed above


def _place(a: Action) -> tuple[str, ...] | None:
    """What an action sets: two different values for one place are a conflict."""
    if isinstance(a, SetLMList):
        return ("list", (a.vm or "").casefold(), a.list)
    if isinstance(a, SetHost):
        return ("host", a.node.casefold(), a.setting)
    if isinstance(a, SetClusterProperty):
        return ("cluster", a.name)
    if isinstance(a, SetNetworkRole):
        return ("role", a.network_id)
    return None


def _blocks(cluster: str, results: Sequence[Result]) -> list[_Block]:
    blocks: dict[Action, _Block] = {}
    where: dict[tuple[str, ...], tuple[Action, Result]] = {}
    for r in results:
        for a in r.actions:
            place = _place(a)
            if place is not None:
                seen = where.setdefault(place, (a, r))
                if seen[0] != a:
                    raise InputError("results", f"cluster {cluster}: results {seen[1].id} and {r.id} ask for "
                                                f"different values of one setting ({describe(a)}); scan again")
            blocks.setdefault(a, _Block(a)).findings.append(r)
    return sorted(blocks.values(), key=lambda b: _order_key(b.action))


def legacy(info: ClusterInfo | None, results: Iterable[Result]) -> bool:
    """Windows Server 2008 R2 (PowerShell 2.0): a per-VM setting, or the OS says so."""
    if any(isinstance(a, SetLMList) and a.vm for r in results for a in r.actions):
        return True
    return info is not None and ("2008" in info.os or "(6.1." in info.os or "(6.0." in info.os)


def fix_script(report: ScanReport, clusters: Sequence[str] = ()) -> str:
    """The PowerShell fix script for the failures of ``report`` (optionally only some clusters)."""
    wanted = {c.casefold() for c in clusters}
    infos = {c.name.casefold(): c for c in report.clusters}
    unknown = sorted(c for c in clusters if c.casefold() not in infos)
    if unknown:
        raise InputError("--cluster", f"no cluster {unknown[0]!r} in these results "
                                      f"(clusters: {', '.join(c.name for c in report.clusters) or 'none'})")
    by_cluster: dict[str, list[Result]] = {}
    for r in report.results:
        if r.status is Status.FAIL and (not wanted or r.cluster.casefold() in wanted):
            by_cluster.setdefault(r.cluster, []).append(r)
    with_actions = {c: rs for c, rs in by_cluster.items() if any(r.actions for r in rs)}
    old = any(legacy(infos.get(c.casefold()), rs) for c, rs in with_actions.items())
    lines = _header(report, sorted(with_actions, key=str.casefold), old)
    lines.append(PRELUDE)
    lines += _start(sorted(with_actions, key=str.casefold))
    first = True
    for name in sorted(with_actions, key=str.casefold):
        rs = with_actions[name]
        lines.append(f"    {'if' if first else '} elseif'} ($here -eq {quote(name)}) {{")
        first = False
        lines += ["        " + x if x else "" for x in _cluster_body(name, infos.get(name.casefold()), rs)]
    if with_actions:
        lines += ["    } else {",
                  "        throw \"This script changes only the clusters named above; this node belongs to cluster "
                  "$here. Run it on a node of the right cluster.\"",
                  "    }"]
    else:
        lines.append("    Write-Host 'Nothing to change: no finding of these results has an automatic fix.'")
    manual = [r for rs in by_cluster.values() for r in rs if not r.actions]
    lines += _finish()
    if manual:
        lines += ["", ps_comment("Findings this script does not change (they need a person; see the report):")]
        lines += [ps_comment(f"  {r.id}: {r.message}") for r in manual]
    return "\n".join(lines).rstrip() + "\n"


def _header(report: ScanReport, clusters: Sequence[str], old: bool) -> list[str]:
    scan = report.scan
    lines = ["#Requires -Version 2.0"] if old else ["#Requires -Version 3.0", "#Requires -Modules FailoverClusters"]
    lines += [
        "<#",
        ".SYNOPSIS",
        f"    {comment('lmscan fix script for cluster(s) ' + (', '.join(clusters) or '(none)'))}",
        ".DESCRIPTION",
        f"    {comment(f'Written by lmscan {scan.tool_version} from scan {scan.id} ({scan.finished_at}).')}",
        "    Each change below names the findings it fixes. Review it, then run it on a node of the",
        "    cluster: without -Apply it only shows what it would change; with -Apply it changes it.",
        "    A live-migration list that changed since the scan is skipped with a warning (scan again).",
        "    A transcript goes to %TEMP%\\lmscan-fix-<time>.log.",
        ".PARAMETER Apply",
        "    Make the changes. Without it the script changes nothing (what-if).",
        "#>",
    ]
    if old:
        lines.insert(1, ps_comment("PowerShell 2.0 compatible (Windows Server 2008 R2): modules are imported below."))
    return lines


def _start(clusters: Sequence[str]) -> list[str]:
    return [
        "try {",
        "    Import-Module FailoverClusters -ErrorAction Stop",
        "    $here = [string](Get-Cluster -ErrorAction Stop).Name",
        "} catch {",
        "    Write-Error \"This script must run on a node of a failover cluster: $($_.Exception.Message)\"",
        "    exit 2",
        "}",
        "$log = Join-Path $env:TEMP ('lmscan-fix-{0:yyyyMMdd-HHmmss}.log' -f (Get-Date))",
        "$transcript = $false",
        "try { Start-Transcript -Path $log | Out-Null; $transcript = $true } catch { Write-Warning \"No transcript: "
        "$($_.Exception.Message)\" }",
        "if (-not $Apply) { Write-Host 'What-if run: nothing is changed. Run again with -Apply to make these changes.' }",
        "try {",
    ]


def _finish() -> list[str]:
    return [
        "} finally {",
        "    if ($transcript) { Stop-Transcript | Out-Null }",
        "}",
        "if ($script:Failed) { Write-Warning \"$script:Failed change(s) failed or were skipped.\"; exit 1 }",
    ]


def _cluster_body(name: str, info: ClusterInfo | None, results: Sequence[Result]) -> list[str]:
    blocks = _blocks(name, results)
    lines = [ps_comment(f"===== cluster {name}" + (f" ({info.os})" if info and info.os else ""))]
    kinds = {type(b.action) for b in blocks}
    if SetHost in kinds or RemoveMigrationNetwork in kinds:
        lines.append("Import-Module Hyper-V -ErrorAction Stop")
    if SetAtcOverride in kinds:
        lines.append("Import-Module NetworkATC -ErrorAction Stop")
    if AddDelegation in kinds:
        lines.append(ps_comment("Constrained delegation is set in Active Directory: run as a domain administrator "
                                "(RSAT ActiveDirectory module)."))
        lines.append("Import-Module ActiveDirectory -ErrorAction Stop")
    for b in blocks:
        lines.append("")
        lines += _block(b)
    return lines


def _block(b: _Block) -> list[str]:
    a = b.action
    what = describe(a)
    lines = [ps_comment(f"--- {what}")]
    if isinstance(a, SetAtcOverride):
        keys = {k for k, _ in a.settings}
        lines.append(ps_comment(ATC_LISTS_NOTE if "EnableLiveMigrationNetworkSelection" in keys else ATC_HOST_NOTE))
    for r in b.findings:
        lines.append(ps_comment(f"fixes {r.rule} {r.id}: {r.message}"))
    if isinstance(a, SetLMList):
        lines += [ps_comment(f"  {i} = {n}") for i, n in zip(a.ids, a.names, strict=False)]
    findings = quote(", ".join(r.id for r in b.findings))
    body = ["    " + c for c in commands(a)]
    if isinstance(a, SetLMList):
        prev = "@(" + ", ".join(quote(i) for i in a.previous) + ")"
        read = f"({setting_target(a.vm)} | Get-ClusterParameter -Name {a.property}).Value"
        lines.append(f"Invoke-LmListChange -Read {{ {read} }} -Previous {prev}"
                     f"{' -Ordered' if a.list == 'order' else ''} -Finding {findings} -What {quote(what)} "
                     "-Change {")
    else:
        lines.append(f"Invoke-LmChange -Finding {findings} -What {quote(what)} -Change {{")
    return lines + body + ["}"]


def render_fix_script(report: ScanReport, clusters: Sequence[str] = ()) -> bytes:
    """The fix script as a file: UTF-8 with a BOM (Windows PowerShell reads a .ps1 without one in
    the ANSI code page, which garbles non-ASCII names) and CRLF line ends."""
    return ("\ufeff" + fix_script(report, clusters).replace("\n", "\r\n")).encode("utf-8")
