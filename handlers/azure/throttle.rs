//! Reading Azure's throttling headers, and the retry policy built on them.
//!
//! On 429 and 503 we wait for the **largest** of `Retry-After` and every `x-ms-ratelimit-*-retry-after`
//! header (Cost Management sends several: `-qpu-`, `-entity-`, `-tenant-`, `-clienttype-`; Consumption
//! sends its own), plus jitter. Other 5xx and connection errors back off exponentially with jitter.
//! Both are bounded by [`RetryOptions`]: a number of attempts and a total time spent waiting.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The Cost Management QPU headers.
pub const QPU_REMAINING: &str = "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining";
pub const QPU_CONSUMED: &str = "x-ms-ratelimit-microsoft.costmanagement-qpu-consumed";

/// Bounds on retrying one call.
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// The most time one call may spend waiting between attempts (throttling and back-off together).
    /// A `Retry-After` that would overrun it is not waited for: the call fails with
    /// [`AzureError::Throttled`](super::AzureError::Throttled) at once, so the caller can reschedule.
    pub max_total_wait: Duration,
    /// First back-off after a 5xx or a connection error; doubled each time.
    pub base_delay: Duration,
    /// Cap of one exponential back-off step.
    pub max_delay: Duration,
    /// Random extra added to every wait, so callers throttled together do not retry together.
    pub max_jitter: Duration,
    /// Wait used for a 429/503 that carries no retry header at all.
    pub default_throttle_wait: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_total_wait: Duration::from_secs(120),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_jitter: Duration::from_secs(1),
            default_throttle_wait: Duration::from_secs(10),
        }
    }
}

impl RetryOptions {
    /// The exponential back-off before attempt `attempt + 1` (attempt counts from 1), without jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// The largest wait any throttling header asks for: `Retry-After` (seconds, or an HTTP date) and every
/// `x-ms-ratelimit-*retry-after` header (seconds). `None` when there is no readable one.
pub fn largest_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let mut largest: Option<Duration> = None;
    for (name, value) in headers {
        let name = name.as_str();
        let is_retry_header = name == "retry-after"
            || (name.starts_with("x-ms-ratelimit-") && name.ends_with("retry-after"))
            || name == "retry-after-ms"
            || name == "x-ms-retry-after-ms";
        if !is_retry_header {
            continue;
        }
        let Ok(text) = value.to_str() else { continue };
        let parsed = if name.ends_with("-ms") {
            text.trim().parse::<u64>().ok().map(Duration::from_millis)
        } else {
            parse_seconds(text)
        };
        if let Some(wait) = parsed {
            largest = Some(largest.map_or(wait, |l| l.max(wait)));
        }
    }
    largest
}

/// Seconds as an integer or decimal, or an HTTP date (`Retry-After` allows both).
fn parse_seconds(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let when =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc2822).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// One quota from `x-ms-ratelimit-microsoft.costmanagement-qpu-remaining`.
#[derive(Debug, Clone, PartialEq)]
pub struct QpuQuota {
    /// The quota's name as sent (e.g. `QueriesPerMin`), if it had one.
    pub name: Option<String>,
    /// The window the quota applies to, inferred from the name.
    pub window: Duration,
    /// QPU left in that window.
    pub remaining: f64,
}

/// Parses the QPU-remaining header.
///
/// The documentation only says it is "a list of remaining quotas"; it shows no example. Observed
/// values look like `QueriesPerHour:577,QueriesPerMin:59`, so we read a list separated by `,` or `;`
/// of `name:value` or `name=value` items, or a bare number. The window comes from the name (`hour` →
/// 1 h, `min` → 1 min, anything else → 10 s, the shortest documented window, which is the safe
/// guess). Unreadable items are skipped.
pub fn parse_qpu_remaining(text: &str) -> Vec<QpuQuota> {
    text.split([',', ';'])
        .filter_map(|item| {
            let item = item.trim();
            if item.is_empty() {
                return None;
            }
            let (name, value) = match item.split_once([':', '=']) {
                Some((name, value)) => (Some(name.trim().to_owned()), value.trim()),
                None => (None, item),
            };
            let remaining = value.parse::<f64>().ok().filter(|v| v.is_finite())?;
            Some(QpuQuota {
                window: window_of(name.as_deref()),
                name,
                remaining,
            })
        })
        .collect()
}

fn window_of(name: Option<&str>) -> Duration {
    let lower = name.unwrap_or_default().to_ascii_lowercase();
    if lower.contains("hour") {
        Duration::from_secs(3600)
    } else if lower.contains("min") {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    }
}

/// The QPU a call consumed, from `x-ms-ratelimit-microsoft.costmanagement-qpu-consumed`.
pub fn qpu_consumed(headers: &HeaderMap) -> Option<f64> {
    headers
        .get(QPU_CONSUMED)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_largest_retry_header_wins() {
        let map = headers(&[
            ("Retry-After", "5"),
            (
                "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after",
                "30",
            ),
            (
                "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after",
                "12",
            ),
            (
                "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after",
                "45",
            ),
            (
                "x-ms-ratelimit-microsoft.costmanagement-clienttype-retry-after",
                "7",
            ),
            (
                "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining",
                "QueriesPerHour:0",
            ),
        ]);
        assert_eq!(largest_retry_after(&map), Some(Duration::from_secs(45)));
    }

    #[test]
    fn retry_headers_accept_decimals_and_ignore_garbage() {
        let map = headers(&[
            ("Retry-After", "soon"),
            ("x-ms-ratelimit-microsoft.consumption-retry-after", "2.5"),
        ]);
        assert_eq!(largest_retry_after(&map), Some(Duration::from_millis(2500)));
        assert_eq!(largest_retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_may_be_an_http_date() {
        let past = headers(&[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(largest_retry_after(&past), Some(Duration::ZERO));
        let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let wait = largest_retry_after(&headers(&[("Retry-After", &future)])).unwrap();
        assert!(wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600));
    }

    #[test]
    fn qpu_remaining_is_read_as_a_list_of_quotas() {
        let quotas = parse_qpu_remaining("QueriesPerHour:577,QueriesPerMin:59");
        assert_eq!(
            quotas,
            vec![
                QpuQuota {
                    name: Some("QueriesPerHour".into()),
                    window: Duration::from_secs(3600),
                    remaining: 577.0
                },
                QpuQuota {
                    name: Some("QueriesPerMin".into()),
                    window: Duration::from_secs(60),
                    remaining: 59.0
                },
            ]
        );
        let other = parse_qpu_remaining(" QueriesPer10Sec=3 ; junk:x; 11");
        assert_eq!(other.len(), 2);
        assert_eq!(other[0].window, Duration::from_secs(10));
        assert_eq!(other[0].remaining, 3.0);
        assert_eq!(other[1].name, None);
        assert_eq!(other[1].remaining, 11.0);
        assert!(parse_qpu_remaining("").is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let options = RetryOptions {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5),
            ..RetryOptions::default()
        };
        let steps: Vec<u64> = (1..=5).map(|a| options.backoff(a).as_secs()).collect();
        assert_eq!(steps, vec![1, 2, 4, 5, 5]);
    }
}
