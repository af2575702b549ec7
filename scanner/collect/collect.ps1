# lmscan collector: prints this node's snapshot (lmscan contracts section 1) as one JSON document.
# Read-only; Windows PowerShell 2.0 (Server 2008 R2) to 5.1 and PowerShell 7. Run it as its own
# process: powershell -NoProfile -ExecutionPolicy Bypass -File collect.ps1 > node.json
# Dumb on purpose (lmscan interprets enums, id lists, subnets). No ConvertTo-Json in 2.0, so a
# small serializer writes the JSON, escaping non-ASCII: the output is ASCII.

$CollectorVersion = 'dev'
$CollectorMethod = 'script'

$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'

$Invariant = [System.Globalization.CultureInfo]::InvariantCulture
$NumberTypes = @('Byte', 'SByte', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Int64', 'UInt64', 'Decimal')
$ModuleError = $null
$Succeeded = $false

function ConvertTo-JsonString {
    param([string]$Text)
    if ($Text -cmatch '^[\x20\x21\x23-\x5B\x5D-\x7E]*\z') {
        return '"' + $Text + '"'
    }
    $builder = New-Object System.Text.StringBuilder
    foreach ($ch in $Text.ToCharArray()) {
        $code = [int]$ch
        if ($code -eq 34 -or $code -eq 92) {
            [void]$builder.Append('\').Append($ch)
        } elseif ($code -lt 32 -or $code -gt 126) {
            [void]$builder.Append('\u').Append($code.ToString('x4'))
        } else {
            [void]$builder.Append($ch)
        }
    }
    '"' + $builder.ToString() + '"'
}

function ConvertTo-JsonText {
    param($Value)
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [string] -or $Value -is [char] -or $Value -is [guid]) { return ConvertTo-JsonString $Value }
    if ($Value -is [bool]) { return ([string]$Value).ToLowerInvariant() }
    if ($Value -is [System.Enum]) { return ([long]$Value).ToString($Invariant) }
    if ($Value -is [double] -or $Value -is [float]) {
        if ([double]::IsNaN($Value) -or [double]::IsInfinity($Value)) { return 'null' }
        return $Value.ToString('R', $Invariant)
    }
    if ($NumberTypes -contains $Value.GetType().Name) { return $Value.ToString($Invariant) }
    if ($Value -is [datetime]) {
        return ConvertTo-JsonString ($Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $Invariant))
    }
    if ($Value -is [System.Collections.IDictionary]) {
        $items = @(foreach ($entry in $Value.GetEnumerator()) {
            (ConvertTo-JsonString $entry.Key) + ':' + (ConvertTo-JsonText $entry.Value)
        })
        return '{' + [string]::Join(',', $items) + '}'
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        $items = @(foreach ($item in $Value) { ConvertTo-JsonText $item })
        return '[' + [string]::Join(',', $items) + ']'
    }
    # Any other object (a cluster node, a network...) is flattened to what it prints as.
    ConvertTo-JsonString $Value
}

function Get-Name {
    # A nested object (network, node, group, resource type) flattened to its name.
    param($InputObject)
    if ($InputObject -isnot [string] -and $null -ne $InputObject -and $InputObject.PSObject.Properties['Name']) {
        return [string]$InputObject.Name
    }
    $InputObject
}

function New-Record {
    # The listed properties that exist on each object, in order, enums cast to their number.
    # Without input it returns an empty (ordered) record.
    param([Parameter(ValueFromPipeline = $true)]$InputObject, [string[]]$Property)
    process {
        $record = New-Object System.Collections.Specialized.OrderedDictionary
        foreach ($name in $Property) {
            if ($null -ne $InputObject -and $null -ne $InputObject.PSObject.Properties[$name]) {
                $value = $InputObject.$name
                if ($value -is [System.Enum]) {
                    $value = [int]$value
                }
                $record[$name] = $value
            }
        }
        , $record
    }
}

function Add-MigrationSetting {
    # MigrationExcludeNetworks and MigrationNetworkOrder from a resource or resource type.
    param($Record, $ClusterObject)
    $names = @('MigrationExcludeNetworks', 'MigrationNetworkOrder')
    foreach ($name in $names) {
        $Record[$name] = $null
    }
    foreach ($parameter in @($ClusterObject | Get-ClusterParameter)) {
        foreach ($name in $names) {
            if ($parameter.Name -eq $name) {
                $Record[$name] = $parameter.Value
            }
        }
    }
}

function Invoke-Section {
    # A missing command means the section does not apply here; any other failure is recorded.
    param([string]$Name, [string]$Command, [switch]$List, [scriptblock]$Body)
    if ($Command -and -not (Get-Command -Name $Command -ErrorAction SilentlyContinue)) {
        if ($ModuleError -and $Command -like '*-Cluster*') {
            $Failures[$Name] = $ModuleError
        }
        return
    }
    try {
        $ErrorActionPreference = 'Stop'
        if ($List) {
            $Sections[$Name] = @(& $Body)
        } else {
            $Sections[$Name] = & $Body
        }
    } catch {
        if ($_.Exception -isnot [System.Management.Automation.CommandNotFoundException]) {
            $Failures[$Name] = [string]$_.Exception.Message
        }
    }
}

$Sections = New-Record
$Failures = New-Record

try {
    [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding -ArgumentList $false
} catch {
    # No console to configure (some remote hosts): the output is ASCII anyway.
}

try {
    $ErrorActionPreference = 'Stop'
    $IsLegacy = [Environment]::OSVersion.Version -lt (New-Object System.Version -ArgumentList 6, 2)
    try {
        Import-Module -Name 'FailoverClusters'
    } catch {
        if ($_.FullyQualifiedErrorId -notlike 'Modules_ModuleNotFound*') {
            $ModuleError = 'Import-Module FailoverClusters: ' + $_.Exception.Message
        }
    }

    Invoke-Section -Name 'OperatingSystem' -Body {
        if (Get-Command -Name 'Get-CimInstance' -ErrorAction SilentlyContinue) {
            $os = Get-CimInstance -ClassName 'Win32_OperatingSystem'
        } else {
            $os = Get-WmiObject -Class 'Win32_OperatingSystem'
        }
        New-Record -InputObject $os -Property 'Caption', 'Version', 'BuildNumber'
    }

    Invoke-Section -Name 'Cluster' -Command 'Get-Cluster' -Body {
        New-Record -InputObject (Get-Cluster) -Property 'Name', 'Id', 'Domain', 'MaximumParallelMigrations',
            'SetSMBBandwidthLimit', 'SMBBandwidthLimitFactor'
    }

    Invoke-Section -Name 'ClusterNode' -Command 'Get-ClusterNode' -List -Body {
        Get-ClusterNode | New-Record -Property 'Name', 'Id', 'State'
    }

    Invoke-Section -Name 'ClusterNetwork' -Command 'Get-ClusterNetwork' -List -Body {
        Get-ClusterNetwork | New-Record -Property 'Name', 'Id', 'Role', 'State', 'Address', 'AddressMask',
            'Ipv4Addresses', 'Ipv4PrefixLengths', 'Ipv6Addresses', 'Ipv6PrefixLengths', 'Metric',
            'AutoMetric', 'Description'
    }

    Invoke-Section -Name 'ClusterNetworkInterface' -Command 'Get-ClusterNetworkInterface' -List -Body {
        foreach ($item in @(Get-ClusterNetworkInterface)) {
            $record = New-Record -InputObject $item -Property 'Name', 'Node', 'Network', 'Adapter', 'AdapterId',
                'Address', 'Ipv4Addresses', 'Ipv6Addresses', 'State'
            $network = $item.Network
            $record['Node'] = Get-Name $item.Node
            $record['Network'] = Get-Name $network
            $record['NetworkId'] = $null
            if ($null -ne $network -and $null -ne $network.PSObject.Properties['Id']) {
                $record['NetworkId'] = [string]$network.Id
            }
            , $record
        }
    }

    if ($IsLegacy) {
        # Windows Server 2008 R2: the live-migration networks are set on every virtual machine.
        Invoke-Section -Name 'VirtualMachineResource' -Command 'Get-ClusterResource' -List -Body {
            foreach ($resource in @(Get-ClusterResource)) {
                if ((Get-Name $resource.ResourceType) -eq 'Virtual Machine') {
                    $record = New-Record -InputObject $resource -Property 'Name'
                    $record['OwnerGroup'] = Get-Name $resource.OwnerGroup
                    $record['OwnerNode'] = Get-Name $resource.OwnerNode
                    Add-MigrationSetting -Record $record -ClusterObject $resource
                    , $record
                }
            }
        }
    } else {
        Invoke-Section -Name 'VirtualMachineResourceType' -Command 'Get-ClusterResourceType' -Body {
            $record = New-Record
            Add-MigrationSetting -Record $record -ClusterObject (Get-ClusterResourceType -Name 'Virtual Machine')
            , $record
        }
    }

    Invoke-Section -Name 'VMHost' -Command 'Get-VMHost' -Body {
        New-Record -InputObject (Get-VMHost) -Property 'VirtualMachineMigrationEnabled', 'UseAnyNetworkForMigration',
            'VirtualMachineMigrationAuthenticationType', 'VirtualMachineMigrationPerformanceOption',
            'MaximumVirtualMachineMigrations', 'MaximumStorageMigrations'
    }

    Invoke-Section -Name 'VMMigrationNetwork' -Command 'Get-VMMigrationNetwork' -List -Body {
        Get-VMMigrationNetwork | New-Record -Property 'Subnet', 'Priority'
    }

    Invoke-Section -Name 'SmbBandwidthLimit' -Command 'Get-SmbBandwidthLimit' -List -Body {
        Get-SmbBandwidthLimit -Category 'LiveMigration' | New-Record -Property 'Category', 'BytesPerSecond'
    }

    Invoke-Section -Name 'NetIntent' -Command 'Get-NetIntent' -List -Body {
        Get-NetIntent | New-Record -Property 'IntentName', 'IsComputeIntentSet', 'IsStorageIntentSet',
            'IsManagementIntentSet', 'StorageVLANs', 'NetAdapterNamesAsList'
    }

    Invoke-Section -Name 'NetIntentGlobalOverrides' -Command 'Get-NetIntent' -Body {
        $overrides = @(Get-NetIntent -GlobalOverrides)
        $cluster = $null
        if ($overrides.Count -gt 0) {
            $cluster = $overrides[0].ClusterOverride
        }
        New-Record -InputObject $cluster -Property 'EnableLiveMigrationNetworkSelection',
            'EnableVirtualMachineMigrationPerformanceSelection', 'VirtualMachineMigrationPerformanceOption',
            'MaximumVirtualMachineMigrations', 'MaximumSMBMigrationBandwidthInGbps'
    }

    $collector = New-Record
    $collector['version'] = $CollectorVersion
    $collector['powershell'] = $PSVersionTable.PSVersion.ToString()
    $collector['method'] = $CollectorMethod
    $document = New-Record
    $document['lmscan_snapshot'] = 1
    $document['node'] = $env:COMPUTERNAME
    $document['collected_at'] = [DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $Invariant)
    $document['collector'] = $collector
    $document['sections'] = $Sections
    $document['errors'] = $Failures
    $json = ConvertTo-JsonText $document
    if ($CollectorMethod -eq 'winrm' -or $PSVersionTable.PSVersion.Major -lt 3) {
        # PowerShell 2.0 wraps Write-Output at the console width even when redirected.
        [Console]::Out.WriteLine($json)
        [Console]::Out.Flush()
    } else {
        Write-Output $json
    }
    $Succeeded = $true
} catch {
    [Console]::Error.WriteLine('lmscan collector failed: ' + $_.Exception.Message)
}

if ($Succeeded) {
    exit 0
}
exit 1
