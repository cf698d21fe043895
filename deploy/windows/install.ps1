#Requires -RunAsAdministrator
<#
.SYNOPSIS
    Installs rswebhooks as a Windows service in front of Telerik Report Server, or removes it.

.DESCRIPTION
    Run from the unpacked release archive, in an elevated PowerShell:

        .\install.ps1 -Upstream http://127.0.0.1:83 -Listen :80

    It copies rswebhooks.exe to -InstallDir, creates -DataDir with an operator
    token readable only by SYSTEM and Administrators (kept if it exists),
    registers the service with `rswebhooks service install`, opens the proxy
    port in Windows Firewall and starts the service with `rswebhooks service
    start`. Run it again with a new release to upgrade: it stops the service,
    replaces the binary and starts it again.

        .\install.ps1 -Uninstall

    stops and removes the service and the firewall rule, and deletes the
    binary. The data directory (store, token, settings) stays.

.PARAMETER Upstream
    The report server's base URL, moved to a loopback port (see WINDOWS.md).
.PARAMETER Listen
    The proxy listener clients use (e.g. :80, or :443 with -TlsCert/-TlsKey).
.PARAMETER AdminListen
    Admin API, /metrics, /healthz, /readyz. Keep it on loopback or a management network.
.PARAMETER ServiceUser
    A report-server account for access checks and the execution watcher (optional).
.PARAMETER ServicePassword
    Its password, as a SecureString (prompted for when -ServiceUser is given without it).
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    [Parameter(ParameterSetName = 'Install', Mandatory = $true)]
    [string] $Upstream,
    [Parameter(ParameterSetName = 'Install')]
    [string] $Listen = ':80',
    [Parameter(ParameterSetName = 'Install')]
    [string] $AdminListen = '127.0.0.1:8081',
    [Parameter(ParameterSetName = 'Install')]
    [string] $ServiceUser,
    [Parameter(ParameterSetName = 'Install')]
    [securestring] $ServicePassword,
    [Parameter(ParameterSetName = 'Install')]
    [string] $TlsCert,
    [Parameter(ParameterSetName = 'Install')]
    [string] $TlsKey,
    [string] $InstallDir = (Join-Path $env:ProgramFiles 'rswebhooks'),
    [string] $DataDir = (Join-Path $env:ProgramData 'rswebhooks'),
    [Parameter(ParameterSetName = 'Uninstall', Mandatory = $true)]
    [switch] $Uninstall
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$ServiceName = 'rswebhooks'
$FirewallRule = 'rswebhooks proxy'
$Exe = Join-Path $InstallDir 'rswebhooks.exe'

# Runs rswebhooks.exe and stops the script when it fails.
function Invoke-Rswebhooks {
    param([string[]] $Arguments)
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "rswebhooks $($Arguments -join ' ') failed with exit code $LASTEXITCODE"
    }
}

function Get-Port {
    param([string] $Address)
    $port = $Address.Substring($Address.LastIndexOf(':') + 1)
    if ($port -notmatch '^\d+$') {
        throw "-Listen ${Address}: want host:port or :port"
    }
    return [int] $port
}

if ($Uninstall) {
    if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
        # service uninstall stops the service (draining requests) first.
        Invoke-Rswebhooks @('service', 'uninstall')
    }
    Get-NetFirewallRule -DisplayName $FirewallRule -ErrorAction SilentlyContinue | Remove-NetFirewallRule
    if (Test-Path $InstallDir) {
        Remove-Item -Recurse -Force $InstallDir
    }
    Write-Host "rswebhooks removed. The data directory $DataDir stays; delete it when it is no longer needed."
    return
}

$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$newExe = Join-Path $here 'rswebhooks.exe'
if (-not (Test-Path $newExe)) {
    throw "rswebhooks.exe not found next to this script ($here): run it from the unpacked release archive"
}
$port = Get-Port $Listen

# Upgrade: stop the running service before its binary is replaced.
$existing = Get-Service -Name $ServiceName -ErrorAction SilentlyContinue
if ($existing -and $existing.Status -ne 'Stopped') {
    Invoke-Rswebhooks @('service', 'stop')
}

New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
Copy-Item -Force $newExe $Exe
foreach ($f in @('README.md', 'WINDOWS.md', 'LICENSE', 'rswebhooks.example.yaml', 'rules.example.yaml', 'install.ps1')) {
    $src = Join-Path $here $f
    if (Test-Path $src) {
        Copy-Item -Force $src $InstallDir
    }
}

# The data directory: SYSTEM and Administrators only, since it holds the token.
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
& icacls $DataDir /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' | Out-Null
if ($LASTEXITCODE -ne 0) {
    throw "icacls $DataDir failed with exit code $LASTEXITCODE"
}
$tokenFile = Join-Path $DataDir 'admin-token'
if (-not (Test-Path $tokenFile)) {
    $bytes = New-Object byte[] 32
    [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes)
    Set-Content -NoNewline -Path $tokenFile -Value ([Convert]::ToBase64String($bytes))
    Write-Host "Wrote a new operator token to $tokenFile"
}

$serveArgs = @(
    '--upstream', $Upstream,
    '--listen', $Listen,
    '--admin-listen', $AdminListen,
    '--data-dir', (Join-Path $DataDir 'data'),
    '--admin-token-file', $tokenFile
)
if ($ServiceUser) {
    if (-not $ServicePassword) {
        $ServicePassword = Read-Host -AsSecureString "Password of the report-server account $ServiceUser"
    }
    $plain = [System.Net.NetworkCredential]::new('', $ServicePassword).Password
    $serveArgs += @('--service-user', $ServiceUser, '--service-password', $plain)
}
if ($TlsCert -or $TlsKey) {
    $serveArgs += @('--tls-cert', $TlsCert, '--tls-key', $TlsKey)
}

if ($existing) {
    # Re-register so the service runs the new settings.
    Invoke-Rswebhooks @('service', 'uninstall')
}
Invoke-Rswebhooks (@('service', 'install', '--') + $serveArgs)

if (-not (Get-NetFirewallRule -DisplayName $FirewallRule -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -DisplayName $FirewallRule -Direction Inbound -Protocol TCP -LocalPort $port -Action Allow | Out-Null
} else {
    Set-NetFirewallRule -DisplayName $FirewallRule -LocalPort $port
}

Invoke-Rswebhooks @('service', 'start')
Invoke-Rswebhooks @('version')
Write-Host "rswebhooks is running: clients use port $port; check http://$AdminListen/readyz"
