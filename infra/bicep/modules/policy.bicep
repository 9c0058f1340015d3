// Optional guard: the built-in "Allowed locations" policy (deny) on this resource group, so nothing
// can be created outside UK South here, by this template or by hand. The policy definition exempts
// resources whose location is 'global' (e.g. action groups).

@description('The only region allowed (validated in main.bicep).')
param location string

resource allowedLocations 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: 'sixpence-allowed-locations'
  location: location
  properties: {
    displayName: 'Sixpence: allowed locations (${location} only)'
    description: 'Customer data stays in ${location}: deny resources in any other region in this resource group.'
    policyDefinitionId: tenantResourceId('Microsoft.Authorization/policyDefinitions', 'e56962a6-4747-49cd-b67b-bf8b01975c4c')
    enforcementMode: 'Default'
    parameters: {
      listOfAllowedLocations: {
        value: [
          location
        ]
      }
    }
  }
}
