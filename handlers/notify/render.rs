//! Messages made for their medium: one [`Message`] per event (what to say), rendered as Slack
//! Block Kit, a Teams Adaptive Card (the Workflows / incoming-webhook `message` envelope), an email
//! with a plain-text and an HTML part, or an in-app notification.
//!
//! A digest is several messages told as one: the renderers take a slice.

use serde_json::{Value, json};
use time::Date;

use crate::domain::costs::Micros;
use crate::domain::events::{
    AnomalyEvent, AnomalyStatus, BillingEvent, BudgetBasis, BudgetEvent, Event, EventKind,
    RoleEvent, Severity, SyncEvent,
};

/// What one event says, whatever the medium.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub severity: Severity,
    pub title: String,
    /// One or two sentences.
    pub summary: String,
    /// Label and value pairs (scope, days, actual, expected, impact, …).
    pub facts: Vec<(String, String)>,
    /// Extra lines (root causes), shown as a list.
    pub details: Vec<String>,
    /// How to fix it, step by step, when the reader must act.
    pub fix: Option<String>,
    pub link: Option<String>,
}

/// `1234.5` in `GBP` → `GBP 1,234.50`.
pub fn money(amount: Micros, currency: &str) -> String {
    let cents = amount.cents();
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}{currency} {grouped}.{:02}", cents % 100)
}

fn day(d: Date) -> String {
    format!(
        "{} {} {}",
        d.day(),
        &format!("{:?}", d.month())[..3],
        d.year()
    )
}

fn days(first: Date, last: Date) -> String {
    if first == last {
        day(first)
    } else {
        format!("{} – {}", day(first), day(last))
    }
}

fn link(base: Option<&str>, path: String) -> Option<String> {
    base.map(|b| format!("{}{path}", b.trim_end_matches('/')))
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Info => "Info",
        Severity::Warning => "Warning",
        Severity::Critical => "Critical",
    }
}

/// What `event` says. `app_url` is where the web app lives (links are left out without it).
pub fn message(event: &Event, app_url: Option<&str>) -> Message {
    let ws = event.workspace;
    let base = Message {
        severity: event.severity,
        title: String::new(),
        summary: String::new(),
        facts: Vec::new(),
        details: Vec::new(),
        fix: None,
        link: None,
    };
    match &event.kind {
        EventKind::Anomaly(a) => anomaly(
            base,
            a,
            link(app_url, format!("/workspaces/{ws}/anomalies/{}", a.anomaly)),
        ),
        EventKind::Budget(b) => budget(
            base,
            b,
            link(app_url, format!("/workspaces/{ws}/budgets/{}", b.budget)),
        ),
        EventKind::Role(r) => role(
            base,
            r,
            link(app_url, format!("/workspaces/{ws}/connections")),
        ),
        EventKind::Sync(s) => sync(
            base,
            s,
            link(
                app_url,
                format!("/workspaces/{ws}/connections/{}", s.connection),
            ),
        ),
        EventKind::Billing(b) => {
            billing(base, b, link(app_url, format!("/workspaces/{ws}/billing")))
        }
    }
}

fn anomaly(mut m: Message, a: &AnomalyEvent, link: Option<String>) -> Message {
    let verb = match a.status {
        AnomalyStatus::New => "Cost anomaly",
        AnomalyStatus::Updated => "Cost anomaly updated",
        AnomalyStatus::Resolved => "Cost anomaly resolved",
    };
    let pct = a
        .impact_percent
        .map(|p| format!(" ({p:+.0} %)"))
        .unwrap_or_default();
    m.title = format!("{verb}: {}", a.scope);
    m.summary = format!(
        "{} spent {} against {} expected on {}: {}{pct}.",
        a.scope,
        money(a.actual, &a.currency),
        money(a.expected, &a.currency),
        days(a.first_day, a.last_day),
        money(a.impact, &a.currency),
    );
    m.facts = vec![
        ("Scope".into(), a.scope.clone()),
        ("Days".into(), days(a.first_day, a.last_day)),
        ("Actual".into(), money(a.actual, &a.currency)),
        ("Expected".into(), money(a.expected, &a.currency)),
        (
            "Impact".into(),
            format!("{}{pct}", money(a.impact, &a.currency)),
        ),
    ];
    m.details = a
        .causes
        .iter()
        .take(3)
        .map(|c| {
            format!(
                "{:.0} % from {} {} ({})",
                c.share * 100.0,
                c.dimension,
                c.label,
                money(c.impact, &a.currency)
            )
        })
        .collect();
    m.link = link;
    m
}

fn budget(mut m: Message, b: &BudgetEvent, link: Option<String>) -> Message {
    let on = match b.basis {
        BudgetBasis::Actual => "spend",
        BudgetBasis::Forecast => "forecast",
    };
    m.title = format!(
        "Budget {}: {on} passed {} %",
        b.budget_name, b.threshold_percent
    );
    m.summary = format!(
        "{} of {} spent between {} and {}.",
        money(b.spend, &b.currency),
        money(b.amount, &b.currency),
        day(b.period_start),
        day(b.period_end)
    );
    m.facts = vec![
        (
            "Threshold".into(),
            format!("{} % ({on})", b.threshold_percent),
        ),
        ("Budget".into(), money(b.amount, &b.currency)),
        ("Spend".into(), money(b.spend, &b.currency)),
    ];
    if let Some(forecast) = b.forecast {
        m.facts
            .push(("Forecast".into(), money(forecast, &b.currency)));
    }
    if let Some(over) = b.projected_overrun {
        m.facts.push(("Projected overrun".into(), day(over)));
    }
    m.link = link;
    m
}

const PORTAL_ROLES: &str = "In the Azure portal: Subscriptions → (the subscription) → Access control (IAM) → Role assignments";

fn role(mut m: Message, r: &RoleEvent, link: Option<String>) -> Message {
    match r {
        RoleEvent::CredentialsRevoked {
            connection_name,
            message,
            ..
        } => {
            m.title = format!("Azure stopped accepting connection {connection_name}");
            m.summary = format!("{message} Sixpence has stopped syncing it.");
            m.fix = Some(format!(
                "In the Azure portal: Microsoft Entra ID → App registrations → (the app) → Certificates & secrets → New client secret; \
                 then rotate the secret of {connection_name} in Sixpence and verify it."
            ));
        }
        RoleEvent::OverPrivileged {
            connection_name,
            subscriptions,
            excess_actions,
            fix,
            ..
        } => {
            m.title = format!("Connection {connection_name} can change your Azure resources");
            m.summary = format!(
                "Its service principal holds write permissions ({}) that Sixpence never needs.",
                excess_actions.join(", ")
            );
            m.facts = vec![("Subscriptions".into(), subscriptions.join(", "))];
            m.fix = Some(format!(
                "{PORTAL_ROLES}: remove the write role and {}.",
                fix.trim_end_matches('.')
            ));
        }
        RoleEvent::SubscriptionAccessLost {
            connection_name,
            subscription,
            fix,
            ..
        } => {
            m.title = format!("Subscription {subscription} can no longer be read");
            m.summary = format!("Connection {connection_name} lost access to it.");
            m.fix = Some(format!("{PORTAL_ROLES}: {fix}"));
        }
        RoleEvent::SecretExpiring {
            connection_name,
            expires_on,
            days_left,
            ..
        } => {
            m.title =
                format!("The secret of connection {connection_name} expires in {days_left} days");
            m.summary = format!("It expires on {}; syncs stop then.", day(*expires_on));
            m.fix = Some(format!(
                "In the Azure portal: Microsoft Entra ID → App registrations → (the app) → Certificates & secrets → New client secret; \
                 then rotate the secret of {connection_name} in Sixpence."
            ));
        }
    }
    m.link = link;
    m
}

fn sync(mut m: Message, s: &SyncEvent, link: Option<String>) -> Message {
    m.title = format!("Cost sync failed for subscription {}", s.subscription);
    m.summary = s.message.clone();
    m.facts = vec![("Reason".into(), s.reason.clone())];
    m.link = link;
    m
}

fn billing(mut m: Message, b: &BillingEvent, link: Option<String>) -> Message {
    match b {
        BillingEvent::PaymentFailed {
            amount,
            currency,
            next_attempt,
        } => {
            m.title = "A payment failed".into();
            m.summary = format!(
                "The payment of {} failed.{}",
                money(*amount, currency),
                next_attempt
                    .map(|d| format!(" It will be retried on {}.", day(d)))
                    .unwrap_or_default()
            );
            m.fix = Some("Update the payment method in billing settings.".into());
        }
        BillingEvent::SubscriptionChanged { plan, status } => {
            m.title = "Your subscription changed".into();
            m.summary = format!("Plan {plan}, status {status}.");
        }
        BillingEvent::SubscriptionCancelled { ends_on } => {
            m.title = "Your subscription was cancelled".into();
            m.summary = match ends_on {
                Some(d) => format!("Syncs stop at the end of the paid period, on {}.", day(*d)),
                None => "Syncs stop at the end of the paid period.".into(),
            };
        }
        BillingEvent::TrialEnding { trial_end } => {
            m.title = "Your trial ends soon".into();
            m.summary = format!("The trial ends on {}.", day(*trial_end));
        }
    }
    m.link = link;
    m
}

fn digest_title(messages: &[Message]) -> String {
    match messages {
        [one] => one.title.clone(),
        many => format!("{} Sixpence notifications", many.len()),
    }
}

/// Slack incoming-webhook payload: `text` (the notification fallback) and Block Kit `blocks`.
/// One message gets the full layout (fields, causes, fix, button); a digest gets one compact
/// section per message (Slack allows 50 blocks: at most 20 are listed, the rest counted).
pub fn slack(messages: &[Message]) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&digest_title(messages), 150), "emoji": true}
    })];
    if let [m] = messages {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": slack_escape(&m.summary)}
        }));
        if !m.facts.is_empty() {
            blocks.push(json!({
                "type": "section",
                "fields": m.facts.iter().take(10).map(|(k, v)| json!({
                    "type": "mrkdwn", "text": format!("*{}*\n{}", slack_escape(k), slack_escape(v))
                })).collect::<Vec<_>>()
            }));
        }
        if !m.details.is_empty() {
            let list = m
                .details
                .iter()
                .map(|d| format!("• {}", slack_escape(d)))
                .collect::<Vec<_>>()
                .join("\n");
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*Top causes*\n{list}")}}));
        }
        if let Some(fix) = &m.fix {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*How to fix*\n{}", slack_escape(fix))}}));
        }
        if let Some(url) = &m.link {
            blocks.push(json!({"type": "actions", "elements": [{
                "type": "button", "text": {"type": "plain_text", "text": "Open in Sixpence"}, "url": url
            }]}));
        }
    } else {
        for m in messages.iter().take(20) {
            let mut text = format!("*{}*\n{}", slack_escape(&m.title), slack_escape(&m.summary));
            if let Some(cause) = m.details.first() {
                text.push_str(&format!("\n• {}", slack_escape(cause)));
            }
            let mut section = json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 2900)}});
            if let Some(url) = &m.link {
                section["accessory"] = json!({"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": url});
            }
            blocks.push(json!({"type": "divider"}));
            blocks.push(section);
        }
        if messages.len() > 20 {
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("and {} more in Sixpence", messages.len() - 20)}]}));
        }
    }
    json!({
        "text": format!("[{}] {}", severity_word(top_severity(messages)), digest_title(messages)),
        "blocks": blocks,
    })
}

/// Teams Workflows / incoming-webhook payload: a `message` with one Adaptive Card attachment.
pub fn teams(messages: &[Message]) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true,
        "text": digest_title(messages),
        "color": match top_severity(messages) { Severity::Critical => "Attention", Severity::Warning => "Warning", Severity::Info => "Default" },
    })];
    let mut actions = Vec::new();
    for m in messages.iter().take(20) {
        let mut items = Vec::new();
        if messages.len() > 1 {
            items.push(
                json!({"type": "TextBlock", "weight": "Bolder", "wrap": true, "text": m.title}),
            );
        }
        items.push(json!({"type": "TextBlock", "wrap": true, "text": m.summary}));
        if !m.facts.is_empty() {
            items.push(json!({"type": "FactSet", "facts": m.facts.iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()}));
        }
        if !m.details.is_empty() {
            items.push(json!({"type": "TextBlock", "wrap": true, "text": format!("**Top causes**\n\n{}", m.details.iter().map(|d| format!("- {d}")).collect::<Vec<_>>().join("\n"))}));
        }
        if let Some(fix) = &m.fix {
            items.push(json!({"type": "TextBlock", "wrap": true, "text": format!("**How to fix**: {fix}")}));
        }
        if let Some(url) = &m.link {
            if messages.len() == 1 {
                actions.push(
                    json!({"type": "Action.OpenUrl", "title": "Open in Sixpence", "url": url}),
                );
            } else {
                items.push(json!({"type": "TextBlock", "wrap": true, "text": format!("[Open in Sixpence]({url})")}));
            }
        }
        body.push(json!({"type": "Container", "separator": messages.len() > 1, "items": items}));
    }
    if messages.len() > 20 {
        body.push(json!({"type": "TextBlock", "isSubtle": true, "text": format!("and {} more in Sixpence", messages.len() - 20)}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
                "actions": actions,
            }
        }]
    })
}

/// An email: subject, plain-text part and HTML part (one column, readable on a phone).
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub fn email(messages: &[Message]) -> Email {
    let subject = format!("[Sixpence] {}", truncate(&digest_title(messages), 120));
    let mut text = String::new();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>\
         <body style=\"margin:0;padding:16px;font-family:-apple-system,Segoe UI,Roboto,sans-serif;font-size:16px;line-height:1.4;color:#1b1b1b\">\
         <div style=\"max-width:600px;margin:0 auto\">",
    );
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            text.push_str("\n----------------------------------------\n\n");
            html.push_str("<hr style=\"border:0;border-top:1px solid #ddd;margin:24px 0\">");
        }
        text.push_str(&format!("{}\n\n{}\n", m.title, m.summary));
        html.push_str(&format!(
            "<h2 style=\"font-size:20px;margin:0 0 8px\">{}</h2><p>{}</p>",
            escape_html(&m.title),
            escape_html(&m.summary)
        ));
        if !m.facts.is_empty() {
            text.push('\n');
            html.push_str(
                "<table role=\"presentation\" style=\"width:100%;border-collapse:collapse\">",
            );
            for (k, v) in &m.facts {
                text.push_str(&format!("{k}: {v}\n"));
                html.push_str(&format!(
                    "<tr><td style=\"padding:4px 8px 4px 0;color:#555;vertical-align:top\">{}</td><td style=\"padding:4px 0\"><strong>{}</strong></td></tr>",
                    escape_html(k),
                    escape_html(v)
                ));
            }
            html.push_str("</table>");
        }
        if !m.details.is_empty() {
            text.push_str("\nTop causes:\n");
            html.push_str("<p style=\"margin:16px 0 4px\"><strong>Top causes</strong></p><ul style=\"margin:0;padding-left:20px\">");
            for d in &m.details {
                text.push_str(&format!("- {d}\n"));
                html.push_str(&format!("<li>{}</li>", escape_html(d)));
            }
            html.push_str("</ul>");
        }
        if let Some(fix) = &m.fix {
            text.push_str(&format!("\nHow to fix: {fix}\n"));
            html.push_str(&format!(
                "<p><strong>How to fix</strong><br>{}</p>",
                escape_html(fix)
            ));
        }
        if let Some(url) = &m.link {
            text.push_str(&format!("\nOpen in Sixpence: {url}\n"));
            html.push_str(&format!(
                "<p><a href=\"{}\" style=\"display:inline-block;padding:10px 16px;background:#0b57d0;color:#fff;text-decoration:none;border-radius:4px\">Open in Sixpence</a></p>",
                escape_html(url)
            ));
        }
    }
    html.push_str("<p style=\"color:#777;font-size:13px;margin-top:32px\">You receive this because a Sixpence workspace admin added this address to a notification channel.</p></div></body></html>");
    Email {
        subject,
        text,
        html,
    }
}

/// An in-app notification's title and body (plain text).
pub fn in_app(messages: &[Message]) -> (String, String, Option<String>) {
    let title = digest_title(messages);
    let body = match messages {
        [one] => {
            let mut body = one.summary.clone();
            if let Some(fix) = &one.fix {
                body.push_str(&format!(" How to fix: {fix}"));
            }
            body
        }
        many => many
            .iter()
            .map(|m| m.title.clone())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    let link = match messages {
        [one] => one.link.clone(),
        _ => None,
    };
    (title, body, link)
}

pub fn top_severity(messages: &[Message]) -> Severity {
    messages
        .iter()
        .map(|m| m.severity)
        .max()
        .unwrap_or(Severity::Info)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Slack mrkdwn control characters (`&`, `<`, `>`) escaped as Slack documents.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{AnomalyCause, Event};
    use crate::domain::tenancy::WorkspaceId;
    use time::macros::{date, datetime};
    use uuid::Uuid;

    pub(crate) fn anomaly_event() -> Event {
        let a = AnomalyEvent {
            anomaly: Uuid::new_v4(),
            status: AnomalyStatus::New,
            scope: "Subscription Production".into(),
            first_day: date!(2026 - 11 - 20),
            last_day: date!(2026 - 11 - 21),
            anomaly_kind: "spike".into(),
            actual: Micros(2_345_670_000),
            expected: Micros(1_000_000_000),
            impact: Micros(1_345_670_000),
            impact_percent: Some(134.567),
            currency: "GBP".into(),
            causes: vec![AnomalyCause {
                dimension: "resource".into(),
                label: "vm-batch-07".into(),
                share: 0.72,
                impact: Micros(968_882_400),
            }],
        };
        Event::new(
            WorkspaceId::new(),
            datetime!(2026-11-22 02:00 UTC),
            Severity::Warning,
            format!("anomaly:{}:new:1", a.anomaly),
            EventKind::Anomaly(a),
        )
    }

    #[test]
    fn money_is_grouped_and_rounded() {
        assert_eq!(money(Micros(1_234_567_890), "GBP"), "GBP 1,234.57");
        assert_eq!(money(Micros(-5_000), "USD"), "-USD 0.01");
        assert_eq!(money(Micros(999_000_000_000), "EUR"), "EUR 999,000.00");
    }

    #[test]
    fn an_anomaly_says_scope_days_numbers_causes_and_link() {
        let m = message(&anomaly_event(), Some("https://app.example/"));
        assert_eq!(m.title, "Cost anomaly: Subscription Production");
        assert!(m.summary.contains("GBP 2,345.67"), "{}", m.summary);
        assert!(m.summary.contains("GBP 1,000.00"));
        assert!(m.summary.contains("20 Nov 2026 – 21 Nov 2026"));
        assert!(m.summary.contains("+135 %"));
        assert_eq!(
            m.details,
            vec!["72 % from resource vm-batch-07 (GBP 968.88)"]
        );
        assert!(
            m.link
                .unwrap()
                .starts_with("https://app.example/workspaces/")
        );
        let slack = slack(&[message(&anomaly_event(), None)]);
        assert_eq!(slack["blocks"][0]["type"], "header");
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with("[Warning] Cost anomaly")
        );
        let teams = teams(&[message(&anomaly_event(), None)]);
        assert_eq!(
            teams["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
        let mail = email(&[message(&anomaly_event(), None)]);
        assert!(
            mail.text
                .contains("Top causes:\n- 72 % from resource vm-batch-07")
        );
        assert!(
            mail.html
                .contains("<li>72 % from resource vm-batch-07 (GBP 968.88)</li>")
        );
        assert!(mail.html.contains("viewport"));
    }

    #[test]
    fn a_digest_is_one_message() {
        let many: Vec<_> = (0..30).map(|_| message(&anomaly_event(), None)).collect();
        let s = slack(&many);
        assert_eq!(s["blocks"][0]["text"]["text"], "30 Sixpence notifications");
        assert!(s["blocks"].as_array().unwrap().len() <= 50);
        let t = teams(&many);
        assert_eq!(t["type"], "message");
        let e = email(&many);
        assert_eq!(e.subject, "[Sixpence] 30 Sixpence notifications");
    }

    #[test]
    fn a_role_message_says_how_to_fix_it_in_the_portal() {
        let event = Event::new(
            WorkspaceId::new(),
            datetime!(2026-11-22 02:00 UTC),
            Severity::Critical,
            "k".into(),
            EventKind::Role(RoleEvent::OverPrivileged {
                connection: Uuid::new_v4(),
                connection_name: "prod".into(),
                subscriptions: vec!["sub-1".into()],
                excess_actions: vec!["*/write".into()],
                fix: "Assign Reader and Cost Management Reader instead of Contributor".into(),
            }),
        );
        let m = message(&event, None);
        assert!(
            m.fix
                .unwrap()
                .starts_with("In the Azure portal: Subscriptions")
        );
    }

    #[test]
    fn text_is_escaped_for_each_medium() {
        let mut m = message(&anomaly_event(), None);
        m.summary = "<script>&".into();
        assert!(
            email(std::slice::from_ref(&m))
                .html
                .contains("&lt;script&gt;&amp;")
        );
        assert_eq!(
            slack(std::slice::from_ref(&m))["blocks"][1]["text"]["text"],
            "&lt;script&gt;&amp;"
        );
    }
}
