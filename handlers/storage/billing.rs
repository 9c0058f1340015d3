//! Billing state on Table Storage.
//!
//! - `billing`: PartitionKey = workspace id, RowKey `account`; the account as JSON, written with
//!   ETag concurrency (two webhook deliveries for one workspace cannot lose each other's update).
//! - `stripecustomers`: PartitionKey = Stripe customer id, RowKey `workspace`.
//! - `stripeevents`: PartitionKey = Stripe event id, RowKey `event`: the at-most-once ledger. A
//!   claim is an insert (atomic); a claim left `processing` by a crashed instance may be taken over
//!   after [`CLAIM_TIMEOUT`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::names;
use super::table::{Entity, IfMatch, Table, UpdateMode};
use super::tenancy::to_store;
use super::{ETag, Storage, StorageError};
use crate::domain::billing::{BillingAccount, BillingStore, EventClaim};
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::WorkspaceId;

/// How long a delivery may hold an event before another delivery may take it over.
pub const CLAIM_TIMEOUT: time::Duration = time::Duration::minutes(5);

const ACCOUNT_ROW: &str = "account";
const CUSTOMER_ROW: &str = "workspace";
const EVENT_ROW: &str = "event";

#[derive(Clone)]
pub struct TableBillingStore {
    storage: Storage,
}

impl TableBillingStore {
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn table(&self, name: &str) -> Result<Table, StoreError> {
        self.storage.tables().table(name).map_err(to_store)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccountRow {
    /// Duplicated out of the record for operators' queries.
    #[serde(default)]
    customer: String,
    record: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CustomerRow {
    workspace: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventRow {
    event_type: String,
    /// `processing` or `done`.
    state: String,
    #[serde(with = "time::serde::rfc3339")]
    claimed_at: OffsetDateTime,
    #[serde(default)]
    workspace: String,
}

fn version(etag: Option<&ETag>) -> Version {
    Version(etag.map(|e| e.as_str().to_owned()).unwrap_or_default())
}

fn invalid(err: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(err.into())
}

#[async_trait]
impl BillingStore for TableBillingStore {
    async fn account(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Option<Versioned<BillingAccount>>, StoreError> {
        let Some(row) = self
            .table(names::BILLING_TABLE)?
            .get::<AccountRow>(&workspace.to_string(), ACCOUNT_ROW)
            .await
            .map_err(to_store)?
        else {
            return Ok(None);
        };
        let value = serde_json::from_str(&row.properties.record).map_err(invalid)?;
        Ok(Some(Versioned {
            value,
            version: version(row.etag.as_ref()),
        }))
    }

    async fn put_account(
        &self,
        account: &BillingAccount,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let table = self.table(names::BILLING_TABLE)?;
        let entity = Entity::new(
            account.workspace.to_string(),
            ACCOUNT_ROW,
            AccountRow {
                customer: account.customer.clone().unwrap_or_default(),
                record: serde_json::to_string(account).map_err(invalid)?,
            },
        );
        let etag = match expected {
            None => table.insert(&entity).await,
            Some(v) => {
                table
                    .update(
                        &entity,
                        UpdateMode::Replace,
                        IfMatch::ETag(ETag::new(v.0.clone())),
                    )
                    .await
            }
        }
        .map_err(to_store)?;
        Ok(version(Some(&etag)))
    }

    async fn workspace_of_customer(
        &self,
        customer: &str,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        if !crate::domain::billing::is_stripe_id(customer) {
            return Ok(None);
        }
        let row = self
            .table(names::STRIPE_CUSTOMERS_TABLE)?
            .get::<CustomerRow>(customer, CUSTOMER_ROW)
            .await
            .map_err(to_store)?;
        Ok(row.and_then(|r| WorkspaceId::parse(&r.properties.workspace)))
    }

    async fn link_customer(
        &self,
        customer: &str,
        workspace: WorkspaceId,
    ) -> Result<(), StoreError> {
        self.table(names::STRIPE_CUSTOMERS_TABLE)?
            .upsert(
                &Entity::new(
                    customer,
                    CUSTOMER_ROW,
                    CustomerRow {
                        workspace: workspace.to_string(),
                    },
                ),
                UpdateMode::Replace,
            )
            .await
            .map_err(to_store)?;
        Ok(())
    }

    async fn claim_event(
        &self,
        event_id: &str,
        event_type: &str,
    ) -> Result<EventClaim, StoreError> {
        let table = self.table(names::STRIPE_EVENTS_TABLE)?;
        let now = OffsetDateTime::now_utc();
        let fresh = Entity::new(
            event_id,
            EVENT_ROW,
            EventRow {
                event_type: event_type.to_owned(),
                state: "processing".to_owned(),
                claimed_at: now,
                workspace: String::new(),
            },
        );
        match table.insert(&fresh).await {
            Ok(_) => return Ok(EventClaim::New),
            Err(StorageError::Conflict(_)) => {}
            Err(other) => return Err(to_store(other)),
        }
        let Some(existing) = table
            .get::<EventRow>(event_id, EVENT_ROW)
            .await
            .map_err(to_store)?
        else {
            // Released between our insert and read: try once more.
            return match table.insert(&fresh).await {
                Ok(_) => Ok(EventClaim::New),
                Err(_) => Ok(EventClaim::InProgress),
            };
        };
        if existing.properties.state == "done" {
            return Ok(EventClaim::Done);
        }
        if now - existing.properties.claimed_at <= CLAIM_TIMEOUT {
            return Ok(EventClaim::InProgress);
        }
        // A crashed delivery's claim: take it over, conditionally, so two retries cannot both win.
        let etag = existing.etag.clone().map_or(IfMatch::Any, IfMatch::ETag);
        match table.update(&fresh, UpdateMode::Replace, etag).await {
            Ok(_) => Ok(EventClaim::New),
            Err(StorageError::PreconditionFailed(_)) => Ok(EventClaim::InProgress),
            Err(other) => Err(to_store(other)),
        }
    }

    async fn complete_event(
        &self,
        event_id: &str,
        workspace: Option<WorkspaceId>,
    ) -> Result<(), StoreError> {
        let table = self.table(names::STRIPE_EVENTS_TABLE)?;
        let Some(existing) = table
            .get::<EventRow>(event_id, EVENT_ROW)
            .await
            .map_err(to_store)?
        else {
            return Err(StoreError::NotFound);
        };
        let mut row = existing.properties;
        row.state = "done".to_owned();
        row.workspace = workspace.map(|w| w.to_string()).unwrap_or_default();
        table
            .update(
                &Entity::new(event_id, EVENT_ROW, row),
                UpdateMode::Replace,
                IfMatch::Any,
            )
            .await
            .map_err(to_store)?;
        Ok(())
    }

    async fn release_event(&self, event_id: &str) -> Result<(), StoreError> {
        self.table(names::STRIPE_EVENTS_TABLE)?
            .delete(event_id, EVENT_ROW, IfMatch::Any)
            .await
            .map_err(to_store)?;
        Ok(())
    }
}
