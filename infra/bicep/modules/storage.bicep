// Storage account for the Functions host (leases, timers, keys, deployment package) and for the
// app's own data: tables, queues (and their -poison twins) and blob containers.
// Shared-key access is off: everything authenticates with Entra ID (the app's managed identity).

@description('Region (validated in main.bicep).')
param location string

@description('Storage account name (3-24 lower-case letters and digits).')
param name string

@description('Replication SKU (ZRS or LRS only: no geo-replication out of UK South).')
param sku string

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Days deleted blobs, versions and containers stay recoverable.')
param softDeleteRetentionDays int

param tags object

// ---------------------------------------------------------------------------------------------
// What the app uses. Keep in step with handlers/storage/names.rs and function-specs/*/function.json
// (tests/infra/test_bicep.py checks). Adding one is a one-line change here.
// ---------------------------------------------------------------------------------------------

var tableNames = [
  'system'
  'tenancy'
  'memberships'
  'audit'
  'idempotency'
  'connections'
  'syncs'
  'costs'
  'costmonths'
  'inventory'
  'recommendations'
  'incidents'
  'billing'
  'stripeevents'
  'stripecustomers'
  'anomalies'
  'analytics'
  'budgets'
  'channels'
  'deliveries'
  'inbox'
  'digests'
  'exports'
  'deletions'
]

var containerNames = [
  'raw-cost-pages'
  'exports'
]

// Each queue also gets its '<name>-poison' twin, where the host moves a message after maxDequeueCount
// failed attempts; creating it up front lets the poison alert and operators find it before the first failure.
var queueNames = [
  'queue-probe'
  'connection-check'
  'cost-sync'
  'anomaly-detect'
  'budget-check'
  'notifications'
  'events'
  'exports'
  'deletions'
]

var poisonQueueNames = [for q in queueNames: '${q}-poison']
var allQueueNames = concat(queueNames, poisonQueueNames)

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_206:Geo-redundant SKUs copy the data to the paired region (UK West); customer data must stay in UK South, so zone-redundant (three zones in UK South) is the ceiling.
  // checkov:skip=CKV_AZURE_35:A Flex Consumption app without VNet integration reaches storage over the public endpoint and is not an Azure trusted service, so the default action must be Allow. Shared-key access is disabled: every call needs an Entra ID token with a data role. Add VNet integration and private endpoints to tighten.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: the app reaches storage over the public endpoint; blob public (anonymous) access is disabled and shared keys are off.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: sku
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
      // Lets the deletion job purge soft-deleted versions and snapshots at once, so "deleted on
      // request within 7 days" holds even with soft delete and versioning on.
      allowPermanentDelete: true
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containerNames: {
  parent: blobService
  name: c
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for q in allQueueNames: {
  parent: queueService
  name: q
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for t in tableNames: {
  parent: tableService
  name: t
}]

// Previous blob versions are kept only as long as soft delete keeps deleted blobs, so versioning
// neither grows storage without bound nor keeps deleted customer data past the deletion promise.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'expire-previous-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: softDeleteRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    blobService
  ]
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
