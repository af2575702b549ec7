# lmscan collector: prints this node's snapshot (lmscan contracts section 1) as one JSON document.
# Read-only; Windows PowerShell 2.0 (Server 2008 R2) to 5.1 and PowerShell 7. Run it as its own
# process: powershell -NoProfile -ExecutionPolicy Bypass -File collect.ps1 > node.json
# Dumb on purpose (lmscan interprets enums, id lists, subnets). No ConvertTo-Json in 2.0, so a
# small serializer writes the JSON, escaping non-ASCII: the output is ASCII.
# ConstrainedLanguage (App Control, on by default on Azure Local): only core types are used; the
# one exception is guarded by the language mode or by PowerShell 2.0 (which has no such mode).

$CollectorVersion = 'dev'
$CollectorMethod = 'script'

$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'

$Invariant = [cultureinfo]::InvariantCulture
$FullLanguage = $ExecutionContext.SessionState.LanguageMode -eq 'FullLanguage'
$Succeeded = $false

function ConvertTo-JsonString {
    param([string]$Text)
    if ($Text -cmatch '^[\x20\x21\x23-\x5B\x5D-\x7E]*\z') {
        return '"' + $Text + '"'
    }
    $parts = foreach ($ch in $Text.ToCharArray()) {
        $code = [int]$ch
        if ($code -eq 34 -or $code -eq 92) {
            '\' + $ch
        } elseif ($code -lt 32 -or $code -gt 126) {
            '\u' + $code.ToString('x4')
        } else {
            [string]$ch
        }
    }
    '"' + ($parts -join '') + '"'
}

function Test-List {
    # Arrays and .NET collections (cluster address lists, deserialized lists), not strings or maps.
    param($Value)
    if ($Value -is [array]) { return $true }
    foreach ($name in $Value.PSObject.TypeNames) {
        if ($name -like 'System.Collections.*' -or $name -like 'Deserialized.System.Collections.*') { return $true }
    }
    $false
}

function ConvertTo-JsonText {
    param($Value)
    if ($null -eq $Value) { return 'null' }
    if ($Value -is [string] -or $Value -is [char] -or $Value -is [guid]) { return ConvertTo-JsonString ([string]$Value) }
    if ($Value -is [bool]) {
        if ($Value) { return 'true' }
        return 'false'
    }
    if ($Value.PSObject.TypeNames -contains 'System.Enum') { return ([long]$Value).ToString($Invariant) }
    if ($Value -is [double] -or $Value -is [float]) {
        if ([double]::IsNaN($Value) -or [double]::IsInfinity($Value)) { return 'null' }
        return $Value.ToString('R', $Invariant)
    }
    if ($Value -is [int] -or $Value -is [long] -or $Value -is [uint32] -or $Value -is [uint64] -or $Value -is [byte] -or
        $Value -is [int16] -or $Value -is [uint16] -or $Value -is [sbyte] -or $Value -is [decimal]) {
        return $Value.ToString($Invariant)
    }
    if ($Value -is [datetime]) {
        return ConvertTo-JsonString ($Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $Invariant))
    }
    if ($Value -is [hashtable]) {
        $items = @(foreach ($key in $Value.Keys) {
            (ConvertTo-JsonString $key) + ':' + (ConvertTo-JsonText $Value[$key])
        })
        return '{' + ($items -join ',') + '}'
    }
    if (Test-List $Value) {
        $items = @(foreach ($item in $Value) { ConvertTo-JsonText $item })
        return '[' + ($items -join ',') + ']'
    }
    # Any other object (a cluster node, a network...) is flattened to what it prints as.
    ConvertTo-JsonString ([string]$Value)
}

function Get-Name {
    # A nested object (network, node, group, resource type) flattened to its name.
    param($InputObject)
    if ($null -ne $InputObject -and $InputObject -isnot [string] -and $null -ne $InputObject.Name) {
        return [string]$InputObject.Name
    }
    $InputObject
}

function New-Record {
    # The listed properties of each object (null where it has none), enums cast to their number.
    param([Parameter(ValueFromPipeline = $true)]$InputObject, [string[]]$Property)
    process {
        $record = @{}
        foreach ($name in $Property) {
            $value = $null
            if ($null -ne $InputObject) { $value = $InputObject.$name }
            if ($null -ne $value -and $value.PSObject.TypeNames -contains 'System.Enum') { $value = [int]$value }
            $record[$name] = $value
        }
        , $record
    }
}

function Get-Wmi {
    # CIM where it exists (3.0+, and the only choice in PowerShell 7), WMI on PowerShell 2.0.
    param([string]$Namespace, [string]$Class, [string]$Filter)
    $query = @{ Namespace = $Namespace }
    if ($Filter) { $query['Filter'] = $Filter }
    if (Get-Command -Name 'Get-CimInstance' -ErrorAction SilentlyContinue) {
        Get-CimInstance @query -ClassName $Class
    } else {
        Get-WmiObject @query -Class $Class
    }
}

function Add-MigrationSetting {
    # MigrationExcludeNetworks and MigrationNetworkOrder from a resource or resource type.
    param($Record, $ClusterObject)
    $Record['MigrationExcludeNetworks'] = $null
    $Record['MigrationNetworkOrder'] = $null
    foreach ($parameter in @($ClusterObject | Get-ClusterParameter)) {
        if ($parameter.Name -eq 'MigrationExcludeNetworks' -or $parameter.Name -eq 'MigrationNetworkOrder') {
            $Record[[string]$parameter.Name] = $parameter.Value
        }
    }
}

function Invoke-Section {
    # One section in its own try/catch. Absent: the feature is not installed (skip). A missing
    # command while the feature is installed is an error naming what to install.
    param([string]$Name, [string]$Command, [string]$Install, [switch]$List, $Body)
    if ($Absent.ContainsKey($Name)) { return }
    if ($Command -and -not (Get-Command -Name $Command -ErrorAction SilentlyContinue)) {
        if ($Install) { $Failures[$Name] = "$Command is not available: install $Install" }
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
        $Failures[$Name] = [string]$_.Exception.Message
    }
}

function Set-Absent {
    param([string[]]$Name, [string]$Reason)
    foreach ($one in $Name) { $Absent[$one] = $Reason }
}

$Sections = @{}
$Failures = @{}
$Absent = @{}

try {
    $ErrorActionPreference = 'Stop'
    $os = Get-Wmi -Namespace 'root\cimv2' -Class 'Win32_OperatingSystem'
    $Sections['OperatingSystem'] = New-Record -InputObject $os -Property 'Caption', 'Version', 'BuildNumber'
    $OsVersion = [version]([string]$os.Version)
    $IsLegacy = $OsVersion -lt [version]'6.2'
    $DnsName = $null
    $cs = $null
    try {
        $cs = Get-Wmi -Namespace 'root\cimv2' -Class 'Win32_ComputerSystem'
        $DnsName = [string]$cs.DNSHostName
        if ($DnsName -and $cs.PartOfDomain) { $DnsName = $DnsName + '.' + [string]$cs.Domain }
    } catch {
        $DnsName = $null
    }

    # Evidence for "not installed": the services of Failover Clustering and of Hyper-V.
    $HasCluster = $null -ne (Get-Service -Name 'ClusSvc' -ErrorAction SilentlyContinue)
    $HasHyperV = $null -ne (Get-Service -Name 'vmms' -ErrorAction SilentlyContinue)
    $ClusterSections = 'Cluster', 'ClusterNode', 'ClusterNetwork', 'ClusterNetworkInterface', 'VirtualMachineResourceType',
        'VirtualMachineResource'
    if (-not $HasCluster) { Set-Absent $ClusterSections 'Failover Clustering not installed (no ClusSvc service)' }
    if (-not $HasHyperV) {
        Set-Absent 'VMHost', 'VMMigrationNetwork', 'VirtualMachineResourceType', 'VirtualMachineResource' 'Hyper-V role not installed (no vmms service)'
    }
    if ($OsVersion -lt [version]'10.0') { Set-Absent 'DeviceGuard' 'Win32_DeviceGuard needs Windows Server 2016 or later' }
    if ($null -ne $cs -and $cs.PartOfDomain -eq $false) { Set-Absent 'ComputerAccountDelegation' 'not a domain member (no computer account)' }

    # The FailoverClusters module, else WMI root\MSCluster (same facts). PowerShell 7 loads the
    # module through the compatibility layer and gets deserialized copies (Network becomes a
    # string, a resource type cannot be piped to Get-ClusterParameter): it reads WMI too.
    $ClusterCim = $false
    if ($HasCluster) {
        try {
            Import-Module -Name 'FailoverClusters'
        } catch {
            $ClusterCim = $true
        }
        if ($PSVersionTable.PSEdition -eq 'Core') { $ClusterCim = $true }
    }
    $ClusterModule = 'the FailoverClusters module (Install-WindowsFeature RSAT-Clustering-PowerShell)'
    $NetworkIds = @{}
    if ($HasCluster) {
        try {
            foreach ($n in @(Get-Wmi -Namespace 'root\MSCluster' -Class 'MSCluster_Network')) { $NetworkIds[[string]$n.Name] = [string]$n.ID }
        } catch {
            $NetworkIds = @{}
        }
    }

    if ($ClusterCim) {
        Invoke-Section -Name 'Cluster' -Body {
            $c = Get-Wmi -Namespace 'root\MSCluster' -Class 'MSCluster_Cluster'
            $record = New-Record -InputObject $c -Property 'Name', 'Id', 'Domain', 'MaximumParallelMigrations',
                'SetSMBBandwidthLimit', 'SMBBandwidthLimitFactor'
            if (-not $record['Domain']) { $record['Domain'] = [string]$cs.Domain }
            , $record
        }
        Invoke-Section -Name 'ClusterNode' -List -Body {
            Get-Wmi -Namespace 'root\MSCluster' -Class 'MSCluster_Node' | New-Record -Property 'Name', 'Id', 'State'
        }
        Invoke-Section -Name 'ClusterNetwork' -List -Body {
            Get-Wmi -Namespace 'root\MSCluster' -Class 'MSCluster_Network' | New-Record -Property 'Name', 'Id', 'Role', 'State',
                'Address', 'AddressMask', 'Ipv4Addresses', 'Ipv4PrefixLengths', 'Ipv6Addresses', 'Ipv6PrefixLengths', 'Metric',
                'AutoMetric', 'Description'
        }
        Invoke-Section -Name 'ClusterNetworkInterface' -List -Body {
            foreach ($item in @(Get-Wmi -Namespace 'root\MSCluster' -Class 'MSCluster_NetworkInterface')) {
                $record = New-Record -InputObject $item -Property 'Name', 'Node', 'Network', 'Adapter', 'AdapterId', 'Address',
                    'Ipv4Addresses', 'Ipv6Addresses', 'State'
                if (-not $record['Node']) { $record['Node'] = [string]$item.SystemName }
                $record['NetworkId'] = $NetworkIds[[string]$record['Network']]
                , $record
            }
        }
        if ($IsLegacy) {
            $Failures['VirtualMachineResource'] = 'Per-VM live-migration settings need ' + $ClusterModule
        } else {
            Invoke-Section -Name 'VirtualMachineResourceType' -Body {
                $type = Get-Wmi -Namespace 'root\MSCluster' -Class 'MSCluster_ResourceType' -Filter "Name='Virtual Machine'"
                if ($null -eq $type) { throw 'The cluster has no "Virtual Machine" resource type' }
                New-Record -InputObject $type.PrivateProperties -Property 'MigrationExcludeNetworks', 'MigrationNetworkOrder'
            }
        }
    } else {
        Invoke-Section -Name 'Cluster' -Command 'Get-Cluster' -Install $ClusterModule -Body {
            New-Record -InputObject (Get-Cluster) -Property 'Name', 'Id', 'Domain', 'MaximumParallelMigrations',
                'SetSMBBandwidthLimit', 'SMBBandwidthLimitFactor'
        }
        Invoke-Section -Name 'ClusterNode' -Command 'Get-ClusterNode' -Install $ClusterModule -List -Body {
            Get-ClusterNode | New-Record -Property 'Name', 'Id', 'State'
        }
        Invoke-Section -Name 'ClusterNetwork' -Command 'Get-ClusterNetwork' -Install $ClusterModule -List -Body {
            foreach ($item in @(Get-ClusterNetwork)) {
                $record = New-Record -InputObject $item -Property 'Name', 'Id', 'Role', 'State', 'Address', 'AddressMask',
                    'Ipv4Addresses', 'Ipv4PrefixLengths', 'Ipv6Addresses', 'Ipv6PrefixLengths', 'Metric', 'AutoMetric',
                    'Description'
                # Windows Server 2008 R2: a cluster network has no Id; MSCluster_Network.ID is the same value.
                if (-not $record['Id']) { $record['Id'] = $NetworkIds[[string]$item.Name] }
                , $record
            }
        }
        Invoke-Section -Name 'ClusterNetworkInterface' -Command 'Get-ClusterNetworkInterface' -Install $ClusterModule -List -Body {
            foreach ($item in @(Get-ClusterNetworkInterface)) {
                $record = New-Record -InputObject $item -Property 'Name', 'Node', 'Network', 'Adapter', 'AdapterId',
                    'Address', 'Ipv4Addresses', 'Ipv6Addresses', 'State'
                $network = $item.Network
                $record['Node'] = Get-Name $item.Node
                $record['Network'] = Get-Name $network
                $record['NetworkId'] = $null
                if ($null -ne $network -and $null -ne $network.Id) {
                    $record['NetworkId'] = [string]$network.Id
                } else {
                    $record['NetworkId'] = $NetworkIds[[string]$record['Network']]
                }
                , $record
            }
        }
        if ($IsLegacy) {
            # Windows Server 2008 R2: the live-migration networks are set on every virtual machine.
            Invoke-Section -Name 'VirtualMachineResource' -Command 'Get-ClusterResource' -Install $ClusterModule -List -Body {
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
            Invoke-Section -Name 'VirtualMachineResourceType' -Command 'Get-ClusterResourceType' -Install $ClusterModule -Body {
                $record = @{}
                Add-MigrationSetting -Record $record -ClusterObject (Get-ClusterResourceType -Name 'Virtual Machine')
                , $record
            }
        }
    }

    if (-not $IsLegacy) {
        $HyperVModule = 'the Hyper-V module (Install-WindowsFeature Hyper-V-PowerShell)'
        Invoke-Section -Name 'VMHost' -Command 'Get-VMHost' -Install $HyperVModule -Body {
            New-Record -InputObject (Get-VMHost) -Property 'VirtualMachineMigrationEnabled', 'UseAnyNetworkForMigration',
                'VirtualMachineMigrationAuthenticationType', 'VirtualMachineMigrationPerformanceOption',
                'MaximumVirtualMachineMigrations', 'MaximumStorageMigrations'
        }

        Invoke-Section -Name 'VMMigrationNetwork' -Command 'Get-VMMigrationNetwork' -Install $HyperVModule -List -Body {
            Get-VMMigrationNetwork | New-Record -Property 'Subnet', 'Priority'
        }

        # No filter: with no limit set, Get-SmbBandwidthLimit -Category reports "not found", not an empty list.
        Invoke-Section -Name 'SmbBandwidthLimit' -List -Body {
            try {
                $limits = @(Get-SmbBandwidthLimit)
            } catch {
                $feature = $null
                if (Get-Command -Name 'Get-WindowsFeature' -ErrorAction SilentlyContinue) { $feature = Get-WindowsFeature -Name 'FS-SMBBW' }
                if ($null -ne $feature -and -not $feature.Installed) {
                    $Absent['SmbBandwidthLimit'] = 'SMB Bandwidth Limit feature (FS-SMBBW) not installed'
                    return
                }
                throw
            }
            foreach ($limit in $limits) {
                $record = New-Record -InputObject $limit -Property 'BytesPerSecond'
                $record['Category'] = [string]$limit.Category
                , $record
            }
        }
        if ($Absent.ContainsKey('SmbBandwidthLimit')) { $Sections.Remove('SmbBandwidthLimit') }

        # Network ATC; Azure Stack HCI 21H2 needs -ClusterName.
        $AtcQuery = @{}
        if ($Sections['Cluster'] -and $Sections['Cluster']['Name']) { $AtcQuery['ClusterName'] = [string]$Sections['Cluster']['Name'] }
        if (-not (Get-Command -Name 'Get-NetIntent' -ErrorAction SilentlyContinue)) {
            Set-Absent 'NetIntent', 'NetIntentGlobalOverrides' 'Network ATC not installed (no Get-NetIntent)'
        }
        Invoke-Section -Name 'NetIntent' -Command 'Get-NetIntent' -List -Body {
            Get-NetIntent @AtcQuery | New-Record -Property 'IntentName', 'IsComputeIntentSet', 'IsStorageIntentSet',
                'IsManagementIntentSet', 'StorageVLANs', 'NetAdapterNamesAsList'
        }
        Invoke-Section -Name 'NetIntentGlobalOverrides' -Command 'Get-NetIntent' -Body {
            $overrides = @(Get-NetIntent @AtcQuery -GlobalOverrides)
            $cluster = $null
            if ($overrides.Count -gt 0) {
                $cluster = $overrides[0].ClusterOverride
            }
            New-Record -InputObject $cluster -Property 'EnableLiveMigrationNetworkSelection',
                'EnableVirtualMachineMigrationPerformanceSelection', 'VirtualMachineMigrationPerformanceOption',
                'MaximumVirtualMachineMigrations', 'MaximumSMBMigrationBandwidthInGbps'
        }

        Invoke-Section -Name 'NetAdapter' -Command 'Get-NetAdapter' -List -Body {
            Get-NetAdapter | New-Record -Property 'Name', 'InterfaceDescription', 'InterfaceGuid', 'InterfaceIndex', 'Status',
                'MtuSize', 'LinkSpeed'
        }
        Invoke-Section -Name 'DefaultRoute' -Command 'Get-NetRoute' -List -Body {
            Get-NetRoute | Where-Object { $_.DestinationPrefix -eq '0.0.0.0/0' -or $_.DestinationPrefix -eq '::/0' } |
                New-Record -Property 'InterfaceIndex', 'InterfaceAlias', 'DestinationPrefix', 'NextHop'
        }
        Invoke-Section -Name 'SmbMultichannelConstraint' -Command 'Get-SmbMultichannelConstraint' -List -Body {
            Get-SmbMultichannelConstraint | New-Record -Property 'ServerName', 'InterfaceAlias', 'InterfaceIndex'
        }
        Invoke-Section -Name 'SmbClientNetworkInterface' -Command 'Get-SmbClientNetworkInterface' -List -Body {
            Get-SmbClientNetworkInterface | New-Record -Property 'InterfaceIndex', 'FriendlyName', 'IpAddresses', 'RdmaCapable',
                'LinkSpeed'
        }
        Invoke-Section -Name 'DeviceGuard' -Body {
            Get-Wmi -Namespace 'root\Microsoft\Windows\DeviceGuard' -Class 'Win32_DeviceGuard' |
                New-Record -Property 'SecurityServicesConfigured', 'SecurityServicesRunning'
        }
    }

    # The computer account's constrained delegation, read from AD (any domain account may).
    Invoke-Section -Name 'ComputerAccountDelegation' -Body {
        $account = ($env:COMPUTERNAME -replace '[\\()*]', '') + '$'
        $found = ([adsisearcher]('(&(objectCategory=computer)(sAMAccountName=' + $account + '))')).FindOne()
        if ($null -eq $found) { throw ('No computer account ' + $account + ' in Active Directory') }
        $entry = [adsi]([string]$found.Path)
        $record = @{}
        $record['AllowedToDelegateTo'] = @(foreach ($spn in $entry.'msDS-AllowedToDelegateTo') { [string]$spn })
        $flags = [long]([string]$entry.userAccountControl)
        $record['TrustedToAuthForDelegation'] = ($flags -band 16777216) -ne 0
        , $record
    }

    $collector = @{}
    $collector['version'] = $CollectorVersion
    $collector['powershell'] = [string]$PSVersionTable.PSVersion
    $collector['method'] = $CollectorMethod
    $collector['language_mode'] = [string]$ExecutionContext.SessionState.LanguageMode
    $document = @{}
    $document['lmscan_snapshot'] = 1
    $document['node'] = $env:COMPUTERNAME
    $document['dns_host_name'] = $DnsName
    $document['collected_at'] = [datetime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", $Invariant)
    $document['collector'] = $collector
    $document['sections'] = $Sections
    $document['errors'] = $Failures
    $document['absent'] = $Absent
    $json = ConvertTo-JsonText $document
    if ($PSVersionTable.PSVersion.Major -lt 3 -or ($CollectorMethod -eq 'winrm' -and $FullLanguage)) {
        # PowerShell 2.0 hard-wraps Write-Output at the console width even when redirected; over
        # WinRM the script is its own process. Never reached in ConstrainedLanguage ([Console]).
        [Console]::Out.WriteLine($json)
        [Console]::Out.Flush()
    } else {
        Write-Output $json
    }
    $Succeeded = $true
} catch {
    $message = 'lmscan collector failed: ' + $_.Exception.Message
    if (-not $FullLanguage) { $message = $message + ' (language mode ' + [string]$ExecutionContext.SessionState.LanguageMode + ')' }
    Write-Error -Message $message -ErrorAction Continue
}

if ($Succeeded) {
    exit 0
}
exit 1
