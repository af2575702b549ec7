#Requires -Version 3.0
#Requires -Modules FailoverClusters
<#
.SYNOPSIS
    lmscan fix script for cluster(s) (none)
.DESCRIPTION
    Written by lmscan 1.0.0 from scan <SCAN-ID> (<TIME>).
    Each change below names the findings it fixes. Review it, then run it on a node of the
    cluster: without -Apply it only shows what it would change; with -Apply it changes it.
    A live-migration list that changed since the scan is skipped with a warning (scan again).
    A transcript goes to %TEMP%\lmscan-fix-<time>.log.
.PARAMETER Apply
    Make the changes. Without it the script changes nothing (what-if).
#>
param([switch]$Apply)

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

try {
    Import-Module FailoverClusters -ErrorAction Stop
    $here = [string](Get-Cluster -ErrorAction Stop).Name
} catch {
    Write-Error "This script must run on a node of a failover cluster: $($_.Exception.Message)"
    exit 2
}
$log = Join-Path $env:TEMP ('lmscan-fix-{0:yyyyMMdd-HHmmss}.log' -f (Get-Date))
$transcript = $false
try { Start-Transcript -Path $log | Out-Null; $transcript = $true } catch { Write-Warning "No transcript: $($_.Exception.Message)" }
if (-not $Apply) { Write-Host 'What-if run: nothing is changed. Run again with -Apply to make these changes.' }
try {
    Write-Host 'Nothing to change: no finding of these results has an automatic fix.'
} finally {
    if ($transcript) { Stop-Transcript | Out-Null }
}
if ($script:Failed) { Write-Warning "$script:Failed change(s) failed or were skipped."; exit 1 }

# Findings this script does not change (they need a person; see the report):
#   LM001/HVCLU01/network/3f2c8b1e-7d44-4c1a-9e0b-2a6d5c4b3a21: iSCSI-A (10.10.10.0/24, class iscsi) carries live migration: its Id is not in MigrationExcludeNetworks.
#   LM004/HVCLU01/network/e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a84: VM Backup (10.40.0.0/24) matches no network class of the site policy and carries live migration.
#   LM006/HVCLU01/cluster/HVCLU01: The first network of the effective order is Cluster (class cluster), not a preferred network.
#   LM008/HVCLU01/network/3f2c8b1e-7d44-4c1a-9e0b-2a6d5c4b3a21: iSCSI-A has cluster role Cluster (1).
#   HOST005/HVCLU01/cluster/HVCLU01: HV02 differs from HV01 and HV03 in UseAnyNetworkForMigration.
#   HOST002/HVCLU01/node/HV02: HV02 lets live migration use any network.
#   LM004/HVCLU01/network/deadbeef-0000-4000-8000-000000000bad: <script>alert(1)</script> a & b "quoted" 'single' ]]> <b>bold</b> \x1b[31mred\x1b[0m bell\x07 nul\x00 Réseau invité — 网络 ✓
#   LM011/HVCLU02/cluster/HVCLU02: MigrationExcludeNetworks names an Id that is no cluster network: 0b0e0e0f-1111-4222-8333-444455556666.
#   LM001/LEGACY08/vm/Virtual Machine SQL01: SQL01 lets live migration use the iSCSI network iSCSI (10.1.1.0/24).
#   LM007/LEGACY08/vm/Virtual Machine SQL01: SQL01 differs from the majority (2 of 3 VMs).
