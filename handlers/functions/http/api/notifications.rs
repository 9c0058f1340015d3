//! Notification channels (admins), in-app notifications (every member, each their own) and the
//! delivery log (admins).
//!
//! A webhook URL goes in (create, update) and comes back only masked (`https://hooks.slack.com/…abcd`):
//! no view, error, audit record or log line carries it.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::context::{JsonBody, Scoped, audit, decode_cursor, encode_cursor, if_match};
use super::views::Paged;
use super::workspaces::with_etag;
use crate::app::AppState;
use crate::domain::audit::Change;
use crate::domain::events::Severity;
use crate::domain::notifications::{
    Cadence, Channel, ChannelId, ChannelKind, ChannelTarget, DEFAULT_COOLDOWN_HOURS,
    DeliveryRecord, EventClass, InAppNotification, LogPosition,
};
use crate::error::{Error, Result};
use crate::notify::ChannelInput;

fn channel_id(params: &HashMap<String, String>) -> Result<ChannelId> {
    params
        .get("channelId")
        .and_then(|i| ChannelId::parse(i))
        .ok_or(Error::NotFound)
}

fn target(id: ChannelId) -> String {
    format!("channel/{id}")
}

fn default_events() -> Vec<EventClass> {
    EventClass::ALL.to_vec()
}

fn default_severity() -> Severity {
    Severity::Warning
}

fn default_cooldown() -> u32 {
    DEFAULT_COOLDOWN_HOURS
}

fn default_enabled() -> bool {
    true
}

/// A notification channel: where Sixpence tells a workspace's people about events.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChannelBody {
    #[schema(example = "FinOps Slack")]
    pub name: String,
    /// `email`, `slack`, `teams` or `inApp`. Cannot change after creation.
    #[schema(value_type = String, example = "slack")]
    pub kind: ChannelKind,
    /// Slack incoming webhook or Teams Workflows / incoming webhook URL (https, the service's own
    /// host). Stored encrypted, shown back only masked. On update, omit it to keep the current one.
    #[serde(default)]
    #[schema(example = "https://hooks.slack.com/services/T000/B000/XXXX")]
    pub webhook_url: Option<String>,
    /// Email addresses (email channels), 1 to 50.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// In-app channels: only admins and owners see these notifications.
    #[serde(default)]
    pub admins_only: bool,
    /// Event kinds this channel receives: `billing`, `sync`, `role`, `budget`, `anomaly` (default all).
    #[serde(default = "default_events")]
    #[schema(value_type = Vec<String>, example = json!(["anomaly", "budget"]))]
    pub events: Vec<EventClass>,
    /// The least severity told: `info`, `warning` (default) or `critical`.
    #[serde(default = "default_severity")]
    #[schema(value_type = String, example = "warning")]
    pub min_severity: Severity,
    /// `instant` (default) or `dailyDigest` (one message a day, at 08:00 UTC).
    #[serde(default)]
    #[schema(value_type = String, example = "instant")]
    pub cadence: Cadence,
    /// The same fact is not told again on this channel within this many hours (default 72).
    #[serde(default = "default_cooldown")]
    pub cooldown_hours: u32,
    /// Update only: `false` disables the channel, `true` enables it again.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

impl ChannelBody {
    fn input(self) -> (ChannelInput, bool) {
        (
            ChannelInput {
                name: self.name,
                kind: self.kind,
                webhook_url: self.webhook_url.map(SecretString::from),
                recipients: self.recipients,
                admins_only: self.admins_only,
                events: self.events,
                min_severity: self.min_severity,
                cadence: self.cadence,
                cooldown_hours: self.cooldown_hours,
            },
            self.enabled,
        )
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, example = "slack")]
    pub kind: ChannelKind,
    /// The webhook URL, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "https://hooks.slack.com/…XXXX")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admins_only: Option<bool>,
    #[schema(value_type = Vec<String>)]
    pub events: Vec<EventClass>,
    #[schema(value_type = String)]
    pub min_severity: Severity,
    #[schema(value_type = String)]
    pub cadence: Cadence,
    pub cooldown_hours: u32,
    pub enabled: bool,
    /// Why Sixpence disabled the channel (its webhook is gone, its mailbox refuses mail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        let (webhook_url, recipients, admins_only) = match &c.target {
            ChannelTarget::Slack { url } | ChannelTarget::Teams { url } => {
                (Some(url.masked.clone()), None, None)
            }
            ChannelTarget::Email { recipients } => (None, Some(recipients.clone()), None),
            ChannelTarget::InApp { admins_only } => (None, None, Some(*admins_only)),
        };
        Self {
            id: c.id.to_string(),
            name: c.name.clone(),
            kind: c.target.kind(),
            webhook_url,
            recipients,
            admins_only,
            events: c.events.clone(),
            min_severity: c.min_severity,
            cadence: c.cadence,
            cooldown_hours: c.cooldown_hours,
            enabled: c.enabled,
            disabled_reason: c.disabled_reason.clone(),
            created_at: c.created_at,
        }
    }
}

/// A value's wire name (`warning`, `dailyDigest`).
fn wire<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn channel_changes(before: Option<&Channel>, after: &Channel, new_url: bool) -> Vec<Change> {
    let show = |c: &Channel| {
        (
            c.name.clone(),
            serde_json::to_string(&c.events).unwrap_or_default(),
            wire(&c.min_severity),
            wire(&c.cadence),
            c.enabled.to_string(),
        )
    };
    let a = show(after);
    let b = before.map(show);
    let mut changes = Vec::new();
    let mut push = |field: &str, from: Option<&String>, to: &String| {
        if from != Some(to) {
            changes.push(Change::new(field, from.cloned(), Some(to.clone())));
        }
    };
    push("name", b.as_ref().map(|b| &b.0), &a.0);
    push("events", b.as_ref().map(|b| &b.1), &a.1);
    push("minSeverity", b.as_ref().map(|b| &b.2), &a.2);
    push("cadence", b.as_ref().map(|b| &b.3), &a.3);
    push("enabled", b.as_ref().map(|b| &b.4), &a.4);
    if new_url {
        changes.push(Change::secret("webhookUrl"));
    }
    changes
}

/// Create a channel. Webhook URLs must be https on the service's own hosts; they are encrypted
/// at rest and shown back only masked.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/channels", tag = "notifications", request_body = ChannelBody,
    params(("id" = String, Path, description = "Workspace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retry-safe creation: the same key replays the first answer for 24 h")),
    responses((status = 201, description = "Created", body = ChannelView, headers(("ETag" = String), ("Location" = String)))))]
pub async fn create(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<ChannelBody>,
) -> Result<Response> {
    let new_url = body.webhook_url.is_some();
    let (input, _) = body.input();
    let created = state
        .notifier()
        .create_channel(scoped.scope.id(), input)
        .await?;
    let channel = &created.value;
    audit(
        scoped.audit.as_ref(),
        target(channel.id),
        channel_changes(None, channel, new_url),
    );
    let location = format!(
        "/api/v1/workspaces/{}/channels/{}",
        channel.workspace, channel.id
    );
    Ok(super::workspaces::created(
        &location,
        ChannelView::from(channel),
        &created.version,
    ))
}

/// The workspace's channels.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/channels", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Channels", body = Paged<ChannelView>)))]
pub async fn list(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<Json<Paged<ChannelView>>> {
    let channels = state.notifier().channels().list(scoped.scope.id()).await?;
    Ok(Json(Paged {
        items: channels
            .iter()
            .map(|c| ChannelView::from(&c.value))
            .collect(),
        next_cursor: None,
    }))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/channels/{channelId}", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id"), ("channelId" = String, Path, description = "Channel id")),
    responses((status = 200, description = "The channel", body = ChannelView, headers(("ETag" = String)))))]
pub async fn get(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response> {
    let id = channel_id(&params)?;
    let channel = state
        .notifier()
        .channels()
        .get(scoped.scope.id(), id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(with_etag(
        Json(ChannelView::from(&channel.value)).into_response(),
        &channel.version,
    ))
}

/// Replace a channel's settings (`enabled: false` disables it). Omit `webhookUrl` to keep the
/// current one.
#[utoipa::path(put, path = "/api/v1/workspaces/{id}/channels/{channelId}", tag = "notifications", request_body = ChannelBody,
    params(("id" = String, Path, description = "Workspace id"), ("channelId" = String, Path, description = "Channel id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 if it changed since")),
    responses((status = 200, description = "Updated", body = ChannelView, headers(("ETag" = String)))))]
pub async fn update(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ChannelBody>,
) -> Result<Response> {
    let id = channel_id(&params)?;
    let current = state
        .notifier()
        .channels()
        .get(scoped.scope.id(), id)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(guard) = if_match(&headers)
        && guard != current.version
    {
        return Err(Error::PreconditionFailed);
    }
    let before = current.value.clone();
    let new_url = body.webhook_url.is_some();
    let (input, enabled) = body.input();
    let updated = state
        .notifier()
        .update_channel(current, input, enabled)
        .await?;
    audit(
        scoped.audit.as_ref(),
        target(id),
        channel_changes(Some(&before), &updated.value, new_url),
    );
    Ok(with_etag(
        Json(ChannelView::from(&updated.value)).into_response(),
        &updated.version,
    ))
}

/// Delete a channel (its encrypted webhook URL with it).
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/channels/{channelId}", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id"), ("channelId" = String, Path, description = "Channel id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode> {
    let id = channel_id(&params)?;
    if !state
        .notifier()
        .channels()
        .delete(scoped.scope.id(), id)
        .await?
    {
        return Err(Error::NotFound);
    }
    audit(
        scoped.audit.as_ref(),
        target(id),
        vec![Change::new("channel", Some("present".into()), None)],
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestSent {
    /// The test delivery's id; its outcome appears in the delivery log as `test:<id>`.
    #[schema(example = "8a1c2f4e-0b7d-4c3e-9f6a-5d2e1b0c9a87")]
    pub id: String,
}

/// Send a test message to the channel (even a disabled one, to check a fix). It is delivered
/// through the same queue as real notifications; see the delivery log for the outcome.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/channels/{channelId}/test", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id"), ("channelId" = String, Path, description = "Channel id")),
    responses((status = 202, description = "Queued", body = TestSent)))]
pub async fn test(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response> {
    let id = channel_id(&params)?;
    let channel = state
        .notifier()
        .channels()
        .get(scoped.scope.id(), id)
        .await?
        .ok_or(Error::NotFound)?;
    let sent = state.notifier().send_test(&channel.value).await?;
    audit(
        scoped.audit.as_ref(),
        target(id),
        vec![Change::new("test", None, Some(sent.to_string()))],
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            id: sent.to_string(),
        }),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct InboxQuery {
    /// Only unread notifications.
    #[serde(default)]
    pub unread: bool,
    /// At most this many (1–100, default 50), newest first.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    #[schema(example = "8236154399999999-8a1c2f4e0b7d4c3e9f6a5d2e1b0c9a87")]
    pub id: String,
    #[schema(value_type = String, example = "critical")]
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub kind: Option<EventClass>,
    #[schema(example = "Azure stopped accepting connection Contoso production")]
    pub title: String,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    pub read: bool,
}

impl From<InAppNotification> for NotificationView {
    fn from(n: InAppNotification) -> Self {
        Self {
            id: n.id,
            severity: n.severity,
            kind: n.event_class,
            title: n.title,
            body: n.body,
            link: n.link,
            at: n.at,
            read: n.read,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inbox {
    pub items: Vec<NotificationView>,
    /// Unread notifications in all.
    #[schema(example = 3)]
    pub unread: u64,
    /// Pass back as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Your in-app notifications in this workspace, newest first, with the unread count.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/notifications", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id"), InboxQuery),
    responses((status = 200, description = "Your notifications", body = Inbox)))]
pub async fn inbox(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(query): Query<InboxQuery>,
) -> Result<Json<Inbox>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(Error::InvalidRequest("`limit` must be 1 to 100".into()));
    }
    let ws = scoped.scope.id();
    let user = scoped.caller.user;
    // The cursor is bound to this user's listing in this workspace (and to the unread filter).
    let listing = format!("user:{user}:workspace:{ws}:inbox:{}", query.unread);
    let after = query
        .cursor
        .as_deref()
        .map(|c| decode_cursor(&listing, c))
        .transpose()?;
    let inbox = state.notifier().inbox();
    let (mut items, unread) = tokio::try_join!(
        inbox.list(ws, user, query.unread, after.as_deref(), limit as usize + 1),
        inbox.unread_count(ws, user)
    )?;
    let next_cursor = (items.len() > limit as usize).then(|| {
        items.truncate(limit as usize);
        encode_cursor(&listing, &items[items.len() - 1].id)
    });
    Ok(Json(Inbox {
        items: items.into_iter().map(NotificationView::from).collect(),
        unread,
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarkedRead {
    /// Notifications newly marked read.
    #[schema(example = 1)]
    pub marked: u64,
    /// Unread notifications left.
    pub unread: u64,
}

/// Mark one of your notifications read.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/notifications/{notificationId}/read", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id"), ("notificationId" = String, Path, description = "Notification id")),
    responses((status = 200, description = "Marked read", body = MarkedRead)))]
pub async fn mark_read(
    State(state): State<AppState>,
    scoped: Scoped,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<MarkedRead>> {
    let id = params.get("notificationId").ok_or(Error::NotFound)?;
    let ws = scoped.scope.id();
    let user = scoped.caller.user;
    let inbox = state.notifier().inbox();
    if !inbox.mark_read(ws, user, id).await? {
        return Err(Error::NotFound);
    }
    audit(
        scoped.audit.as_ref(),
        format!("notification/{id}"),
        vec![Change::new("read", None, Some("true".into()))],
    );
    Ok(Json(MarkedRead {
        marked: 1,
        unread: inbox.unread_count(ws, user).await?,
    }))
}

/// Mark all your notifications in this workspace read.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/notifications/read", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Marked read", body = MarkedRead)))]
pub async fn mark_all_read(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<Json<MarkedRead>> {
    let ws = scoped.scope.id();
    let user = scoped.caller.user;
    let marked = state.notifier().inbox().mark_all_read(ws, user).await?;
    audit(
        scoped.audit.as_ref(),
        "notifications",
        vec![Change::new("read", None, Some(marked.to_string()))],
    );
    Ok(Json(MarkedRead { marked, unread: 0 }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    #[schema(example = "5b7c9e1f-3a2d-4e6b-8c0a-9d1e2f3a4b5c")]
    pub channel: String,
    #[schema(value_type = String)]
    pub channel_kind: ChannelKind,
    /// The event's dedupe key, `digest:<window>` or `test:<id>`.
    pub key: String,
    pub event: String,
    pub summary: String,
    /// `sending`, `retrying`, `sent`, `failed` or `suppressed` (told within the cool-down).
    #[schema(example = "sent")]
    pub status: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(r: DeliveryRecord) -> Self {
        let status = r.state.name().to_owned();
        Self {
            channel: r.channel.to_string(),
            channel_kind: r.channel_kind,
            key: r.key,
            event: r.event.to_string(),
            summary: r.summary,
            status,
            attempts: r.attempts,
            last_error: r.last_error,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    /// At most this many (1–500, default 100), newest first.
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The delivery log: each notification's attempts, status and last error, newest first.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/deliveries", tag = "notifications",
    params(("id" = String, Path, description = "Workspace id"), LogQuery),
    responses((status = 200, description = "Deliveries", body = Paged<DeliveryView>)))]
pub async fn deliveries(
    State(state): State<AppState>,
    scoped: Scoped,
    Query(query): Query<LogQuery>,
) -> Result<Json<Paged<DeliveryView>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Error::InvalidRequest("`limit` must be 1 to 500".into()));
    }
    let listing = format!("workspace:{}:deliveries", scoped.scope.id());
    let after = match query.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            LogPosition::decode(&decode_cursor(&listing, c)?).ok_or_else(|| {
                Error::InvalidRequest("the cursor is not valid for this listing".to_owned())
            })?,
        ),
    };
    let mut log = state
        .notifier()
        .deliveries()
        .log(scoped.scope.id(), after.as_ref(), limit as usize + 1)
        .await?;
    let next_cursor = (log.len() > limit as usize).then(|| {
        log.truncate(limit as usize);
        encode_cursor(&listing, &LogPosition::of(&log[log.len() - 1]).encode())
    });
    Ok(Json(Paged {
        items: log.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    }))
}
