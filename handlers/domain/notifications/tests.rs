use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::domain::events::{Event, EventKind, RoleEvent, Severity, SyncEvent};
use crate::domain::tenancy::WorkspaceId;

const NOW: OffsetDateTime = datetime!(2026-11-23 10:00:00 UTC);

fn channel(workspace: WorkspaceId, events: &[EventClass], min: Severity) -> Channel {
    Channel {
        id: ChannelId::new(),
        workspace,
        name: "ops".into(),
        target: ChannelTarget::InApp { admins_only: false },
        events: events.to_vec(),
        min_severity: min,
        cadence: Cadence::Instant,
        cooldown_hours: DEFAULT_COOLDOWN_HOURS,
        enabled: true,
        disabled_reason: None,
        created_at: NOW,
    }
}

fn sync_event(workspace: WorkspaceId, severity: Severity) -> Event {
    let sync = SyncEvent {
        connection: Uuid::new_v4(),
        subscription: "sub-1".into(),
        run: Uuid::new_v4(),
        reason: "accessRevoked".into(),
        message: "Access was revoked".into(),
    };
    Event::new(
        workspace,
        NOW,
        severity,
        sync.dedupe_key(),
        EventKind::Sync(sync),
    )
}

fn record(event: Uuid, state: DeliveryState, attempts: u32) -> DeliveryRecord {
    DeliveryRecord {
        workspace: WorkspaceId::new(),
        channel: ChannelId::new(),
        channel_kind: ChannelKind::Slack,
        key: "sync-failed:sub-1:accessRevoked".into(),
        event,
        event_class: Some(EventClass::Sync),
        severity: Severity::Critical,
        summary: "s".into(),
        state,
        attempts,
        last_error: None,
        last_sent_at: None,
        updated_at: NOW,
    }
}

#[test]
fn routing_follows_kinds_severity_and_enabled() {
    let ws = WorkspaceId::new();
    let mut off = channel(ws, &[EventClass::Sync], Severity::Info);
    off.enabled = false;
    let channels = vec![
        channel(ws, &[EventClass::Sync], Severity::Warning),
        channel(ws, &[EventClass::Role], Severity::Info),
        channel(
            ws,
            &[EventClass::Sync, EventClass::Role],
            Severity::Critical,
        ),
        off,
        channel(WorkspaceId::new(), &[EventClass::Sync], Severity::Info),
    ];
    let warning = sync_event(ws, Severity::Warning);
    let routed: Vec<_> = route(&warning, &channels).iter().map(|c| c.id).collect();
    assert_eq!(routed, vec![channels[0].id]);
    let critical = sync_event(ws, Severity::Critical);
    let routed: Vec<_> = route(&critical, &channels).iter().map(|c| c.id).collect();
    assert_eq!(routed, vec![channels[0].id, channels[2].id]);
}

#[test]
fn anomalies_and_daily_channels_are_digested() {
    let ws = WorkspaceId::new();
    let mut c = channel(ws, &EventClass::ALL, Severity::Info);
    c.target = ChannelTarget::Email {
        recipients: vec!["a@example.com".into()],
    };
    let e = sync_event(ws, Severity::Warning);
    assert!(!is_digested(&c, &e));
    c.cadence = Cadence::DailyDigest;
    assert!(is_digested(&c, &e));
    let (start, send) = digest_window(&c, NOW, ANOMALY_GATHER);
    assert_eq!(start, datetime!(2026-11-23 00:00:00 UTC));
    assert_eq!(send, datetime!(2026-11-24 08:00:00 UTC));
    c.cadence = Cadence::Instant;
    let (start, send) = digest_window(&c, datetime!(2026-11-23 10:03:10 UTC), ANOMALY_GATHER);
    assert_eq!(start, datetime!(2026-11-23 10:02:00 UTC));
    assert_eq!(send, datetime!(2026-11-23 10:04:00 UTC));
}

#[test]
fn statuses_are_classified() {
    assert_eq!(classify_status(200, None), SendOutcome::Delivered);
    assert_eq!(classify_status(202, None), SendOutcome::Delivered);
    assert!(matches!(
        classify_status(429, Some(Duration::from_secs(7))),
        SendOutcome::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(7)
    ));
    assert!(matches!(
        classify_status(503, None),
        SendOutcome::Transient { .. }
    ));
    assert!(matches!(
        classify_status(410, None),
        SendOutcome::Permanent { .. }
    ));
    assert!(matches!(
        classify_status(404, None),
        SendOutcome::Permanent { .. }
    ));
    assert!(matches!(
        classify_status(302, None),
        SendOutcome::Permanent { .. }
    ));
    assert!(matches!(
        classify_status(400, None),
        SendOutcome::Permanent { .. }
    ));
}

#[test]
fn back_off_grows_with_jitter_and_honours_retry_after() {
    let first = retry_delay(BASE_RETRY_DELAY, 1, None, 0.0);
    assert_eq!(first, BASE_RETRY_DELAY / 2);
    assert_eq!(
        retry_delay(BASE_RETRY_DELAY, 1, None, 1.0),
        BASE_RETRY_DELAY
    );
    assert_eq!(
        retry_delay(BASE_RETRY_DELAY, 3, None, 1.0),
        BASE_RETRY_DELAY * 4
    );
    assert_eq!(
        retry_delay(BASE_RETRY_DELAY, 40, None, 1.0),
        MAX_RETRY_DELAY
    );
    assert_eq!(
        retry_delay(BASE_RETRY_DELAY, 1, Some(Duration::from_secs(30)), 0.0),
        Duration::from_secs(30)
    );
    // A receiver cannot park a delivery for a day.
    assert_eq!(
        retry_delay(BASE_RETRY_DELAY, 1, Some(Duration::from_secs(86_400)), 0.0),
        MAX_RETRY_DELAY
    );
}

#[test]
fn first_delivery_claims_and_a_redelivery_is_done() {
    let event = Uuid::new_v4();
    let fresh = record(event, DeliveryState::Failed, 0);
    let Decision::Send(claimed) = decide(None, &fresh, time::Duration::hours(72), NOW) else {
        panic!("claims");
    };
    assert_eq!(claimed.attempts, 1);
    assert_eq!(
        claimed.state,
        DeliveryState::Sending {
            lease_until: NOW + CLAIM_LEASE
        }
    );
    let sent = record(event, DeliveryState::Sent { at: NOW }, 1);
    assert_eq!(
        decide(Some(&sent), &fresh, time::Duration::hours(72), NOW),
        Decision::Done
    );
}

#[test]
fn a_live_claim_waits_and_an_expired_one_is_taken_over() {
    let event = Uuid::new_v4();
    let fresh = record(event, DeliveryState::Failed, 0);
    let live = record(
        event,
        DeliveryState::Sending {
            lease_until: NOW + time::Duration::seconds(30),
        },
        1,
    );
    assert!(matches!(
        decide(Some(&live), &fresh, time::Duration::hours(72), NOW),
        Decision::Wait(d) if d >= Duration::from_secs(30)
    ));
    let expired = record(
        event,
        DeliveryState::Sending {
            lease_until: NOW - time::Duration::seconds(1),
        },
        1,
    );
    assert!(matches!(
        decide(Some(&expired), &fresh, time::Duration::hours(72), NOW),
        Decision::Send(r) if r.attempts == 2
    ));
    let due = record(event, DeliveryState::Retrying { next_at: NOW }, 3);
    assert!(matches!(
        decide(Some(&due), &fresh, time::Duration::hours(72), NOW),
        Decision::Send(r) if r.attempts == 4
    ));
}

#[test]
fn the_same_fact_within_the_cool_down_is_suppressed() {
    let told = record(
        Uuid::new_v4(),
        DeliveryState::Sent {
            at: NOW - time::Duration::hours(10),
        },
        1,
    );
    let again = record(Uuid::new_v4(), DeliveryState::Failed, 0);
    assert!(matches!(
        decide(Some(&told), &again, time::Duration::hours(72), NOW),
        Decision::Suppress(r) if r.state == DeliveryState::Suppressed
    ));
    // After the cool-down it is told again, as a new delivery.
    assert!(matches!(
        decide(Some(&told), &again, time::Duration::hours(8), NOW),
        Decision::Send(r) if r.attempts == 1 && r.event == again.event
    ));
    // A suppressed record keeps the time it was last told, so suppression does not extend it.
    let Decision::Suppress(suppressed) =
        decide(Some(&told), &again, time::Duration::hours(72), NOW)
    else {
        panic!("suppressed");
    };
    let third = record(Uuid::new_v4(), DeliveryState::Failed, 0);
    assert!(matches!(
        decide(
            Some(&suppressed),
            &third,
            time::Duration::hours(72),
            NOW + time::Duration::hours(63)
        ),
        Decision::Send(_)
    ));
}

#[test]
fn in_app_ids_sort_newest_first_and_are_stable() {
    let source = Uuid::new_v4();
    let older = InAppNotification::id_for(NOW, source);
    let newer = InAppNotification::id_for(NOW + time::Duration::seconds(1), source);
    assert!(newer < older);
    assert_eq!(older, InAppNotification::id_for(NOW, source));
}

#[test]
fn role_events_route_by_class() {
    let ws = WorkspaceId::new();
    let c = channel(ws, &[EventClass::Role], Severity::Info);
    let event = Event::new(
        ws,
        NOW,
        Severity::Critical,
        "k".into(),
        EventKind::Role(RoleEvent::SecretExpiring {
            connection: Uuid::new_v4(),
            connection_name: "prod".into(),
            expires_on: time::macros::date!(2026 - 12 - 01),
            days_left: 7,
        }),
    );
    assert!(c.wants(&event));
}
