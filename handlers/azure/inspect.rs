//! [`AzureInspector`]: the domain's [`TenantInspector`] over the read-only client. Signs in as the
//! connection's principal, lists its subscriptions and classifies its permissions on each.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use url::Url;

use super::client::{AzureClient, ClientOptions};
use super::error::{AzureError, CredentialProblem};
use super::permissions::classify_permissions;
use super::token::ClientSecret;
use crate::domain::connections::{
    AccessProblem, Credentials, ProblemKind, SubscriptionAccess, TenantInspector,
};

/// Permission reads in flight at once for one connection (each is one cheap ARM GET).
const CONCURRENT_PERMISSION_READS: usize = 4;

/// Where a customer's tenant is reached: public cloud, a sovereign cloud, or the simulator.
#[derive(Debug, Clone)]
pub struct AzureEndpoints {
    pub arm: Url,
    pub authority: Url,
}

impl Default for AzureEndpoints {
    fn default() -> Self {
        Self {
            arm: Url::parse(super::DEFAULT_ARM_ENDPOINT).expect("constant URL"),
            authority: Url::parse(super::DEFAULT_AUTHORITY).expect("constant URL"),
        }
    }
}

impl AzureEndpoints {
    /// A client for one connection's principal. No network I/O.
    pub fn client(&self, credentials: &Credentials) -> Result<AzureClient, AzureError> {
        let options = ClientOptions {
            authority: self.authority.clone(),
            // An admin waits for this answer: a throttled tenant fails fast with a retry hint
            // instead of holding the request for minutes.
            retry: super::RetryOptions {
                max_total_wait: Duration::from_secs(20),
                ..super::RetryOptions::default()
            },
            timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        };
        AzureClient::with_client_secret(
            Some(self.arm.clone()),
            ClientSecret {
                tenant_id: credentials.tenant_id.clone(),
                client_id: credentials.client_id.clone(),
                secret: credentials.secret.clone(),
            },
            Some(options),
        )
    }
}

/// Inspects tenants through [`AzureClient`].
#[derive(Debug, Clone)]
pub struct AzureInspector {
    endpoints: Arc<AzureEndpoints>,
}

impl AzureInspector {
    pub fn new(endpoints: AzureEndpoints) -> Self {
        Self {
            endpoints: Arc::new(endpoints),
        }
    }
}

#[async_trait::async_trait]
impl TenantInspector for AzureInspector {
    async fn inspect(
        &self,
        credentials: &Credentials,
    ) -> Result<Vec<SubscriptionAccess>, AccessProblem> {
        let client = self.endpoints.client(credentials).map_err(access_problem)?;
        let subscriptions = client.list_subscriptions().await.map_err(access_problem)?;
        futures::stream::iter(subscriptions)
            .map(|subscription| {
                let client = client.clone();
                async move {
                    let permissions = client
                        .permissions(&subscription.subscription_id)
                        .await
                        .map_err(access_problem)?;
                    let assessment = classify_permissions(&permissions);
                    let mut excess = assessment.excess_actions;
                    excess.extend(assessment.excess_data_actions);
                    Ok(SubscriptionAccess {
                        active: subscription.is_active(),
                        subscription_id: subscription.subscription_id,
                        display_name: subscription.display_name,
                        azure_state: subscription.state,
                        can_read_costs: assessment.cost_readable,
                        can_read_resources: assessment.reader,
                        excess_actions: excess,
                        selected: false,
                    })
                }
            })
            .buffered(CONCURRENT_PERMISSION_READS)
            .try_collect()
            .await
    }
}

/// What an Azure failure means for the connection, in the customer's words.
pub fn access_problem(err: AzureError) -> AccessProblem {
    let kind = match &err {
        AzureError::Credentials(problem) => match problem {
            CredentialProblem::TenantNotFound { .. } => ProblemKind::WrongTenant,
            CredentialProblem::InvalidSecret => ProblemKind::WrongSecret,
            CredentialProblem::SecretExpired => ProblemKind::SecretExpired,
            CredentialProblem::UnknownClient { .. } => ProblemKind::UnknownApplication,
            CredentialProblem::Other { .. } => ProblemKind::CredentialsRefused,
            CredentialProblem::Unavailable => ProblemKind::Unavailable,
        },
        AzureError::AccessRevoked { .. } => ProblemKind::AccessRevoked,
        AzureError::Throttled { .. } | AzureError::Unavailable { .. } => ProblemKind::Unavailable,
        AzureError::Service { .. } if err.is_transient() => ProblemKind::Unavailable,
        // A bug on our side or an answer we cannot read: nothing the customer can fix, so it must
        // not revoke their connection; logged for us.
        other => {
            tracing::error!(error = %other, "unexpected failure inspecting a tenant");
            ProblemKind::Unavailable
        }
    };
    AccessProblem {
        kind,
        message: err.customer_message(),
    }
}
