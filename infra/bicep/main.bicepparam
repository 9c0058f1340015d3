// Example parameters for main.bicep. Copy, fill in, and deploy with:
//   az deployment group create -g <rg> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
// No secrets here: they go into Key Vault after deployment (see infra/OPERATOR.md).
using './main.bicep'

param location = 'uksouth'
param prefix = 'sixp'
param enforceLocationPolicy = true
param mailSender = 'billing-alerts@example.com'
param apiAudience = 'api://00000000-0000-0000-0000-000000000000'
param logFilter = 'info'
param heartbeatSchedule = '0 */5 * * * *'

// Published in /.well-known/security.txt: where researchers report vulnerabilities.
param securityContact = 'mailto:security@example.com'

// The plans owners may buy, as Stripe price ids (per connected Azure subscription).
param stripePlans = ''

// Add 'SMTP_URL' once its Key Vault secret exists (only if mail goes over SMTP instead of Graph).
param optionalSecrets = []

// true on the first deployment only (see the parameter's description in main.bicep).
param seedSecretPlaceholders = false

// Your object id, so you can set the secrets: az ad signed-in-user show --query id -o tsv
param secretsOfficerPrincipalId = ''
param secretsOfficerPrincipalType = 'User'

param alertEmails = [
  'ops@example.com'
]
