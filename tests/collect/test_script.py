"""The collector script: syntax (tree-sitter-powershell), contract §1 coverage, PowerShell 2.0 safety.

No PowerShell runs here, so the script's contract is checked statically: every section and
property of contracts §1 is selected, nothing needs PowerShell 3.0+, output is explicit.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from scanner import __version__
from scanner.collect.discover import DISCOVERY_SCRIPT
from scanner.collect.script import collector_script
from scanner.pwsh import ps_quote

ts = pytest.importorskip("tree_sitter")
tsp = pytest.importorskip("tree_sitter_powershell")

LIST_SECTIONS = {"ClusterNode", "ClusterNetwork", "ClusterNetworkInterface", "VirtualMachineResource",
                 "VMMigrationNetwork", "SmbBandwidthLimit", "NetIntent", "NetAdapter", "DefaultRoute",
                 "SmbMultichannelConstraint", "SmbClientNetworkInterface"}
SOURCE_COMMANDS = {
    "Cluster": "Get-Cluster", "ClusterNode": "Get-ClusterNode", "ClusterNetwork": "Get-ClusterNetwork",
    "ClusterNetworkInterface": "Get-ClusterNetworkInterface", "VirtualMachineResourceType": "Get-ClusterResourceType",
    "VirtualMachineResource": "Get-ClusterResource", "VMHost": "Get-VMHost",
    "VMMigrationNetwork": "Get-VMMigrationNetwork", "NetIntent": "Get-NetIntent", "NetIntentGlobalOverrides": "Get-NetIntent",
    "NetAdapter": "Get-NetAdapter", "DefaultRoute": "Get-NetRoute",
    "SmbMultichannelConstraint": "Get-SmbMultichannelConstraint",
    "SmbClientNetworkInterface": "Get-SmbClientNetworkInterface",
}
#: Sections whose cmdlet belongs to a feature that can be installed without it: a missing cmdlet is
#: an error naming what to install, never a silent absence.
MODULE_SECTIONS = {"Cluster", "ClusterNode", "ClusterNetwork", "ClusterNetworkInterface", "VirtualMachineResourceType",
                   "VirtualMachineResource", "VMHost", "VMMigrationNetwork"}


def contract_table(text: str) -> dict[str, list[str]]:
    """Section -> properties, read from the table of contracts.md §1."""
    section1 = text.split("## 1.", 1)[1].split("## 2.", 1)[0]
    table: dict[str, list[str]] = {}
    for name, props in re.findall(r"^\| `(\w+)` \| [^|]*(?:\\\|[^|]*)* \| ([^|]+) \|$", section1, re.M):
        props = re.sub(r"\([^)]*\)", "", props.split(":", 1)[-1])
        table[name] = [p.strip() for p in props.split(",") if p.strip()]
    return table


@pytest.fixture(scope="module")
def contract() -> dict[str, list[str]]:
    from tests.conftest import shared_path
    table = contract_table(shared_path("spec/contracts.md").read_text(encoding="utf-8"))
    assert len(table) >= 18, sorted(table)
    return table

# PowerShell 3.0+ only: would break the collector on Windows Server 2008 R2.
NOT_IN_POWERSHELL_2 = {
    "ConvertTo-Json": r"ConvertTo-Json\b",
    "[ordered]": r"\[ordered\]",
    "[pscustomobject]": r"\[pscustomobject\]",
    "::new(": r"::new\(",
    "-in / -notin": r"\s-(not)?in\s",
    "$PSItem": r"\$PSItem",
    ".ForEach( / .Where(": r"\.(ForEach|Where)\(",
    "-NoEnumerate": r"-NoEnumerate",
    "-ErrorAction Ignore": r"-ErrorAction\s+'?Ignore",
    "$PSScriptRoot": r"\$PSScriptRoot",
    "class / using / enum": r"(?m)^\s*(class|using|enum)\s",
    "-ClassName on Get-WmiObject": r"Get-WmiObject\s+-ClassName",
}


def syntax_problems(source: str) -> list[str]:
    """Every ERROR or MISSING node tree-sitter-powershell finds, as 'line:col kind text'."""
    parser = ts.Parser(ts.Language(tsp.language()))
    data = source.encode("utf-8")
    tree = parser.parse(data)
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            kind = f"MISSING {node.type}" if node.is_missing else "ERROR"
            text = data[node.start_byte:node.end_byte][:40].decode("utf-8", "replace")
            found.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1} {kind} {text!r}")
        stack.extend(node.children)
    return sorted(found)


@pytest.fixture(scope="module")
def script() -> str:
    return collector_script()


def section_blocks(script: str) -> dict[str, list[str]]:
    """The text of every place that writes a section: ``Invoke-Section -Name 'X'`` up to the next
    section, and direct ``$Sections['X'] = ...`` lines. A section may have two (cmdlets and WMI)."""
    marks = [(m.group(1), m.start()) for m in re.finditer(r"Invoke-Section -Name '(\w+)'", script)]
    marks += [(m.group(1), m.start()) for m in re.finditer(r"\$Sections\['(\w+)'\] = New-Record", script)]
    marks.sort(key=lambda x: x[1])
    end = script.index("$collector = @{}")
    blocks: dict[str, list[str]] = {}
    for i, (name, start) in enumerate(marks):
        stop = marks[i + 1][1] if i + 1 < len(marks) else end
        blocks.setdefault(name, []).append(script[start:stop])
    return blocks


def selected(block: str) -> set[str]:
    names: set[str] = set(re.findall(r"\$record\['(\w+)'\] =", block))
    for group in re.findall(r"-Property((?:\s*'\w+',?)+)", block):
        names |= set(re.findall(r"'(\w+)'", group))
    if "Add-MigrationSetting" in block:
        names |= {"MigrationExcludeNetworks", "MigrationNetworkOrder"}
    return names


# --- syntax ------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["script", "winrm"])
def test_collector_parses_without_errors(method: str) -> None:
    assert syntax_problems(collector_script(method)) == []


def test_discovery_script_parses_without_errors() -> None:
    assert syntax_problems(DISCOVERY_SCRIPT) == []


@pytest.mark.parametrize(("what", "old", "new"), [
    ("unclosed block", "function Get-Name {", "function Get-Name {{"),
    ("unterminated string", "'OperatingSystem'", "'OperatingSystem"),
    ("stray parenthesis", "$Succeeded = $true", "$Succeeded = $true)"),
    ("bad hashtable", "$Sections = @{}", "$Sections = @{ a = }"),
])
def test_a_broken_copy_is_flagged(script: str, what: str, old: str, new: str) -> None:
    assert old in script
    broken = script.replace(old, new, 1)
    assert syntax_problems(broken), f"{what} was not detected"


# --- contract §1 -------------------------------------------------------------------------------

def test_every_section_of_the_contract_is_collected(script: str, contract: dict[str, list[str]]) -> None:
    assert set(section_blocks(script)) == set(contract)


def test_every_way_a_section_is_read_gives_exactly_the_contract_properties(
        script: str, contract: dict[str, list[str]]) -> None:
    # The WMI fallback of a section must have the same shape as its cmdlet version.
    wrong = {}
    for name, blocks in section_blocks(script).items():
        for block in blocks:
            if selected(block) != set(contract[name]):
                wrong[name] = sorted(selected(block) ^ set(contract[name]))
    assert not wrong


@pytest.mark.parametrize("section", sorted(SOURCE_COMMANDS))
def test_a_cmdlet_section_checks_its_command_first(script: str, section: str) -> None:
    assert any(f"-Command '{SOURCE_COMMANDS[section]}'" in b for b in section_blocks(script)[section])


@pytest.mark.parametrize("section", sorted(MODULE_SECTIONS))
def test_a_missing_module_is_an_error_naming_what_to_install(script: str, section: str) -> None:
    for block in section_blocks(script)[section]:
        header = block.split("-Body", 1)[0]
        if "-Command" in header:
            assert "-Install $" in header, block[:120]
    assert "$Failures[$Name] = \"$Command is not available: install $Install\"" in script
    assert "Install-WindowsFeature RSAT-Clustering-PowerShell" in script
    assert "Install-WindowsFeature Hyper-V-PowerShell" in script


def test_absent_is_written_only_with_evidence(script: str) -> None:
    """Services ClusSvc and vmms, the FS-SMBBW feature, the OS version, a missing Get-NetIntent, no domain."""
    reasons = re.findall(r"Set-Absent [^\n]*'([^']+)'\s*\}?\s*$", script, re.M)
    reasons += re.findall(r"\$Absent\['\w+'\] = '([^']+)'", script)
    assert sorted(reasons) == sorted([
        "Failover Clustering not installed (no ClusSvc service)", "Hyper-V role not installed (no vmms service)",
        "Win32_DeviceGuard needs Windows Server 2016 or later", "Network ATC not installed (no Get-NetIntent)",
        "SMB Bandwidth Limit feature (FS-SMBBW) not installed", "not a domain member (no computer account)"])
    assert "Get-Service -Name 'ClusSvc'" in script and "Get-Service -Name 'vmms'" in script
    assert "-not $feature.Installed" in script


@pytest.mark.parametrize("section", sorted(LIST_SECTIONS))
def test_list_sections_are_always_lists(script: str, section: str) -> None:
    for block in section_blocks(script)[section]:
        assert " -List " in block.split("-Body", 1)[0]


def test_list_sections_are_wrapped_and_failures_recorded(script: str) -> None:
    body = script[script.index("function Invoke-Section"):script.index("function Set-Absent")]
    assert "@(& $Body)" in body
    assert "$Failures[$Name] = [string]$_.Exception.Message" in body
    assert "$ErrorActionPreference = 'Stop'" in body.split("try {", 1)[1]
    assert "if ($Absent.ContainsKey($Name)) { return }" in body


def test_cluster_sections_fall_back_to_wmi_and_powershell_7_uses_it(script: str) -> None:
    assert "if ($PSVersionTable.PSEdition -eq 'Core') { $ClusterCim = $true }" in script
    for cls in ("MSCluster_Cluster", "MSCluster_Node", "MSCluster_Network", "MSCluster_NetworkInterface",
                "MSCluster_ResourceType"):
        assert f"'{cls}'" in script
    assert "$type.PrivateProperties" in script
    # 2008 R2: a ClusterNetwork without Id takes MSCluster_Network.ID.
    assert "$NetworkIds[[string]$n.Name] = [string]$n.ID" in script
    assert "if (-not $record['Id']) { $record['Id'] = $NetworkIds[[string]$item.Name] }" in script


def test_2008r2_reads_per_vm_settings_and_2012_the_resource_type(script: str) -> None:
    assert "$IsLegacy = $OsVersion -lt [version]'6.2'" in script
    assert "Get-ClusterResourceType -Name 'Virtual Machine'" in script
    assert "(Get-Name $resource.ResourceType) -eq 'Virtual Machine'" in script
    assert "Import-Module -Name 'FailoverClusters'" in script  # PowerShell 2.0 does not autoload
    newer = script[script.index("if (-not $IsLegacy) {"):script.index("Invoke-Section -Name 'ComputerAccountDelegation'")]
    for section in ("VMHost", "NetAdapter", "SmbMultichannelConstraint", "NetIntent", "DeviceGuard"):
        assert f"-Name '{section}'" in newer


def test_smb_limit_unfiltered_and_network_atc_with_cluster_name(script: str) -> None:
    assert "$limits = @(Get-SmbBandwidthLimit)" in script          # no -Category: "not found" is no limit
    assert "$record['Category'] = [string]$limit.Category" in script  # matched by name in Python
    assert "$AtcQuery['ClusterName']" in script and "Get-NetIntent @AtcQuery -GlobalOverrides" in script


def test_nested_objects_are_flattened_and_enums_cast(script: str) -> None:
    (cmdlet,) = [b for b in section_blocks(script)["ClusterNetworkInterface"] if "Get-ClusterNetworkInterface" in b]
    assert "$record['Network'] = Get-Name $network" in cmdlet
    assert "$record['NetworkId'] = [string]$network.Id" in cmdlet
    record = script[script.index("function New-Record"):script.index("function Get-Wmi")]
    assert "$value.PSObject.TypeNames -contains 'System.Enum') { $value = [int]$value }" in record


def test_document_top_level_matches_the_contract(script: str) -> None:
    for key in ("lmscan_snapshot", "node", "collected_at", "collector", "sections", "errors", "absent"):
        assert f"$document['{key}']" in script
    assert "$document['lmscan_snapshot'] = 1" in script
    assert "$collector['powershell'] = [string]$PSVersionTable.PSVersion" in script
    assert """ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $Invariant)""" in script  # ISO-8601 UTC


# --- PowerShell 2.0, output and exit -----------------------------------------------------------

@pytest.mark.parametrize("feature", sorted(NOT_IN_POWERSHELL_2))
def test_no_powershell_3_only_feature(script: str, feature: str) -> None:
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(NOT_IN_POWERSHELL_2[feature], code, re.IGNORECASE), feature


def test_cim_is_only_used_where_it_exists(script: str) -> None:
    wmi = script[script.index("function Get-Wmi"):script.index("function Add-MigrationSetting")]
    assert "if (Get-Command -Name 'Get-CimInstance'" in wmi and "Get-WmiObject @query -Class $Class" in wmi
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert code.count("Get-WmiObject") == 1 and code.count("Get-CimInstance ") == 1   # only through Get-Wmi


def test_quiet_streams_utf8_and_explicit_exit(script: str) -> None:
    assert "$ProgressPreference = 'SilentlyContinue'" in script
    assert "$WarningPreference = 'SilentlyContinue'" in script
    lines = [line for line in script.strip().splitlines() if line.strip()]
    assert lines[-1] == "exit 1"
    assert lines[-4:-1] == ["if ($Succeeded) {", "    exit 0", "}"]
    code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert sum("Write-Output" in line for line in code) == 1  # one document, nothing else on stdout
    assert sum("[Console]::Out.Write" in line for line in code) == 1


def test_output_is_not_wrapped_by_powershell_2_or_over_winrm(script: str) -> None:
    # PowerShell 2.0 hard-wraps Write-Output at the console width even when redirected
    # (dotnet/coreclr#58); over WinRM the script is always its own process, so write stdout directly.
    tail = script[script.index("$json = ConvertTo-JsonText $document"):]
    branch = "if ($PSVersionTable.PSVersion.Major -lt 3 -or ($CollectorMethod -eq 'winrm' -and $FullLanguage)) {"
    assert branch in tail
    direct = tail[tail.index(branch):tail.index("} else {")]
    assert "[Console]::Out.WriteLine($json)" in direct and "[Console]::Out.Flush()" in direct
    assert "Write-Output $json" in tail[tail.index("} else {"):]


def test_json_escaping_covers_quotes_backslash_control_and_non_ascii(script: str) -> None:
    body = script[script.index("function ConvertTo-JsonString"):script.index("function ConvertTo-JsonText")]
    assert r"'^[\x20\x21\x23-\x5B\x5D-\x7E]*\z'" in body  # fast path: printable ASCII minus " and \
    assert "-cmatch" in body  # case-insensitive matching would let U+212A (Kelvin) through
    assert "$code -eq 34 -or $code -eq 92" in body
    assert "$code -lt 32 -or $code -gt 126" in body and "$code.ToString('x4')" in body


def test_script_is_small_ascii_and_self_contained(script: str) -> None:
    # The script travels in shell variables (scanner.collect.transport: at most ENV_SCRIPT_MAX
    # characters, over stdin beyond), so only the command line is limited.
    assert len(script.encode("utf-8")) < 24_000
    assert script.isascii()
    assert "param(" not in script.split("function", 1)[0]  # no script parameters


def test_version_and_method_are_filled_in() -> None:
    assert f"$CollectorVersion = {ps_quote(__version__)}" in collector_script()
    assert "$CollectorMethod = 'script'" in collector_script()
    assert "$CollectorMethod = 'winrm'" in collector_script("winrm")
    with pytest.raises(ValueError):
        collector_script("ssh")


# ps_quote (scanner.pwsh.quote) is tested in tests/test_pwsh.py.


# --- ConstrainedLanguage -----------------------------------------------------------------------

#: The types ConstrainedLanguage permits (about_Language_Modes, Windows PowerShell 5.1; the list
#: MicrosoftDocs/PowerShell-Docs reference/5.1/Microsoft.PowerShell.Core/About/about_Language_Modes.md
#: gives, without [ordered], which is not a type in 5.1: research/domain.md §7). Case-insensitive.
CLM_TYPES = {t.casefold() for t in (
    "adsi", "adsisearcher", "Alias", "AllowEmptyCollection", "AllowEmptyString", "AllowNull", "ArgumentCompleter",
    "array", "bigint", "bool", "byte", "char", "cimclass", "cimconverter", "ciminstance", "CimSession", "cimtype",
    "CmdletBinding", "cultureinfo", "datetime", "decimal", "double", "float", "guid", "hashtable", "int", "int16",
    "int32", "int64", "ipaddress", "IPEndpoint", "long", "mailaddress", "NullString", "Object", "ObjectSecurity",
    "OutputType", "Parameter", "PhysicalAddress", "pscredential", "PSDefaultValue", "pslistmodifier", "psobject",
    "psprimitivedictionary", "ref", "regex", "sbyte", "securestring", "short", "single", "string",
    "SupportsWildcards", "switch", "timespan", "uint16", "uint32", "uint64", "ulong", "uri", "ushort",
    "ValidateCount", "ValidateLength", "ValidateNotNull", "ValidateNotNullOrEmpty", "ValidatePattern",
    "ValidateRange", "ValidateScript", "ValidateSet", "version", "void", "WildcardPattern", "wmi", "wmiclass",
    "wmisearcher", "xml")}
#: Every .NET method the script calls, and the permitted type it is called on (instance types are
#: not visible statically, so a new method must be added here, with its type, to pass).
CLM_METHODS = {
    "tostring": "any object (ToString is always permitted)", "tochararray": "string",
    "touniversaltime": "datetime", "findone": "adsisearcher", "containskey": "hashtable", "remove": "hashtable",
    "isnan": "double", "isinfinity": "double",
}
#: Branches that run only in FullLanguage (or PowerShell 2.0, which has no ConstrainedLanguage).
FULL_LANGUAGE_GUARD = ("Major -lt 3", "$FullLanguage")


def _guard(node: Any, data: bytes) -> str:
    """The condition of an enclosing ``if`` that runs only in FullLanguage (or 2.0), else ""."""
    up = node.parent
    while up is not None:
        if up.type == "if_statement":
            cond = next((c for c in up.children if c.type == "pipeline"), None)
            text = data[cond.start_byte:cond.end_byte].decode() if cond is not None else ""
            if all(g in text for g in FULL_LANGUAGE_GUARD):
                return text
        up = up.parent
    return ""


def _clm_uses(source: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(name, guarding condition or "") of every type literal and of every invoked method."""
    parser = ts.Parser(ts.Language(tsp.language()))
    data = source.encode("utf-8")
    tree = parser.parse(data)
    types: list[tuple[str, str]] = []
    methods: list[tuple[str, str]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "type_literal":
            text = data[node.start_byte:node.end_byte].decode()
            types.append((text.strip("[]").removesuffix("[]").strip(), _guard(node, data)))
        elif node.type == "invokation_expression":
            name = next((c for c in node.children if c.type == "member_name"), None)
            if name is not None:
                methods.append((data[name.start_byte:name.end_byte].decode(), _guard(node, data)))
        stack.extend(node.children)
    return types, methods


def test_constrained_language_only_permitted_types_outside_full_language_branches(script: str) -> None:
    types, _ = _clm_uses(script)
    assert types, "the parser found no type literals at all"
    outside = sorted({t for t, guard in types if t.casefold() not in CLM_TYPES and not guard})
    assert not outside, f"types ConstrainedLanguage refuses, outside a FullLanguage branch: {outside}"
    assert {t for t, guard in types if guard} <= {"Console"}


def test_constrained_language_only_declared_methods(script: str) -> None:
    _, methods = _clm_uses(script)
    assert methods
    assert not sorted({m for m, guard in methods if m.casefold() not in CLM_METHODS and not guard})
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    for refused in ("New-Object", "Add-Type", "StringBuilder", "UTF8Encoding", "OrderedDictionary", "::new"):
        assert refused not in code, refused


def test_the_checker_sees_a_refused_type_and_method() -> None:
    types, methods = _clm_uses("$b = New-Object System.Text.StringBuilder\n[void]$b.Append('x')\n"
                               "$e = [System.Text.Encoding]::UTF8\n")
    assert ("System.Text.Encoding", "") in types and ("Append", "") in methods


def test_a_failed_run_names_the_language_mode(script: str) -> None:
    tail = script[script.rindex("} catch {"):]
    assert "(language mode ' + [string]$ExecutionContext.SessionState.LanguageMode" in tail
    assert "$collector['language_mode']" in script


@pytest.mark.parametrize("which", ["stdin", "environment"])
def test_bootstrap_parses_and_runs_in_constrained_language(which: str) -> None:
    """The -EncodedCommand bootstraps: valid PowerShell, and outside their FullLanguage branch they
    use no .NET type or method (ConstrainedLanguage refuses them) -- only cmdlets and variables."""
    from scanner.collect.transport import BOOTSTRAP, env_bootstrap

    bootstrap = BOOTSTRAP if which == "stdin" else env_bootstrap(["LMSCAN_S0", "LMSCAN_S1"], 12345)
    assert syntax_problems(bootstrap) == []
    head, rest = bootstrap.split("if($ExecutionContext.SessionState.LanguageMode -eq 'FullLanguage'){", 1)
    constrained = head + rest.split("}else{", 1)[1]
    assert "Invoke-Expression" in constrained
    assert not re.search(r"\[|::|New-Object|\.\w+\(", constrained), constrained
    if which == "environment":  # joined in order, checked, and gone before the script runs
        assert constrained.startswith("$ProgressPreference='SilentlyContinue';$s=$env:LMSCAN_S0+$env:LMSCAN_S1;"
                                      "if($s.Length -ne 12345){")
        assert "Remove-Item 'Env:LMSCAN_S0','Env:LMSCAN_S1';" in head


def test_collector_travels_in_the_create_request(script: str) -> None:
    """No '%' (a cmd shell may expand %NAME% in variable values) and small enough: the collector
    goes in shell variables, so a healthy node costs Create, Command, Receive, Delete."""
    from scanner.collect.transport import script_delivery

    assert "%" not in script
    delivery = script_delivery(collector_script("winrm"))
    assert 1 <= len(delivery.env) <= 4 and delivery.stdin == b""
