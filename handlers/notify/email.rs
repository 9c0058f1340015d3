//! Email delivery. The message (plain-text and HTML parts) is rendered by
//! [`render::email`](super::render::email) and built **once** as a MIME `multipart/alternative`
//! message ([`mime`]); an [`EmailSender`] hands those bytes to:
//!
//! - **Microsoft Graph** `sendMail` as the application's own mailbox ([`GraphSender`], production
//!   default): `POST {graph}/v1.0/users/{sender}/sendMail` with `Content-Type: text/plain` and the
//!   MIME message base64-encoded, answered `202 Accepted`. The MIME form rather than the JSON
//!   `message` form because the JSON form carries one body (`Text` *or* `HTML`), and the issue asks
//!   for both parts; MIME also keeps our stable `Message-ID`, so a copy re-sent after a lost answer
//!   is folded by mail clients and Exchange into the first (the JSON form cannot set it). The cost:
//!   Graph keeps MIME-sent mail in the sender's Sent Items (the JSON form's `saveToSentItems: false`
//!   has no MIME equivalent), which for a no-reply application mailbox is a retention matter for the
//!   operator, not a leak (the mailbox is the processor's own).
//! - an **SMTP** server ([`SmtpSender`], the configurable alternative), with the same bytes.
//!
//! # What a failure means
//!
//! | answer | outcome |
//! |---|---|
//! | Graph 2xx / SMTP 250 | delivered |
//! | timeouts, refused connections, TLS failures, Graph 408/429/5xx (with `Retry-After`), SMTP 4xx | transient: retried |
//! | Graph 400 `ErrorInvalidRecipients`, SMTP 550/551/553 (mailbox unavailable, not local, name not allowed) | permanent: the channel's recipients are wrong, so it is disabled and the admins told |
//! | Graph 401/403/404 (no token, no `Mail.Send`, sender mailbox missing), SMTP 530/534/535 (authentication) and any other refusal | transient: Sixpence's own configuration is wrong, not the customer's channel; retried, then poisoned with the reason, and logged as an error for the operator |
//!
//! SMTP gives no stage with an error, so a 550 to `MAIL FROM` (a sender the server refuses) is
//! read as a refused recipient too; operators see it at once in the first test message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use lettre::AsyncTransport as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::domain::notifications::SendOutcome;

/// The scope of an application token for the public cloud's Microsoft Graph.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// Microsoft Graph, unless `SIXPENCE_GRAPH_URL` names another.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// One email to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingEmail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Derived from the delivery, so a re-sent copy carries the same `Message-ID` and mail clients
    /// fold it into the first.
    pub message_id: String,
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends the email; a refused mailbox is [`SendOutcome::Permanent`].
    async fn send(&self, email: &OutgoingEmail) -> SendOutcome;
}

/// The RFC 5322 message: `From` the application's mailbox, `To` the channel's recipients, the
/// stable `Message-ID`, and a `multipart/alternative` body (plain text first, then HTML, so
/// clients that can show HTML do and the rest read the text).
pub fn mime(email: &OutgoingEmail, from: &str) -> Result<lettre::Message, String> {
    let from: Mailbox = from
        .parse()
        .map_err(|_| "the sender address is not a mailbox".to_owned())?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}>", email.message_id)))
        .user_agent("Sixpence-Notifications/1".into());
    for (index, to) in email.to.iter().enumerate() {
        let to: Mailbox = to
            .parse()
            .map_err(|_| format!("recipient {} is not a mailbox", index + 1))?;
        builder = builder.to(to);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| format!("the email could not be built: {e}"))
}

/// The local run's Graph token: the simulated tenant's `sendMail` stand-in (plain http, loopback,
/// development only; see `app::email_sender`) takes any bearer token.
#[derive(Debug)]
pub struct DevelopmentGraphToken;

#[async_trait]
impl azure_core::credentials::TokenCredential for DevelopmentGraphToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        Ok(azure_core::credentials::AccessToken::new(
            "sixpence-development",
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

/// Sends as the application's mailbox through Microsoft Graph.
pub struct GraphSender {
    http: reqwest::Client,
    url: Url,
    from: String,
    /// `{graph}/.default` (a national cloud's Graph has its own audience); the public cloud's for
    /// a loopback stand-in.
    scope: String,
    credential: Arc<dyn azure_core::credentials::TokenCredential>,
}

impl GraphSender {
    /// `base` is Graph's root (`https://graph.microsoft.com`, or a loopback stand-in); `timeout`
    /// bounds one request (the notifier's own, shorter, bound decides when it counts as transient).
    pub fn new(
        base: &Url,
        from: &str,
        credential: Arc<dyn azure_core::credentials::TokenCredential>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("the Graph URL cannot be a base"))?
            .pop_if_empty()
            .extend(["v1.0", "users", from, "sendMail"]);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .user_agent("Sixpence-Notifications/1")
            .build()?;
        let scope = if base.scheme() == "https" {
            format!("{}/.default", base.as_str().trim_end_matches('/'))
        } else {
            GRAPH_SCOPE.to_owned()
        };
        Ok(Self {
            http,
            url,
            from: from.to_owned(),
            scope,
            credential,
        })
    }
}

/// What a Graph answer means (see the module docs).
pub fn classify_graph(status: u16, code: &str, retry_after: Option<Duration>) -> SendOutcome {
    match status {
        200..=299 => SendOutcome::Delivered,
        400 if code.eq_ignore_ascii_case("ErrorInvalidRecipients") => SendOutcome::Permanent {
            reason: "Microsoft Graph refused the recipients (ErrorInvalidRecipients)".into(),
        },
        408 | 429 | 500..=599 => SendOutcome::Transient {
            reason: format!("Microsoft Graph answered {status}"),
            retry_after,
        },
        _ => {
            tracing::error!(
                status,
                code,
                "Microsoft Graph refused to send as the application's mailbox: check MAIL_SENDER, \
                 the Mail.Send permission and the application access policy"
            );
            SendOutcome::Transient {
                reason: if code.is_empty() {
                    format!("Microsoft Graph answered {status}")
                } else {
                    format!("Microsoft Graph answered {status} ({code})")
                },
                retry_after,
            }
        }
    }
}

#[async_trait]
impl EmailSender for GraphSender {
    async fn send(&self, email: &OutgoingEmail) -> SendOutcome {
        let message = match mime(email, &self.from) {
            Ok(message) => message,
            Err(reason) => return SendOutcome::Permanent { reason },
        };
        let token = match self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
        {
            Ok(token) => token,
            Err(err) => {
                tracing::error!(error = %err, "no Microsoft Graph token for sending email");
                return SendOutcome::Transient {
                    reason: "Sixpence could not get a Microsoft Graph token".into(),
                    retry_after: None,
                };
            }
        };
        let body = base64::engine::general_purpose::STANDARD.encode(message.formatted());
        let response = self
            .http
            .post(self.url.clone())
            .bearer_auth(token.token.secret())
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = super::webhook::retry_after(response.headers());
                let text = response.text().await.unwrap_or_default();
                let code = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                classify_graph(status, &code, retry_after)
            }
            Err(err) => SendOutcome::Transient {
                reason: if err.is_timeout() {
                    "Microsoft Graph did not answer in time".into()
                } else if err.is_connect() {
                    "could not connect to Microsoft Graph".into()
                } else {
                    "the request to Microsoft Graph failed".into()
                },
                retry_after: None,
            },
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
    /// `smtp://`: STARTTLS, required (port 587).
    StartTls,
    /// `smtp://…?tls=none`: plain text, only to a loopback server (development).
    None,
}

/// `SMTP_URL` read: where, how secured, and who logs in. Never `Debug`-printed with its password.
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, SecretString)>,
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Parses `SMTP_URL`: `smtps://user:password@host[:465]`, `smtp://user:password@host[:587]`
/// (STARTTLS required) or, for a loopback development server only, `smtp://127.0.0.1:1025?tls=none`.
/// Errors never repeat the URL (it carries a password).
pub fn parse_smtp_url(raw: &str) -> Result<SmtpTarget, String> {
    let url = Url::parse(raw.trim()).map_err(|_| "SMTP_URL is not a URL".to_owned())?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("SMTP_URL has no host")?
        .to_owned();
    let tls_param = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let tls = match (url.scheme(), tls_param.as_deref()) {
        ("smtps", None | Some("implicit")) => SmtpTls::Implicit,
        ("smtp", None | Some("starttls" | "required")) => SmtpTls::StartTls,
        ("smtp", Some("none")) if is_loopback(&host) => SmtpTls::None,
        ("smtp", Some("none")) => {
            return Err("SMTP_URL may use tls=none only to a loopback server".into());
        }
        ("smtp" | "smtps", Some(_)) => {
            return Err("SMTP_URL's tls must be implicit, starttls or none".into());
        }
        _ => return Err("SMTP_URL must be an smtp:// or smtps:// URL".into()),
    };
    let port = url.port().unwrap_or(match tls {
        SmtpTls::Implicit => 465,
        SmtpTls::StartTls => 587,
        SmtpTls::None => 25,
    });
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| "SMTP_URL's user or password is not valid UTF-8".to_owned())
    };
    let credentials = if url.username().is_empty() {
        None
    } else {
        Some((
            decode(url.username())?,
            SecretString::from(decode(url.password().unwrap_or(""))?),
        ))
    };
    Ok(SmtpTarget {
        host,
        port,
        tls,
        credentials,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Sends through an SMTP server.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl SmtpSender {
    pub fn new(url: &SecretString, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let target = parse_smtp_url(url.expose_secret()).map_err(anyhow::Error::msg)?;
        let builder = match target.tls {
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&target.host)
                .map_err(|e| anyhow::anyhow!("SMTP TLS setup failed: {e}"))?,
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&target.host)
                .map_err(|e| anyhow::anyhow!("SMTP TLS setup failed: {e}"))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&target.host),
        };
        let mut builder = builder.port(target.port).timeout(Some(timeout));
        if let Some((user, password)) = target.credentials {
            builder =
                builder.credentials(Credentials::new(user, password.expose_secret().to_owned()));
        }
        Ok(Self {
            transport: builder.build(),
            from: from.to_owned(),
        })
    }
}

/// What an SMTP failure means (see the module docs).
pub fn classify_smtp(err: &lettre::transport::smtp::Error) -> SendOutcome {
    let code: Option<u16> = err.status().and_then(|c| c.to_string().parse().ok());
    match code {
        Some(code @ (550 | 551 | 553)) => SendOutcome::Permanent {
            reason: format!("the mail server refused a recipient ({code})"),
        },
        Some(code) => {
            if code >= 500 {
                tracing::error!(
                    code,
                    "the mail server refused Sixpence's message: check SMTP_URL and MAIL_SENDER"
                );
            }
            SendOutcome::Transient {
                reason: format!("the mail server answered {code}"),
                retry_after: None,
            }
        }
        None => SendOutcome::Transient {
            reason: if err.is_timeout() {
                "the mail server did not answer in time".into()
            } else if err.is_tls() {
                "the TLS handshake with the mail server failed".into()
            } else {
                "could not talk to the mail server".into()
            },
            retry_after: None,
        },
    }
}

#[async_trait]
impl EmailSender for SmtpSender {
    async fn send(&self, email: &OutgoingEmail) -> SendOutcome {
        let message = match mime(email, &self.from) {
            Ok(message) => message,
            Err(reason) => return SendOutcome::Permanent { reason },
        };
        match self.transport.send(message).await {
            Ok(_) => SendOutcome::Delivered,
            Err(err) => classify_smtp(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            to: vec![
                "finops@contoso.example".into(),
                "cfo@contoso.example".into(),
            ],
            subject: "Budget crossed: Production".into(),
            text: "Spend £1,234.56 of £1,000.00".into(),
            html: "<p>Spend <b>£1,234.56</b> of £1,000.00</p>".into(),
            message_id: "abc.def@sixpence".into(),
        }
    }

    #[test]
    fn the_mime_message_has_a_text_and_an_html_part_and_a_stable_id() {
        let bytes = mime(&email(), "alerts@sixpence.example")
            .unwrap()
            .formatted();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("Message-ID: <abc.def@sixpence>"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(text.contains("Content-Type: text/html; charset=utf-8"));
        assert!(text.contains("From: alerts@sixpence.example"));
        assert!(text.contains("finops@contoso.example") && text.contains("cfo@contoso.example"));
        // Plain before HTML: clients show the last part they can render.
        assert!(text.find("text/plain").unwrap() < text.find("text/html").unwrap());
    }

    #[test]
    fn graph_answers_are_classified() {
        assert_eq!(classify_graph(202, "", None), SendOutcome::Delivered);
        assert!(matches!(
            classify_graph(400, "ErrorInvalidRecipients", None),
            SendOutcome::Permanent { .. }
        ));
        assert_eq!(
            classify_graph(429, "", Some(Duration::from_secs(3))),
            SendOutcome::Transient {
                reason: "Microsoft Graph answered 429".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert!(matches!(
            classify_graph(503, "", None),
            SendOutcome::Transient { .. }
        ));
        // Sixpence's own mailbox or permission is wrong: not the channel's fault.
        assert!(matches!(
            classify_graph(404, "ErrorInvalidUser", None),
            SendOutcome::Transient { .. }
        ));
        assert!(matches!(
            classify_graph(403, "ErrorAccessDenied", None),
            SendOutcome::Transient { .. }
        ));
    }

    #[test]
    fn smtp_urls_are_read_and_plain_text_is_only_for_loopback() {
        let t = parse_smtp_url("smtps://mailer:p%40ss@smtp.example.com").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("smtp.example.com", 465, SmtpTls::Implicit)
        );
        let (user, password) = t.credentials.unwrap();
        assert_eq!(
            (user.as_str(), password.expose_secret()),
            ("mailer", "p@ss")
        );
        let t = parse_smtp_url("smtp://smtp.example.com").unwrap();
        assert_eq!((t.port, t.tls), (587, SmtpTls::StartTls));
        assert!(t.credentials.is_none());
        let t = parse_smtp_url("smtp://127.0.0.1:1025?tls=none").unwrap();
        assert_eq!((t.port, t.tls), (1025, SmtpTls::None));
        assert!(parse_smtp_url("smtp://smtp.example.com?tls=none").is_err());
        assert!(parse_smtp_url("http://smtp.example.com").is_err());
        let err = parse_smtp_url("smtp://u:secret@h?tls=bogus").err().unwrap();
        assert!(!err.contains("secret"));
    }
}
