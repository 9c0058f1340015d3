//! Table Storage through the frozen `azure_data_tables` 0.21 crate: the only module that names it.
//!
//! There is no official 1.x table crate yet. 0.21 works fully against Azure and Azurite, but its types
//! (and its own `azure_core` 0.21) stay in this file, so replacing it is a one-file change.
//!
//! Entities are `Entity<T>`: the keys, the ETag and the service timestamp around a serde type `T` holding
//! the properties. Two wire details are handled here so callers never see them:
//!
//! * **Edm types.** JSON numbers are read by the service as `Edm.Int32`/`Edm.Double`, so 64-bit integers
//!   and date-times need an `@odata.type` annotation next to the value (gotcha 3). Mark such fields with
//!   `#[serde(with = "edm::int64")]` or `#[serde(with = "edm::datetime")]` (and the `_option` variants);
//!   the annotation is added on write and stripped on read.
//! * **Entity group transactions** answer `202 Accepted` even when an operation fails (gotcha 2): [`Table::
//!   submit`] checks every operation's status and turns a failure into a [`StorageError`].

use std::sync::Arc;

use async_trait::async_trait;
use azure_core_legacy::Continuable as _;
use azure_data_tables::clients::TableServiceClientBuilder;
use azure_data_tables::prelude::{Filter, IfMatchCondition, TableClient, TableServiceClient, Top};
use azure_storage::{CloudLocation, StorageCredentials};
use base64::Engine as _;
use futures::StreamExt as _;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::connection::{Auth, StorageConnection};
use super::{ETag, StorageError, transport};

/// The service's limit on operations in one entity group transaction.
pub const MAX_BATCH_OPERATIONS: usize = 100;

/// The service's limit on entities per query page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The Table service of one account.
#[derive(Clone, Debug)]
pub struct TableService {
    client: TableServiceClient,
}

impl TableService {
    pub(crate) fn new(connection: &StorageConnection) -> Result<Self, StorageError> {
        let credentials = match &connection.auth {
            // 0.21 signs shared-key requests natively.
            Auth::SharedKey(key) => StorageCredentials::access_key(
                key.account.clone(),
                key.key.expose_secret().to_owned(),
            ),
            Auth::Token(credential) => {
                if connection.endpoints.table.scheme() != "https" {
                    // Bearer tokens over plain http would travel in clear text.
                    return Err(StorageError::invalid_input(
                        "storage.connection",
                        "the table endpoint must use https with a token credential",
                    ));
                }
                StorageCredentials::token_credential(Arc::new(LegacyTokenCredential(
                    credential.clone(),
                )))
            }
        };
        let location = CloudLocation::Custom {
            account: connection.account.clone(),
            uri: connection.endpoints.table.to_string(),
        };
        let client = TableServiceClientBuilder::with_location(location, credentials)
            .client_options(transport::legacy_client_options(&connection.transport)?)
            .build();
        Ok(Self { client })
    }

    /// A handle on one table (no request is sent).
    pub fn table(&self, name: &str) -> Result<Table, StorageError> {
        super::validate_table_name(name)?;
        Ok(Table {
            name: name.to_owned(),
            client: self.client.table_client(name),
        })
    }
}

/// Bridges the 1.x `TokenCredential` (managed identity, test credentials) to the 0.21 trait the table
/// crate wants. Both sides use `time::OffsetDateTime` for expiry.
#[derive(Debug)]
struct LegacyTokenCredential(Arc<dyn azure_core::credentials::TokenCredential>);

#[async_trait]
impl azure_core_legacy::auth::TokenCredential for LegacyTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
    ) -> azure_core_legacy::Result<azure_core_legacy::auth::AccessToken> {
        let token = self.0.get_token(scopes, None).await.map_err(|e| {
            azure_core_legacy::Error::new(azure_core_legacy::error::ErrorKind::Credential, e)
        })?;
        Ok(azure_core_legacy::auth::AccessToken::new(
            token.token.secret().to_owned(),
            token.expires_on,
        ))
    }

    async fn clear_cache(&self) -> azure_core_legacy::Result<()> {
        // The 1.x credentials cache (and refresh) tokens themselves.
        Ok(())
    }
}

/// An entity: keys, concurrency metadata and the properties `T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entity<T> {
    /// `PartitionKey`: starts with the workspace id for customer data.
    pub partition_key: String,
    /// `RowKey`.
    pub row_key: String,
    /// Set on entities read from the service; pass it to [`IfMatch::ETag`] for a conditional write.
    pub etag: Option<ETag>,
    /// The service's last-modified time; read-only (ignored on write).
    pub timestamp: Option<OffsetDateTime>,
    /// The other properties, as a serde type that serialises to a flat JSON object.
    pub properties: T,
}

impl<T> Entity<T> {
    /// A new entity to write (no ETag, no timestamp).
    pub fn new(
        partition_key: impl Into<String>,
        row_key: impl Into<String>,
        properties: T,
    ) -> Self {
        Self {
            partition_key: partition_key.into(),
            row_key: row_key.into(),
            etag: None,
            timestamp: None,
            properties,
        }
    }
}

/// How a write treats the properties already stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Properties not in the new entity are kept.
    Merge,
    /// The stored entity is replaced; properties not in the new entity are removed.
    Replace,
}

/// The `If-Match` condition of an update or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// Whatever the stored version (the entity must exist for updates).
    Any,
    /// Only if the stored version still has this ETag: [`StorageError::PreconditionFailed`] otherwise.
    ETag(ETag),
}

impl IfMatch {
    fn to_legacy(&self) -> IfMatchCondition {
        match self {
            Self::Any => IfMatchCondition::Any,
            Self::ETag(etag) => IfMatchCondition::Etag(etag.as_str().to_owned().into()),
        }
    }
}

/// Where a query page ends: an opaque, URL-safe token to resume from (e.g. as an API `cursor`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinuationToken {
    next_partition_key: String,
    next_row_key: Option<String>,
}

impl ContinuationToken {
    /// The token as an opaque URL-safe string.
    pub fn encode(&self) -> String {
        let json = serde_json::json!([self.next_partition_key, self.next_row_key]);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    /// Parses a string made by [`Self::encode`]; [`StorageError::InvalidInput`] for anything else.
    pub fn decode(token: &str) -> Result<Self, StorageError> {
        let invalid =
            || StorageError::invalid_input("table.continuation", "invalid continuation token");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid())?;
        let (next_partition_key, next_row_key): (String, Option<String>) =
            serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(Self {
            next_partition_key,
            next_row_key,
        })
    }
}

/// A query: an OData filter, a page size and where to resume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    filter: Option<String>,
    top: Option<u32>,
    continuation: Option<ContinuationToken>,
}

impl Query {
    /// Every entity of the table.
    pub fn all() -> Self {
        Self::default()
    }

    /// Every entity of one partition.
    pub fn partition(partition_key: &str) -> Self {
        Self::filter(format!("PartitionKey eq {}", odata_string(partition_key)))
    }

    /// Entities matching an OData filter, e.g. `PartitionKey eq 'ws1' and RowKey ge '2024-05'`. Quote
    /// values with [`odata_string`].
    pub fn filter(filter: impl Into<String>) -> Self {
        Self {
            filter: Some(filter.into()),
            ..Self::default()
        }
    }

    /// At most `n` entities per page (1–1000). The service may return fewer, with a continuation.
    pub fn top(mut self, n: u32) -> Self {
        self.top = Some(n);
        self
    }

    /// Resume after a previous page.
    pub fn after(mut self, token: ContinuationToken) -> Self {
        self.continuation = Some(token);
        self
    }
}

/// A string literal for an OData filter: quoted, with single quotes doubled.
pub fn odata_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// One page of query results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The entities of this page, in key order.
    pub items: Vec<T>,
    /// `Some` if there may be more: pass it to [`Query::after`].
    pub continuation: Option<ContinuationToken>,
}

/// An entity group transaction: up to 100 operations on distinct rows of one partition, applied
/// atomically.
#[derive(Clone, Debug)]
pub struct Batch {
    partition_key: String,
    operations: Vec<BatchOperation>,
}

#[derive(Clone, Debug)]
enum BatchOperation {
    Insert {
        row_key: String,
        body: Map<String, Value>,
    },
    Upsert {
        row_key: String,
        body: Map<String, Value>,
        mode: UpdateMode,
    },
    Update {
        row_key: String,
        body: Map<String, Value>,
        mode: UpdateMode,
        condition: IfMatch,
    },
    Delete {
        row_key: String,
        condition: IfMatch,
    },
}

impl BatchOperation {
    fn row_key(&self) -> &str {
        match self {
            Self::Insert { row_key, .. }
            | Self::Upsert { row_key, .. }
            | Self::Update { row_key, .. }
            | Self::Delete { row_key, .. } => row_key,
        }
    }
}

impl Batch {
    /// An empty batch on one partition.
    pub fn new(partition_key: impl Into<String>) -> Self {
        Self {
            partition_key: partition_key.into(),
            operations: Vec::new(),
        }
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Inserts an entity ([`StorageError::Conflict`] at submit time if it exists).
    pub fn insert<T: Serialize>(&mut self, entity: &Entity<T>) -> Result<&mut Self, StorageError> {
        let body = self.body("table.batch.insert", entity)?;
        self.push(BatchOperation::Insert {
            row_key: entity.row_key.clone(),
            body,
        })
    }

    /// Inserts or overwrites an entity.
    pub fn upsert<T: Serialize>(
        &mut self,
        entity: &Entity<T>,
        mode: UpdateMode,
    ) -> Result<&mut Self, StorageError> {
        let body = self.body("table.batch.upsert", entity)?;
        self.push(BatchOperation::Upsert {
            row_key: entity.row_key.clone(),
            body,
            mode,
        })
    }

    /// Updates an existing entity under an `If-Match` condition.
    pub fn update<T: Serialize>(
        &mut self,
        entity: &Entity<T>,
        mode: UpdateMode,
        condition: IfMatch,
    ) -> Result<&mut Self, StorageError> {
        let body = self.body("table.batch.update", entity)?;
        self.push(BatchOperation::Update {
            row_key: entity.row_key.clone(),
            body,
            mode,
            condition,
        })
    }

    /// Deletes an existing entity under an `If-Match` condition (a missing entity fails the batch).
    pub fn delete(
        &mut self,
        row_key: impl Into<String>,
        condition: IfMatch,
    ) -> Result<&mut Self, StorageError> {
        let row_key = row_key.into();
        validate_key("table.batch.delete", "RowKey", &row_key)?;
        self.push(BatchOperation::Delete { row_key, condition })
    }

    fn body<T: Serialize>(
        &self,
        operation: &'static str,
        entity: &Entity<T>,
    ) -> Result<Map<String, Value>, StorageError> {
        if entity.partition_key != self.partition_key {
            return Err(StorageError::invalid_input(
                operation,
                "every entity of a batch must be in the batch's partition",
            ));
        }
        to_wire(operation, entity)
    }

    fn push(&mut self, operation: BatchOperation) -> Result<&mut Self, StorageError> {
        if self.operations.len() >= MAX_BATCH_OPERATIONS {
            return Err(StorageError::invalid_input(
                "table.batch",
                format!("a batch holds at most {MAX_BATCH_OPERATIONS} operations"),
            ));
        }
        if self
            .operations
            .iter()
            .any(|o| o.row_key() == operation.row_key())
        {
            // The service rejects the whole batch for this; say which rule was broken.
            return Err(StorageError::invalid_input(
                "table.batch",
                "a batch may touch each row only once",
            ));
        }
        self.operations.push(operation);
        Ok(self)
    }
}

/// One table.
#[derive(Clone, Debug)]
pub struct Table {
    name: String,
    client: TableClient,
}

impl Table {
    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the table unless it exists already.
    pub async fn create_if_not_exists(&self) -> Result<(), StorageError> {
        match self.client.create().await {
            Ok(_) => Ok(()),
            Err(e) => match StorageError::from_legacy("table.create", e) {
                StorageError::Conflict(d) if d.code.as_deref() != Some("TableBeingDeleted") => {
                    Ok(())
                }
                other => Err(other),
            },
        }
    }

    /// Deletes the table; `false` if it did not exist.
    pub async fn delete_table(&self) -> Result<bool, StorageError> {
        match self.client.delete().await {
            Ok(_) => Ok(true),
            Err(e) => match StorageError::from_legacy("table.delete", e) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Reads one entity; `None` if it does not exist.
    pub async fn get<T: DeserializeOwned>(
        &self,
        partition_key: &str,
        row_key: &str,
    ) -> Result<Option<Entity<T>>, StorageError> {
        const OP: &str = "table.get";
        validate_key(OP, "PartitionKey", partition_key)?;
        validate_key(OP, "RowKey", row_key)?;
        let response = match self
            .client
            .partition_key_client(url_key(partition_key))
            .entity_client(url_key(row_key))
            .get::<Map<String, Value>>()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                return match StorageError::from_legacy(OP, e) {
                    StorageError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let header_etag = ETag::new(response.etag.to_string());
        let mut entity = from_wire(OP, response.entity)?;
        entity.etag.get_or_insert(header_etag);
        Ok(Some(entity))
    }

    /// Inserts a new entity: [`StorageError::Conflict`] if one with the same keys exists.
    pub async fn insert<T: Serialize>(&self, entity: &Entity<T>) -> Result<ETag, StorageError> {
        const OP: &str = "table.insert";
        let body = to_wire(OP, entity)?;
        let response = self
            .client
            .insert::<_, Value>(&body)
            .map_err(|e| StorageError::from_legacy(OP, e))?
            .await
            .map_err(|e| StorageError::from_legacy(OP, e))?;
        Ok(ETag::new(response.etag.to_string()))
    }

    /// Inserts or overwrites (replace) or inserts or merges (merge) an entity, whatever is stored.
    pub async fn upsert<T: Serialize>(
        &self,
        entity: &Entity<T>,
        mode: UpdateMode,
    ) -> Result<ETag, StorageError> {
        const OP: &str = "table.upsert";
        let body = to_wire(OP, entity)?;
        let client = self
            .client
            .partition_key_client(url_key(&entity.partition_key))
            .entity_client(url_key(&entity.row_key));
        let builder = match mode {
            UpdateMode::Merge => client.insert_or_merge(&body),
            UpdateMode::Replace => client.insert_or_replace(&body),
        }
        .map_err(|e| StorageError::from_legacy(OP, e))?;
        let response = builder
            .await
            .map_err(|e| StorageError::from_legacy(OP, e))?;
        Ok(ETag::new(response.etag.to_string()))
    }

    /// Updates an existing entity: [`StorageError::NotFound`] if it does not exist,
    /// [`StorageError::PreconditionFailed`] if `condition` names an ETag that is no longer current.
    pub async fn update<T: Serialize>(
        &self,
        entity: &Entity<T>,
        mode: UpdateMode,
        condition: IfMatch,
    ) -> Result<ETag, StorageError> {
        const OP: &str = "table.update";
        let body = to_wire(OP, entity)?;
        let client = self
            .client
            .partition_key_client(url_key(&entity.partition_key))
            .entity_client(url_key(&entity.row_key));
        let builder = match mode {
            UpdateMode::Merge => client.merge(&body, condition.to_legacy()),
            UpdateMode::Replace => client.update(&body, condition.to_legacy()),
        }
        .map_err(|e| StorageError::from_legacy(OP, e))?;
        let response = builder
            .await
            .map_err(|e| StorageError::from_legacy(OP, e))?;
        Ok(ETag::new(response.etag.to_string()))
    }

    /// Deletes an entity; `false` if it did not exist. [`StorageError::PreconditionFailed`] if `condition`
    /// names an ETag that is no longer current.
    pub async fn delete(
        &self,
        partition_key: &str,
        row_key: &str,
        condition: IfMatch,
    ) -> Result<bool, StorageError> {
        const OP: &str = "table.delete_entity";
        validate_key(OP, "PartitionKey", partition_key)?;
        validate_key(OP, "RowKey", row_key)?;
        let result = self
            .client
            .partition_key_client(url_key(partition_key))
            .entity_client(url_key(row_key))
            .delete()
            .if_match(condition.to_legacy())
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match StorageError::from_legacy(OP, e) {
                StorageError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// One page of a query. Build APIs' pagination on [`Page::continuation`].
    pub async fn query<T: DeserializeOwned>(
        &self,
        query: &Query,
    ) -> Result<Page<Entity<T>>, StorageError> {
        const OP: &str = "table.query";
        let mut builder = self.client.query();
        if let Some(filter) = &query.filter {
            builder = builder.filter(Filter::new(filter.clone()));
        }
        if let Some(top) = query.top {
            if !(1..=MAX_PAGE_SIZE).contains(&top) {
                return Err(StorageError::invalid_input(
                    OP,
                    format!("page size must be 1 to {MAX_PAGE_SIZE}"),
                ));
            }
            builder = builder.top(Top::new(top));
        }
        if let Some(token) = &query.continuation {
            builder = builder.initial_partition_key(token.next_partition_key.clone());
            if let Some(row_key) = &token.next_row_key {
                builder = builder.initial_row_key(row_key.clone());
            }
        }
        let mut stream = builder.into_stream::<Value>();
        let Some(page) = stream.next().await else {
            return Ok(Page {
                items: Vec::new(),
                continuation: None,
            });
        };
        let page = page.map_err(|e| StorageError::from_legacy(OP, e))?;
        let continuation = page
            .continuation()
            .map(|(next_partition_key, next_row_key)| ContinuationToken {
                next_partition_key,
                next_row_key,
            });
        let items = page
            .entities
            .into_iter()
            .map(|value| match value {
                Value::Object(map) => from_wire(OP, map),
                _ => Err(StorageError::other(
                    OP,
                    "the service returned a non-object entity",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            continuation,
        })
    }

    /// Every entity matching the query, following continuations. Only for result sets known to be small.
    pub async fn query_all<T: DeserializeOwned>(
        &self,
        query: &Query,
    ) -> Result<Vec<Entity<T>>, StorageError> {
        let mut query = query.clone();
        let mut out = Vec::new();
        loop {
            let page = self.query::<T>(&query).await?;
            out.extend(page.items);
            match page.continuation {
                Some(token) => query.continuation = Some(token),
                None => return Ok(out),
            }
        }
    }

    /// Applies a batch atomically. Returns the new ETag of each operation (`None` for deletes), in order.
    ///
    /// If any operation fails, nothing is applied and the error's kind comes from that operation's status
    /// (e.g. [`StorageError::Conflict`] for an insert over an existing row).
    pub async fn submit(&self, batch: Batch) -> Result<Vec<Option<ETag>>, StorageError> {
        const OP: &str = "table.batch";
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let total = batch.operations.len();
        let legacy = |e| StorageError::from_legacy(OP, e);
        let partition = self
            .client
            .partition_key_client(url_key(&batch.partition_key));
        let mut transaction = partition.transaction();
        for operation in &batch.operations {
            transaction = match operation {
                BatchOperation::Insert { body, .. } => transaction.insert(body),
                BatchOperation::Upsert {
                    row_key,
                    body,
                    mode: UpdateMode::Merge,
                } => transaction.insert_or_merge(url_key(row_key), body),
                BatchOperation::Upsert {
                    row_key,
                    body,
                    mode: UpdateMode::Replace,
                } => transaction.insert_or_replace(url_key(row_key), body),
                BatchOperation::Update {
                    row_key,
                    body,
                    mode: UpdateMode::Merge,
                    condition,
                } => transaction.merge(url_key(row_key), body, Some(condition.to_legacy())),
                BatchOperation::Update {
                    row_key,
                    body,
                    mode: UpdateMode::Replace,
                    condition,
                } => {
                    // A PUT without If-Match would be an upsert: always send the condition.
                    transaction.update(url_key(row_key), body, Some(condition.to_legacy()))
                }
                BatchOperation::Delete { row_key, condition } => {
                    transaction.delete(url_key(row_key), Some(condition.to_legacy()))
                }
            }
            .map_err(legacy)?;
        }
        let response = transaction.await.map_err(legacy)?;

        // Gotcha 2: `$batch` answers 202 even when an operation failed; the failure is inside. On failure
        // the service reports only the failing operation, and applies nothing.
        if let Some(failed) = response
            .operation_responses
            .iter()
            .find(|r| !r.status_code.is_success())
        {
            let mut error = StorageError::from_status(OP, u16::from(failed.status_code), None);
            let detail = match &mut error {
                StorageError::NotFound(d)
                | StorageError::Conflict(d)
                | StorageError::PreconditionFailed(d)
                | StorageError::Throttled(d)
                | StorageError::Auth(d)
                | StorageError::InvalidInput(d)
                | StorageError::Transport(d)
                | StorageError::Other(d) => d,
            };
            detail.message = format!(
                "an operation of the {total}-operation batch failed; no operation was applied"
            );
            return Err(error);
        }
        if response.operation_responses.len() != total {
            return Err(StorageError::other(
                OP,
                format!(
                    "expected {total} operation responses, got {}",
                    response.operation_responses.len()
                ),
            ));
        }
        Ok(response
            .operation_responses
            .into_iter()
            .map(|r| r.etag.map(|e| ETag::new(e.to_string())))
            .collect())
    }
}

/// Keys in entity URLs are OData string literals: a single quote is written twice.
fn url_key(key: &str) -> String {
    key.replace('\'', "''")
}

/// Key rules of the service: at most 1 KiB, none of `/ \ # ?`, no control characters.
fn validate_key(operation: &'static str, which: &str, key: &str) -> Result<(), StorageError> {
    let ok = key.len() <= 1024
        && !key
            .chars()
            .any(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            operation,
            format!(
                "{which} must be at most 1 KiB without `/`, `\\`, `#`, `?` or control characters"
            ),
        ))
    }
}

/// Serialises an entity to the JSON the service expects: keys, flat properties, Edm annotations.
fn to_wire<T: Serialize>(
    operation: &'static str,
    entity: &Entity<T>,
) -> Result<Map<String, Value>, StorageError> {
    validate_key(operation, "PartitionKey", &entity.partition_key)?;
    validate_key(operation, "RowKey", &entity.row_key)?;
    let properties = serde_json::to_value(&entity.properties).map_err(|e| {
        StorageError::invalid_input(
            operation,
            format!("entity properties do not serialise: {e}"),
        )
    })?;
    let Value::Object(properties) = properties else {
        return Err(StorageError::invalid_input(
            operation,
            "entity properties must serialise to a JSON object",
        ));
    };

    let mut out = Map::with_capacity(properties.len() + 2);
    out.insert(
        "PartitionKey".into(),
        Value::String(entity.partition_key.clone()),
    );
    out.insert("RowKey".into(), Value::String(entity.row_key.clone()));
    for (name, value) in properties {
        if matches!(name.as_str(), "PartitionKey" | "RowKey" | "Timestamp")
            || name.starts_with("odata.")
            || name.contains('@')
        {
            return Err(StorageError::invalid_input(
                operation,
                format!("`{name}` is a reserved property name"),
            ));
        }
        match value {
            // Table Storage has no nulls: an absent property is the closest thing.
            Value::Null => {}
            Value::Object(mut marked) if edm::is_marker(&marked) => {
                let (Some(Value::String(edm_type)), Some(edm_value)) =
                    (marked.remove(edm::TYPE_KEY), marked.remove(edm::VALUE_KEY))
                else {
                    return Err(StorageError::invalid_input(
                        operation,
                        "malformed Edm value",
                    ));
                };
                out.insert(format!("{name}@odata.type"), Value::String(edm_type));
                out.insert(name, edm_value);
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(StorageError::invalid_input(
                    operation,
                    format!(
                        "property `{name}` is not a scalar (nested objects and arrays cannot be stored)"
                    ),
                ));
            }
            scalar => {
                out.insert(name, scalar);
            }
        }
    }
    Ok(out)
}

/// Parses the service's JSON (full metadata) into an entity.
fn from_wire<T: DeserializeOwned>(
    operation: &'static str,
    mut map: Map<String, Value>,
) -> Result<Entity<T>, StorageError> {
    let mut take_string = |key: &str| match map.remove(key) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let partition_key = take_string("PartitionKey")
        .ok_or_else(|| StorageError::other(operation, "entity without PartitionKey"))?;
    let row_key = take_string("RowKey")
        .ok_or_else(|| StorageError::other(operation, "entity without RowKey"))?;
    let etag = take_string("odata.etag").map(ETag::new);
    let timestamp = take_string("Timestamp").and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok());
    // Metadata and type annotations are wire details: `T` sees plain values (Edm.Int64 as a string, which
    // `edm::int64` parses).
    map.retain(|key, _| !key.starts_with("odata.") && !key.contains("@odata."));
    let properties = serde_json::from_value(Value::Object(map)).map_err(|e| {
        StorageError::other(
            operation,
            format!("entity does not match the expected shape: {e}"),
        )
    })?;
    Ok(Entity {
        partition_key,
        row_key,
        etag,
        timestamp,
        properties,
    })
}

/// Serde helpers for the Edm types JSON cannot express (gotcha 3).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sixpence::storage::edm;
/// use time::OffsetDateTime;
///
/// #[derive(Serialize, Deserialize)]
/// struct DailyCost {
///     #[serde(with = "edm::int64")]
///     amount_micros: i64,
///     #[serde(with = "edm::datetime")]
///     synced_at: OffsetDateTime,
///     #[serde(default, with = "edm::int64_option")]
///     previous_micros: Option<i64>,
/// }
/// ```
///
/// On write the value is tagged so the table layer can add `name@odata.type`; these helpers only make sense
/// on types stored through [`super::Table`].
pub mod edm {
    use serde::de::{self, Deserializer, Visitor};
    use serde::ser::{SerializeMap as _, Serializer};
    use serde_json::{Map, Value};
    use std::fmt;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) const TYPE_KEY: &str = "$sixpence.edm.type";
    pub(super) const VALUE_KEY: &str = "$sixpence.edm.value";

    pub(super) fn is_marker(map: &Map<String, Value>) -> bool {
        map.len() == 2 && map.contains_key(TYPE_KEY) && map.contains_key(VALUE_KEY)
    }

    fn marked<S: Serializer>(
        serializer: S,
        edm_type: &str,
        value: &str,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(TYPE_KEY, edm_type)?;
        map.serialize_entry(VALUE_KEY, value)?;
        map.end()
    }

    /// `Edm.DateTime` text: UTC, 7 fractional digits (the service's 100 ns precision), years 1601–9999.
    pub(super) fn format_datetime(value: OffsetDateTime) -> Result<String, String> {
        let v = value.to_offset(time::UtcOffset::UTC);
        if !(1601..=9999).contains(&v.year()) {
            return Err(format!(
                "Edm.DateTime supports years 1601 to 9999, not {}",
                v.year()
            ));
        }
        Ok(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
            v.year(),
            u8::from(v.month()),
            v.day(),
            v.hour(),
            v.minute(),
            v.second(),
            v.nanosecond() / 100
        ))
    }

    struct Int64Visitor;

    impl Visitor<'_> for Int64Visitor {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an Edm.Int64 (a decimal string or an integer)")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            v.parse().map_err(|_| E::custom("invalid Edm.Int64"))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("Edm.Int64 out of range"))
        }
    }

    struct DateTimeVisitor;

    impl Visitor<'_> for DateTimeVisitor {
        type Value = OffsetDateTime;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an Edm.DateTime (RFC 3339 text)")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<OffsetDateTime, E> {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| E::custom("invalid Edm.DateTime"))
        }
    }

    /// `#[serde(with = "edm::int64")]` on an `i64`: stored as `Edm.Int64`.
    pub mod int64 {
        use super::*;

        /// Serialises for [`crate::storage::Table`].
        pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
            marked(serializer, "Edm.Int64", &value.to_string())
        }

        /// Accepts the service's decimal string (or a plain JSON integer).
        pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
            deserializer.deserialize_any(Int64Visitor)
        }
    }

    /// `#[serde(default, with = "edm::int64_option")]` on an `Option<i64>` (`None` is not stored).
    pub mod int64_option {
        use super::*;

        /// Serialises for [`crate::storage::Table`].
        pub fn serialize<S: Serializer>(
            value: &Option<i64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => int64::serialize(v, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Accepts a missing/null value, the service's decimal string or a plain JSON integer.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<i64>, D::Error> {
            struct Wrapper(i64);
            impl<'de> serde::Deserialize<'de> for Wrapper {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    int64::deserialize(d).map(Wrapper)
                }
            }
            Ok(<Option<Wrapper> as serde::Deserialize>::deserialize(deserializer)?.map(|w| w.0))
        }
    }

    /// `#[serde(with = "edm::datetime")]` on an `OffsetDateTime`: stored as `Edm.DateTime` (100 ns precision).
    pub mod datetime {
        use super::*;

        /// Serialises for [`crate::storage::Table`].
        pub fn serialize<S: Serializer>(
            value: &OffsetDateTime,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            let text = format_datetime(*value).map_err(serde::ser::Error::custom)?;
            marked(serializer, "Edm.DateTime", &text)
        }

        /// Accepts RFC 3339 text.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<OffsetDateTime, D::Error> {
            deserializer.deserialize_str(DateTimeVisitor)
        }
    }

    /// `#[serde(default, with = "edm::datetime_option")]` on an `Option<OffsetDateTime>`.
    pub mod datetime_option {
        use super::*;

        /// Serialises for [`crate::storage::Table`].
        pub fn serialize<S: Serializer>(
            value: &Option<OffsetDateTime>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => datetime::serialize(v, serializer),
                None => serializer.serialize_none(),
            }
        }

        /// Accepts a missing/null value or RFC 3339 text.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            struct Wrapper(OffsetDateTime);
            impl<'de> serde::Deserialize<'de> for Wrapper {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                    datetime::deserialize(d).map(Wrapper)
                }
            }
            Ok(<Option<Wrapper> as serde::Deserialize>::deserialize(deserializer)?.map(|w| w.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use time::macros::datetime;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        name: String,
        #[serde(with = "edm::int64")]
        big: i64,
        #[serde(with = "edm::datetime")]
        at: OffsetDateTime,
        #[serde(default, with = "edm::int64_option")]
        maybe: Option<i64>,
    }

    #[test]
    fn edm_values_are_written_with_odata_type_annotations() {
        let entity = Entity::new(
            "ws1",
            "r1",
            Row {
                name: "x".into(),
                big: 1_099_511_627_776,
                at: datetime!(2024-05-01 12:34:56.123456789 UTC),
                maybe: None,
            },
        );
        let wire = to_wire("t", &entity).unwrap();
        assert_eq!(
            Value::Object(wire),
            json!({
                "PartitionKey": "ws1",
                "RowKey": "r1",
                "name": "x",
                "big": "1099511627776",
                "big@odata.type": "Edm.Int64",
                "at": "2024-05-01T12:34:56.1234567Z",
                "at@odata.type": "Edm.DateTime",
            })
        );
    }

    #[test]
    fn service_json_is_read_without_metadata() {
        let Value::Object(map) = json!({
            "odata.type": "acct.t",
            "odata.id": "http://x/t(PartitionKey='ws1',RowKey='r1')",
            "odata.etag": "W/\"datetime'2024-05-01T12%3A00%3A00.0000000Z'\"",
            "odata.editLink": "t(PartitionKey='ws1',RowKey='r1')",
            "PartitionKey": "ws1",
            "RowKey": "r1",
            "Timestamp@odata.type": "Edm.DateTime",
            "Timestamp": "2024-05-01T12:00:00.0000000Z",
            "name": "x",
            "big@odata.type": "Edm.Int64",
            "big": "1099511627776",
            "at@odata.type": "Edm.DateTime",
            "at": "2024-05-01T12:34:56.1234567Z",
            "maybe@odata.type": "Edm.Int64",
            "maybe": "-5",
        }) else {
            unreachable!()
        };
        let entity: Entity<Row> = from_wire("t", map).unwrap();
        assert_eq!(entity.partition_key, "ws1");
        assert_eq!(entity.row_key, "r1");
        assert_eq!(
            entity.etag.as_ref().map(ETag::as_str),
            Some("W/\"datetime'2024-05-01T12%3A00%3A00.0000000Z'\"")
        );
        assert_eq!(entity.timestamp, Some(datetime!(2024-05-01 12:00 UTC)));
        assert_eq!(entity.properties.big, 1_099_511_627_776);
        assert_eq!(
            entity.properties.at,
            datetime!(2024-05-01 12:34:56.1234567 UTC)
        );
        assert_eq!(entity.properties.maybe, Some(-5));
    }

    #[test]
    fn nested_values_and_reserved_names_are_refused() {
        let nested = Entity::new("p", "r", json!({"a": {"b": 1}}));
        assert!(matches!(
            to_wire("t", &nested),
            Err(StorageError::InvalidInput(_))
        ));
        let reserved = Entity::new("p", "r", json!({"RowKey": "x"}));
        assert!(matches!(
            to_wire("t", &reserved),
            Err(StorageError::InvalidInput(_))
        ));
        let not_object = Entity::new("p", "r", 5);
        assert!(matches!(
            to_wire("t", &not_object),
            Err(StorageError::InvalidInput(_))
        ));
    }

    #[test]
    fn keys_with_forbidden_characters_are_refused() {
        assert!(validate_key("t", "RowKey", "2024-05-01|vm-1").is_ok());
        assert!(validate_key("t", "RowKey", "a/b").is_err());
        assert!(validate_key("t", "RowKey", "a#b").is_err());
        assert!(validate_key("t", "RowKey", "a\u{1}b").is_err());
    }

    #[test]
    fn quotes_are_doubled_in_filters_and_urls() {
        assert_eq!(odata_string("o'brien"), "'o''brien'");
        assert_eq!(url_key("o'brien"), "o''brien");
        assert_eq!(
            Query::partition("ws'1").filter,
            Some("PartitionKey eq 'ws''1'".to_owned())
        );
    }

    #[test]
    fn continuation_tokens_round_trip_and_reject_garbage() {
        let token = ContinuationToken {
            next_partition_key: "1!8!d3Mx".into(),
            next_row_key: Some("1!8!cjE=".into()),
        };
        let encoded = token.encode();
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(ContinuationToken::decode(&encoded).unwrap(), token);
        assert!(matches!(
            ContinuationToken::decode("not a token"),
            Err(StorageError::InvalidInput(_))
        ));
    }

    #[test]
    fn batches_enforce_partition_size_and_distinct_rows() {
        let mut batch = Batch::new("p");
        batch.insert(&Entity::new("p", "r0", json!({}))).unwrap();
        assert!(
            batch
                .insert(&Entity::new("other", "r1", json!({})))
                .is_err()
        );
        assert!(batch.delete("r0", IfMatch::Any).is_err());
        for i in 1..MAX_BATCH_OPERATIONS {
            batch
                .insert(&Entity::new("p", format!("r{i}"), json!({})))
                .unwrap();
        }
        assert_eq!(batch.len(), MAX_BATCH_OPERATIONS);
        assert!(
            batch
                .insert(&Entity::new("p", "one-too-many", json!({})))
                .is_err()
        );
    }

    #[test]
    fn datetimes_outside_the_edm_range_are_refused() {
        assert!(edm::format_datetime(datetime!(1600-12-31 23:59 UTC)).is_err());
        assert_eq!(
            edm::format_datetime(datetime!(2024-01-02 03:04:05 +01:00)).unwrap(),
            "2024-01-02T02:04:05.0000000Z"
        );
    }
}
