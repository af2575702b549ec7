# Windows Task Scheduler: run lmscan every night at 02:00 on a Windows jump host.
# Run once in an elevated PowerShell; the task runs as the gMSA or service account given below.
# Task Scheduler never starts a second instance while one runs (MultipleInstances IgnoreNew),
# and keeps the exit code as the task's "Last Run Result" (0 pass, 1 findings, 3 incomplete).
$lmscan  = 'C:\Program Files\lmscan\venv\Scripts\lmscan.exe'
$config  = 'C:\ProgramData\lmscan\lmscan.yaml'
$action  = New-ScheduledTaskAction -Execute $lmscan -Argument "scan --config `"$config`" --quiet" `
           -WorkingDirectory 'C:\ProgramData\lmscan'
$trigger = New-ScheduledTaskTrigger -Daily -At 2am
$settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -StartWhenAvailable `
            -ExecutionTimeLimit (New-TimeSpan -Hours 4)
# A group managed service account needs no stored password: -LogonType Password with a gMSA.
$principal = New-ScheduledTaskPrincipal -UserId 'CONTOSO\gmsa-lmscan$' -LogonType Password
Register-ScheduledTask -TaskName 'lmscan nightly' -Action $action -Trigger $trigger `
    -Settings $settings -Principal $principal -Description 'lmscan live-migration compliance scan'

# The same with schtasks (as a service account with a password prompt):
#   schtasks /Create /TN "lmscan nightly" /SC DAILY /ST 02:00 /RU CONTOSO\svc-lmscan /RP * ^
#     /TR "\"C:\Program Files\lmscan\venv\Scripts\lmscan.exe\" scan --config C:\ProgramData\lmscan\lmscan.yaml --quiet"
# Last Run Result: Get-ScheduledTaskInfo -TaskName 'lmscan nightly' | Select LastRunTime, LastTaskResult
