// Key Vault for the app's secrets. RBAC authorisation (no access policies), soft delete and purge
// protection. The app reads secrets only through Key Vault references in its app settings.

@description('Region (validated in main.bicep).')
param location string

@description('Vault name (3-24 characters, letters, digits and hyphens).')
param name string

@description('Key Vault secret names the app settings reference.')
param secretNames array

@description('Create each secret with a placeholder value (first deployment only; see main.bicep).')
param seedSecretPlaceholders bool

param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:The app resolves Key Vault references over the public endpoint (no VNet integration), so the firewall default must be Allow. Access is RBAC-only; the app identity can only read secrets.
  // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access is how a Flex app without VNet integration reaches the vault.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// Placeholders the operator overwrites with `az keyvault secret set`. Only on request: ARM cannot
// create a secret without writing a value, so seeding on every deployment would clobber real values.
resource placeholders 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for s in secretNames: if (seedSecretPlaceholders) {
  // checkov:skip=CKV_AZURE_41:This is a placeholder ('REPLACE-ME'), created only on request, that the operator overwrites with az keyvault secret set; the real secrets are not defined in the template, and rotation is an operator task (infra/OPERATOR.md).
  parent: vault
  name: s
  properties: {
    value: 'REPLACE-ME'
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}]

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
