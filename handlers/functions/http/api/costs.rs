//! `GET /workspaces/{id}/costs`, `GET .../subscriptions` and `GET .../syncs`: the synced costs and
//! how the syncs went.
//!
//! Costs are answered from the stored daily rows (`domain::costs`), summed in exact micro-units, and
//! shown as decimal strings, so a total is exactly the sum of its rows and of the synced rows.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::{Date, Duration};
use utoipa::ToSchema;

use super::context::Scoped;
use crate::app::AppState;
use crate::domain::costs::{
    CostQuery, Dimension, Metric, Micros, Period, StoredRow, aggregate, view_for,
};
use crate::domain::sync::{RunStatus, SyncRun};
use crate::error::{Error, Result};

/// The longest range one request may ask for (13 months of history and the current month, with
/// room): bounds the rows a request reads.
const MAX_RANGE_DAYS: i64 = 450;
/// Runs listed by `GET .../syncs`.
const SYNC_RUNS_LISTED: usize = 100;

/// One period and group of a costs answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostRowView {
    /// `2026-11-05` (daily) or `2026-11` (monthly).
    #[schema(example = "2026-11-05")]
    pub period: String,
    /// The group's value (absent without `groupBy`). Resource groups and resource ids are lower-case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Exact decimal amount in the billing currency (six places).
    #[schema(example = "123.456700")]
    pub cost: String,
}

/// A costs answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostsView {
    #[schema(example = "2026-11-01")]
    pub from: String,
    pub to: String,
    pub metric: String,
    pub granularity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// The billing currency (`null` when nothing was synced in the range).
    pub currency: Option<String>,
    /// Exact sum of every row.
    #[schema(example = "4321.000001")]
    pub total: String,
    pub rows: Vec<CostRowView>,
}

fn bad(parameter: &str, why: &str) -> Error {
    Error::InvalidRequest(format!("`{parameter}` {why}"))
}

fn parse_date(parameter: &str, value: &str) -> Result<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(value, &format).map_err(|_| bad(parameter, "must be a date (YYYY-MM-DD)"))
}

struct Request {
    from: Date,
    to: Date,
    metric: Metric,
    query: CostQuery,
}

fn parse_request(raw: Option<&str>) -> Result<Request> {
    let mut from = None;
    let mut to = None;
    let mut metric = Metric::Actual;
    let mut period = Period::Daily;
    let mut group_by = None;
    let mut filters: Vec<(Dimension, Vec<String>)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "from" => from = Some(parse_date("from", &value)?),
            "to" => to = Some(parse_date("to", &value)?),
            "metric" => {
                metric = value
                    .parse()
                    .map_err(|_| bad("metric", "must be `actual` or `amortized`"))?
            }
            "granularity" => {
                period = match value.as_ref() {
                    "daily" => Period::Daily,
                    "monthly" => Period::Monthly,
                    _ => return Err(bad("granularity", "must be `daily` or `monthly`")),
                }
            }
            "groupBy" => {
                group_by = Some(value.parse::<Dimension>().map_err(|_| {
                    bad(
                        "groupBy",
                        "must be one of subscription, resourceGroup, service, meterCategory, resource, chargeType or tag:<key>",
                    )
                })?);
            }
            other => {
                let dimension: Dimension = other.parse().map_err(|_| {
                    Error::InvalidRequest(format!("`{other}` is not a parameter of this listing"))
                })?;
                let values: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
                if values.is_empty() {
                    return Err(bad(other, "needs at least one value"));
                }
                match filters.iter_mut().find(|(d, _)| *d == dimension) {
                    Some((_, existing)) => existing.extend(values),
                    None => filters.push((dimension, values)),
                }
            }
        }
    }
    let from = from.ok_or_else(|| bad("from", "is required"))?;
    let to = to.ok_or_else(|| bad("to", "is required"))?;
    if from > to {
        return Err(bad("to", "must not be before `from`"));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(bad(
            "to",
            &format!("must be within {MAX_RANGE_DAYS} days of `from`"),
        ));
    }
    Ok(Request {
        from,
        to,
        metric,
        query: CostQuery {
            period,
            group_by,
            filters,
        },
    })
}

/// Costs of the workspace's synced subscriptions, by day or month, optionally grouped and filtered.
/// Filters are parameters named after a dimension (`service=Storage,Bandwidth`,
/// `resourceGroup=rg-web`, `tag:env=prod`). Send `Accept: text/csv` for CSV.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/costs", tag = "costs",
    params(
        ("id" = String, Path, description = "Workspace id"),
        ("from" = String, Query, description = "First day (YYYY-MM-DD), required"),
        ("to" = String, Query, description = "Last day (YYYY-MM-DD), required"),
        ("granularity" = Option<String>, Query, description = "`daily` (default) or `monthly`"),
        ("groupBy" = Option<String>, Query, description = "subscription, resourceGroup, service, meterCategory, resource, chargeType, or `tag:<key>` for a key in the workspace's costTagKeys"),
        ("metric" = Option<String>, Query, description = "`actual` (default) or `amortized`"),
    ),
    responses((status = 200, description = "Costs (JSON, or CSV with `Accept: text/csv`)", body = CostsView)))]
pub async fn costs(
    State(state): State<AppState>,
    scoped: Scoped,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let request = parse_request(raw.as_deref())?;
    let view = view_for(
        request.query.group_by.as_ref(),
        request.query.filters.iter().map(|(d, _)| d),
    )
    .map_err(|d| {
        bad(
            &d.name(),
            "cannot be combined with this groupBy or the other filters (service, meterCategory, chargeType and each tag key come from separate Cost Management views)",
        )
    })?;
    let workspace = scoped.scope.id();
    let tag_keys = state
        .tenancy()
        .workspace(workspace)
        .await?
        .ok_or(Error::NotFound)?
        .value
        .settings
        .cost_tag_keys;
    let tagged = request
        .query
        .group_by
        .iter()
        .chain(request.query.filters.iter().map(|(d, _)| d))
        .find_map(|d| match d {
            Dimension::Tag(key) => Some(key),
            _ => None,
        });
    if let Some(key) = tagged
        && !tag_keys.contains(key)
    {
        return Err(bad(
            &format!("tag:{key}"),
            "is not a tag key this workspace syncs costs by; add it to the workspace's costTagKeys and costs by it arrive with the next sync",
        ));
    }
    let subscriptions = state.costs().subscriptions(workspace).await?;
    if tagged.is_some() {
        // Months synced before the key was chosen hold no values for it: an answer from them would
        // put their whole cost under "no value". Refuse until the re-read has run.
        let mut missing = Vec::new();
        for subscription in &subscriptions {
            missing.extend(
                state
                    .costs()
                    .months_without(workspace, subscription, request.from, request.to, &view)
                    .await?,
            );
        }
        if let (Some(first), Some(last)) = (missing.iter().min(), missing.iter().max()) {
            return Err(Error::Conflict(format!(
                "costs by this tag key are not synced yet for {} to {}; they arrive with the next sync of each subscription (request one with POST /syncs)",
                first.key(),
                last.key()
            )));
        }
    }
    let mut rows: Vec<StoredRow> = Vec::new();
    let mut currency = None;
    for subscription in subscriptions {
        let (mut found, c) = state
            .costs()
            .read(
                workspace,
                &subscription,
                request.from,
                request.to,
                request.metric,
                &view,
            )
            .await?;
        rows.append(&mut found);
        if currency.is_none() {
            currency = c;
        }
    }
    let sums = aggregate(&request.query, &rows)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("a cost sum overflowed")))?;
    let mut total = Micros(0);
    for amount in sums.values() {
        total = total
            .checked_add(*amount)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a cost total overflowed")))?;
    }
    let grouped = request.query.group_by.is_some();
    let answer = CostsView {
        from: Period::Daily.label(request.from),
        to: Period::Daily.label(request.to),
        metric: request.metric.as_str().to_owned(),
        granularity: match request.query.period {
            Period::Daily => "daily",
            Period::Monthly => "monthly",
        }
        .to_owned(),
        group_by: request.query.group_by.as_ref().map(Dimension::name),
        currency,
        total: total.to_string(),
        rows: sums
            .into_iter()
            .map(|((period, key), amount)| CostRowView {
                period,
                key: grouped.then_some(key),
                cost: amount.to_string(),
            })
            .collect(),
    };
    if wants_csv(&headers) {
        return csv_response(&answer);
    }
    Ok(Json(answer).into_response())
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().starts_with("text/csv"))
}

fn csv_response(answer: &CostsView) -> Result<Response> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let currency = answer.currency.clone().unwrap_or_default();
    let failed = |e: csv::Error| Error::Internal(anyhow::Error::new(e).context("writing CSV"));
    writer
        .write_record(["period", "group", "cost", "currency"])
        .map_err(failed)?;
    for row in &answer.rows {
        writer
            .write_record([
                row.period.as_str(),
                row.key.as_deref().unwrap_or(""),
                row.cost.as_str(),
                currency.as_str(),
            ])
            .map_err(failed)?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| Error::Internal(anyhow::anyhow!("writing CSV: {e}")))?;
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(response)
}

/// One sync run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRunView {
    #[schema(example = "9b2f3c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d")]
    pub id: String,
    pub subscription: String,
    pub connection: String,
    /// `running`, `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// `true` for a first sync (13 months of history).
    pub backfill: bool,
    pub window_from: String,
    pub window_to: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub months_done: u32,
    pub months_total: u32,
    pub rows: u64,
    pub qpu: u32,
    /// Deliveries of the sync message before this run (0 for the first).
    pub retries: u32,
    /// What went wrong, in plain words.
    pub error: Option<String>,
    /// The same run's Resource Graph inventory part.
    pub inventory: Option<PartView>,
    /// The same run's Advisor recommendations part.
    pub recommendations: Option<PartView>,
}

/// How an inventory or recommendations part of a sync went.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartView {
    /// `synced`, `skipped` or `failed`.
    #[schema(example = "synced")]
    pub status: String,
    pub rows: u64,
    pub message: Option<String>,
}

fn part_view(part: &crate::domain::sync::PartResult) -> PartView {
    PartView {
        status: part.status.clone(),
        rows: part.rows,
        message: part.message.clone(),
    }
}

fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl From<&SyncRun> for SyncRunView {
    fn from(run: &SyncRun) -> Self {
        Self {
            id: run.id.to_string(),
            subscription: run.subscription.clone(),
            connection: run.connection.to_string(),
            status: status_text(run.status).to_owned(),
            backfill: run.backfill,
            window_from: Period::Daily.label(run.window_from),
            window_to: Period::Daily.label(run.window_to),
            started_at: rfc3339(run.started_at),
            finished_at: run.finished_at.map(rfc3339),
            months_done: run.months_done,
            months_total: run.months_total,
            rows: run.rows,
            qpu: run.qpu,
            retries: run.attempt.saturating_sub(1),
            error: run.error.clone(),
            inventory: run.inventory.as_ref().map(part_view),
            recommendations: run.recommendations.as_ref().map(part_view),
        }
    }
}

/// A list of sync runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRunList {
    pub items: Vec<SyncRunView>,
}

/// The workspace's latest sync runs, newest first, with progress while running.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/syncs", tag = "costs",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Sync runs, newest first", body = SyncRunList)))]
pub async fn syncs(State(state): State<AppState>, scoped: Scoped) -> Result<Json<SyncRunList>> {
    let runs = state
        .sync_runs()
        .list(scoped.scope.id(), SYNC_RUNS_LISTED)
        .await?;
    Ok(Json(SyncRunList {
        items: runs.iter().map(SyncRunView::from).collect(),
    }))
}

/// One chosen subscription and its last sync.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    #[schema(example = "4fd51ecf-bd5f-4e7d-9fff-851f83fca89e")]
    pub subscription_id: String,
    pub display_name: Option<String>,
    pub connection: String,
    pub last_sync: Option<SyncRunView>,
}

/// A list of subscriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub items: Vec<SubscriptionView>,
}

/// The subscriptions the workspace chose to sync, each with its last sync run.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/subscriptions", tag = "costs",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "Chosen subscriptions", body = SubscriptionList)))]
pub async fn subscriptions(
    State(state): State<AppState>,
    scoped: Scoped,
) -> Result<Json<SubscriptionList>> {
    let workspace = scoped.scope.id();
    let runs = state.sync_runs().list(workspace, SYNC_RUNS_LISTED).await?;
    let mut latest: BTreeMap<String, &SyncRun> = BTreeMap::new();
    for run in &runs {
        // Newest first: the first run seen of a subscription is its last.
        latest.entry(run.subscription.clone()).or_insert(run);
    }
    let mut items = Vec::new();
    for connection in state.connections().store().list(workspace).await? {
        for sub in connection.value.selected_subscriptions() {
            let id = sub.subscription_id.to_ascii_lowercase();
            if items
                .iter()
                .any(|i: &SubscriptionView| i.subscription_id == id)
            {
                continue;
            }
            items.push(SubscriptionView {
                last_sync: latest.get(&id).map(|r| SyncRunView::from(*r)),
                subscription_id: id,
                display_name: sub.display_name.clone(),
                connection: connection.value.id.to_string(),
            });
        }
    }
    Ok(Json(SubscriptionList { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(raw: &str) -> String {
        match parse_request(Some(raw)) {
            Err(Error::InvalidRequest(m)) => m,
            other => panic!("expected a 400 for {raw}: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        assert!(message("to=2026-01-01").contains("`from`"));
        assert!(message("from=2026-01-01&to=2025-01-01").contains("`to`"));
        assert!(message("from=x&to=2025-01-01").contains("`from`"));
        assert!(message("from=2026-01-01&to=2026-01-02&metric=usd").contains("`metric`"));
        assert!(
            message("from=2026-01-01&to=2026-01-02&granularity=hourly").contains("`granularity`")
        );
        assert!(message("from=2026-01-01&to=2026-01-02&groupBy=colour").contains("`groupBy`"));
        assert!(message("from=2026-01-01&to=2026-01-02&colour=red").contains("`colour`"));
        assert!(message("from=2024-01-01&to=2026-01-02").contains("`to`"));
        assert!(message("from=2026-01-01&to=2026-01-02&service=").contains("`service`"));
    }

    #[test]
    fn a_good_request_parses_filters_and_grouping() {
        let r = parse_request(Some(
            "from=2026-01-01&to=2026-01-31&groupBy=service&resourceGroup=rg-a,rg-b&metric=amortized&granularity=monthly",
        ))
        .unwrap();
        assert_eq!(r.metric, Metric::Amortized);
        assert_eq!(r.query.group_by, Some(Dimension::Service));
        assert_eq!(r.query.filters[0].1, vec!["rg-a", "rg-b"]);
        assert_eq!(r.query.period, Period::Monthly);
    }
}
