// Alerts, as log search (scheduled query) rules over the Log Analytics workspace that backs
// Application Insights. Log rules, unlike metric alerts, are regional (they live in UK South) and can
// read the host's own log lines, which is the only place a poison-queue move is reported per queue:
// the storage QueueMessageCount metric is account-wide, with no queue dimension.

@description('Region (validated in main.bicep).')
param location string

param actionGroupName string

@description('Resource id of the Log Analytics workspace behind Application Insights.')
param logAnalyticsId string

@description('Function App name, used in the alert text.')
param appName string

@description('Who gets the email. Empty: no action group; the alerts still fire in Azure Monitor.')
param alertEmails array

param failedInvocationThreshold int

param tags object

// Action groups are global resources (Azure Monitor keeps only the receiver list; no customer data).
// The built-in "Allowed locations" policy exempts 'global'.
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmails)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    enabled: true
    groupShortName: 'sixpence'
    emailReceivers: [for (address, i) in alertEmails: {
      name: 'email-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
  }
}

var actionGroups = empty(alertEmails) ? [] : [
  actionGroup.id
]

// Every Functions invocation (HTTP, timer or queue) is one row in AppRequests; Success is false when
// the handler returned non-2xx or the host failed the invocation.
var failedInvocationsQuery = '''
AppRequests
| where Success == false
| summarize Failed = count() by FunctionName = OperationName
'''

// The queue extension logs this warning when a message reaches maxDequeueCount:
//   Message has reached MaxDequeueCount of 5. Moving message to queue '<queue>-poison'.
var poisonMessagesQuery = '''
AppTraces
| where Message has "Moving message to queue" and Message has "-poison"
| extend PoisonQueue = extract(@"queue '([^']+)'", 1, Message)
| summarize Moved = count() by PoisonQueue
'''

// The daily retention-sweeper logs this error for every deletion unfinished 7 days after it was
// requested (handlers/deletion.rs, `deletion.overdue`): the promise to customers is broken.
var overdueDeletionsQuery = '''
AppTraces
| where Message has "deletion.overdue"
| summarize Overdue = count()
'''

resource failedInvocations 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${appName}-failed-invocations'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${appName}: failed invocations'
    description: 'At least ${failedInvocationThreshold} failed function invocations (any trigger) within 15 minutes, per function.'
    severity: 2
    enabled: true
    scopes: [
      logAnalyticsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    // A new workspace has no AppRequests table until the first request arrives.
    skipQueryValidation: true
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: failedInvocationsQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'Failed'
          dimensions: [
            {
              name: 'FunctionName'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThanOrEqual'
          threshold: failedInvocationThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource poisonMessages 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${appName}-poison-messages'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${appName}: message moved to a poison queue'
    description: 'A queue message failed maxDequeueCount times and was moved to its -poison queue. Inspect it, fix the cause, then re-queue or delete it.'
    severity: 1
    enabled: true
    scopes: [
      logAnalyticsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    skipQueryValidation: true
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: poisonMessagesQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'Moved'
          dimensions: [
            {
              name: 'PoisonQueue'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource overdueDeletions 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${appName}-overdue-deletions'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${appName}: a deletion is past its 7-day deadline'
    description: 'The retention-sweeper found a workspace deletion still unfinished 7 days after it was requested. Find the workspace id in the log line, look at its deletion record (table deletions) and the deletions-poison queue, fix the cause; the sweeper resumes it daily, or re-queue its next step now.'
    severity: 1
    enabled: true
    scopes: [
      logAnalyticsId
    ]
    // The sweeper runs daily: look at the last day, every hour.
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
    skipQueryValidation: true
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: overdueDeletionsQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'Overdue'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: actionGroups
    }
  }
}
