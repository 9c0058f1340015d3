//! Timer triggers: NCRONTAB schedules in UTC, `runOnStartup`, and on-demand firing.
//!
//! NCRONTAB has six fields, `{second} {minute} {hour} {day} {month} {day-of-week}`, with day-of-week
//! 0–6 from Sunday, and (as NCrontab evaluates it) a day must match both the day-of-month and the
//! day-of-week fields. A schedule may also be a TimeSpan (`00:05:00`), meaning "every five minutes".
//!
//! Like the host, a timer never overlaps itself: the next occurrence is computed after the invocation
//! returns, and occurrences missed meanwhile are skipped. A failed invocation is logged and the next
//! occurrence still runs. The schedule monitor is kept in memory: the first firing after start sees
//! `ScheduleStatus: null` (as on a fresh monitor), later ones see `Last`/`Next`/`LastUpdated`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::payload::{self, ScheduleStatus};
use crate::spec::{FunctionSpec, Trigger};
use crate::{Host, app_root};

/// A parsed timer schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<Cron>),
    Interval(Duration),
}

impl Schedule {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.contains(':') {
            let interval = app_root::parse_timespan(text)?;
            if interval.is_zero() {
                return Err(anyhow!("a TimeSpan schedule must be longer than zero"));
            }
            return Ok(Self::Interval(interval));
        }
        if text.split_whitespace().count() != 6 {
            return Err(anyhow!(
                "`{text}` is not a 6-field NCRONTAB expression ({{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}})"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            // NCrontab requires both day fields to match; Vixie cron would accept either.
            .dom_and_dow(true)
            .build()
            .parse(text)
            .map_err(|e| anyhow!("`{text}` is not a valid NCRONTAB expression: {e}"))?;
        Ok(Self::Cron(Box::new(cron)))
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Cron(cron) => cron.find_next_occurrence(&after, false).ok(),
            Self::Interval(interval) => chrono::Duration::from_std(*interval)
                .ok()
                .map(|d| after + d),
        }
    }
}

fn to_time(at: DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.timestamp_nanos_opt().unwrap_or(0)))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Runs `function`'s schedule until the process stops.
pub async fn run(host: Arc<Host>, function: FunctionSpec) {
    let Trigger::Timer {
        schedule,
        run_on_startup,
        ..
    } = &function.trigger
    else {
        return;
    };
    let parsed = match Schedule::parse(schedule) {
        Ok(parsed) => parsed,
        Err(err) => {
            say!("{}: not scheduled: {err:#}", function.name);
            return;
        }
    };
    if *run_on_startup {
        fire(&host, &function, false).await;
    }
    let mut after = Utc::now();
    loop {
        let Some(next) = parsed.next_after(after) else {
            say!(
                "{}: the schedule `{schedule}` has no further occurrence",
                function.name
            );
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        fire(&host, &function, false).await;
        after = next.max(Utc::now());
    }
}

/// Invokes a timer function once (scheduled or on demand) and updates its schedule status.
pub async fn fire(host: &Host, function: &FunctionSpec, is_past_due: bool) {
    let Trigger::Timer {
        binding, schedule, ..
    } = &function.trigger
    else {
        return;
    };
    let status = host
        .timer_status
        .lock()
        .ok()
        .and_then(|map| map.get(&function.name).copied());
    let invocation_id = Uuid::new_v4();
    let now = OffsetDateTime::now_utc();
    let envelope = payload::timer_envelope(
        binding,
        status,
        is_past_due,
        &function.name,
        now,
        Uuid::new_v4(),
    );
    let succeeded = match host
        .invoker
        .invoke(&function.name, invocation_id, &envelope)
        .await
    {
        Ok(_) => {
            say!(
                "{} ({invocation_id}): timer fired, succeeded",
                function.name
            );
            true
        }
        Err(err) => {
            // The next occurrence still runs, as on the host.
            say!(
                "{} ({invocation_id}): timer fired, failed: {err}",
                function.name
            );
            false
        }
    };
    host.emit(crate::Event::TimerFired {
        function: function.name.clone(),
        succeeded,
    });
    let next = Schedule::parse(schedule)
        .ok()
        .and_then(|s| s.next_after(Utc::now()))
        .map(to_time);
    if let (Some(next), Ok(mut map)) = (next, host.timer_status.lock()) {
        let updated = OffsetDateTime::now_utc();
        map.insert(
            function.name.clone(),
            ScheduleStatus {
                last: now,
                next,
                last_updated: updated,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike as _, TimeZone as _, Weekday};

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s)
            .single()
            .expect("valid date")
    }

    #[test]
    fn day_of_week_zero_is_sunday() {
        // 2026-01-03 is a Saturday.
        let saturday = at(2026, 1, 3, 12, 0, 0);
        assert_eq!(saturday.weekday(), Weekday::Sat);
        let sunday = Schedule::parse("0 0 9 * * 0")
            .unwrap()
            .next_after(saturday)
            .unwrap();
        assert_eq!(sunday, at(2026, 1, 4, 9, 0, 0));
        assert_eq!(sunday.weekday(), Weekday::Sun);
        let monday = Schedule::parse("0 0 9 * * 1")
            .unwrap()
            .next_after(saturday)
            .unwrap();
        assert_eq!(monday.weekday(), Weekday::Mon);
        let friday = Schedule::parse("0 0 9 * * 5")
            .unwrap()
            .next_after(saturday)
            .unwrap();
        assert_eq!(friday.weekday(), Weekday::Fri);
        let saturday_again = Schedule::parse("0 0 9 * * 6")
            .unwrap()
            .next_after(saturday)
            .unwrap();
        assert_eq!(saturday_again, at(2026, 1, 10, 9, 0, 0));
    }

    #[test]
    fn six_fields_with_seconds() {
        let start = at(2026, 5, 1, 10, 0, 0);
        let every_second = Schedule::parse("*/1 * * * * *").unwrap();
        assert_eq!(
            every_second.next_after(start),
            Some(at(2026, 5, 1, 10, 0, 1))
        );
        let five_minutes = Schedule::parse("0 */5 * * * *").unwrap();
        assert_eq!(
            five_minutes.next_after(start),
            Some(at(2026, 5, 1, 10, 5, 0))
        );
        let nightly = Schedule::parse("0 30 2 * * *").unwrap();
        assert_eq!(nightly.next_after(start), Some(at(2026, 5, 2, 2, 30, 0)));
        // Five fields is classic cron, not NCRONTAB: refused rather than misread.
        assert!(Schedule::parse("*/5 * * * *").is_err());
        assert!(Schedule::parse("0 0 25 * * *").is_err());
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        // The 13th that is a Friday: 2026-02-13 and then 2026-03-13.
        let friday_13th = Schedule::parse("0 0 0 13 * 5").unwrap();
        let first = friday_13th.next_after(at(2026, 1, 1, 0, 0, 0)).unwrap();
        assert_eq!(first, at(2026, 2, 13, 0, 0, 0));
        let second = friday_13th.next_after(first).unwrap();
        assert_eq!(second, at(2026, 3, 13, 0, 0, 0));
    }

    #[test]
    fn timespan_schedules_are_intervals() {
        let every_five = Schedule::parse("00:05:00").unwrap();
        let start = at(2026, 5, 1, 10, 0, 7);
        assert_eq!(every_five.next_after(start), Some(at(2026, 5, 1, 10, 5, 7)));
        assert!(Schedule::parse("00:00:00").is_err());
    }
}
