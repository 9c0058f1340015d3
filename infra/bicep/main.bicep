// Sixpence: everything one Function App needs, in one resource group, in UK South.
//
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
//
// Raw resources only (no registry modules), so the files lint offline. See infra/OPERATOR.md.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

@description('Azure region for every resource. Customer data must stay in UK South, so this is the only value allowed.')
@allowed([
  'uksouth'
])
param location string = 'uksouth'

@description('Short lower-case prefix (letters and digits, 2-8 characters) for resource names; a hash of the resource group id is appended.')
@minLength(2)
@maxLength(8)
param prefix string = 'sixp'

@description('When true, assign the built-in "Allowed locations" policy to this resource group, listing only `location`.')
param enforceLocationPolicy bool = true

@description('Mailbox (user principal name or address) that Microsoft Graph sendMail sends as. Not a secret.')
param mailSender string

@description('How notification email leaves (SIXPENCE_EMAIL_TRANSPORT): graph (Microsoft Graph sendMail as mailSender with the app\'s managed identity, which needs the Mail.Send application permission limited to that mailbox by an application access policy, granted outside Bicep: see README), smtp (needs SMTP_URL in optionalSecrets) or none.')
@allowed([
  'graph'
  'smtp'
  'none'
])
param emailTransport string = 'graph'

@description('Microsoft Graph base URL (SIXPENCE_GRAPH_URL). Change only for a national cloud.')
param graphUrl string = 'https://graph.microsoft.com'

@description('The tenant API\'s app registration: its application (client) id and/or app ID URI, comma-separated (SIXPENCE_AUTH_AUDIENCE).')
param apiAudience string

@description('Entra ID authority for sign-in (SIXPENCE_AUTH_AUTHORITY). Change the host only for a sovereign cloud.')
param authAuthority string = 'https://login.microsoftonline.com/organizations'

@description('Optional comma-separated allow-list of Entra tenant ids that may sign in (SIXPENCE_AUTH_ALLOWED_TENANTS); empty allows any work or school tenant.')
param allowedTenants string = ''

@description('Log filter for the binary (SIXPENCE_LOG), e.g. info or sixpence=debug,info.')
param logFilter string = 'info'

@description('6-field NCRONTAB (UTC on Flex) for the heartbeat timer (HEARTBEAT_SCHEDULE).')
param heartbeatSchedule string = '0 */5 * * * *'

@description('6-field NCRONTAB (UTC) for the sync-scheduler timer that enqueues the nightly cost sync (SYNC_SCHEDULE).')
param syncSchedule string = '0 30 1 * * *'

@description('6-field NCRONTAB (UTC) for the connection-health timer that re-verifies every active Azure connection (CONNECTION_HEALTH_SCHEDULE). Hourly by default.')
param connectionHealthSchedule string = '0 17 * * * *'

@description('6-field NCRONTAB (UTC) for the daily retention-sweeper timer that completes or retries every deletion and purges expired retained records (RETENTION_SWEEPER_SCHEDULE).')
param retentionSweeperSchedule string = '0 45 3 * * *'

@description('Azure Resource Manager endpoint for calls into customers\' tenants (SIXPENCE_AZURE_ARM_ENDPOINT). Change only for a sovereign cloud.')
param azureArmEndpoint string = 'https://management.azure.com'

@description('Entra ID authority customers\' service principals sign in at (SIXPENCE_AZURE_AUTHORITY). Change only for a sovereign cloud.')
param azureAuthority string = 'https://login.microsoftonline.com'

@description('Stripe API base URL (STRIPE_API_BASE). Leave the default.')
param stripeApiBase string = 'https://api.stripe.com'

@description('Plans owners may buy (STRIPE_PLANS): `name=price_id`, comma-separated. Empty: checkout is refused until set.')
param stripePlans string = ''

@description('Days a deleted workspace\'s minimised audit trail is kept (SIXPENCE_RETENTION_AUDIT_DAYS).')
@minValue(1)
param retentionAuditDays int = 730

@description('Days a deleted workspace\'s billing records and every incident record are kept (SIXPENCE_RETENTION_BILLING_DAYS). UK tax records: six years after the accounting period.')
@minValue(1)
param retentionBillingDays int = 2557

@description('Azure subscriptions a workspace may choose for sync without a paid Stripe subscription (SIXPENCE_FREE_SUBSCRIPTIONS).')
@minValue(0)
param freeSubscriptions int = 5

@description('Hours a finished workspace export can be downloaded (SIXPENCE_EXPORT_TTL_HOURS).')
@minValue(1)
@maxValue(168)
param exportTtlHours int = 24

@description('Vulnerability disclosure contact(s) published in /.well-known/security.txt (SIXPENCE_SECURITY_CONTACT): mailto:/https: URIs or email addresses, comma-separated.')
param securityContact string

@description('Optional disclosure policy URL for security.txt (SIXPENCE_SECURITY_POLICY).')
param securityPolicy string = ''

@description('Optional public base URL of the app, e.g. https://api.example.com (SIXPENCE_PUBLIC_URL); the Canonical line of security.txt. Empty: the request host.')
param publicUrl string = ''
@description('Base URL of the Sixpence web app that notifications link to (SIXPENCE_APP_URL). Empty: messages carry no links.')
param appUrl string = ''

@description('Extra Slack/Teams webhook hosts customers may use, comma-separated: `host` or `.domain` (SIXPENCE_WEBHOOK_EXTRA_HOSTS). Empty: only the services\' own hosts.')
param webhookExtraHosts string = ''

@description('Optional secret settings to wire up (each needs its Key Vault secret to exist, or the app sees the unresolved reference text). Allowed: SMTP_URL.')
param optionalSecrets array = []

@description('Create the Key Vault secrets with a placeholder value. Use true on the FIRST deployment only: Key Vault has no create-if-absent, so a later deployment with true writes a new placeholder version over the real value.')
param seedSecretPlaceholders bool = false

@description('Object id of the operator (user or group) who fills in the secrets; gets Key Vault Secrets Officer on the vault. Empty to skip.')
param secretsOfficerPrincipalId string = ''

@description('Principal type of secretsOfficerPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param secretsOfficerPrincipalType string = 'User'

@description('Email addresses that receive the alerts. Empty: the alerts still fire and show in Azure Monitor, but notify nobody.')
param alertEmails array = []

@description('Flex Consumption instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption maximum instance count (scale-out ceiling).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Spread the app across availability zones. Costs at least two always-ready instances per function group, around the clock.')
param zoneRedundant bool = false

@description('Days a deleted blob, blob version or container stays recoverable. Keep within the 7-day deletion promise.')
@minValue(1)
@maxValue(7)
param softDeleteRetentionDays int = 7

@description('Storage redundancy. Only zone- or locally-redundant SKUs: geo-redundant copies would leave UK South.')
@allowed([
  'Standard_ZRS'
  'Standard_LRS'
])
param storageSku string = 'Standard_ZRS'

@description('Log Analytics retention in days.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Failed invocations within 15 minutes that raise the failed-invocations alert.')
@minValue(1)
param failedInvocationThreshold int = 5

@description('Tags applied to every resource.')
param tags object = {
  app: 'sixpence'
}

// ---------------------------------------------------------------------------------------------
// Names: prefix + a stable hash of the resource group id
// ---------------------------------------------------------------------------------------------

var token = toLower(uniqueString(resourceGroup().id))
var namePrefix = toLower(prefix)
var names = {
  identity: '${namePrefix}-id-${token}'
  storage: take('${namePrefix}st${token}', 24)
  keyVault: take('${namePrefix}-kv-${token}', 24)
  logAnalytics: '${namePrefix}-log-${token}'
  appInsights: '${namePrefix}-appi-${token}'
  plan: '${namePrefix}-plan-${token}'
  functionApp: '${namePrefix}-func-${token}'
  actionGroup: '${namePrefix}-ag-${token}'
}

// The deployment package container Flex reads the zip from (not used by the app itself).
var deploymentContainerName = 'deployment-package'

// ---------------------------------------------------------------------------------------------
// App settings the binary reads (its config module; local twin: local.settings.example.json).
// The host's own settings (storage identity, App Insights) are in modules/functionapp.bicep.
// tests/infra/test_bicep.py holds these lists equal to local.settings.example.json. One line each.
// ---------------------------------------------------------------------------------------------

var plainSettings = [
  { name: 'SIXPENCE_ENVIRONMENT', value: 'production' }
  { name: 'SIXPENCE_LOG', value: logFilter }
  { name: 'HEARTBEAT_SCHEDULE', value: heartbeatSchedule }
  { name: 'MAIL_SENDER', value: mailSender }
  { name: 'SIXPENCE_EMAIL_TRANSPORT', value: emailTransport }
  { name: 'SIXPENCE_GRAPH_URL', value: graphUrl }
  { name: 'SIXPENCE_AUTH_AUTHORITY', value: authAuthority }
  { name: 'SIXPENCE_AUTH_AUDIENCE', value: apiAudience }
  { name: 'SIXPENCE_AUTH_ALLOWED_TENANTS', value: allowedTenants }
  { name: 'SYNC_SCHEDULE', value: syncSchedule }
  { name: 'CONNECTION_HEALTH_SCHEDULE', value: connectionHealthSchedule }
  { name: 'RETENTION_SWEEPER_SCHEDULE', value: retentionSweeperSchedule }
  { name: 'SIXPENCE_AZURE_ARM_ENDPOINT', value: azureArmEndpoint }
  { name: 'SIXPENCE_AZURE_AUTHORITY', value: azureAuthority }
  { name: 'STRIPE_API_BASE', value: stripeApiBase }
  { name: 'STRIPE_PLANS', value: stripePlans }
  { name: 'SIXPENCE_FREE_SUBSCRIPTIONS', value: string(freeSubscriptions) }
  { name: 'SIXPENCE_EXPORT_TTL_HOURS', value: string(exportTtlHours) }
  { name: 'SIXPENCE_RETENTION_AUDIT_DAYS', value: string(retentionAuditDays) }
  { name: 'SIXPENCE_RETENTION_BILLING_DAYS', value: string(retentionBillingDays) }
  { name: 'SIXPENCE_SECURITY_CONTACT', value: securityContact }
  { name: 'SIXPENCE_SECURITY_POLICY', value: securityPolicy }
  { name: 'SIXPENCE_PUBLIC_URL', value: publicUrl }
  { name: 'SIXPENCE_APP_URL', value: appUrl }
  { name: 'SIXPENCE_WEBHOOK_EXTRA_HOSTS', value: webhookExtraHosts }
]

// Secrets: Key Vault references (the Key Vault secret name is the setting name in lower case with
// '-' for '_', e.g. STRIPE_SECRET_KEY -> stripe-secret-key). An optional one is wired up only when
// listed in `optionalSecrets`, because an unresolvable reference reaches the app as its literal text.
var secretSettings = [
  { name: 'SIXPENCE_DATA_KEYS', optional: false }
  { name: 'STRIPE_SECRET_KEY', optional: false }
  { name: 'STRIPE_WEBHOOK_SECRET', optional: false }
  { name: 'SMTP_URL', optional: true }
]

var secretsInUse = filter(secretSettings, s => !s.optional || contains(optionalSecrets, s.name))
var secretsWired = [for s in secretsInUse: {
  name: s.name
  secretName: toLower(replace(s.name, '_', '-'))
}]
var vaultSecretNames = [for s in secretsInUse: toLower(replace(s.name, '_', '-'))]

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: names.storage
    sku: storageSku
    deploymentContainerName: deploymentContainerName
    softDeleteRetentionDays: softDeleteRetentionDays
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: names.keyVault
    secretNames: vaultSecretNames
    seedSecretPlaceholders: seedSecretPlaceholders
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    logRetentionDays: logRetentionDays
    tags: tags
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    secretsOfficerPrincipalId: secretsOfficerPrincipalId
    secretsOfficerPrincipalType: secretsOfficerPrincipalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    planName: names.plan
    appName: names.functionApp
    identityId: identity.id
    identityClientId: identity.properties.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    keyVaultUri: keyVault.outputs.uri
    appInsightsConnectionString: monitoring.outputs.connectionString
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
    plainSettings: plainSettings
    secretSettings: secretsWired
    tags: tags
  }
  // The app must not start before its identity can reach storage, Key Vault and App Insights.
  dependsOn: [
    rbac
  ]
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    actionGroupName: names.actionGroup
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    appName: functionApp.outputs.name
    alertEmails: alertEmails
    failedInvocationThreshold: failedInvocationThreshold
    tags: tags
  }
}

module locationPolicy 'modules/policy.bicep' = if (enforceLocationPolicy) {
  name: 'location-policy'
  params: {
    location: location
  }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output defaultHostName string = functionApp.outputs.defaultHostName
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
