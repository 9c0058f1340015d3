//! Notifications: which of a workspace's channels hear about an event, when a delivery may be
//! attempted again, and when it must stop.
//!
//! An [`Event`] (see `domain::events`) is fanned out to one delivery per (event, channel). Each
//! delivery is guarded by a [`DeliveryRecord`] keyed by the channel and the event's dedupe key; the
//! rules that read and advance that record ([`decide`]) are what make delivery exactly-once in
//! effect and stop storms (the cool-down). The adapters (`storage::notifications`) persist the
//! records with ETags; the application service (`crate::notify`) sends.
//!
//! Nothing here knows HTTP, Slack or Azure: webhook URLs are held sealed ([`SealedUrl`]), and a
//! send's result comes back as a [`SendOutcome`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::events::{Event, EventKind, Severity};
use super::store::{StoreError, Version, Versioned};
use super::tenancy::{UserId, WorkspaceId};

/// How long a delivery claim is held while one worker sends. Longer than the send timeout plus
/// the time to record the outcome, so a live worker has always finished (or given up) its send
/// before anyone else may take the claim over.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);
/// The most one send may take (connect + request + response).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts before a delivery is given up and its message poisoned: with the default back-off the
/// last attempt comes 10 to 20 minutes after the first, long enough to ride out a receiver's outage
/// without telling people about an old fact hours late.
pub const MAX_ATTEMPTS: u32 = 8;
/// The first retry's delay; each later one doubles, up to [`MAX_RETRY_DELAY`].
pub const BASE_RETRY_DELAY: Duration = Duration::from_secs(5);
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);
/// The default cool-down: the same fact (dedupe key) is not told again on a channel within it.
pub const DEFAULT_COOLDOWN_HOURS: u32 = 72;
pub const MAX_COOLDOWN_HOURS: u32 = 24 * 30;

/// A channel's id: a UUID, so ids cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelId(Uuid);

impl ChannelId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn parse(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok().map(Self)
    }
}

impl Default for ChannelId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The medium of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChannelKind {
    Email,
    Slack,
    Teams,
    InApp,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Slack => "slack",
            ChannelKind::Teams => "teams",
            ChannelKind::InApp => "inApp",
        }
    }

    pub fn is_webhook(self) -> bool {
        matches!(self, ChannelKind::Slack | ChannelKind::Teams)
    }
}

/// The kind of an event, without its data: what a channel subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventClass {
    Billing,
    Sync,
    Role,
    Budget,
    Anomaly,
}

impl EventClass {
    pub const ALL: [EventClass; 5] = [
        EventClass::Billing,
        EventClass::Sync,
        EventClass::Role,
        EventClass::Budget,
        EventClass::Anomaly,
    ];

    pub fn of(kind: &EventKind) -> Self {
        match kind {
            EventKind::Billing(_) => EventClass::Billing,
            EventKind::Sync(_) => EventClass::Sync,
            EventKind::Role(_) => EventClass::Role,
            EventKind::Budget(_) => EventClass::Budget,
            EventKind::Anomaly(_) => EventClass::Anomaly,
        }
    }
}

/// When a channel is told: at once, or once a day in one digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Cadence {
    #[default]
    Instant,
    DailyDigest,
}

/// A webhook URL sealed with the data keyring (opaque here) and its masked form, the only form
/// ever shown back (`https://hooks.slack.com/…/XXXX…abcd`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedUrl {
    pub sealed: String,
    pub masked: String,
}

/// Where a channel's messages go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ChannelTarget {
    Email {
        recipients: Vec<String>,
    },
    Slack {
        url: SealedUrl,
    },
    Teams {
        url: SealedUrl,
    },
    /// Every member of the workspace (or only its admins) sees it in the app.
    #[serde(rename_all = "camelCase")]
    InApp {
        admins_only: bool,
    },
}

impl ChannelTarget {
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelTarget::Email { .. } => ChannelKind::Email,
            ChannelTarget::Slack { .. } => ChannelKind::Slack,
            ChannelTarget::Teams { .. } => ChannelKind::Teams,
            ChannelTarget::InApp { .. } => ChannelKind::InApp,
        }
    }
}

/// A workspace's notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    pub id: ChannelId,
    pub workspace: WorkspaceId,
    pub name: String,
    pub target: ChannelTarget,
    /// The event kinds it receives (all when empty is not allowed: the API requires at least one).
    pub events: Vec<EventClass>,
    pub min_severity: Severity,
    pub cadence: Cadence,
    pub cooldown_hours: u32,
    pub enabled: bool,
    /// Why Sixpence disabled it (a webhook answered 410, a mailbox does not exist), if it did.
    pub disabled_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Channel {
    /// Whether this channel is told about `event` at all (kind, severity, enabled).
    pub fn wants(&self, event: &Event) -> bool {
        self.enabled
            && event.workspace == self.workspace
            && event.severity >= self.min_severity
            && self.events.contains(&EventClass::of(&event.kind))
    }

    pub fn cooldown(&self) -> time::Duration {
        time::Duration::hours(i64::from(self.cooldown_hours))
    }
}

/// The channels of `channels` that hear about `event`, in their given order.
pub fn route<'a>(event: &Event, channels: &'a [Channel]) -> Vec<&'a Channel> {
    channels.iter().filter(|c| c.wants(event)).collect()
}

/// Whether an event goes into a digest rather than out at once on `channel`: every event on a
/// daily-digest channel, and anomalies everywhere (one sync can find dozens, and they are told as
/// one message per channel, after a short gathering window).
pub fn is_digested(channel: &Channel, event: &Event) -> bool {
    channel.cadence == Cadence::DailyDigest
        || (matches!(event.kind, EventKind::Anomaly(_))
            && channel.target.kind() != ChannelKind::InApp)
}

/// How long anomalies are gathered before an instant channel's digest goes out.
pub const ANOMALY_GATHER: Duration = Duration::from_secs(120);

/// The digest window an event received at `now` joins on `channel`: its start, and when it is sent.
/// Windows are aligned (per UTC day for daily digests, per `gather`, normally [`ANOMALY_GATHER`],
/// otherwise), so every worker computes the same one without talking to the others.
pub fn digest_window(
    channel: &Channel,
    now: OffsetDateTime,
    gather: Duration,
) -> (OffsetDateTime, OffsetDateTime) {
    let (step, send_after) = match channel.cadence {
        // Sent at 08:00 UTC the next morning.
        Cadence::DailyDigest => (86_400, 86_400 + 8 * 3_600),
        Cadence::Instant => {
            let step = gather.as_secs().max(1) as i64;
            (step, step)
        }
    };
    let ts = now.unix_timestamp();
    let start = ts - ts.rem_euclid(step);
    let start = OffsetDateTime::from_unix_timestamp(start).unwrap_or(now);
    (start, start + time::Duration::seconds(send_after))
}

/// The result of one attempt to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Delivered,
    /// Try again later (timeout, refused connection, 5xx, 429); `retry_after` if the receiver said.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// No retry can help (the webhook is gone, the mailbox does not exist): the channel is
    /// disabled and its admins are told.
    Permanent {
        reason: String,
    },
}

/// What an HTTP receiver's status means for the delivery.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> SendOutcome {
    match status {
        200..=299 => SendOutcome::Delivered,
        404 | 410 => SendOutcome::Permanent {
            reason: format!("the receiver answered {status}: the webhook no longer exists"),
        },
        401 | 403 => SendOutcome::Permanent {
            reason: format!("the receiver answered {status}: the webhook refuses Sixpence"),
        },
        408 | 425 | 429 | 500..=599 => SendOutcome::Transient {
            reason: format!("the receiver answered {status}"),
            retry_after,
        },
        300..=399 => SendOutcome::Permanent {
            reason: format!("the receiver answered a redirect ({status}), which is not followed"),
        },
        _ => SendOutcome::Permanent {
            reason: format!("the receiver refused the message ({status})"),
        },
    }
}

/// The delay before attempt `attempt + 1` after a transient failure of attempt `attempt` (1-based):
/// exponential from `base` (normally [`BASE_RETRY_DELAY`]), capped, with jitter over its upper
/// half (`jitter` in 0..1), and never shorter than the receiver's `Retry-After`.
pub fn retry_delay(
    base: Duration,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_RETRY_DELAY);
    let jitter = jitter.clamp(0.0, 1.0);
    let backoff = exp.mul_f64(0.5 + 0.5 * jitter);
    match retry_after {
        Some(asked) => backoff.max(asked.min(MAX_RETRY_DELAY)),
        None => backoff,
    }
}

/// Where one (channel, dedupe key) delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum DeliveryState {
    /// A worker holds the claim and is sending (or died doing so) until `lease_until`.
    #[serde(rename_all = "camelCase")]
    Sending {
        #[serde(with = "time::serde::rfc3339")]
        lease_until: OffsetDateTime,
    },
    /// The last attempt failed transiently; the next may start at `next_at`.
    #[serde(rename_all = "camelCase")]
    Retrying {
        #[serde(with = "time::serde::rfc3339")]
        next_at: OffsetDateTime,
    },
    #[serde(rename_all = "camelCase")]
    Sent {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Given up: a permanent failure, or the retry budget spent (then the message is poisoned).
    Failed,
    /// A later raising of an already-told fact inside the cool-down: not sent.
    Suppressed,
}

impl DeliveryState {
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::Sending { .. } => "sending",
            DeliveryState::Retrying { .. } => "retrying",
            DeliveryState::Sent { .. } => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Suppressed => "suppressed",
        }
    }
}

/// The record of one delivery: the idempotency record and the delivery log entry in one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub workspace: WorkspaceId,
    pub channel: ChannelId,
    pub channel_kind: ChannelKind,
    /// The dedupe key of the event (or the digest's key).
    pub key: String,
    /// The event (or digest) this record is about now.
    pub event: Uuid,
    pub event_class: Option<EventClass>,
    pub severity: Severity,
    pub summary: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When the fact was last told on this channel (for the cool-down), across raisings.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_sent_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What the worker holding a delivery message does.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Claim the record (write `record` under the version read) and send.
    Send(DeliveryRecord),
    /// Nothing to do: already sent, given up, or suppressed for this event.
    Done,
    /// Another worker holds a live claim, or the next attempt is not due: look again after `Duration`.
    Wait(Duration),
    /// The fact was told within the cool-down: record the suppression (write `record`), send nothing.
    Suppress(DeliveryRecord),
}

/// The delivery `fresh` describes (state and attempts ignored), given the stored record if any.
///
/// The rules, in order:
/// - no record: claim it (attempt 1);
/// - a record for the **same event**: sent/failed/suppressed → done; a live claim or a retry not
///   yet due → wait; an expired claim (its worker died) or a due retry → claim (next attempt);
/// - a record for **another raising** of the same fact: still in flight → wait for it; told less
///   than the cool-down ago → suppress; otherwise → claim afresh for this event.
pub fn decide(
    stored: Option<&DeliveryRecord>,
    fresh: &DeliveryRecord,
    cooldown: time::Duration,
    now: OffsetDateTime,
) -> Decision {
    let claim =
        |attempts: u32, last_sent_at: Option<OffsetDateTime>, last_error: Option<String>| {
            let mut record = fresh.clone();
            record.attempts = attempts;
            record.last_sent_at = last_sent_at;
            record.last_error = last_error;
            record.state = DeliveryState::Sending {
                lease_until: now + CLAIM_LEASE,
            };
            record.updated_at = now;
            Decision::Send(record)
        };
    let Some(stored) = stored else {
        return claim(1, None, None);
    };
    let wait_until = |at: OffsetDateTime| {
        let secs = (at - now).whole_milliseconds().max(0) as u64;
        Decision::Wait(Duration::from_millis(secs) + Duration::from_secs(1))
    };
    if stored.event == fresh.event {
        return match &stored.state {
            DeliveryState::Sent { .. } | DeliveryState::Failed | DeliveryState::Suppressed => {
                Decision::Done
            }
            DeliveryState::Sending { lease_until } if *lease_until > now => {
                wait_until(*lease_until)
            }
            DeliveryState::Retrying { next_at } if *next_at > now => wait_until(*next_at),
            DeliveryState::Sending { .. } | DeliveryState::Retrying { .. } => claim(
                stored.attempts + 1,
                stored.last_sent_at,
                stored.last_error.clone(),
            ),
        };
    }
    match &stored.state {
        DeliveryState::Sending { lease_until } if *lease_until > now => wait_until(*lease_until),
        DeliveryState::Retrying { next_at } if *next_at > now => wait_until(*next_at),
        _ => {
            let told = match &stored.state {
                DeliveryState::Sent { at } => Some(*at),
                _ => stored.last_sent_at,
            };
            match told {
                Some(at) if now - at < cooldown => {
                    let mut record = fresh.clone();
                    record.state = DeliveryState::Suppressed;
                    record.attempts = 0;
                    record.last_sent_at = Some(at);
                    record.last_error = None;
                    record.updated_at = now;
                    Decision::Suppress(record)
                }
                _ => claim(1, told, None),
            }
        }
    }
}

/// A notification a user sees in the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InAppNotification {
    /// Stable per (event or digest, user): `<inverted time>-<source id>`, newest first.
    pub id: String,
    pub workspace: WorkspaceId,
    pub severity: Severity,
    pub event_class: Option<EventClass>,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub read: bool,
}

impl InAppNotification {
    /// The id a notification about `source` raised at `at` gets: newest first when sorted, and the
    /// same on every redelivery, so inserting it twice conflicts instead of duplicating.
    pub fn id_for(at: OffsetDateTime, source: Uuid) -> String {
        let millis = (at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
        format!(
            "{:016}-{}",
            9_999_999_999_999_999u64 - millis,
            source.simple()
        )
    }
}

/// Where a delivery record stands in the log's order: newest `updated_at` first, then by channel
/// and key, so every record has one place and a page boundary is a total order (a record updated
/// after a page was read moves to the top, as a log should, and is not repeated below).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// `-updated_at` in Unix nanoseconds (so ascending order is newest first).
    pub newest_first: i128,
    pub channel: ChannelId,
    pub key: String,
}

impl LogPosition {
    pub fn of(record: &DeliveryRecord) -> Self {
        Self {
            newest_first: -record.updated_at.unix_timestamp_nanos(),
            channel: record.channel,
            key: record.key.clone(),
        }
    }

    /// An opaque text form for cursors.
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.newest_first, self.channel, self.key)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '|');
        Some(Self {
            newest_first: parts.next()?.parse().ok()?,
            channel: ChannelId::parse(parts.next()?)?,
            key: parts.next()?.to_owned(),
        })
    }
}

/// A workspace's channels.
#[async_trait::async_trait]
pub trait ChannelStore: Send + Sync {
    async fn create(&self, channel: &Channel) -> Result<Version, StoreError>;
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: ChannelId,
    ) -> Result<Option<Versioned<Channel>>, StoreError>;
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Channel>>, StoreError>;
    /// Replaces the channel if it is still at `guard` (any version when `None`).
    async fn update(
        &self,
        channel: &Channel,
        guard: Option<&Version>,
    ) -> Result<Version, StoreError>;
    /// `false` if it did not exist.
    async fn delete(&self, workspace: WorkspaceId, id: ChannelId) -> Result<bool, StoreError>;
}

/// Delivery records: idempotency, cool-down and the delivery log.
#[async_trait::async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn get(
        &self,
        workspace: WorkspaceId,
        channel: ChannelId,
        key: &str,
    ) -> Result<Option<Versioned<DeliveryRecord>>, StoreError>;
    /// Inserts (`guard` `None`: [`StoreError::Conflict`] if one exists) or replaces at `guard`
    /// ([`StoreError::VersionMismatch`] if it changed).
    async fn put(
        &self,
        record: &DeliveryRecord,
        guard: Option<&Version>,
    ) -> Result<Version, StoreError>;
    /// The workspace's delivery log, newest first (see [`LogPosition`]), at most `limit`, after
    /// `after` (the position of the last record of the previous page).
    async fn log(
        &self,
        workspace: WorkspaceId,
        after: Option<&LogPosition>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

/// Per-user in-app notifications.
#[async_trait::async_trait]
pub trait Inbox: Send + Sync {
    /// Adds `notification` for `user`; `Ok(false)` if it is there already (a redelivery).
    async fn add(&self, user: UserId, notification: &InAppNotification)
    -> Result<bool, StoreError>;
    /// Newest first (by id, see [`InAppNotification::id_for`]), at most `limit`, after the one
    /// whose id is `after` (the last of the previous page).
    async fn list(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        unread_only: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<InAppNotification>, StoreError>;
    async fn unread_count(&self, workspace: WorkspaceId, user: UserId) -> Result<u64, StoreError>;
    /// Marks one read; `false` if the user has no such notification.
    async fn mark_read(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        id: &str,
    ) -> Result<bool, StoreError>;
    /// Marks every unread one read; how many changed.
    async fn mark_all_read(&self, workspace: WorkspaceId, user: UserId) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests;
