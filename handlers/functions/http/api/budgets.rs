//! Budgets (`GET`/`POST .../budgets`, `GET`/`PUT`/`DELETE .../budgets/{budgetId}`) and the
//! period-end forecast (`GET .../forecast`).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sixpence_analytics::forecast::{ForecastMethod, PeriodKind};
use sixpence_analytics::scope::{Scope, TagFilter};
use time::{Date, Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::anomalies::parse_amount;
use super::context::{JsonBody, Scoped, audit, if_match};
use super::workspaces::with_etag;
use crate::app::AppState;
use crate::domain::anomalies::micros;
use crate::domain::audit::Change;
use crate::domain::budgets::{Budget, Evaluation, MAX_BUDGETS, Threshold};
use crate::domain::costs::Micros;
use crate::domain::events::BudgetBasis;
use crate::domain::store::StoreError;
use crate::error::{Error, Result};
use crate::functions::queue::budget_check;

/// A tag condition of a budget's scope.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagView {
    #[schema(example = "costCentre")]
    pub key: String,
    /// `null`: any value.
    #[schema(example = "cc-1234")]
    pub value: Option<String>,
}

/// Which costs count toward a budget. Each non-empty list must match (any of its values); an empty
/// scope is the whole workspace.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeView {
    #[serde(default)]
    #[schema(example = json!(["00000000-0000-0000-0000-000000000001"]))]
    pub subscriptions: Vec<String>,
    #[serde(default)]
    #[schema(example = json!(["rg-web"]))]
    pub resource_groups: Vec<String>,
    #[serde(default)]
    #[schema(example = json!(["Virtual Machines"]))]
    pub services: Vec<String>,
    /// Matched against the tags of the resources in the last synced inventory.
    #[serde(default)]
    pub tags: Vec<TagView>,
}

/// A threshold: percent of the amount, on actual spend so far or on the period-end forecast.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdView {
    #[schema(example = 80)]
    pub percent: u32,
    /// `actual` or `forecast`.
    #[schema(example = "actual")]
    pub basis: String,
}

/// What a client sends to create or replace a budget.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BudgetRequest {
    #[schema(example = "Production compute")]
    pub name: String,
    /// Per period, in the billing currency (decimal string).
    #[schema(example = "5000.00")]
    pub amount: String,
    /// `monthly`, `quarterly` or `annual`.
    #[schema(example = "monthly")]
    pub period: String,
    #[serde(default)]
    pub scope: ScopeView,
    pub thresholds: Vec<ThresholdView>,
}

/// The last evaluation of a budget (after the latest sync).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatusView {
    #[schema(example = "2026-11-22")]
    pub as_of: String,
    #[schema(example = "2026-11-01")]
    pub period_start: String,
    #[schema(example = "2026-11-30")]
    pub period_end: String,
    #[schema(example = "3890.120000")]
    pub actual: String,
    #[schema(example = 77.8)]
    pub actual_percent: f64,
    #[schema(example = "5310.000000")]
    pub forecast: Option<String>,
    #[schema(example = "5120.000000")]
    pub forecast_lower: Option<String>,
    #[schema(example = "5500.000000")]
    pub forecast_upper: Option<String>,
    #[schema(example = 106.2)]
    pub forecast_percent: Option<f64>,
    /// Mean daily spend so far in the period.
    #[schema(example = "176.820000")]
    pub burn_rate: String,
    /// Daily spend that would use up exactly the rest of the amount.
    #[schema(example = "138.870000")]
    pub allowed_daily_rate: Option<String>,
    /// The day spend passed, or is projected to pass, the amount (`null` if not in the period).
    #[schema(example = "2026-11-28")]
    pub projected_overrun: Option<String>,
    #[schema(example = "GBP")]
    pub currency: String,
}

/// A budget.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    #[schema(example = "8b0f3c1e-2d4a-4e5b-9c6d-7e8f9a0b1c2d")]
    pub id: String,
    #[schema(example = "Production compute")]
    pub name: String,
    #[schema(example = "5000.000000")]
    pub amount: String,
    #[schema(example = "monthly")]
    pub period: String,
    pub scope: ScopeView,
    pub thresholds: Vec<ThresholdView>,
    #[schema(example = "2026-11-20T09:30:00Z")]
    pub created_at: String,
    /// `null` until the first sync after it was created or changed.
    pub status: Option<BudgetStatusView>,
}

/// The workspace's budgets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetList {
    pub items: Vec<BudgetView>,
}

/// A period-end forecast.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastView {
    /// `month`, `quarter` or `year`.
    #[schema(example = "month")]
    pub period: String,
    #[schema(example = "2026-11-01")]
    pub period_start: String,
    #[schema(example = "2026-11-30")]
    pub period_end: String,
    /// Last day of actual costs used.
    #[schema(example = "2026-11-22")]
    pub as_of: String,
    #[schema(example = "3890.120000")]
    pub actual_to_date: String,
    /// Expected total of the period.
    #[schema(example = "5310.000000")]
    pub forecast: String,
    #[schema(example = "5120.000000")]
    pub lower: String,
    #[schema(example = "5500.000000")]
    pub upper: String,
    /// Coverage of `lower..upper`.
    #[schema(example = 0.8)]
    pub interval: f64,
    /// `model` (level, trend, weekly pattern and month-start charges) or `runRate` (too little
    /// history: mean daily spend, wide interval).
    #[schema(example = "model")]
    pub method: String,
    #[schema(example = "GBP")]
    pub currency: String,
    /// The budget whose scope was forecast, if one was named.
    #[schema(example = "8b0f3c1e-2d4a-4e5b-9c6d-7e8f9a0b1c2d")]
    pub budget: Option<String>,
}

/// Parameters of `GET .../forecast`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "documents the parameters; the handler parses the raw query"
)]
pub struct ForecastQuery {
    /// `month` (default), `quarter` or `year`.
    period: Option<String>,
    /// Forecast this budget's scope (its id) instead of the whole workspace.
    budget: Option<String>,
}

fn bad(parameter: &str, why: &str) -> Error {
    Error::InvalidRequest(format!("`{parameter}` {why}"))
}

fn money(m: Micros) -> String {
    m.to_string()
}

fn date(d: Date) -> String {
    sixpence_analytics::format_date(d)
}

fn period_word(p: PeriodKind) -> &'static str {
    match p {
        PeriodKind::Month => "monthly",
        PeriodKind::Quarter => "quarterly",
        PeriodKind::Year => "annual",
    }
}

fn basis_word(b: BudgetBasis) -> &'static str {
    match b {
        BudgetBasis::Actual => "actual",
        BudgetBasis::Forecast => "forecast",
    }
}

fn scope_view(s: &Scope) -> ScopeView {
    ScopeView {
        subscriptions: s.subscriptions.clone(),
        resource_groups: s.resource_groups.clone(),
        services: s.services.clone(),
        tags: s
            .tags
            .iter()
            .map(|t| TagView {
                key: t.key.clone(),
                value: t.value.clone(),
            })
            .collect(),
    }
}

fn status_view(e: &Evaluation) -> BudgetStatusView {
    BudgetStatusView {
        as_of: date(e.as_of),
        period_start: date(e.period_start),
        period_end: date(e.period_end),
        actual: money(e.actual),
        actual_percent: e.actual_percent,
        forecast: e.forecast.map(money),
        forecast_lower: e.forecast_lower.map(money),
        forecast_upper: e.forecast_upper.map(money),
        forecast_percent: e.forecast_percent,
        burn_rate: money(e.burn_rate),
        allowed_daily_rate: e.allowed_daily_rate.map(money),
        projected_overrun: e.projected_overrun.map(date),
        currency: e.currency.clone(),
    }
}

pub(crate) fn view(b: &Budget, evaluation: Option<&Evaluation>) -> BudgetView {
    BudgetView {
        id: b.id.to_string(),
        name: b.name.clone(),
        amount: money(b.amount),
        period: period_word(b.period).to_owned(),
        scope: scope_view(&b.scope),
        thresholds: b
            .thresholds
            .iter()
            .map(|t| ThresholdView {
                percent: t.percent,
                basis: basis_word(t.basis).to_owned(),
            })
            .collect(),
        created_at: b
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        status: evaluation.map(status_view),
    }
}

fn parse_budget(id: Uuid, created_at: OffsetDateTime, body: BudgetRequest) -> Result<Budget> {
    let period = match body.period.as_str() {
        "monthly" => PeriodKind::Month,
        "quarterly" => PeriodKind::Quarter,
        "annual" => PeriodKind::Year,
        _ => return Err(bad("period", "must be `monthly`, `quarterly` or `annual`")),
    };
    let mut thresholds = Vec::new();
    for t in body.thresholds {
        let basis = match t.basis.as_str() {
            "actual" => BudgetBasis::Actual,
            "forecast" => BudgetBasis::Forecast,
            _ => return Err(bad("thresholds", "basis must be `actual` or `forecast`")),
        };
        thresholds.push(Threshold {
            percent: t.percent,
            basis,
        });
    }
    let budget = Budget {
        id,
        name: body.name.trim().to_owned(),
        amount: parse_amount("amount", &body.amount)?,
        period,
        scope: Scope {
            subscriptions: body
                .scope
                .subscriptions
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect(),
            resource_groups: body.scope.resource_groups,
            services: body.scope.services,
            tags: body
                .scope
                .tags
                .into_iter()
                .map(|t| TagFilter {
                    key: t.key,
                    value: t.value,
                })
                .collect(),
        },
        thresholds,
        created_at,
    };
    budget.validate().map_err(Error::InvalidRequest)?;
    Ok(budget)
}

fn describe(b: &Budget) -> String {
    let thresholds: Vec<String> = b
        .thresholds
        .iter()
        .map(|t| format!("{}%{}", t.percent, basis_word(t.basis)))
        .collect();
    format!(
        "{} {} {} [{}]",
        b.name,
        money(b.amount),
        period_word(b.period),
        thresholds.join(",")
    )
}

/// The workspace's budgets, oldest first, each with its last evaluation.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/budgets", tag = "budgets",
    params(("id" = String, Path, description = "Workspace id")),
    responses((status = 200, description = "The budgets", body = BudgetList)))]
pub async fn list(State(state): State<AppState>, scoped: Scoped) -> Result<Json<BudgetList>> {
    let workspace = scoped.scope.id();
    let mut items = Vec::new();
    for b in state.budgets().list(workspace).await? {
        let evaluation = state.budgets().evaluation(workspace, b.value.id).await?;
        items.push(view(&b.value, evaluation.as_ref()));
    }
    Ok(Json(BudgetList { items }))
}

/// Creates a budget. It is evaluated after every cost sync; each threshold crossed raises one
/// budget event per period. Analyst or above; audited; honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/workspaces/{id}/budgets", tag = "budgets",
    params(("id" = String, Path, description = "Workspace id")),
    request_body = BudgetRequest,
    responses((status = 201, description = "Created", body = BudgetView)))]
pub async fn create(
    State(state): State<AppState>,
    scoped: Scoped,
    JsonBody(body): JsonBody<BudgetRequest>,
) -> Result<Response> {
    let workspace = scoped.scope.id();
    let budget = parse_budget(Uuid::new_v4(), OffsetDateTime::now_utc(), body)?;
    if state.budgets().list(workspace).await?.len() >= MAX_BUDGETS {
        return Err(Error::Conflict(format!(
            "a workspace has at most {MAX_BUDGETS} budgets"
        )));
    }
    let version = state.budgets().create(workspace, &budget).await?;
    audit(
        scoped.audit.as_ref(),
        format!("budget/{}", budget.id),
        vec![Change::new("budget", None, Some(describe(&budget)))],
    );
    Ok(with_etag(
        (StatusCode::CREATED, Json(view(&budget, None))).into_response(),
        &version,
    ))
}

fn budget_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::NotFound)
}

/// One budget, with its last evaluation (spend, forecast, burn rate, projected overrun).
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/budgets/{budgetId}", tag = "budgets",
    params(("id" = String, Path, description = "Workspace id"), ("budgetId" = String, Path, description = "Budget id")),
    responses((status = 200, description = "The budget", body = BudgetView)))]
pub async fn get(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response> {
    let workspace = scoped.scope.id();
    let id = budget_id(&id)?;
    let found = state
        .budgets()
        .get(workspace, id)
        .await?
        .ok_or(Error::NotFound)?;
    let evaluation = state.budgets().evaluation(workspace, id).await?;
    Ok(with_etag(
        Json(view(&found.value, evaluation.as_ref())).into_response(),
        &found.version,
    ))
}

/// Replaces a budget (send `If-Match` with its `ETag` to refuse a concurrent edit). Thresholds
/// already told this period stay told. Analyst or above; audited.
#[utoipa::path(put, path = "/api/v1/workspaces/{id}/budgets/{budgetId}", tag = "budgets",
    params(("id" = String, Path, description = "Workspace id"), ("budgetId" = String, Path, description = "Budget id")),
    request_body = BudgetRequest,
    responses((status = 200, description = "The budget", body = BudgetView)))]
pub async fn replace(
    State(state): State<AppState>,
    scoped: Scoped,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<BudgetRequest>,
) -> Result<Response> {
    let workspace = scoped.scope.id();
    let id = budget_id(&id)?;
    let found = state
        .budgets()
        .get(workspace, id)
        .await?
        .ok_or(Error::NotFound)?;
    let budget = parse_budget(id, found.value.created_at, body)?;
    let wanted = if_match(&headers).unwrap_or(found.version.clone());
    let version = state
        .budgets()
        .replace(workspace, &budget, Some(&wanted))
        .await
        .map_err(|e| match e {
            StoreError::VersionMismatch => Error::PreconditionFailed,
            StoreError::NotFound => Error::NotFound,
            other => other.into(),
        })?;
    audit(
        scoped.audit.as_ref(),
        format!("budget/{id}"),
        vec![Change::new(
            "budget",
            Some(describe(&found.value)),
            Some(describe(&budget)),
        )],
    );
    Ok(with_etag(
        Json(view(&budget, None)).into_response(),
        &version,
    ))
}

/// Deletes a budget. Analyst or above; audited.
#[utoipa::path(delete, path = "/api/v1/workspaces/{id}/budgets/{budgetId}", tag = "budgets",
    params(("id" = String, Path, description = "Workspace id"), ("budgetId" = String, Path, description = "Budget id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    scoped: Scoped,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let workspace = scoped.scope.id();
    let id = budget_id(&id)?;
    let found = state
        .budgets()
        .get(workspace, id)
        .await?
        .ok_or(Error::NotFound)?;
    state.budgets().delete(workspace, id).await?;
    audit(
        scoped.audit.as_ref(),
        format!("budget/{id}"),
        vec![Change::new("budget", Some(describe(&found.value)), None)],
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The period-end forecast of the workspace's actual spend (or of one budget's scope) from the
/// synced daily history: level, trend, weekly pattern and month-start charges, with an 80 %
/// interval.
#[utoipa::path(get, path = "/api/v1/workspaces/{id}/forecast", tag = "budgets",
    params(("id" = String, Path, description = "Workspace id"), ForecastQuery),
    responses((status = 200, description = "The forecast", body = ForecastView)))]
pub async fn forecast(
    State(state): State<AppState>,
    scoped: Scoped,
    RawQuery(raw): RawQuery,
) -> Result<Json<ForecastView>> {
    let workspace = scoped.scope.id();
    let mut kind = PeriodKind::Month;
    let mut budget = None;
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "period" => {
                kind = match value.as_ref() {
                    "month" => PeriodKind::Month,
                    "quarter" => PeriodKind::Quarter,
                    "year" => PeriodKind::Year,
                    _ => return Err(bad("period", "must be `month`, `quarter` or `year`")),
                }
            }
            "budget" => {
                let id =
                    Uuid::parse_str(&value).map_err(|_| bad("budget", "is not a budget id"))?;
                let found = state
                    .budgets()
                    .get(workspace, id)
                    .await?
                    .ok_or_else(|| bad("budget", "names no budget of this workspace"))?;
                budget = Some(found.value);
            }
            other => {
                return Err(Error::InvalidRequest(format!(
                    "`{other}` is not a parameter of the forecast"
                )));
            }
        }
    }
    let as_of = OffsetDateTime::now_utc().date() - Duration::days(1);
    let period = sixpence_analytics::forecast::Period::containing(kind, as_of);
    let from = period.start.min(as_of - Duration::days(120));
    let scope = budget.as_ref().map(|b| b.scope.clone()).unwrap_or_default();
    let spend = budget_check::Spend::load(&state, workspace, &[&scope], from, as_of).await?;
    let series = spend.series(&scope, from);
    let currency = spend.currency().to_owned();
    let forecast = sixpence_analytics::forecast::forecast_period(&series, as_of, kind)
        .map_err(|_| Error::Conflict("no synced costs to forecast from yet".to_owned()))?;
    Ok(Json(ForecastView {
        period: match kind {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
            PeriodKind::Year => "year",
        }
        .to_owned(),
        period_start: date(period.start),
        period_end: date(period.end),
        as_of: date(as_of),
        actual_to_date: money(micros(forecast.actual_to_date)),
        forecast: money(micros(forecast.total)),
        lower: money(micros(forecast.lower)),
        upper: money(micros(forecast.upper)),
        interval: sixpence_analytics::forecast::INTERVAL,
        method: match forecast.method {
            ForecastMethod::RunRate => "runRate",
            _ => "model",
        }
        .to_owned(),
        currency,
        budget: budget.map(|b| b.id.to_string()),
    }))
}
