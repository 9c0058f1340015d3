//! Webhook URLs are chosen by customers, so posting to one is a server-side request on a stranger's
//! behalf. The rules (checked when a channel is saved **and** on every send):
//!
//! - `https` only, no user info, and only the services' own hosts: `hooks.slack.com` for Slack;
//!   `*.webhook.office.com`, `*.logic.azure.com`, `*.powerplatform.com` and
//!   `*.powerautomate.com` for Teams (Workflows and the retiring incoming webhooks), plus whatever
//!   suffixes the operator lists in `SIXPENCE_WEBHOOK_EXTRA_HOSTS`;
//! - no redirect is followed (a 3xx is a permanent failure);
//! - the name is resolved by [`GuardedResolver`], which refuses any address that is loopback,
//!   private, link-local (which includes the instance metadata endpoint 169.254.169.254),
//!   carrier-grade NAT, unique-local, multicast, unspecified, or Azure's platform address
//!   168.63.129.16, so a public name pointing at an internal address (DNS rebinding) is refused at
//!   connect time, not only at save time;
//! - no proxy from the environment is used.
//!
//! The development allowance (`SIXPENCE_WEBHOOK_ALLOW_LOOPBACK`, refused in production) lets
//! `http://127.0.0.1:<port>/…` receivers stand in for Slack and Teams in the local run and tests;
//! it allows loopback and nothing else.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use crate::domain::notifications::{ChannelKind, SEND_TIMEOUT, SendOutcome, classify_status};

const SLACK_HOSTS: &[&str] = &["hooks.slack.com"];
const TEAMS_SUFFIXES: &[&str] = &[
    ".webhook.office.com",
    ".logic.azure.com",
    ".powerplatform.com",
    ".powerautomate.com",
];

/// What the operator allows beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Extra allowed hosts: `example.com` (exactly) or `.example.com` (any subdomain).
    pub extra_hosts: Vec<String>,
    /// Development only: `http(s)://127.0.0.1|localhost|[::1]` receivers are allowed.
    pub allow_loopback: bool,
}

/// Why a webhook URL is refused (safe to show: it never repeats the URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("the webhook URL is not a valid URL")]
    Invalid,
    #[error("the webhook URL must use https")]
    NotHttps,
    #[error("the webhook URL must not carry a user name or password")]
    UserInfo,
    #[error("the webhook URL's host is not a {0} webhook host")]
    HostNotAllowed(&'static str),
}

fn host_matches(host: &str, pattern: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix('.') {
        host.len() > suffix.len() + 1
            && host.ends_with(pattern)
            && !host[..host.len() - pattern.len()].is_empty()
    } else {
        host == pattern
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks a webhook URL for a channel of `kind` against `policy`.
pub fn check_url(raw: &str, kind: ChannelKind, policy: &WebhookPolicy) -> Result<Url, UrlProblem> {
    let url = Url::parse(raw.trim()).map_err(|_| UrlProblem::Invalid)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::UserInfo);
    }
    if policy.allow_loopback && is_loopback_host(&url) && matches!(url.scheme(), "http" | "https") {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(UrlProblem::NotHttps);
    }
    let service = match kind {
        ChannelKind::Slack => "Slack",
        _ => "Teams",
    };
    let Some(url::Host::Domain(host)) = url.host() else {
        return Err(UrlProblem::HostNotAllowed(service));
    };
    let host = host.to_ascii_lowercase();
    let defaults: Vec<&str> = match kind {
        ChannelKind::Slack => SLACK_HOSTS.to_vec(),
        ChannelKind::Teams => TEAMS_SUFFIXES.to_vec(),
        _ => Vec::new(),
    };
    let allowed = defaults
        .iter()
        .copied()
        .chain(policy.extra_hosts.iter().map(String::as_str))
        .any(|pattern| host_matches(&host, &pattern.to_ascii_lowercase()));
    if !allowed {
        return Err(UrlProblem::HostNotAllowed(service));
    }
    Ok(url)
}

/// The masked form of a webhook URL, the only form ever shown back: scheme, host and the last
/// four characters (`https://hooks.slack.com/…wxyz`).
pub fn mask(url: &Url) -> String {
    let tail: String = {
        let s = url.as_str().trim_end_matches('/');
        let chars: Vec<char> = s.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    };
    format!(
        "{}://{}/…{tail}",
        url.scheme(),
        url.host_str().unwrap_or("")
    )
}

/// Whether Sixpence may connect to `ip` (with loopback only under the development allowance).
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_allowed(v4, allow_loopback);
            }
            if v6.is_loopback() {
                return allow_loopback;
            }
            let seg = v6.segments();
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] == 0x64 && seg[1] == 0xff9b) // NAT64 (could reach an internal v4)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)) // documentation
        }
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    let o = ip.octets();
    !(ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254 (instance metadata)
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || o[0] >= 240
        || ip == Ipv4Addr::new(168, 63, 129, 16)) // Azure platform (WireServer)
}

/// Resolves names with the system resolver and keeps only addresses [`address_allowed`] accepts;
/// a name with none left fails to connect.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| address_allowed(a.ip(), allow_loopback))
                .collect();
            if resolved.is_empty() {
                return Err(
                    "the webhook host resolves only to addresses Sixpence may not reach".into(),
                );
            }
            let addrs: Addrs = Box::new(resolved.into_iter());
            Ok(addrs)
        })
    }
}

/// Posts JSON to webhooks under the rules above.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: Arc<WebhookPolicy>,
}

impl WebhookClient {
    pub fn new(policy: WebhookPolicy) -> anyhow::Result<Self> {
        Self::with_timeout(policy, super::late_cap(SEND_TIMEOUT))
    }

    /// `timeout` bounds one request; the notifier counts a receiver silent for its send timeout as
    /// transient and lets the request run on to this bound (see `notify`'s docs).
    pub fn with_timeout(policy: WebhookPolicy, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver {
                allow_loopback: policy.allow_loopback,
            })
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .user_agent("Sixpence-Notifications/1")
            .build()?;
        Ok(Self {
            http,
            policy: Arc::new(policy),
        })
    }

    pub fn policy(&self) -> &WebhookPolicy {
        &self.policy
    }

    /// Posts `body` to `raw_url` (checked again: the rules may have tightened since it was saved).
    /// Errors never include the URL.
    pub async fn post(
        &self,
        raw_url: &str,
        kind: ChannelKind,
        body: &serde_json::Value,
    ) -> SendOutcome {
        let url = match check_url(raw_url, kind, &self.policy) {
            Ok(url) => url,
            Err(problem) => {
                return SendOutcome::Permanent {
                    reason: problem.to_string(),
                };
            }
        };
        // An IP literal never reaches the resolver: check it here.
        if let Some(ip) = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        } && !address_allowed(ip, self.policy.allow_loopback)
        {
            return SendOutcome::Permanent {
                reason: "the webhook address is not one Sixpence may reach".into(),
            };
        }
        match self.http.post(url).json(body).send().await {
            Ok(response) => {
                let retry_after = retry_after(response.headers());
                let status = response.status().as_u16();
                // Read (and drop) the body so the connection can be reused.
                let text = response.text().await.unwrap_or_default();
                match classify_status(status, retry_after) {
                    // Slack answers 200 with a body naming the problem for some payload errors;
                    // a 2xx is a delivery whatever the body says, but log its first words.
                    SendOutcome::Delivered => SendOutcome::Delivered,
                    other => {
                        tracing::debug!(status, body = %text.chars().take(80).collect::<String>(), "webhook refused");
                        other
                    }
                }
            }
            Err(err) => SendOutcome::Transient {
                reason: describe(&err),
                retry_after: None,
            },
        }
    }
}

/// A transport error, described without its URL.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "the receiver did not answer in time".into()
    } else if err.is_connect() {
        "could not connect to the receiver".into()
    } else {
        "the request to the receiver failed".into()
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    at.duration_since(std::time::SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> WebhookPolicy {
        WebhookPolicy::default()
    }

    #[test]
    fn only_the_services_own_https_hosts_are_allowed() {
        let slack = "https://hooks.slack.com/services/T0/B0/XXXX";
        assert!(check_url(slack, ChannelKind::Slack, &policy()).is_ok());
        assert_eq!(
            check_url(
                "http://hooks.slack.com/services/T0/B0/X",
                ChannelKind::Slack,
                &policy()
            ),
            Err(UrlProblem::NotHttps)
        );
        assert!(matches!(
            check_url(
                "https://hooks.slack.com.evil.example/x",
                ChannelKind::Slack,
                &policy()
            ),
            Err(UrlProblem::HostNotAllowed(_))
        ));
        assert!(matches!(
            check_url(
                "https://user:pw@hooks.slack.com/x",
                ChannelKind::Slack,
                &policy()
            ),
            Err(UrlProblem::UserInfo)
        ));
        assert!(
            check_url(
                "https://prod-12.uksouth.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=x",
                ChannelKind::Teams,
                &policy()
            )
            .is_ok()
        );
        assert!(
            check_url(
                "https://contoso.webhook.office.com/webhookb2/x",
                ChannelKind::Teams,
                &policy()
            )
            .is_ok()
        );
        assert!(
            check_url(
                "https://webhook.office.com/x",
                ChannelKind::Teams,
                &policy()
            )
            .is_err()
        );
        assert!(check_url("https://hooks.slack.com/x", ChannelKind::Teams, &policy()).is_err());
        assert!(check_url("https://169.254.169.254/x", ChannelKind::Teams, &policy()).is_err());
        assert!(check_url("http://127.0.0.1:9/x", ChannelKind::Slack, &policy()).is_err());
        let extra = WebhookPolicy {
            extra_hosts: vec![".hooks.example.com".into()],
            allow_loopback: false,
        };
        assert!(check_url("https://a.hooks.example.com/x", ChannelKind::Slack, &extra).is_ok());
        let dev = WebhookPolicy {
            extra_hosts: vec![],
            allow_loopback: true,
        };
        assert!(check_url("http://127.0.0.1:9/x", ChannelKind::Slack, &dev).is_ok());
        assert!(check_url("http://10.0.0.1:9/x", ChannelKind::Slack, &dev).is_err());
    }

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "168.63.129.16",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!address_allowed(ip.parse().unwrap(), false), "{ip}");
        }
        for ip in ["52.96.0.1", "13.107.6.152", "2603:1020::1"] {
            assert!(address_allowed(ip.parse().unwrap(), false), "{ip}");
        }
        assert!(address_allowed("127.0.0.1".parse().unwrap(), true));
        assert!(!address_allowed("10.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn masks_show_host_and_tail_only() {
        let url = Url::parse("https://hooks.slack.com/services/T0/B0/abcdefgh1234").unwrap();
        assert_eq!(mask(&url), "https://hooks.slack.com/…1234");
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
