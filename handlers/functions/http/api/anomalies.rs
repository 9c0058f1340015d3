//! Anomalies: `GET .../anomalies` (filtered, paged), `GET .../anomalies/{anomalyId}`, an analyst's
//! feedback (`POST .../anomalies/{anomalyId}/feedback`), and the workspace's analytics settings
//! (`GET`/`PUT .../analytics-settings`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::context::{JsonBody, Scoped, audit, decode_cursor, encode_cursor, page_limit};
use crate::app::AppState;
use crate::domain::anomalies::{
    AnalyticsSettings, Anomaly, Feedback, Level, Notified, State as AnomalyState, Verdict,
    anomaly_event, micros,
};
use crate::domain::audit::Change;
use crate::domain::costs::Micros;
use crate::domain::events::AnomalyStatus;
use crate::domain::store::StoreError;
use crate::error::{Error, Result};
use sixpence_analytics::Sensitivity;

/// One contributor of a root cause.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CauseView {
    /// The child's key: a lower-case resource id, a resource group, a service or a meter category.
    #[schema(
        example = "/subscriptions/…/resourcegroups/batch/providers/microsoft.compute/virtualmachines/vm-batch-07"
    )]
    pub key: String,
    #[schema(example = "vm-batch-07 (Virtual Machines)")]
    pub label: String,
    /// Share of the impact, 0–1; the shares of one dimension add up to 1.
    #[schema(example = 0.72)]
    pub share: f64,
    /// The part of the impact credited to it (decimal, billing currency).
    #[schema(example = "296.640000")]
    pub impact: String,
}

/// One flagged day of an anomaly.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyDayView {
    #[schema(example = "2026-11-05")]
    pub date: String,
    #[schema(example = "spike")]
    pub kind: String,
    #[schema(example = "612.000000")]
    pub actual: String,
    #[schema(example = "200.000000")]
    pub expected: String,
    #[schema(example = "412.000000")]
    pub impact: String,
    #[schema(example = 8.4)]
    pub score: f64,
}

/// An analyst's feedback.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackView {
    /// `expected`, `resolved` or `notAnomaly`.
    #[schema(example = "expected")]
    pub verdict: String,
    /// The member who gave it.
    #[schema(
        example = "72f988bf-86f1-41af-91ab-2d7cd011db47.9c5e1d3a-2f4b-4c8d-8e7f-1a2b3c4d5e6f"
    )]
    pub by: String,
    #[schema(example = "2026-11-06T09:30:00Z")]
    pub at: String,
    #[schema(example = "Load test of the batch cluster")]
    pub note: Option<String>,
}

/// An anomaly: consecutive anomalous days of one series, with what explains it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyView {
    #[schema(example = "0b8e6a5c-3c1d-4b4e-9a3f-5d2c1b0a9e8f")]
    pub id: String,
    #[schema(example = "00000000-0000-0000-0000-000000000001")]
    pub subscription: String,
    /// `subscription`, `resourceGroup` or `service`.
    #[schema(example = "resourceGroup")]
    pub level: String,
    /// The series at that level (a subscription id, resource group or service name).
    #[schema(example = "batch")]
    pub value: String,
    #[schema(example = "Resource group batch")]
    pub scope: String,
    /// `open` (the last days may still be part of it), `closed`, or `retracted` (a restatement
    /// proved it normal).
    #[schema(example = "open")]
    pub state: String,
    /// What started it: `spike`, `drop`, `new_cost`, `removed_cost`, `level_shift`, `growth`.
    #[schema(example = "spike")]
    pub kind: String,
    /// `up` or `down`.
    #[schema(example = "up")]
    pub direction: String,
    #[schema(example = "2026-11-05")]
    pub first_day: String,
    #[schema(example = "2026-11-06")]
    pub last_day: String,
    #[schema(example = "2026-11-05")]
    pub peak_day: String,
    /// Over the anomalous days (decimal, billing currency; amortized cost).
    #[schema(example = "1224.000000")]
    pub actual: String,
    #[schema(example = "400.000000")]
    pub expected: String,
    #[schema(example = "824.000000")]
    pub impact: String,
    /// Impact in percent of expected; `null` when nothing was expected (new cost).
    #[schema(example = 206.0)]
    pub impact_percent: Option<f64>,
    #[schema(example = "GBP")]
    pub currency: String,
    /// Increases each time the anomaly changes.
    #[schema(example = 2)]
    pub revision: u32,
    /// Whether (and as what) it was last notified: `new`, `updated`, `resolved`; `null` if never.
    #[schema(example = "new")]
    pub notified: Option<String>,
    /// Root cause per child dimension (`resource`, `resourceGroup`, `service`, `meterCategory`).
    pub causes: BTreeMap<String, Vec<CauseView>>,
    pub days: Vec<AnomalyDayView>,
    pub feedback: Option<FeedbackView>,
}

/// A page of anomalies.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyList {
    pub items: Vec<AnomalyView>,
    #[schema(example = "eyJzIjoid29ya3NwYWNlOi4uLiIsImsiOiI1MCJ9")]
    pub next_cursor: Option<String>,
}

/// Feedback on an anomaly.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackRequest {
    /// `expected` (planned spend), `resolved` or `notAnomaly`. Any of them stops further alerts
    /// for this anomaly.
    #[schema(example = "expected")]
    pub verdict: String,
    /// Up to 500 characters.
    #[schema(example = "Load test of the batch cluster")]
    pub note: Option<String>,
}

/// The workspace's analytics settings.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalyticsSettingsView {
    /// `low`, `medium` (default) or `high`.
    #[schema(example = "medium")]
    pub sensitivity: String,
    /// Minimum |impact| of an anomaly for an alert, in the billing currency (decimal string).
    #[schema(example = "10.00")]
    pub min_impact: String,
    /// Minimum |impact| in percent of the expected spend for an alert.
    #[schema(example = 10.0)]
    pub min_impact_percent: f64,
    /// Watched levels: `subscription`, `resourceGroup`, `service`.
    #[schema(example = json!(["subscription", "resourceGroup", "service"]))]
    pub dimensions: Vec<String>,
}

/// Filters of `GET .../anomalies`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the parameters; the handler parses the raw query"
)]
pub struct AnomaliesQuery {
    /// `open`, `closed` or `retracted` (default: open and closed).
    status: Option<String>,
    /// `subscription`, `resourceGroup`, `service`, or `<level>:<value>` (e.g. `resourceGroup:batch`).
    scope: Option<String>,
    /// Only this subscription.
    subscription: Option<String>,
    /// Anomalies whose days reach this day or later (YYYY-MM-DD).
    from: Option<String>,
    /// Anomalies starting on or before this day (YYYY-MM-DD).
    to: Option<String>,
    /// Only anomalies with |impact| at least this (decimal, billing currency).
    #[param(rename = "minImpact")]
    min_impact: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

fn money(m: Micros) -> String {
    m.to_string()
}

fn date(d: Date) -> String {
    sixpence_analytics::format_date(d)
}

fn verdict_of(text: &str) -> Option<Verdict> {
    [Verdict::Expected, Verdict::Resolved, Verdict::NotAnomaly]
        .into_iter()
        .find(|v| v.as_str() == text)
}

pub fn view(a: &Anomaly) -> AnomalyView {
    let e = &a.episode;
    AnomalyView {
        id: a.id.to_string(),
        subscription: a.subscription.clone(),
        level: a.level.as_str().to_owned(),
        value: a.value.clone(),
        scope: a.scope_words(),
        state: a.state.as_str().to_owned(),
        kind: e.kind.as_str().to_owned(),
        direction: e.direction.as_str().to_owned(),
        first_day: date(e.start),
        last_day: date(e.end),
        peak_day: date(e.peak.date),
        actual: money(micros(e.days.iter().map(|d| d.actual).sum())),
        expected: money(micros(e.cumulative_expected)),
        impact: money(micros(e.cumulative_impact)),
        impact_percent: e.cumulative_impact_pct(),
        currency: a.currency.clone(),
        revision: e.revision,
        notified: a.notified.map(|n| {
            serde_json::to_value(n.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        }),
        causes: a
            .causes
            .by
            .iter()
            .map(|(k, list)| {
                (
                    k.clone(),
                    list.iter()
                        .map(|c| CauseView {
                            key: c.key.clone(),
                            label: c.label.clone(),
                            share: c.share,
                            impact: money(c.impact),
                        })
                        .collect(),
                )
            })
            .collect(),
        days: e
            .days
            .iter()
            .map(|d| AnomalyDayView {
                date: date(d.date),
                kind: d.kind.as_str().to_owned(),
                actual: money(micros(d.actual)),
                expected: money(micros(d.expected)),
                impact: money(micros(d.impact)),
                score: d.score,
            })
            .collect(),
        feedback: a.feedback.as_ref().map(|f| FeedbackView {
            verdict: f.verdict.as_str().to_owned(),
            by: f.by.to_string(),
            at: f
                .at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            note: f.note.clone(),
        }),
    }
}

fn bad(parameter: &str, why: &str) -> Error {
    Error::InvalidRequest(format!("`{parameter}` {why}"))
}

fn parse_date(parameter: &str, value: &str) -> Result<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, &format).map_err(|_| bad(parameter, "must be a date (YYYY-MM-DD)"))
}

/// A decimal amount (`12`, `12.5`, `-3.25`) in micro-units; at most six decimals.
pub fn parse_amount(parameter: &str, text: &str) -> Result<Micros> {
    let invalid = || bad(parameter, "must be a decimal amount such as 10 or 12.50");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || frac.len() > 6
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 12
    {
        return Err(invalid());
    }
    let whole: i64 = whole.parse().map_err(|_| invalid())?;
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| invalid())?;
    let value = whole * 1_000_000 + frac;
    Ok(Micros(if negative { -value } else { value }))
}

struct Filters {
    states: Vec<AnomalyState>,
    level: Option<Level>,
    value: Option<String>,
    subscription: Option<String>,
    from: Option<Date>,
    to: Option<Date>,
    min_impact: Option<Micros>,
    limit: u32,
    cursor: Option<String>,
}

fn parse_filters(raw: Option<&str>) -> Result<Filters> {
    let mut f = Filters {
        states: vec![AnomalyState::Open, AnomalyState::Closed],
        level: None,
        value: None,
        subscription: None,
        from: None,
        to: None,
        min_impact: None,
        limit: 50,
        cursor: None,
    };
    let mut limit = None;
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "status" => {
                f.states = vec![match value.as_ref() {
                    "open" => AnomalyState::Open,
                    "closed" => AnomalyState::Closed,
                    "retracted" => AnomalyState::Retracted,
                    _ => return Err(bad("status", "must be `open`, `closed` or `retracted`")),
                }]
            }
            "scope" => {
                let (level, v) = match value.split_once(':') {
                    Some((l, v)) => (l, Some(v.to_owned())),
                    None => (value.as_ref(), None),
                };
                f.level = Some(Level::parse(level).ok_or_else(|| {
                    bad(
                        "scope",
                        "must be subscription, resourceGroup or service, optionally followed by `:<value>`",
                    )
                })?);
                f.value = v;
            }
            "subscription" => f.subscription = Some(value.to_ascii_lowercase()),
            "from" => f.from = Some(parse_date("from", &value)?),
            "to" => f.to = Some(parse_date("to", &value)?),
            "minImpact" => f.min_impact = Some(parse_amount("minImpact", &value)?),
            "limit" => {
                limit = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| bad("limit", "must be between 1 and 200"))?,
                )
            }
            "cursor" => f.cursor = Some(value.into_owned()),
            other => {
                return Err(Error::InvalidRequest(format!(
                    "`{other}` is not a parameter of this listing"
                )));
            }
        }
    }
    f.limit = page_limit(limit)?;
    Ok(f)
}

fn matches(a: &Anomaly, f: &Filters) -> bool {
    f.states.contains(&a.state)
        && f.level.is_none_or(|l| a.level == l)
        && f.value
            .as_ref()
            .is_none_or(|v| a.value.eq_ignore_ascii_case(v))
        && f.subscription.as_ref().is_none_or(|s| a.subscription == *s)
        && f.from.is_none_or(|d| a.episode.end >= d)
        && f.to.is_none_or(|d| a.episode.start <= d)
        && f.min_impact.is_none_or(|m| a.impact().0.abs() >= m.0.abs())
}

/// The workspace's anomalies, newest first (by last day), filtered.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/anomalies", tag = "anomalies",
    params(("id" = String, Path, description = "Workspace id"), AnomaliesQuery),
    responses((status = 200, description = "A page of anomalies", body = AnomalyList)))]
pub async fn list(
    State(state): State<AppState>,
    scoped: Scoped,
    RawQuery(raw): RawQuery,
) -> Result<Json<AnomalyList>> {
    let filters = parse_filters(raw.as_deref())?;
    let workspace = scoped.scope.id();
    let listing = format!("anomalies:{workspace}");
    // A keyset cursor (the last item's place in the order), not an offset: an anomaly detected or
    // extended between two pages then shifts nothing, so no item is skipped or shown twice. The
    // partition is read whole and sorted here; a workspace holds hundreds to a few thousand
    // episodes (one per series and incident), small enough for that.
    let after: Option<OrderKey> = match &filters.cursor {
        Some(c) => Some(
            OrderKey::parse(&decode_cursor(&listing, c)?)
                .ok_or_else(|| bad("cursor", "is not valid for this listing"))?,
        ),
        None => None,
    };
    let mut all: Vec<Anomaly> = state
        .anomalies()
        .list(workspace)
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|a| matches(a, &filters))
        .filter(|a| after.as_ref().is_none_or(|k| OrderKey::of(a) > *k))
        .collect();
    all.sort_by_key(OrderKey::of);
    let limit = filters.limit as usize;
    let next_cursor = (all.len() > limit)
        .then(|| all.get(limit - 1))
        .flatten()
        .map(|last| encode_cursor(&listing, &OrderKey::of(last).render()));
    let items = all.iter().take(limit).map(view).collect();
    Ok(Json(AnomalyList { items, next_cursor }))
}

/// The listing's order: the most recently ended first, then the most recently started, then by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OrderKey {
    end: std::cmp::Reverse<Date>,
    start: std::cmp::Reverse<Date>,
    id: Uuid,
}

impl OrderKey {
    fn of(anomaly: &Anomaly) -> OrderKey {
        OrderKey {
            end: std::cmp::Reverse(anomaly.episode.end),
            start: std::cmp::Reverse(anomaly.episode.start),
            id: anomaly.id,
        }
    }

    fn render(&self) -> String {
        format!("{}|{}|{}", self.end.0, self.start.0, self.id)
    }

    fn parse(text: &str) -> Option<OrderKey> {
        let mut parts = text.split('|');
        let mut date = || {
            Date::parse(
                parts.next()?,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .ok()
        };
        let (end, start) = (date()?, date()?);
        let id = Uuid::parse_str(parts.next()?).ok()?;
        Some(OrderKey {
            end: std::cmp::Reverse(end),
            start: std::cmp::Reverse(start),
            id,
        })
    }
}

fn anomaly_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::NotFound)
}

/// One anomaly, with its days, root cause and feedback.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/anomalies/{anomalyId}", tag = "anomalies",
    params(("id" = String, Path, description = "Workspace id"), ("anomalyId" = String, Path, description = "Anomaly id")),
    responses((status = 200, description = "The anomaly", body = AnomalyView)))]
pub async fn get(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<AnomalyView>> {
    let id = anomaly_id(&id)?;
    let found = state
        .anomalies()
        .get(scoped.scope.id(), id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(view(&found.value)))
}

/// Says what an anomaly was: `expected` (planned), `resolved`, or `notAnomaly`. Any verdict stops
/// further alerts for this anomaly (a later, separate anomaly of the same series alerts as usual);
/// `resolved` on an anomaly people were told of tells them it was resolved. Analyst or above;
/// audited.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/anomalies/{anomalyId}/feedback", tag = "anomalies",
    params(("id" = String, Path, description = "Workspace id"), ("anomalyId" = String, Path, description = "Anomaly id")),
    request_body = FeedbackRequest,
    responses((status = 200, description = "The anomaly with the feedback", body = AnomalyView)))]
pub async fn feedback(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((_, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<FeedbackRequest>,
) -> Result<Json<AnomalyView>> {
    let workspace = scoped.scope.id();
    let verdict = verdict_of(&body.verdict)
        .ok_or_else(|| bad("verdict", "must be `expected`, `resolved` or `notAnomaly`"))?;
    let note = body
        .note
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(bad("note", "must be at most 500 characters"));
    }
    let id = anomaly_id(&id)?;
    let found = state
        .anomalies()
        .get(workspace, id)
        .await?
        .ok_or(Error::NotFound)?;
    let feedback = Feedback {
        verdict,
        by: scoped.caller.user,
        at: OffsetDateTime::now_utc(),
        note,
    };
    state
        .anomalies()
        .set_feedback(workspace, id, &feedback, Some(&found.version))
        .await
        .map_err(|e| match e {
            StoreError::VersionMismatch => Error::Conflict(
                "the anomaly changed while the feedback was recorded; retry".to_owned(),
            ),
            other => other.into(),
        })?;
    audit(
        scoped.audit.as_ref(),
        format!("anomaly/{id}"),
        vec![Change::new(
            "feedback",
            found
                .value
                .feedback
                .as_ref()
                .map(|f| f.verdict.as_str().to_owned()),
            Some(verdict.as_str().to_owned()),
        )],
    );
    let mut anomaly = found.value;
    anomaly.feedback = Some(feedback);
    // People told of it hear that it was resolved (once: the dedupe key is its revision's).
    if verdict == Verdict::Resolved
        && anomaly
            .notified
            .is_some_and(|n| n.status != AnomalyStatus::Resolved)
    {
        let event = anomaly_event(
            workspace,
            &anomaly,
            AnomalyStatus::Resolved,
            OffsetDateTime::now_utc(),
        );
        state.events().raise(&event).await?;
        anomaly.notified = Some(Notified {
            status: AnomalyStatus::Resolved,
            revision: anomaly.episode.revision,
        });
        state.anomalies().save(workspace, &anomaly).await?;
    }
    Ok(Json(view(&anomaly)))
}

fn sensitivity_text(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Low => "low",
        Sensitivity::Medium => "medium",
        Sensitivity::High => "high",
    }
}

fn settings_view(s: &AnalyticsSettings) -> AnalyticsSettingsView {
    AnalyticsSettingsView {
        sensitivity: sensitivity_text(s.sensitivity).to_owned(),
        min_impact: money(s.min_impact),
        min_impact_percent: s.min_impact_percent,
        dimensions: s.dimensions.iter().map(|d| d.as_str().to_owned()).collect(),
    }
}

/// The workspace's analytics settings (the defaults until changed).
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/analytics-settings", tag = "anomalies",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The settings", body = AnalyticsSettingsView)))]
pub async fn get_settings(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<Json<AnalyticsSettingsView>> {
    let settings = state.anomalies().settings(scoped.scope.id()).await?;
    Ok(Json(settings_view(&settings)))
}

/// Replaces the workspace's analytics settings: detection sensitivity, the alert thresholds (an
/// anomaly alerts only when its |impact| reaches both `minImpact` and `minImpactPercent`), and the
/// watched levels. Takes effect at the next detection. Admin or above; audited.
#[utoipa::path(put, path = "/api/v1/workspaces/{id}/analytics-settings", tag = "anomalies",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = AnalyticsSettingsView,
    responses((status = 200, description = "The settings", body = AnalyticsSettingsView)))]
pub async fn put_settings(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<AnalyticsSettingsView>,
) -> Result<Json<AnalyticsSettingsView>> {
    let workspace = scoped.scope.id();
    let sensitivity = match body.sensitivity.as_str() {
        "low" => Sensitivity::Low,
        "medium" => Sensitivity::Medium,
        "high" => Sensitivity::High,
        _ => return Err(bad("sensitivity", "must be `low`, `medium` or `high`")),
    };
    let mut dimensions = Vec::new();
    for d in &body.dimensions {
        dimensions.push(Level::parse(d).ok_or_else(|| {
            bad(
                "dimensions",
                "must list subscription, resourceGroup and/or service",
            )
        })?);
    }
    let settings = AnalyticsSettings {
        sensitivity,
        min_impact: parse_amount("minImpact", &body.min_impact)?,
        min_impact_percent: body.min_impact_percent,
        dimensions,
    };
    settings.validate().map_err(Error::InvalidRequest)?;
    let before = settings_view(&state.anomalies().settings(workspace).await?);
    state.anomalies().put_settings(workspace, &settings).await?;
    let after = settings_view(&settings);
    let mut changes = Vec::new();
    let mut diff = |field: &str, from: String, to: String| {
        if from != to {
            changes.push(Change::new(field, Some(from), Some(to)));
        }
    };
    diff(
        "sensitivity",
        before.sensitivity.clone(),
        after.sensitivity.clone(),
    );
    diff(
        "minImpact",
        before.min_impact.clone(),
        after.min_impact.clone(),
    );
    diff(
        "minImpactPercent",
        before.min_impact_percent.to_string(),
        after.min_impact_percent.to_string(),
    );
    diff(
        "dimensions",
        before.dimensions.join(","),
        after.dimensions.join(","),
    );
    audit(
        scoped.audit.as_ref(),
        format!("workspace/{workspace}/analytics-settings"),
        changes,
    );
    Ok(Json(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_amount("x", "10").unwrap(), Micros(10_000_000));
        assert_eq!(parse_amount("x", "12.5").unwrap(), Micros(12_500_000));
        assert_eq!(parse_amount("x", "-0.000001").unwrap(), Micros(-1));
        for bad in ["", ".5", "1.0000001", "1e3", "abc", "1,5"] {
            assert!(parse_amount("x", bad).is_err(), "{bad}");
        }
    }
}
