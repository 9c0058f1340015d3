//! The connections service: onboarding (create, verify, choose subscriptions, rotate the secret,
//! delete), the hourly health check, and re-encryption under a new data key.
//!
//! It is where the pieces meet: the domain's rules (`domain::connections`), the sealed secret
//! (`secrets`), the tenant inspector (Azure), the audit trail and the event sink. Each step that
//! changes a connection is written with `If-Match` on the version read, and audited.
//!
//! The secret's plaintext exists only inside [`ConnectionService::credentials`]'s caller, as a
//! `SecretString`, for the duration of one call into Azure.

use std::sync::Arc;

use secrecy::SecretString;
use time::{Date, OffsetDateTime};

use crate::domain::audit::{Actor, AuditLog, AuditRecord, Change, Outcome};
use crate::domain::connections::{
    self, AccessProblem, Connection, ConnectionError, ConnectionId, ConnectionState,
    ConnectionStore, Credentials, Finding, Health, SealedSecret, Stage, TenantInspector,
    VerifiedBy,
};
use crate::domain::events::EventSink;
use crate::domain::store::{StoreError, Version, Versioned};
use crate::domain::tenancy::{UserId, WorkspaceId};
use crate::error::{Error, Result};
use crate::secrets::{Keyring, SealContext, Sealed, SecretError};

/// Attempts to write a verification over concurrent changes before giving up.
const WRITE_ATTEMPTS: usize = 3;
/// The component name system-made audit records carry.
const HEALTH_COMPONENT: &str = "connection-health";

/// What an admin gives to connect a tenant.
pub struct NewConnection {
    pub name: String,
    pub tenant_id: String,
    pub client_id: String,
    pub secret: SecretString,
    pub secret_expires_on: Option<Date>,
}

/// Sixpence acting on its own (a timer, a queue function), for the audit records of the steps it
/// takes without a request. A request's own record is written by the API's route guard.
#[derive(Debug, Clone)]
pub struct Acting {
    pub actor: Actor,
    pub request_id: String,
}

impl Acting {
    pub fn system(component: &str) -> Self {
        Self {
            actor: Actor::System {
                component: component.to_owned(),
            },
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// What one run of the health check did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub checked: usize,
    pub revoked: usize,
    pub events: usize,
    /// Connections that could not be checked this time (Azure or storage unavailable).
    pub skipped: usize,
}

/// What a key-rotation pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub resealed: usize,
    pub already_current: usize,
    /// `workspace/connection: reason`, never a value.
    pub failures: Vec<String>,
}

pub struct ConnectionService {
    store: Arc<dyn ConnectionStore>,
    inspector: Arc<dyn TenantInspector>,
    events: Arc<dyn EventSink>,
    audit: Arc<dyn AuditLog>,
    keyring: Option<Arc<Keyring>>,
}

/// The associated data a connection's secret is sealed under: its workspace and its record.
fn seal_context(workspace: WorkspaceId, id: ConnectionId) -> SealContext {
    SealContext::new(
        workspace.to_string(),
        format!("connection/{id}/client-secret"),
    )
}

fn sealing_failed(err: SecretError) -> Error {
    Error::Internal(anyhow::Error::new(err).context("sealing a client secret"))
}

impl ConnectionService {
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        inspector: Arc<dyn TenantInspector>,
        events: Arc<dyn EventSink>,
        audit: Arc<dyn AuditLog>,
        keyring: Option<Arc<Keyring>>,
    ) -> Self {
        Self {
            store,
            inspector,
            events,
            audit,
            keyring,
        }
    }

    pub fn store(&self) -> &dyn ConnectionStore {
        self.store.as_ref()
    }

    fn keyring(&self) -> Result<&Keyring> {
        self.keyring.as_deref().ok_or(Error::NoKeyring)
    }

    fn seal(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
        secret: &SecretString,
    ) -> Result<SealedSecret> {
        let sealed = self
            .keyring()?
            .seal(secret, &seal_context(workspace, id))
            .map_err(|e| match e {
                SecretError::TooLarge { .. } => Error::InvalidRequest(
                    "clientSecret is longer than any Entra ID client secret".to_owned(),
                ),
                other => sealing_failed(other),
            })?;
        Ok(SealedSecret(sealed.to_string()))
    }

    /// The connection's credentials in the clear, for one call into Azure.
    pub fn credentials(&self, connection: &Connection) -> Result<Credentials> {
        let sealed: Sealed = connection.secret.0.parse().map_err(sealing_failed)?;
        let secret = self
            .keyring()?
            .open(&sealed, &seal_context(connection.workspace, connection.id))
            .map_err(sealing_failed)?;
        Ok(Credentials {
            tenant_id: connection.tenant_id.clone(),
            client_id: connection.client_id.clone(),
            secret,
        })
    }

    /// Creates a connection and verifies it at once. The connection is kept even when the
    /// verification fails, so the admin can correct the secret without starting over. Returns the
    /// state it reached, for the request's audit record.
    pub async fn create(
        &self,
        workspace: WorkspaceId,
        new: NewConnection,
        created_by: UserId,
    ) -> Result<(Versioned<Connection>, Vec<Change>)> {
        connections::validate_ids(&new.tenant_id, &new.client_id)?;
        let name = connections::connection_name(&new.name)?;
        if secrecy::ExposeSecret::expose_secret(&new.secret)
            .trim()
            .is_empty()
        {
            return Err(
                ConnectionError::Invalid("clientSecret must not be empty".to_owned()).into(),
            );
        }
        let id = ConnectionId::new();
        let connection = Connection {
            id,
            workspace,
            name,
            tenant_id: new.tenant_id.trim().to_ascii_lowercase(),
            client_id: new.client_id.trim().to_ascii_lowercase(),
            secret: self.seal(workspace, id, &new.secret)?,
            secret_expires_on: new.secret_expires_on,
            expiry_reminded_at_days: None,
            stage: Stage::Created,
            health: Health::Unverified,
            subscriptions: Vec::new(),
            created_at: OffsetDateTime::now_utc(),
            created_by,
            verified_at: None,
            first_sync_at: None,
        };
        let version = self.store.create(&connection).await?;
        self.verify_written(connection, version, ConnectionState::Created)
            .await
    }

    /// Verifies a connection just written (created, or given a new secret) as an admin's step of
    /// the same request, and says how its state moved from `before`.
    async fn verify_written(
        &self,
        connection: Connection,
        version: Version,
        before: ConnectionState,
    ) -> Result<(Versioned<Connection>, Vec<Change>)> {
        let (verified, _) = self
            .verify_with(
                Versioned {
                    value: connection,
                    version,
                },
                VerifiedBy::Admin,
                None,
            )
            .await?;
        let changes = state_changes(before, &verified.value);
        Ok((verified, changes))
    }

    /// An admin's verification: signs in, re-reads subscriptions and permissions, and revives a
    /// revoked connection that works again. The caller audits it, with the returned changes.
    pub async fn verify(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
    ) -> Result<(Versioned<Connection>, Vec<Change>)> {
        let current = self.get(workspace, id).await?;
        let before = current.value.state();
        let (verified, transient) = self.verify_with(current, VerifiedBy::Admin, None).await?;
        if let Some(problem) = transient
            && verified.value.stage >= Stage::Verified
        {
            // Nothing changed; say why rather than answering as if all were well.
            return Err(ConnectionError::AzureUnavailable(problem.message).into());
        }
        // Always say what the verification found, even when the state did not move.
        let mut changes = vec![Change::new(
            "state",
            Some(before.as_str().to_owned()),
            Some(verified.value.state().as_str().to_owned()),
        )];
        changes.extend(
            state_changes(before, &verified.value)
                .into_iter()
                .filter(|c| c.field != "state"),
        );
        Ok((verified, changes))
    }

    pub async fn get(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
    ) -> Result<Versioned<Connection>> {
        self.store.get(workspace, id).await?.ok_or(Error::NotFound)
    }

    /// Inspects the tenant and writes what was found, re-applying it to a fresher copy if the
    /// connection changed meanwhile (unless its secret did: then the answer is about a secret that
    /// is no longer the connection's). Also returns a transient failure, which changes nothing on a
    /// verified connection.
    async fn verify_with(
        &self,
        mut current: Versioned<Connection>,
        by: VerifiedBy,
        acting: Option<&Acting>,
    ) -> Result<(Versioned<Connection>, Option<AccessProblem>)> {
        if by == VerifiedBy::HealthCheck && !current.value.is_active() {
            return Ok((current, None));
        }
        let credentials = self.credentials(&current.value)?;
        let outcome = self.inspector.inspect(&credentials).await;
        drop(credentials);
        let transient = match &outcome {
            Err(problem) if problem.kind.is_transient() => Some(problem.clone()),
            _ => None,
        };
        let before = current.value.state();
        let inspected_secret = current.value.secret.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut connection = current.value.clone();
            let findings =
                connection.apply_verification(outcome.clone(), by, OffsetDateTime::now_utc());
            if connection == current.value {
                return Ok((current, transient));
            }
            match self.store.update(&connection, &current.version).await {
                Ok(version) => {
                    self.raise(&connection, &findings).await;
                    // An admin's verification is always a step of the trail; the timer's only
                    // when it changed something that matters.
                    if let Some(acting) = acting
                        && (by == VerifiedBy::Admin
                            || before != connection.state()
                            || !findings.is_empty())
                    {
                        self.audit_step(&connection, before, "connection.verify", acting)
                            .await;
                    }
                    return Ok((
                        Versioned {
                            value: connection,
                            version,
                        },
                        transient,
                    ));
                }
                Err(StoreError::VersionMismatch) if attempt < WRITE_ATTEMPTS => {
                    current = self.get(connection.workspace, connection.id).await?;
                    if current.value.secret != inspected_secret {
                        return Ok((current, None));
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Raises the findings' events.
    async fn raise(&self, connection: &Connection, findings: &[Finding]) {
        let now = OffsetDateTime::now_utc();
        for finding in findings {
            let event = connection.event(finding, now);
            if let Err(err) = self.events.raise(&event).await {
                // The state is recorded, so the next health check finds nothing new: an operator
                // must see the lost event.
                tracing::error!(error = %err, connection = %connection.id, dedupe_key = %event.dedupe_key, "event could not be raised");
            }
        }
    }

    /// Writes the audit record of a step this service took on its own (the route's guard records
    /// the request itself).
    async fn audit_step(
        &self,
        connection: &Connection,
        before: ConnectionState,
        action: &str,
        acting: &Acting,
    ) {
        let outcome = match connection.problem() {
            Some(problem) if !problem.kind.is_transient() => Outcome::Failed,
            _ => Outcome::Succeeded,
        };
        let record = AuditRecord {
            workspace: connection.workspace,
            at: OffsetDateTime::now_utc(),
            actor: acting.actor.clone(),
            action: action.to_owned(),
            target: format!("connection/{}", connection.id),
            request_id: acting.request_id.clone(),
            outcome,
            changes: state_changes(before, connection),
        };
        if let Err(err) = self.audit.append(&record).await {
            tracing::error!(error = %err, connection = %connection.id, action, "audit record could not be written");
        }
    }

    /// Chooses the subscriptions to sync.
    pub async fn choose_subscriptions(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
        subscription_ids: &[String],
        guard: Option<&Version>,
    ) -> Result<(Versioned<Connection>, Vec<Change>)> {
        let current = self.get(workspace, id).await?;
        if guard.is_some_and(|g| *g != current.version) {
            return Err(Error::PreconditionFailed);
        }
        let mut connection = current.value.clone();
        connection.choose_subscriptions(subscription_ids)?;
        let version = self.store.update(&connection, &current.version).await?;
        let selected = |c: &Connection| {
            let ids: Vec<&str> = c
                .subscriptions
                .iter()
                .filter(|s| s.selected)
                .map(|s| s.subscription_id.as_str())
                .collect();
            (!ids.is_empty()).then(|| ids.join(","))
        };
        let mut changes = vec![Change::new(
            "subscriptions",
            selected(&current.value),
            selected(&connection),
        )];
        changes.extend(state_changes(current.value.state(), &connection));
        Ok((
            Versioned {
                value: connection,
                version,
            },
            changes,
        ))
    }

    /// Replaces the client secret and verifies the connection with it. Returns the state change,
    /// for the request's audit record.
    pub async fn rotate_secret(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
        secret: SecretString,
        expires_on: Option<Date>,
    ) -> Result<(Versioned<Connection>, Vec<Change>)> {
        if secrecy::ExposeSecret::expose_secret(&secret)
            .trim()
            .is_empty()
        {
            return Err(
                ConnectionError::Invalid("clientSecret must not be empty".to_owned()).into(),
            );
        }
        let current = self.get(workspace, id).await?;
        let mut connection = current.value.clone();
        connection.replace_secret(self.seal(workspace, id, &secret)?, expires_on);
        drop(secret);
        let before = current.value.state();
        let version = self.store.update(&connection, &current.version).await?;
        self.verify_written(connection, version, before).await
    }

    /// Deletes the connection; its sealed secret goes with the row, so no later call can use it.
    pub async fn delete(&self, workspace: WorkspaceId, id: ConnectionId) -> Result<()> {
        self.store.delete(workspace, id).await.map_err(Error::from)
    }

    /// Records that a data call was refused (401/403) during a sync: the connection is revoked at
    /// once and a role event raised, the first time only.
    pub async fn record_access_lost(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
        problem: AccessProblem,
        component: &str,
    ) -> Result<()> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.get(workspace, id).await?;
            let before = current.value.state();
            let mut connection = current.value.clone();
            let Some(finding) =
                connection.record_access_lost(problem.clone(), OffsetDateTime::now_utc())
            else {
                return Ok(());
            };
            match self.store.update(&connection, &current.version).await {
                Ok(_) => {
                    self.raise(&connection, &[finding]).await;
                    self.audit_step(
                        &connection,
                        before,
                        "connection.revoke",
                        &Acting::system(component),
                    )
                    .await;
                    return Ok(());
                }
                Err(StoreError::VersionMismatch) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(Error::Conflict(
            "the connection kept changing; try again".to_owned(),
        ))
    }

    /// Where this service's events go; the cost sync raises its own through the same sink.
    pub fn events(&self) -> &dyn EventSink {
        self.events.as_ref()
    }

    /// Records that a subscription of the connection finished its first sync (the onboarding stage
    /// `firstSyncDone`). A no-op once recorded, so every successful sync may call it.
    pub async fn record_first_sync(&self, workspace: WorkspaceId, id: ConnectionId) -> Result<()> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(current) = self.store.get(workspace, id).await? else {
                return Ok(());
            };
            if current.value.first_sync_at.is_some() {
                return Ok(());
            }
            let mut connection = current.value.clone();
            connection.record_first_sync(OffsetDateTime::now_utc());
            match self.store.update(&connection, &current.version).await {
                Ok(_) => return Ok(()),
                Err(StoreError::VersionMismatch) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(Error::Conflict(
            "the connection kept changing; try again".to_owned(),
        ))
    }

    /// Every connection the health check should look at: verified, healthy, in any workspace.
    pub async fn active_connections(&self) -> Result<Vec<(WorkspaceId, ConnectionId)>> {
        Ok(self
            .store
            .all()
            .await?
            .into_iter()
            .filter(|c| c.value.is_active())
            .map(|c| (c.value.workspace, c.value.id))
            .collect())
    }

    /// Re-verifies one connection and reminds of an expiring secret. A connection deleted, revoked
    /// or not yet verified meanwhile is left alone. Only a storage failure is an error (the message
    /// is retried); Azure's own failures are the report's business.
    pub async fn health_check_one(
        &self,
        workspace: WorkspaceId,
        id: ConnectionId,
        today: Date,
    ) -> Result<HealthReport> {
        let Some(connection) = self.store.get(workspace, id).await? else {
            return Ok(HealthReport::default());
        };
        if !connection.value.is_active() {
            return Ok(HealthReport::default());
        }
        Ok(self.health_check(connection, today).await)
    }

    async fn health_check(&self, connection: Versioned<Connection>, today: Date) -> HealthReport {
        let id = connection.value.id;
        let acting = Acting::system(HEALTH_COMPONENT);
        let (verified, transient) = match self
            .verify_with(connection, VerifiedBy::HealthCheck, Some(&acting))
            .await
        {
            Ok(answer) => answer,
            Err(err) => {
                tracing::warn!(error = %err, connection = %id, "connection could not be checked");
                return HealthReport {
                    skipped: 1,
                    ..HealthReport::default()
                };
            }
        };
        let mut report = HealthReport {
            checked: 1,
            revoked: usize::from(verified.value.is_revoked()),
            ..HealthReport::default()
        };
        if transient.is_some() {
            report.checked = 0;
            report.skipped = 1;
        }
        let mut reminded = verified.value.clone();
        if let Some(days_left) = reminded.take_expiry_reminder(today) {
            // Record the reminder first: a lost event is better than one raised every hour.
            match self.store.update(&reminded, &verified.version).await {
                Ok(_) => {
                    if let Some(event) = reminded.expiry_event(days_left, OffsetDateTime::now_utc())
                    {
                        match self.events.raise(&event).await {
                            Ok(()) => report.events += 1,
                            Err(err) => {
                                tracing::error!(error = %err, connection = %id, "expiry reminder could not be raised")
                            }
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, connection = %id, "expiry reminder deferred to the next run")
                }
            }
        }
        report
    }

    /// Re-encrypts every connection secret not under the current data key. Idempotent and
    /// resumable: a connection changed meanwhile is re-read and decided again.
    pub async fn rotate_keys(&self) -> Result<RotationReport> {
        let keyring = self.keyring()?;
        let mut report = RotationReport::default();
        for connection in self.store.all().await? {
            let label = format!("{}/{}", connection.value.workspace, connection.value.id);
            match self.reseal_one(keyring, connection).await {
                Ok(true) => report.resealed += 1,
                Ok(false) => report.already_current += 1,
                Err(reason) => report.failures.push(format!("{label}: {reason}")),
            }
        }
        Ok(report)
    }

    async fn reseal_one(
        &self,
        keyring: &Keyring,
        mut current: Versioned<Connection>,
    ) -> std::result::Result<bool, String> {
        for _ in 0..WRITE_ATTEMPTS {
            let sealed: Sealed = current
                .value
                .secret
                .0
                .parse()
                .map_err(|e: SecretError| e.to_string())?;
            if !keyring.needs_rotation(&sealed) {
                return Ok(false);
            }
            let context = seal_context(current.value.workspace, current.value.id);
            let resealed = keyring
                .reseal(&sealed, &context)
                .map_err(|e| e.to_string())?;
            let mut connection = current.value.clone();
            connection.secret = SealedSecret(resealed.to_string());
            match self.store.update(&connection, &current.version).await {
                Ok(_) => return Ok(true),
                Err(StoreError::VersionMismatch) => {
                    match self
                        .store
                        .get(connection.workspace, connection.id)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        Some(fresh) => current = fresh,
                        // Deleted meanwhile: nothing left to rotate.
                        None => return Ok(false),
                    }
                }
                Err(err) => return Err(err.to_string()),
            }
        }
        Err("kept changing during the pass; run it again".to_owned())
    }
}

/// The state (and problem) a step moved the connection to, for its audit record.
fn state_changes(before: ConnectionState, connection: &Connection) -> Vec<Change> {
    let after = connection.state();
    let mut changes = Vec::new();
    if before != after {
        changes.push(Change::new(
            "state",
            Some(before.as_str().to_owned()),
            Some(after.as_str().to_owned()),
        ));
    }
    if let Some(problem) = connection.problem() {
        changes.push(Change::new(
            "problem",
            None,
            Some(problem.kind.as_str().to_owned()),
        ));
    }
    changes
}
