//! The notifications service: fans events out to channels, gathers digests, and delivers one
//! (event or digest, channel) pair exactly once in effect.
//!
//! Two queue functions drive it: `notify-fanout` reads the `events` queue and calls
//! [`Notifier::fan_out`]; `notify` reads the `notifications` queue and calls [`Notifier::deliver`].
//!
//! # Exactly once in effect
//!
//! Each delivery has one [`DeliveryRecord`] per (channel, dedupe key), written with ETags: an
//! insert fails if the row exists (If-None-Match), a replace fails if it changed (If-Match). A
//! worker sends only after it has **claimed** the record (state `sending` with a lease of
//! [`CLAIM_LEASE`] = 60 s), and marks it `sent` right after the receiver accepted. So:
//!
//! - a **redelivered message** (the host retries, or the fan-out ran twice) finds `sent` and stops;
//! - **two workers** with copies of the message cannot both claim: the second write fails on the
//!   ETag, it re-reads, finds a live lease and comes back after it;
//! - a **live but slow** worker cannot overlap a successor: every send is bounded by
//!   [`SEND_TIMEOUT`] (15 s) and the lease (60 s) is longer than a send plus the mark, so a claim is
//!   only taken over once its holder has finished or given up sending;
//! - a **slow receiver** (no answer within [`SEND_TIMEOUT`]) counts as a transient failure, but its
//!   request is not abandoned: it may run on to [`late_cap`] (twice the timeout), and the retry is
//!   scheduled only after that, so if the receiver accepts late, a watcher marks the record `sent`
//!   (If-Match on the `retrying` record it left) and the retry finds it done: one copy. Exactly
//!   once then means *once per answer we can observe*: a receiver that accepts after [`late_cap`]
//!   (the request is dropped, the receiver may still act on it) or a worker that dies while the
//!   late request is in flight can still lead to a second copy; for email it carries the same
//!   `Message-ID`, so clients fold it;
//! - a **crash** (or a storage outage) *after the receiver accepted and before `sent` is written*
//!   is the only way to a duplicate: the lease expires and a successor sends again. Slack and Teams
//!   webhooks take no idempotency key, so this window cannot be closed on their side; it is kept to
//!   the one table write that follows the send (a few milliseconds; the write is retried in
//!   process before giving up, so a storage blip does not widen it). In-app notifications close it
//!   entirely: their row id is derived from the event, so a second insert is a conflict, not a copy.
//!   Email over SMTP carries a `Message-ID` derived from the record, so mail clients fold a copy.
//!
//! # No storms
//!
//! - The same fact (dedupe key) is told once per channel per cool-down (`cooldownHours`); later
//!   raisings inside it are recorded `suppressed`.
//! - Anomalies (which come in bursts from one sync) and everything on a daily-digest channel are
//!   gathered per channel into a digest window and told as one message (see
//!   [`digest_window`](crate::domain::notifications::digest_window)).
//!
//! # Failures
//!
//! Transient failures (timeouts, refused connections, 5xx, 429) are retried by re-enqueueing the
//! message with an exponential, jittered delay that honours `Retry-After`; after [`MAX_ATTEMPTS`]
//! the record is `failed` and the message goes to `notifications-poison` with the reason.
//! Permanent failures (404/410 from a webhook, a refused mailbox) disable the channel and tell the
//! workspace's admins in the app.

pub mod email;
pub mod render;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::events::{Event, Severity};
use crate::domain::notifications::{
    self as rules, CLAIM_LEASE, Channel, ChannelId, ChannelKind, ChannelStore, ChannelTarget,
    Decision, DeliveryRecord, DeliveryState, DeliveryStore, EventClass, InAppNotification, Inbox,
    MAX_ATTEMPTS, SEND_TIMEOUT, SealedUrl, SendOutcome,
};
use crate::domain::store::{StoreError, Versioned};
use crate::domain::tenancy::{Role, TenancyStore, WorkspaceId};
use crate::error::{Error, Result};
use crate::secrets::{Keyring, SealContext, Sealed};
use crate::storage::Storage;
use crate::storage::names;
use crate::storage::notifications::DigestBuffer;
use render::Message;

pub use email::{EmailSender, GraphSender, OutgoingEmail, SmtpSender};
pub use webhook::{WebhookClient, WebhookPolicy};

/// How long a request to a slow receiver may run on after it counted as a transient failure at
/// `send_timeout` (see the module docs): twice the timeout, so within the claim lease.
pub fn late_cap(send_timeout: Duration) -> Duration {
    send_timeout * 2
}

/// A send to a remote receiver, owned so it can outlive the attempt that started it.
type RemoteSend = futures::future::BoxFuture<'static, SendOutcome>;

/// How a send started: done at once (in-app), or a request to a remote receiver.
enum Started {
    Finished(SendOutcome),
    Remote(RemoteSend),
}

/// The version of a `notifications` queue message.
pub const NOTIFY_MESSAGE_VERSION: u32 = 1;

/// One delivery to make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyMessage {
    pub version: u32,
    pub workspace: WorkspaceId,
    pub channel: ChannelId,
    pub delivery: DeliverySource,
}

/// What the delivery tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "camelCase")]
pub enum DeliverySource {
    /// One event.
    Event { event: Box<Event> },
    /// The events gathered in a digest window (its start, Unix seconds).
    Digest { window: i64 },
    /// A test message an admin asked for.
    Test { id: Uuid },
}

/// What happened to one delivery message (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    AlreadyDone,
    Suppressed,
    Retrying(Duration),
    Waiting(Duration),
    Disabled,
    Poisoned,
    Skipped(&'static str),
}

/// A channel as an admin asks for it (validated and sealed by [`Notifier::create_channel`]).
#[derive(Debug, Clone)]
pub struct ChannelInput {
    pub name: String,
    pub kind: ChannelKind,
    /// Slack and Teams.
    pub webhook_url: Option<SecretString>,
    /// Email.
    pub recipients: Vec<String>,
    /// In-app.
    pub admins_only: bool,
    pub events: Vec<EventClass>,
    pub min_severity: Severity,
    pub cadence: rules::Cadence,
    pub cooldown_hours: u32,
}

pub struct Notifier {
    storage: Storage,
    channels: Arc<dyn ChannelStore>,
    deliveries: Arc<dyn DeliveryStore>,
    inbox: Arc<dyn Inbox>,
    tenancy: Arc<dyn TenancyStore>,
    digests: DigestBuffer,
    webhooks: WebhookClient,
    email: Option<Arc<dyn EmailSender>>,
    keyring: Option<Arc<Keyring>>,
    app_url: Option<String>,
    retry_base: Duration,
    gather: Duration,
    send_timeout: Duration,
}

fn seal_context(workspace: WorkspaceId, id: ChannelId) -> SealContext {
    SealContext::new(workspace.to_string(), format!("channel/{id}/webhook-url"))
}

/// A UUID derived from `text` (the id of a digest or a channel notice), stable across workers.
fn derived_id(text: &str) -> Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn jitter() -> f64 {
    let bytes = Uuid::new_v4().into_bytes();
    f64::from(u16::from_le_bytes([bytes[0], bytes[1]])) / f64::from(u16::MAX)
}

fn is_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.len() <= 254
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

impl Notifier {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Storage,
        channels: Arc<dyn ChannelStore>,
        deliveries: Arc<dyn DeliveryStore>,
        inbox: Arc<dyn Inbox>,
        tenancy: Arc<dyn TenancyStore>,
        webhooks: WebhookClient,
        email: Option<Arc<dyn EmailSender>>,
        keyring: Option<Arc<Keyring>>,
        app_url: Option<String>,
    ) -> Self {
        Self {
            digests: DigestBuffer::new(storage.clone()),
            storage,
            channels,
            deliveries,
            inbox,
            tenancy,
            webhooks,
            email,
            keyring,
            app_url,
            retry_base: rules::BASE_RETRY_DELAY,
            gather: rules::ANOMALY_GATHER,
            send_timeout: SEND_TIMEOUT,
        }
    }

    /// How long a receiver has to answer before the attempt counts as transient (tests shorten it;
    /// capped at [`SEND_TIMEOUT`], which the claim lease is sized for). The webhook client and the
    /// email sender must allow requests [`late_cap`] of it.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout.clamp(Duration::from_millis(100), SEND_TIMEOUT);
        self
    }

    /// How long anomalies are gathered into one digest on instant channels (tests shorten it).
    pub fn with_gather(mut self, gather: Duration) -> Self {
        self.gather = gather.max(Duration::from_secs(1));
        self
    }

    /// The first retry's delay (tests shorten it; production keeps the default).
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    pub fn channels(&self) -> &dyn ChannelStore {
        self.channels.as_ref()
    }

    pub fn deliveries(&self) -> &dyn DeliveryStore {
        self.deliveries.as_ref()
    }

    pub fn inbox(&self) -> &dyn Inbox {
        self.inbox.as_ref()
    }

    // ----------------------------------------------------------------------------------------
    // Channels

    fn seal_url(
        &self,
        workspace: WorkspaceId,
        id: ChannelId,
        kind: ChannelKind,
        raw: &SecretString,
    ) -> Result<SealedUrl> {
        let url = webhook::check_url(raw.expose_secret(), kind, self.webhooks.policy())
            .map_err(|p| Error::InvalidRequest(p.to_string()))?;
        let keyring = self.keyring.as_deref().ok_or(Error::NoKeyring)?;
        let sealed = keyring
            .seal(
                &SecretString::from(url.as_str()),
                &seal_context(workspace, id),
            )
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("sealing a webhook URL")))?;
        Ok(SealedUrl {
            sealed: sealed.to_string(),
            masked: webhook::mask(&url),
        })
    }

    fn open_url(&self, channel: &Channel, sealed: &SealedUrl) -> Result<SecretString> {
        let keyring = self.keyring.as_deref().ok_or(Error::NoKeyring)?;
        let parsed: Sealed = sealed
            .sealed
            .parse()
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("a sealed webhook URL")))?;
        keyring
            .open(&parsed, &seal_context(channel.workspace, channel.id))
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("opening a webhook URL")))
    }

    fn target(
        &self,
        workspace: WorkspaceId,
        id: ChannelId,
        input: &ChannelInput,
    ) -> Result<ChannelTarget> {
        Ok(match input.kind {
            ChannelKind::Slack | ChannelKind::Teams => {
                let raw = input.webhook_url.as_ref().ok_or_else(|| {
                    Error::InvalidRequest("a Slack or Teams channel needs `webhookUrl`".into())
                })?;
                let url = self.seal_url(workspace, id, input.kind, raw)?;
                if input.kind == ChannelKind::Slack {
                    ChannelTarget::Slack { url }
                } else {
                    ChannelTarget::Teams { url }
                }
            }
            ChannelKind::Email => {
                if input.recipients.is_empty() || input.recipients.len() > 50 {
                    return Err(Error::InvalidRequest(
                        "an email channel needs 1 to 50 `recipients`".into(),
                    ));
                }
                if let Some(bad) = input.recipients.iter().position(|r| !is_email(r)) {
                    return Err(Error::InvalidRequest(format!(
                        "recipients[{bad}] is not an email address"
                    )));
                }
                ChannelTarget::Email {
                    recipients: input.recipients.clone(),
                }
            }
            ChannelKind::InApp => ChannelTarget::InApp {
                admins_only: input.admins_only,
            },
        })
    }

    fn validate(input: &ChannelInput) -> Result<()> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::InvalidRequest(
                "`name` must be 1 to 100 characters".into(),
            ));
        }
        if input.events.is_empty() {
            return Err(Error::InvalidRequest(
                "`events` must name at least one event kind".into(),
            ));
        }
        if input.cooldown_hours > rules::MAX_COOLDOWN_HOURS {
            return Err(Error::InvalidRequest(format!(
                "`cooldownHours` must be at most {}",
                rules::MAX_COOLDOWN_HOURS
            )));
        }
        Ok(())
    }

    pub async fn create_channel(
        &self,
        workspace: WorkspaceId,
        input: ChannelInput,
    ) -> Result<Versioned<Channel>> {
        Self::validate(&input)?;
        let id = ChannelId::new();
        let mut events = input.events.clone();
        events.sort();
        events.dedup();
        let channel = Channel {
            id,
            workspace,
            name: input.name.trim().to_owned(),
            target: self.target(workspace, id, &input)?,
            events,
            min_severity: input.min_severity,
            cadence: input.cadence,
            cooldown_hours: input.cooldown_hours,
            enabled: true,
            disabled_reason: None,
            created_at: OffsetDateTime::now_utc(),
        };
        let version = self.channels.create(&channel).await?;
        Ok(Versioned {
            value: channel,
            version,
        })
    }

    /// Replaces a channel's settings. The webhook URL is kept unless a new one is given; the kind
    /// cannot change. Re-enabling clears the reason Sixpence disabled it for.
    pub async fn update_channel(
        &self,
        current: Versioned<Channel>,
        input: ChannelInput,
        enabled: bool,
    ) -> Result<Versioned<Channel>> {
        Self::validate(&input)?;
        let mut channel = current.value;
        if input.kind != channel.target.kind() {
            return Err(Error::InvalidRequest(
                "a channel's kind cannot change; create a new channel".into(),
            ));
        }
        channel.target = match (&channel.target, &input.webhook_url) {
            (ChannelTarget::Slack { .. } | ChannelTarget::Teams { .. }, None) => {
                channel.target.clone()
            }
            _ => self.target(channel.workspace, channel.id, &input)?,
        };
        let mut events = input.events;
        events.sort();
        events.dedup();
        channel.name = input.name.trim().to_owned();
        channel.events = events;
        channel.min_severity = input.min_severity;
        channel.cadence = input.cadence;
        channel.cooldown_hours = input.cooldown_hours;
        if enabled && !channel.enabled {
            channel.disabled_reason = None;
        }
        channel.enabled = enabled;
        let version = self
            .channels
            .update(&channel, Some(&current.version))
            .await?;
        Ok(Versioned {
            value: channel,
            version,
        })
    }

    /// Enqueues a test message to the channel; returns its id (see the delivery log).
    pub async fn send_test(&self, channel: &Channel) -> Result<Uuid> {
        let id = Uuid::new_v4();
        self.enqueue(
            &NotifyMessage {
                version: NOTIFY_MESSAGE_VERSION,
                workspace: channel.workspace,
                channel: channel.id,
                delivery: DeliverySource::Test { id },
            },
            None,
        )
        .await?;
        Ok(id)
    }

    async fn enqueue(&self, message: &NotifyMessage, delay: Option<Duration>) -> Result<()> {
        let text = serde_json::to_string(message).map_err(|e| Error::Internal(e.into()))?;
        self.storage
            .queues()
            .queue(names::NOTIFY_QUEUE)
            .map_err(|e| Error::Storage(e.into()))?
            // Queue delays are whole seconds: round up, so a retry is never seen before it is due.
            .send(
                &text,
                delay.map(|d| {
                    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
                        .min(Duration::from_secs(7 * 86_400 - 60))
                }),
            )
            .await
            .map_err(|e| Error::Storage(e.into()))?;
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Fan-out

    /// One `notifications` message per channel that hears about `event` (or one entry in its
    /// digest). Safe to run twice: the deliveries are deduplicated by their records.
    pub async fn fan_out(&self, event: &Event) -> Result<usize> {
        let channels = self.channels.list(event.workspace).await?;
        let channels: Vec<Channel> = channels.into_iter().map(|c| c.value).collect();
        let now = OffsetDateTime::now_utc();
        let mut fanned = 0;
        for channel in rules::route(event, &channels) {
            if rules::is_digested(channel, event) {
                // An event close to its window's end joins the next one, and the window is read a
                // grace period after it closes, so every event of the window is stored before it
                // is read. (Timing-based: a fan-out stalled longer than margin + grace between
                // computing its window and storing its event would miss the digest; the margin
                // and grace are seconds against a store write of milliseconds.)
                let margin = (self.gather / 8).min(Duration::from_secs(15));
                let grace =
                    (self.gather / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
                let (start, send_at) = rules::digest_window(channel, now + margin, self.gather);
                let window = start.unix_timestamp();
                let scheduled = self.digests.add(channel.id, window, event).await?;
                if scheduled {
                    let delay =
                        Duration::from_millis((send_at - now).whole_milliseconds().max(0) as u64)
                            + grace;
                    self.enqueue(
                        &NotifyMessage {
                            version: NOTIFY_MESSAGE_VERSION,
                            workspace: event.workspace,
                            channel: channel.id,
                            delivery: DeliverySource::Digest { window },
                        },
                        Some(delay),
                    )
                    .await?;
                }
            } else {
                self.enqueue(
                    &NotifyMessage {
                        version: NOTIFY_MESSAGE_VERSION,
                        workspace: event.workspace,
                        channel: channel.id,
                        delivery: DeliverySource::Event {
                            event: Box::new(event.clone()),
                        },
                    },
                    None,
                )
                .await?;
            }
            fanned += 1;
        }
        Ok(fanned)
    }

    // ----------------------------------------------------------------------------------------
    // Delivery

    /// Delivers one message (see the module docs for why this is exactly once in effect).
    pub async fn deliver(&self, message: &NotifyMessage) -> Result<Delivered> {
        let Some(channel) = self
            .channels
            .get(message.workspace, message.channel)
            .await?
        else {
            return Ok(Delivered::Skipped("the channel no longer exists"));
        };
        let channel = channel.value;
        let is_test = matches!(message.delivery, DeliverySource::Test { .. });
        if !channel.enabled && !is_test {
            return Ok(Delivered::Skipped("the channel is disabled"));
        }
        let Some(prepared) = self.prepare(&channel, &message.delivery).await? else {
            return Ok(Delivered::Skipped("nothing to send"));
        };
        let cooldown = match message.delivery {
            DeliverySource::Event { .. } => channel.cooldown(),
            _ => time::Duration::ZERO,
        };
        for _ in 0..5 {
            let now = OffsetDateTime::now_utc();
            let stored = self
                .deliveries
                .get(channel.workspace, channel.id, &prepared.record.key)
                .await?;
            let decision = rules::decide(
                stored.as_ref().map(|s| &s.value),
                &prepared.record,
                cooldown,
                now,
            );
            let guard = stored.as_ref().map(|s| &s.version);
            match decision {
                Decision::Done => return Ok(Delivered::AlreadyDone),
                Decision::Wait(delay) => {
                    let delay = delay.min(rules::MAX_RETRY_DELAY);
                    self.enqueue(message, Some(delay)).await?;
                    return Ok(Delivered::Waiting(delay));
                }
                Decision::Suppress(record) => match self.deliveries.put(&record, guard).await {
                    Ok(_) => return Ok(Delivered::Suppressed),
                    Err(StoreError::Conflict | StoreError::VersionMismatch) => continue,
                    Err(e) => return Err(e.into()),
                },
                Decision::Send(record) => {
                    let claim = match self.deliveries.put(&record, guard).await {
                        Ok(version) => version,
                        Err(StoreError::Conflict | StoreError::VersionMismatch) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    let started = self
                        .send(&channel, &record, &prepared.messages, prepared.at)
                        .await;
                    let remote = match started {
                        Started::Finished(outcome) => {
                            return self.settle(message, &channel, record, claim, outcome).await;
                        }
                        Started::Remote(remote) => remote,
                    };
                    let mut request = tokio::spawn(remote);
                    let outcome = match tokio::time::timeout(self.send_timeout, &mut request).await
                    {
                        Ok(joined) => joined.unwrap_or_else(|_| SendOutcome::Transient {
                            reason: "the send was interrupted".into(),
                            retry_after: None,
                        }),
                        Err(_) => {
                            // Too slow: transient, but the request runs on (see the module docs);
                            // the retry waits until it has finished one way or the other.
                            let late = late_cap(self.send_timeout) - self.send_timeout
                                + Duration::from_secs(1);
                            let outcome = SendOutcome::Transient {
                                reason: format!(
                                    "the receiver did not answer within {} s",
                                    self.send_timeout.as_secs_f64()
                                ),
                                retry_after: Some(late),
                            };
                            let result = self
                                .settle(message, &channel, record.clone(), claim, outcome)
                                .await?;
                            if matches!(result, Delivered::Retrying(_)) {
                                self.watch_late(record, request);
                            }
                            return Ok(result);
                        }
                    };
                    return self.settle(message, &channel, record, claim, outcome).await;
                }
            }
        }
        // Contended five times in a row: let the queue bring it back.
        self.enqueue(message, Some(Duration::from_secs(5))).await?;
        Ok(Delivered::Waiting(Duration::from_secs(5)))
    }

    async fn prepare(
        &self,
        channel: &Channel,
        source: &DeliverySource,
    ) -> Result<Option<Prepared>> {
        let now = OffsetDateTime::now_utc();
        let app_url = self.app_url.as_deref();
        let record = |key: String, event: Uuid, class, severity, summary: String| DeliveryRecord {
            workspace: channel.workspace,
            channel: channel.id,
            channel_kind: channel.target.kind(),
            key,
            event,
            event_class: class,
            severity,
            summary,
            state: DeliveryState::Failed,
            attempts: 0,
            last_error: None,
            last_sent_at: None,
            updated_at: now,
        };
        Ok(Some(match source {
            DeliverySource::Event { event } => {
                if event.workspace != channel.workspace {
                    return Err(Error::InvalidMessage(
                        "the event belongs to another workspace than the channel".into(),
                    ));
                }
                let message = render::message(event, app_url);
                Prepared {
                    record: record(
                        event.dedupe_key.clone(),
                        event.id,
                        Some(EventClass::of(&event.kind)),
                        event.severity,
                        message.title.clone(),
                    ),
                    messages: vec![message],
                    at: event.at,
                }
            }
            DeliverySource::Digest { window } => {
                let events = self
                    .digests
                    .events(channel.workspace, channel.id, *window)
                    .await?;
                if events.is_empty() {
                    return Ok(None);
                }
                let messages: Vec<Message> =
                    events.iter().map(|e| render::message(e, app_url)).collect();
                let key = format!("digest:{window}");
                let classes: Vec<EventClass> =
                    events.iter().map(|e| EventClass::of(&e.kind)).collect();
                let class = classes
                    .first()
                    .copied()
                    .filter(|c| classes.iter().all(|x| x == c));
                Prepared {
                    record: record(
                        key.clone(),
                        derived_id(&format!("{}/{key}", channel.id)),
                        class,
                        render::top_severity(&messages),
                        format!("Digest of {} notification(s)", messages.len()),
                    ),
                    messages,
                    at: OffsetDateTime::from_unix_timestamp(*window).unwrap_or(now),
                }
            }
            DeliverySource::Test { id } => {
                let message = Message {
                    severity: Severity::Info,
                    title: "Sixpence test message".into(),
                    summary: format!(
                        "This channel ({}) is set up: Sixpence notifications will arrive here.",
                        channel.name
                    ),
                    facts: Vec::new(),
                    details: Vec::new(),
                    fix: None,
                    link: None,
                };
                Prepared {
                    record: record(
                        format!("test:{id}"),
                        *id,
                        None,
                        Severity::Info,
                        message.title.clone(),
                    ),
                    messages: vec![message],
                    at: now,
                }
            }
        }))
    }

    /// Marks `record` sent if the request that timed out is accepted late, before its retry.
    fn watch_late(&self, record: DeliveryRecord, request: tokio::task::JoinHandle<SendOutcome>) {
        let deliveries = self.deliveries.clone();
        tokio::spawn(async move {
            if !matches!(request.await, Ok(SendOutcome::Delivered)) {
                return;
            }
            for _ in 0..4 {
                let stored = match deliveries
                    .get(record.workspace, record.channel, &record.key)
                    .await
                {
                    Ok(Some(stored)) => stored,
                    Ok(None) => return,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let current = &stored.value;
                // Only the attempt that timed out, still waiting for its retry.
                if current.event != record.event
                    || current.attempts != record.attempts
                    || !matches!(current.state, DeliveryState::Retrying { .. })
                {
                    return;
                }
                let now = OffsetDateTime::now_utc();
                let mut sent = current.clone();
                sent.state = DeliveryState::Sent { at: now };
                sent.last_sent_at = Some(now);
                sent.last_error = None;
                sent.updated_at = now;
                match deliveries.put(&sent, Some(&stored.version)).await {
                    Ok(_) => {
                        tracing::info!(channel = %record.channel, attempts = record.attempts, "a slow receiver accepted late; the retry is cancelled");
                        return;
                    }
                    Err(StoreError::VersionMismatch | StoreError::Conflict) => continue,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
    }

    async fn send(
        &self,
        channel: &Channel,
        record: &DeliveryRecord,
        messages: &[Message],
        at: OffsetDateTime,
    ) -> Started {
        match &channel.target {
            ChannelTarget::Slack { url } | ChannelTarget::Teams { url } => {
                let raw = match self.open_url(channel, url) {
                    Ok(raw) => raw,
                    Err(err) => {
                        tracing::error!(error = %err, channel = %channel.id, "webhook URL cannot be opened");
                        return Started::Finished(SendOutcome::Transient {
                            reason: "the webhook URL cannot be decrypted".into(),
                            retry_after: None,
                        });
                    }
                };
                let kind = channel.target.kind();
                let body = if kind == ChannelKind::Slack {
                    render::slack(messages)
                } else {
                    render::teams(messages)
                };
                let client = self.webhooks.clone();
                Started::Remote(Box::pin(async move {
                    client.post(raw.expose_secret(), kind, &body).await
                }))
            }
            ChannelTarget::InApp { admins_only } => Started::Finished(
                match self
                    .to_inbox(channel.workspace, *admins_only, record, messages, at)
                    .await
                {
                    Ok(()) => SendOutcome::Delivered,
                    Err(err) => SendOutcome::Transient {
                        reason: format!("in-app notifications could not be stored: {err}"),
                        retry_after: None,
                    },
                },
            ),
            ChannelTarget::Email { recipients } => {
                let Some(sender) = self.email.clone() else {
                    return Started::Finished(SendOutcome::Transient {
                        reason: "email is not configured (SIXPENCE_EMAIL_TRANSPORT)".into(),
                        retry_after: None,
                    });
                };
                let mail = render::email(messages);
                let outgoing = OutgoingEmail {
                    to: recipients.clone(),
                    subject: mail.subject,
                    text: mail.text,
                    html: mail.html,
                    message_id: format!("{}.{}@sixpence", record.event.simple(), channel.id),
                };
                Started::Remote(Box::pin(async move { sender.send(&outgoing).await }))
            }
        }
    }

    async fn to_inbox(
        &self,
        workspace: WorkspaceId,
        admins_only: bool,
        record: &DeliveryRecord,
        messages: &[Message],
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (title, body, link) = render::in_app(messages);
        let members = self.tenancy.members(workspace).await?;
        let notification = InAppNotification {
            // Stable across attempts and workers, so a second insert conflicts instead of copying.
            id: InAppNotification::id_for(at, record.event),
            workspace,
            severity: render::top_severity(messages),
            event_class: record.event_class,
            title,
            body,
            link,
            at,
            read: false,
        };
        for member in members {
            if admins_only && member.value.role < Role::Admin {
                continue;
            }
            self.inbox.add(member.value.user, &notification).await?;
        }
        Ok(())
    }

    /// Records the outcome of a claimed send and acts on it.
    async fn settle(
        &self,
        message: &NotifyMessage,
        channel: &Channel,
        mut record: DeliveryRecord,
        claim: crate::domain::store::Version,
        outcome: SendOutcome,
    ) -> Result<Delivered> {
        let now = OffsetDateTime::now_utc();
        record.updated_at = now;
        let result = match &outcome {
            SendOutcome::Delivered => {
                record.state = DeliveryState::Sent { at: now };
                record.last_sent_at = Some(now);
                record.last_error = None;
                Delivered::Sent
            }
            SendOutcome::Transient {
                reason,
                retry_after,
            } => {
                record.last_error = Some(reason.clone());
                if record.attempts >= MAX_ATTEMPTS {
                    record.state = DeliveryState::Failed;
                    Delivered::Poisoned
                } else {
                    let delay = rules::retry_delay(
                        self.retry_base,
                        record.attempts,
                        *retry_after,
                        jitter(),
                    );
                    record.state = DeliveryState::Retrying {
                        next_at: now + delay,
                    };
                    Delivered::Retrying(delay)
                }
            }
            SendOutcome::Permanent { reason } => {
                record.last_error = Some(reason.clone());
                record.state = DeliveryState::Failed;
                Delivered::Disabled
            }
        };
        // The mark after a send is the one write whose loss could cause a duplicate: retry it a
        // few times before giving up (the claim is ours for CLAIM_LEASE).
        let mut written = false;
        for attempt in 0..4u32 {
            match self.deliveries.put(&record, Some(&claim)).await {
                Ok(_) => {
                    written = true;
                    break;
                }
                Err(StoreError::VersionMismatch | StoreError::Conflict) => {
                    // Our lease was taken over; CLAIM_LEASE > SEND_TIMEOUT makes this unreachable
                    // unless the clock jumped. The successor owns the record now.
                    tracing::warn!(channel = %channel.id, "delivery claim lost before it was settled");
                    break;
                }
                Err(err) => {
                    if attempt == 3 {
                        return Err(err.into());
                    }
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        let _ = written;
        tracing::info!(
            workspace = %channel.workspace,
            channel = %channel.id,
            kind = channel.target.kind().as_str(),
            attempts = record.attempts,
            state = record.state.name(),
            "notification delivery"
        );
        match (&result, &outcome) {
            (Delivered::Retrying(delay), _) => {
                self.enqueue(message, Some(*delay)).await?;
            }
            (Delivered::Poisoned, SendOutcome::Transient { reason, .. }) => {
                self.poison(message, reason).await?;
            }
            (Delivered::Disabled, SendOutcome::Permanent { reason }) => {
                self.disable(channel, reason).await?;
            }
            _ => {}
        }
        Ok(result)
    }

    async fn poison(&self, message: &NotifyMessage, reason: &str) -> Result<()> {
        let queue = self
            .storage
            .queues()
            .queue(names::NOTIFY_POISON_QUEUE)
            .map_err(|e| Error::Storage(e.into()))?;
        queue
            .create_if_not_exists()
            .await
            .map_err(|e| Error::Storage(e.into()))?;
        let text = serde_json::json!({
            "reason": format!("gave up after {MAX_ATTEMPTS} attempts: {reason}"),
            "message": message,
        })
        .to_string();
        queue
            .send(&text, None)
            .await
            .map_err(|e| Error::Storage(e.into()))?;
        tracing::warn!(workspace = %message.workspace, channel = %message.channel, "notification poisoned after the retry budget");
        Ok(())
    }

    /// Disables a channel whose receiver is gone and tells the workspace's admins in the app.
    async fn disable(&self, channel: &Channel, reason: &str) -> Result<()> {
        for _ in 0..3 {
            let Some(current) = self.channels.get(channel.workspace, channel.id).await? else {
                return Ok(());
            };
            if !current.value.enabled {
                return Ok(());
            }
            let mut updated = current.value.clone();
            updated.enabled = false;
            updated.disabled_reason = Some(reason.to_owned());
            match self.channels.update(&updated, Some(&current.version)).await {
                Ok(_) => break,
                Err(StoreError::VersionMismatch) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let now = OffsetDateTime::now_utc();
        let notice = InAppNotification {
            id: InAppNotification::id_for(
                now,
                derived_id(&format!("disabled/{}/{now}", channel.id)),
            ),
            workspace: channel.workspace,
            severity: Severity::Warning,
            event_class: None,
            title: format!("Notification channel {} was disabled", channel.name),
            body: format!(
                "Sixpence stopped sending to this {} channel: {reason}. Fix or replace it, then enable it again.",
                channel.target.kind().as_str()
            ),
            link: self.app_url.as_deref().map(|b| {
                format!(
                    "{}/workspaces/{}/channels/{}",
                    b.trim_end_matches('/'),
                    channel.workspace,
                    channel.id
                )
            }),
            at: now,
            read: false,
        };
        for member in self.tenancy.members(channel.workspace).await? {
            if member.value.role >= Role::Admin {
                self.inbox.add(member.value.user, &notice).await?;
            }
        }
        tracing::warn!(workspace = %channel.workspace, channel = %channel.id, "notification channel disabled");
        Ok(())
    }
}

struct Prepared {
    record: DeliveryRecord,
    messages: Vec<Message>,
    /// When the told thing happened (stable across attempts).
    at: OffsetDateTime,
}

/// Keeps `CLAIM_LEASE` honest: it must outlast a send and the mark after it.
const _: () = assert!(CLAIM_LEASE.as_secs() > SEND_TIMEOUT.as_secs() * 2);
