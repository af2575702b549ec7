"""The collector script: syntax (tree-sitter-powershell), contract §1 coverage, PowerShell 2.0 safety.

No PowerShell runs here, so the script's contract is checked statically: every section and
property of contracts §1 is selected, nothing needs PowerShell 3.0+, output is explicit.
"""

from __future__ import annotations

import re

import pytest

from scanner import __version__
from scanner.collect.discover import DISCOVERY_SCRIPT
from scanner.collect.script import collector_script
from scanner.pwsh import ps_quote

ts = pytest.importorskip("tree_sitter")
tsp = pytest.importorskip("tree_sitter_powershell")

# contracts.md §1: section -> properties, exactly as users rely on them.
CONTRACT: dict[str, list[str]] = {
    "OperatingSystem": ["Caption", "Version", "BuildNumber"],
    "Cluster": ["Name", "Id", "Domain", "MaximumParallelMigrations", "SetSMBBandwidthLimit",
                "SMBBandwidthLimitFactor"],
    "ClusterNode": ["Name", "Id", "State"],
    "ClusterNetwork": ["Name", "Id", "Role", "State", "Address", "AddressMask", "Ipv4Addresses",
                       "Ipv4PrefixLengths", "Ipv6Addresses", "Ipv6PrefixLengths", "Metric", "AutoMetric",
                       "Description"],
    "ClusterNetworkInterface": ["Name", "Node", "Network", "NetworkId", "Adapter", "AdapterId", "Address",
                                "Ipv4Addresses", "Ipv6Addresses", "State"],
    "VirtualMachineResourceType": ["MigrationExcludeNetworks", "MigrationNetworkOrder"],
    "VirtualMachineResource": ["Name", "OwnerGroup", "OwnerNode", "MigrationExcludeNetworks",
                               "MigrationNetworkOrder"],
    "VMHost": ["VirtualMachineMigrationEnabled", "UseAnyNetworkForMigration",
               "VirtualMachineMigrationAuthenticationType", "VirtualMachineMigrationPerformanceOption",
               "MaximumVirtualMachineMigrations", "MaximumStorageMigrations"],
    "VMMigrationNetwork": ["Subnet", "Priority"],
    "SmbBandwidthLimit": ["Category", "BytesPerSecond"],
    "NetIntent": ["IntentName", "IsComputeIntentSet", "IsStorageIntentSet", "IsManagementIntentSet",
                  "StorageVLANs", "NetAdapterNamesAsList"],
    "NetIntentGlobalOverrides": ["EnableLiveMigrationNetworkSelection",
                                 "EnableVirtualMachineMigrationPerformanceSelection",
                                 "VirtualMachineMigrationPerformanceOption", "MaximumVirtualMachineMigrations",
                                 "MaximumSMBMigrationBandwidthInGbps"],
}
LIST_SECTIONS = {"ClusterNode", "ClusterNetwork", "ClusterNetworkInterface", "VirtualMachineResource",
                 "VMMigrationNetwork", "SmbBandwidthLimit", "NetIntent"}
SOURCE_COMMANDS = {
    "Cluster": "Get-Cluster", "ClusterNode": "Get-ClusterNode", "ClusterNetwork": "Get-ClusterNetwork",
    "ClusterNetworkInterface": "Get-ClusterNetworkInterface", "VirtualMachineResourceType": "Get-ClusterResourceType",
    "VirtualMachineResource": "Get-ClusterResource", "VMHost": "Get-VMHost",
    "VMMigrationNetwork": "Get-VMMigrationNetwork", "SmbBandwidthLimit": "Get-SmbBandwidthLimit",
    "NetIntent": "Get-NetIntent", "NetIntentGlobalOverrides": "Get-NetIntent",
}

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


def section_blocks(script: str) -> dict[str, str]:
    """The text of each ``Invoke-Section -Name 'X'`` call, up to the next one."""
    starts = [(m.group(1), m.start()) for m in re.finditer(r"Invoke-Section -Name '(\w+)'", script)]
    ends = [s for _, s in starts[1:]] + [script.index("$collector = ")]
    return {name: script[start:end] for (name, start), end in zip(starts, ends, strict=True)}


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
    ("bad hashtable", "$ModuleError = $null", "$ModuleError = @{ a = }"),
])
def test_a_broken_copy_is_flagged(script: str, what: str, old: str, new: str) -> None:
    assert old in script
    broken = script.replace(old, new, 1)
    assert syntax_problems(broken), f"{what} was not detected"


# --- contract §1 -------------------------------------------------------------------------------

def test_every_section_of_the_contract_is_collected(script: str) -> None:
    blocks = section_blocks(script)
    assert set(blocks) == set(CONTRACT)


@pytest.mark.parametrize("section", sorted(CONTRACT))
def test_section_selects_exactly_the_contract_properties(script: str, section: str) -> None:
    block = section_blocks(script)[section]
    selected: set[str] = set(re.findall(r"\$record\['(\w+)'\] =", block))
    for names in re.findall(r"-Property((?:\s*'\w+',?)+)", block):
        selected |= set(re.findall(r"'(\w+)'", names))
    if "Add-MigrationSetting" in block:
        selected |= {"MigrationExcludeNetworks", "MigrationNetworkOrder"}
    assert selected == set(CONTRACT[section])


@pytest.mark.parametrize("section", sorted(SOURCE_COMMANDS))
def test_section_is_absent_when_its_cmdlet_does_not_exist(script: str, section: str) -> None:
    block = section_blocks(script)[section]
    assert f"-Command '{SOURCE_COMMANDS[section]}'" in block


@pytest.mark.parametrize("section", sorted(CONTRACT))
def test_list_sections_are_always_lists(script: str, section: str) -> None:
    header = section_blocks(script)[section].split("{", 1)[0]
    assert (" -List " in header) == (section in LIST_SECTIONS)


def test_list_sections_are_wrapped_and_failures_recorded(script: str) -> None:
    body = script[script.index("function Invoke-Section"):script.index("$Sections = New-Record")]
    assert "@(& $Body)" in body
    assert "$Failures[$Name] = [string]$_.Exception.Message" in body
    assert "CommandNotFoundException" in body  # "not recognized" = not applicable, not a failure
    assert "$ErrorActionPreference = 'Stop'" in body.split("try {", 1)[1]


def test_2008r2_reads_per_vm_settings_and_2012_the_resource_type(script: str) -> None:
    legacy = script[script.index("if ($IsLegacy) {"):script.index("} else {", script.index("if ($IsLegacy) {"))]
    assert "'VirtualMachineResource'" in legacy and "'Virtual Machine'" in legacy
    assert "(New-Object System.Version -ArgumentList 6, 2)" in script
    assert "Get-ClusterResourceType -Name 'Virtual Machine'" in script
    assert "Import-Module -Name 'FailoverClusters'" in script  # PowerShell 2.0 does not autoload


def test_nested_objects_are_flattened_and_enums_cast(script: str) -> None:
    interface = section_blocks(script)["ClusterNetworkInterface"]
    assert "$record['Network'] = Get-Name $network" in interface
    assert "$record['NetworkId'] = [string]$network.Id" in interface
    record = script[script.index("function New-Record"):script.index("function Add-MigrationSetting")]
    assert "if ($value -is [System.Enum]) {" in record and "$value = [int]$value" in record


def test_document_top_level_matches_the_contract(script: str) -> None:
    for key in ("lmscan_snapshot", "node", "collected_at", "collector", "sections", "errors"):
        assert f"$document['{key}']" in script
    assert "$document['lmscan_snapshot'] = 1" in script
    assert "$collector['powershell'] = $PSVersionTable.PSVersion.ToString()" in script
    assert """ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $Invariant)""" in script  # ISO-8601 UTC


# --- PowerShell 2.0, output and exit -----------------------------------------------------------

@pytest.mark.parametrize("feature", sorted(NOT_IN_POWERSHELL_2))
def test_no_powershell_3_only_feature(script: str, feature: str) -> None:
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(NOT_IN_POWERSHELL_2[feature], code, re.IGNORECASE), feature


def test_cim_is_only_used_where_it_exists(script: str) -> None:
    os_block = section_blocks(script)["OperatingSystem"]
    assert "if (Get-Command -Name 'Get-CimInstance'" in os_block
    assert "Get-WmiObject -Class 'Win32_OperatingSystem'" in os_block


def test_quiet_streams_utf8_and_explicit_exit(script: str) -> None:
    assert "$ProgressPreference = 'SilentlyContinue'" in script
    assert "$WarningPreference = 'SilentlyContinue'" in script
    assert "[Console]::OutputEncoding = New-Object System.Text.UTF8Encoding -ArgumentList $false" in script
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
    branch = "if ($CollectorMethod -eq 'winrm' -or $PSVersionTable.PSVersion.Major -lt 3) {"
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
    assert len(script.encode("utf-8")) < 11_500
    assert script.isascii()
    assert "param(" not in script.split("function", 1)[0]  # no script parameters


def test_version_and_method_are_filled_in() -> None:
    assert f"$CollectorVersion = {ps_quote(__version__)}" in collector_script()
    assert "$CollectorMethod = 'script'" in collector_script()
    assert "$CollectorMethod = 'winrm'" in collector_script("winrm")
    with pytest.raises(ValueError):
        collector_script("ssh")


# ps_quote (scanner.pwsh.quote) is tested in tests/test_pwsh.py.
