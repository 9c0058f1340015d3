// The Function App: Flex Consumption (FC1, Linux), runtime 'custom' (the Rust binary is a custom
// handler), user-assigned identity for everything (host storage, deployment package, Key Vault
// references, Application Insights). No keys or connection strings with secrets in app settings.

@description('Region (validated in main.bicep).')
param location string

param planName string
param appName string

@description('Resource id of the user-assigned identity.')
param identityId string

@description('Client id of the user-assigned identity.')
param identityClientId string

param storageAccountName string

@description('URL of the blob container Flex deploys the app package from.')
param deploymentContainerUrl string

@description('Vault URI, ending in a slash.')
param keyVaultUri string

@description('Application Insights connection string (not usable without an Entra ID token: local auth is off).')
@secure()
param appInsightsConnectionString string

param instanceMemoryMB int
param maximumInstanceCount int

@description('Spread instances across availability zones (keeps at least two always-ready instances per function group).')
param zoneRedundant bool

@description('Plain app settings the binary reads: [{ name, value }].')
param plainSettings array

@description('Secret app settings the binary reads: [{ name, secretName }], each a Key Vault reference.')
param secretSettings array

param tags object

// Settings for the Functions host itself. The Flex plan forbids FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENT*, WEBSITE_TIME_ZONE and TZ:
// the runtime comes from functionAppConfig.runtime and the package from functionAppConfig.deployment.
var hostSettings = [
  { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
]

// Versionless references: the app picks up a new secret version when the platform refreshes
// references (within 24 hours, or at once on restart or any configuration change).
var secretReferences = [for s in secretSettings: {
  name: s.name
  value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${s.secretName})'
}]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is the zoneRedundant parameter, off by default: on Flex Consumption it keeps at least two always-ready instances per function or function group, billed around the clock. Turn it on when the uptime target justifies the cost.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:The tenant API and the Stripe webhook are public HTTPS endpoints by design; requests are authenticated by the app (Entra ID bearer tokens, Stripe signatures).
  // checkov:skip=CKV_AZURE_17:Callers authenticate with Entra ID bearer tokens, and Stripe cannot present a client certificate to the webhook; mutual TLS would lock them out.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales instances on demand from zero; there is no fixed instance count to fail over between. Always-ready instances are a cost decision (see CKV_AZURE_225).
  // checkov:skip=CKV_AZURE_213:App Service health check replaces bad instances of a fixed-size plan and is not used on the serverless Flex plan; the app serves GET /api/health for external probes and the operator's smoke test.
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(hostSettings, plainSettings, secretReferences)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        // Custom handler. Check the region offers it: az functionapp list-flexconsumption-runtimes --location uksouth
        name: 'custom'
        version: '1.0'
      }
    }
  }
}

// No FTP and no basic-auth (publishing profile) deployments: deploy with Entra ID (az CLI).
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = app.name
output id string = app.id
output defaultHostName string = app.properties.defaultHostName
