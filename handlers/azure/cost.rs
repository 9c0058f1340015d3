//! Cost Management: query, forecast, dimensions and the cost-details report.
//!
//! Query results are read **by column name, never by position**: the service decides the column order
//! and names the aggregate after the source column (`PreTaxCost`, `Cost`), not after our alias.
//! [`QueryResult`] and [`Row`] do the lookup; `UsageDate` is read as a `yyyymmdd` number or string, and
//! money as a number or a numeric string.
//!
//! Paging re-POSTs the **same body** to `properties.nextLink` (a bare POST is a 400). [`CostPages`]
//! does that page by page, so a caller holds one page (≈5,000 rows) at a time.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use time::Date;
use time::macros::format_description;
use url::Url;

use super::allow_list::is_cost_scope;
use super::api_version;
use super::client::{AzureClient, ListPages, Reply};
use super::error::AzureError;
use super::throttle::largest_retry_after;

/// The most groupings a query may have (the service's limit).
pub const MAX_GROUPINGS: usize = 2;
/// The most aggregations a query may have (the service's limit).
pub const MAX_AGGREGATIONS: usize = 2;

/// A Cost Management scope, e.g. `subscriptions/{id}` or `subscriptions/{id}/resourceGroups/{rg}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    /// A subscription scope.
    pub fn subscription(subscription_id: &str) -> Result<Self, AzureError> {
        Self::parse(&format!("subscriptions/{subscription_id}"))
    }

    /// A resource-group scope.
    pub fn resource_group(subscription_id: &str, resource_group: &str) -> Result<Self, AzureError> {
        Self::parse(&format!(
            "subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        ))
    }

    /// Any Cost Management scope form (with or without a leading `/`).
    pub fn parse(text: &str) -> Result<Self, AzureError> {
        let trimmed = text.trim_start_matches('/');
        let segments: Vec<&str> = trimmed.split('/').collect();
        if is_cost_scope(&segments) {
            Ok(Self(trimmed.to_owned()))
        } else {
            Err(AzureError::InvalidRequest(format!(
                "`{text}` is not a Cost Management scope"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which costs: `ActualCost` (as billed) or `AmortizedCost` (reservations spread); `Usage` is the
/// legacy name some examples use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostType {
    ActualCost,
    AmortizedCost,
    Usage,
}

impl CostType {
    pub fn as_str(self) -> &'static str {
        match self {
            CostType::ActualCost => "ActualCost",
            CostType::AmortizedCost => "AmortizedCost",
            CostType::Usage => "Usage",
        }
    }
}

/// Row granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Daily,
    Monthly,
}

/// The column an aggregation sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Cost,
    PreTaxCost,
    CostUsd,
    PreTaxCostUsd,
}

impl Aggregation {
    pub fn column(self) -> &'static str {
        match self {
            Aggregation::Cost => "Cost",
            Aggregation::PreTaxCost => "PreTaxCost",
            Aggregation::CostUsd => "CostUSD",
            Aggregation::PreTaxCostUsd => "PreTaxCostUSD",
        }
    }
}

/// A grouping: a dimension (`ResourceGroup`, `ServiceName`, `ResourceId`, ...) or a tag key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    Dimension(String),
    TagKey(String),
}

/// A query filter. `And`/`Or` need at least two operands; the only operator is `In`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Dimension { name: String, values: Vec<String> },
    Tag { name: String, values: Vec<String> },
}

impl Filter {
    fn validate(&self) -> Result<(), AzureError> {
        match self {
            Filter::And(operands) | Filter::Or(operands) => {
                if operands.len() < 2 {
                    return Err(AzureError::InvalidRequest(
                        "an and/or filter needs at least two operands".into(),
                    ));
                }
                operands.iter().try_for_each(Filter::validate)
            }
            Filter::Dimension { name, values } | Filter::Tag { name, values } => {
                if name.is_empty() || values.is_empty() {
                    return Err(AzureError::InvalidRequest(
                        "a filter needs a name and at least one value".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Filter::And(operands) => {
                json!({ "and": operands.iter().map(Filter::to_json).collect::<Vec<_>>() })
            }
            Filter::Or(operands) => {
                json!({ "or": operands.iter().map(Filter::to_json).collect::<Vec<_>>() })
            }
            Filter::Dimension { name, values } => {
                json!({ "dimensions": { "name": name, "operator": "In", "values": values } })
            }
            Filter::Tag { name, values } => {
                json!({ "tags": { "name": name, "operator": "In", "values": values } })
            }
        }
    }
}

/// A cost query over a custom, inclusive date range. Build with [`QueryDefinition::new`] and the
/// chained setters; limits are enforced as you build.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryDefinition {
    cost_type: CostType,
    from: Date,
    to: Date,
    granularity: Granularity,
    aggregations: Vec<(String, Aggregation)>,
    groupings: Vec<Grouping>,
    filter: Option<Filter>,
}

impl QueryDefinition {
    /// Daily `cost_type` from `from` to `to` (both inclusive), summing `Cost` as `totalCost` unless
    /// told otherwise.
    pub fn new(cost_type: CostType, from: Date, to: Date) -> Result<Self, AzureError> {
        if from > to {
            return Err(AzureError::InvalidRequest(format!(
                "the period starts ({from}) after it ends ({to})"
            )));
        }
        Ok(Self {
            cost_type,
            from,
            to,
            granularity: Granularity::Daily,
            aggregations: Vec::new(),
            groupings: Vec::new(),
            filter: None,
        })
    }

    pub fn granularity(mut self, granularity: Granularity) -> Self {
        self.granularity = granularity;
        self
    }

    /// Adds an aggregation (at most [`MAX_AGGREGATIONS`]).
    pub fn aggregate(mut self, alias: &str, column: Aggregation) -> Result<Self, AzureError> {
        if self.aggregations.len() >= MAX_AGGREGATIONS {
            return Err(AzureError::InvalidRequest(format!(
                "a cost query allows at most {MAX_AGGREGATIONS} aggregations"
            )));
        }
        self.aggregations.push((alias.to_owned(), column));
        Ok(self)
    }

    /// Adds a grouping (at most [`MAX_GROUPINGS`]).
    pub fn group_by(mut self, grouping: Grouping) -> Result<Self, AzureError> {
        if self.groupings.len() >= MAX_GROUPINGS {
            return Err(AzureError::InvalidRequest(format!(
                "a cost query allows at most {MAX_GROUPINGS} groupings"
            )));
        }
        self.groupings.push(grouping);
        Ok(self)
    }

    pub fn filter(mut self, filter: Filter) -> Result<Self, AzureError> {
        filter.validate()?;
        self.filter = Some(filter);
        Ok(self)
    }

    /// Query Processing Units this query is expected to cost: one per calendar month it touches.
    pub fn estimated_qpu(&self) -> f64 {
        months_spanned(self.from, self.to)
    }

    /// The request body.
    pub fn to_json(&self) -> Value {
        let mut dataset = json!({
            "granularity": match self.granularity {
                Granularity::Daily => "Daily",
                Granularity::Monthly => "Monthly",
            },
            "aggregation": aggregation_json(&self.aggregations),
        });
        if !self.groupings.is_empty() {
            dataset["grouping"] = self
                .groupings
                .iter()
                .map(|g| match g {
                    Grouping::Dimension(name) => json!({ "type": "Dimension", "name": name }),
                    Grouping::TagKey(name) => json!({ "type": "TagKey", "name": name }),
                })
                .collect();
        }
        if let Some(filter) = &self.filter {
            dataset["filter"] = filter.to_json();
        }
        json!({
            "type": self.cost_type.as_str(),
            "timeframe": "Custom",
            "timePeriod": time_period(self.from, self.to),
            "dataset": dataset,
        })
    }
}

/// A forecast over a custom date range (the only timeframe forecasts accept), daily.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastDefinition {
    cost_type: CostType,
    from: Date,
    to: Date,
    aggregation: (String, Aggregation),
    filter: Option<Filter>,
    include_actual_cost: bool,
    include_fresh_partial_cost: bool,
}

impl ForecastDefinition {
    /// Forecast of `Cost` (alias `totalCost`), without actuals, from `from` to `to` inclusive.
    pub fn new(cost_type: CostType, from: Date, to: Date) -> Result<Self, AzureError> {
        if from > to {
            return Err(AzureError::InvalidRequest(format!(
                "the period starts ({from}) after it ends ({to})"
            )));
        }
        Ok(Self {
            cost_type,
            from,
            to,
            aggregation: ("totalCost".into(), Aggregation::Cost),
            filter: None,
            include_actual_cost: false,
            include_fresh_partial_cost: false,
        })
    }

    pub fn aggregate(mut self, alias: &str, column: Aggregation) -> Self {
        self.aggregation = (alias.to_owned(), column);
        self
    }

    pub fn filter(mut self, filter: Filter) -> Result<Self, AzureError> {
        filter.validate()?;
        self.filter = Some(filter);
        Ok(self)
    }

    /// Also return actual costs (rows with `CostStatus` = `Actual`).
    pub fn include_actual_cost(mut self, include: bool) -> Self {
        self.include_actual_cost = include;
        self
    }

    pub fn include_fresh_partial_cost(mut self, include: bool) -> Self {
        self.include_fresh_partial_cost = include;
        self
    }

    pub fn estimated_qpu(&self) -> f64 {
        months_spanned(self.from, self.to)
    }

    pub fn to_json(&self) -> Value {
        let mut dataset = json!({
            "granularity": "Daily",
            "aggregation": aggregation_json(std::slice::from_ref(&self.aggregation)),
        });
        if let Some(filter) = &self.filter {
            dataset["filter"] = filter.to_json();
        }
        json!({
            "type": self.cost_type.as_str(),
            "timeframe": "Custom",
            "timePeriod": time_period(self.from, self.to),
            "dataset": dataset,
            "includeActualCost": self.include_actual_cost,
            "includeFreshPartialCost": self.include_fresh_partial_cost,
        })
    }
}

fn aggregation_json(aggregations: &[(String, Aggregation)]) -> Value {
    let mut map = serde_json::Map::new();
    if aggregations.is_empty() {
        map.insert(
            "totalCost".into(),
            json!({ "name": Aggregation::Cost.column(), "function": "Sum" }),
        );
    }
    for (alias, column) in aggregations {
        map.insert(
            alias.clone(),
            json!({ "name": column.column(), "function": "Sum" }),
        );
    }
    Value::Object(map)
}

fn time_period(from: Date, to: Date) -> Value {
    let format = format_description!("[year]-[month]-[day]");
    let day = |d: Date| d.format(&format).unwrap_or_default();
    json!({
        "from": format!("{}T00:00:00+00:00", day(from)),
        "to": format!("{}T23:59:59+00:00", day(to)),
    })
}

fn months_spanned(from: Date, to: Date) -> f64 {
    let index = |d: Date| d.year() as i64 * 12 + d.month() as i64;
    (index(to) - index(from) + 1).max(1) as f64
}

/// One column of a query result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// One page of a query or forecast result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// The result id; with or without a leading `/`, depending on the service's mood.
    pub id: Option<String>,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
struct QueryWire {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    properties: Option<QueryPropertiesWire>,
}

#[derive(Deserialize)]
struct QueryPropertiesWire {
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// Parses a query or forecast response body; an empty body (204) is an empty result.
    pub fn from_json(body: &[u8]) -> Result<Self, AzureError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let wire: QueryWire = serde_json::from_slice(body)
            .map_err(|e| AzureError::invalid_response(format!("cost query result: {e}")))?;
        let properties = wire.properties.unwrap_or(QueryPropertiesWire {
            next_link: None,
            columns: Vec::new(),
            rows: Vec::new(),
        });
        Ok(Self {
            id: wire.id,
            columns: properties.columns,
            rows: properties.rows,
            next_link: properties.next_link.filter(|l| !l.is_empty()),
        })
    }

    /// The position of a column, by case-insensitive name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Like [`QueryResult::column`], but a missing column is an error naming it.
    pub fn require(&self, name: &str) -> Result<usize, AzureError> {
        self.column(name).ok_or_else(|| {
            AzureError::invalid_response(format!("the cost result has no `{name}` column"))
        })
    }

    /// The name of the cost column: the first of `Cost`, `PreTaxCost`, `CostUSD`, `PreTaxCostUSD`
    /// present.
    pub fn cost_column(&self) -> Option<&str> {
        [
            Aggregation::Cost,
            Aggregation::PreTaxCost,
            Aggregation::CostUsd,
            Aggregation::PreTaxCostUsd,
        ]
        .into_iter()
        .find_map(|a| {
            self.column(a.column())
                .map(|i| self.columns[i].name.as_str())
        })
    }

    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(move |values| Row {
            result: self,
            values,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One row, read by column name.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    result: &'a QueryResult,
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The raw value of a column (`None` if there is no such column or the row is short).
    pub fn get(&self, column: &str) -> Option<&'a Value> {
        self.values.get(self.result.column(column)?)
    }

    /// A number, sent as a JSON number or a numeric string.
    pub fn number(&self, column: &str) -> Option<f64> {
        match self.get(column)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A string (numbers are not converted).
    pub fn text(&self, column: &str) -> Option<&'a str> {
        self.get(column)?.as_str()
    }

    /// A date sent as a `yyyymmdd` number or string, or as an ISO date or date-time string
    /// (`BillingMonth` is `2024-01-01T00:00:00`).
    pub fn date(&self, column: &str) -> Option<Date> {
        match self.get(column)? {
            Value::Number(n) => yyyymmdd(n.as_u64()?),
            Value::String(s) => {
                let s = s.trim();
                if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
                    yyyymmdd(s.parse().ok()?)
                } else {
                    let format = format_description!("[year]-[month]-[day]");
                    Date::parse(s.get(..10)?, &format).ok()
                }
            }
            _ => None,
        }
    }

    /// `UsageDate` (daily results) or `BillingMonth` (monthly results).
    pub fn usage_date(&self) -> Option<Date> {
        self.date("UsageDate").or_else(|| self.date("BillingMonth"))
    }

    /// The cost, from the result's cost column.
    pub fn cost(&self) -> Option<f64> {
        self.number(self.result.cost_column()?)
    }

    pub fn currency(&self) -> Option<&'a str> {
        self.text("Currency")
    }
}

fn yyyymmdd(n: u64) -> Option<Date> {
    let year = i32::try_from(n / 10_000).ok()?;
    let month = time::Month::try_from(u8::try_from(n / 100 % 100).ok()?).ok()?;
    let day = u8::try_from(n % 100).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Pages of a query or forecast: the first POST, then the same body re-POSTed to each `nextLink`.
pub struct CostPages {
    client: AzureClient,
    body: Value,
    next: Option<Url>,
    qpu: f64,
}

impl fmt::Debug for CostPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostPages")
            .field("next", &self.next.as_ref().map(Url::path))
            .field("qpu", &self.qpu)
            .finish()
    }
}

impl CostPages {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<QueryResult>, AzureError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let reply = self
            .client
            .send(Method::POST, url.clone(), Some(&self.body), self.qpu)
            .await?;
        let page = QueryResult::from_json(&reply.body)?;
        if let Some(link) = &page.next_link {
            let next = self.client.next_link(link)?;
            if next == url {
                return Err(AzureError::invalid_response(
                    "cost query: nextLink repeats the current page",
                ));
            }
            self.next = Some(next);
        }
        Ok(Some(page))
    }

    /// The pages as a stream.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<QueryResult, AzureError>> {
        futures::stream::try_unfold(self, |mut pages| async move {
            Ok(pages.next_page().await?.map(|page| (page, pages)))
        })
    }
}

/// One Cost Management dimension (a groupable or filterable column, with sample values).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "DimensionWire")]
pub struct Dimension {
    pub id: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
    pub data: Vec<String>,
    pub filter_enabled: Option<bool>,
    pub grouping_enabled: Option<bool>,
    pub total: Option<i64>,
    pub usage_start: Option<String>,
    pub usage_end: Option<String>,
}

#[derive(Deserialize)]
struct DimensionWire {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    properties: DimensionPropertiesWire,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DimensionPropertiesWire {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    data: Vec<String>,
    #[serde(default)]
    filter_enabled: Option<bool>,
    #[serde(default)]
    grouping_enabled: Option<bool>,
    #[serde(default)]
    total: Option<i64>,
    #[serde(default)]
    usage_start: Option<String>,
    #[serde(default)]
    usage_end: Option<String>,
}

impl From<DimensionWire> for Dimension {
    fn from(wire: DimensionWire) -> Self {
        let p = wire.properties;
        Self {
            id: wire.id,
            name: wire.name,
            category: p.category,
            description: p.description,
            data: p.data,
            filter_enabled: p.filter_enabled,
            grouping_enabled: p.grouping_enabled,
            total: p.total,
            usage_start: p.usage_start,
            usage_end: p.usage_end,
        }
    }
}

/// Where a cost-details report stands.
#[derive(Debug, Clone, PartialEq)]
pub enum CostDetailsReport {
    /// Still running: poll `location` (with [`AzureClient::cost_details_status`]) after `retry_after`.
    Pending {
        location: Url,
        retry_after: Option<Duration>,
    },
    /// Finished (status `Completed`, `NoDataFound` or `Failed`).
    Finished(CostDetailsResult),
}

/// The result of a finished cost-details report.
#[derive(Debug, Clone, PartialEq)]
pub struct CostDetailsResult {
    pub status: String,
    pub blobs: Vec<CostDetailsBlob>,
    pub valid_till: Option<String>,
}

/// One CSV blob of a cost-details report. The link carries a SAS signature: `Debug` hides it.
#[derive(Clone, PartialEq)]
pub struct CostDetailsBlob {
    pub link: String,
    pub byte_count: Option<u64>,
}

impl fmt::Debug for CostDetailsBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let without_query = self.link.split('?').next().unwrap_or_default();
        f.debug_struct("CostDetailsBlob")
            .field("link", &format_args!("{without_query}?<redacted>"))
            .field("byte_count", &self.byte_count)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CostDetailsWire {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    manifest: Option<ManifestWire>,
    #[serde(default)]
    valid_till: Option<String>,
}

#[derive(Deserialize)]
struct ManifestWire {
    #[serde(default)]
    blobs: Vec<BlobWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlobWire {
    blob_link: String,
    #[serde(default)]
    byte_count: Option<u64>,
}

impl CostDetailsResult {
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, AzureError> {
        let wire: CostDetailsWire = serde_json::from_slice(body)
            .map_err(|e| AzureError::invalid_response(format!("cost details: {e}")))?;
        Ok(Self {
            status: wire.status.unwrap_or_default(),
            blobs: wire
                .manifest
                .map(|m| m.blobs)
                .unwrap_or_default()
                .into_iter()
                .map(|b| CostDetailsBlob {
                    link: b.blob_link,
                    byte_count: b.byte_count,
                })
                .collect(),
            valid_till: wire.valid_till,
        })
    }
}

impl AzureClient {
    fn cost_url(&self, scope: &Scope, tail: &[&str]) -> Result<Url, AzureError> {
        let mut segments: Vec<&str> = scope.segments().collect();
        segments.extend(["providers", "Microsoft.CostManagement"]);
        segments.extend(tail);
        self.url(&segments, &[("api-version", api_version::COST_MANAGEMENT)])
    }

    /// Runs a cost query; read the result page by page.
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), scope = %scope))]
    pub fn cost_query(
        &self,
        scope: &Scope,
        query: &QueryDefinition,
    ) -> Result<CostPages, AzureError> {
        Ok(CostPages {
            client: self.clone(),
            body: query.to_json(),
            next: Some(self.cost_url(scope, &["query"])?),
            qpu: query.estimated_qpu(),
        })
    }

    /// Runs a forecast; read the result page by page (usually one).
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), scope = %scope))]
    pub fn forecast(
        &self,
        scope: &Scope,
        forecast: &ForecastDefinition,
    ) -> Result<CostPages, AzureError> {
        Ok(CostPages {
            client: self.clone(),
            body: forecast.to_json(),
            next: Some(self.cost_url(scope, &["forecast"])?),
            qpu: forecast.estimated_qpu(),
        })
    }

    /// The dimensions (groupable/filterable columns) of a scope.
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), scope = %scope))]
    pub fn dimensions(&self, scope: &Scope) -> Result<ListPages<Dimension>, AzureError> {
        Ok(ListPages::new(
            self.clone(),
            self.cost_url(scope, &["dimensions"])?,
            "cost dimensions",
        ))
    }

    /// Starts a cost-details report for one month at most (the service's limit).
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id(), scope = %scope))]
    pub async fn generate_cost_details_report(
        &self,
        scope: &Scope,
        metric: CostType,
        start: Date,
        end: Date,
    ) -> Result<CostDetailsReport, AzureError> {
        if metric == CostType::Usage {
            return Err(AzureError::InvalidRequest(
                "a cost-details report is ActualCost or AmortizedCost".into(),
            ));
        }
        let format = format_description!("[year]-[month]-[day]");
        let day = |d: Date| d.format(&format).unwrap_or_default();
        let body = json!({
            "metric": metric.as_str(),
            "timePeriod": { "start": day(start), "end": day(end) },
        });
        let url = self.cost_url(scope, &["generateCostDetailsReport"])?;
        let reply = self.send(Method::POST, url, Some(&body), 1.0).await?;
        self.cost_details_reply(reply)
    }

    /// Polls a cost-details report started by [`AzureClient::generate_cost_details_report`].
    #[tracing::instrument(skip_all, fields(tenant.id = %self.tenant_id()))]
    pub async fn cost_details_status(
        &self,
        location: &Url,
    ) -> Result<CostDetailsReport, AzureError> {
        let url = self.next_link(location.as_str())?;
        let reply = self.send(Method::GET, url, None, 1.0).await?;
        self.cost_details_reply(reply)
    }

    fn cost_details_reply(&self, reply: Reply) -> Result<CostDetailsReport, AzureError> {
        if reply.status.as_u16() == 202 {
            let location = reply
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    AzureError::invalid_response("cost details: 202 without Location")
                })?;
            return Ok(CostDetailsReport::Pending {
                location: self.next_link(location)?,
                retry_after: largest_retry_after(&reply.headers),
            });
        }
        if reply.status.as_u16() == 204 {
            return Ok(CostDetailsReport::Finished(CostDetailsResult {
                status: "NoDataFound".into(),
                blobs: Vec::new(),
                valid_till: None,
            }));
        }
        CostDetailsResult::from_json(&reply.body).map(CostDetailsReport::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_query_body_has_the_documented_shape() {
        let query = QueryDefinition::new(
            CostType::ActualCost,
            date!(2024 - 01 - 01),
            date!(2024 - 01 - 31),
        )
        .unwrap()
        .aggregate("totalCost", Aggregation::Cost)
        .unwrap()
        .group_by(Grouping::Dimension("ResourceGroup".into()))
        .unwrap()
        .group_by(Grouping::TagKey("env".into()))
        .unwrap()
        .filter(Filter::Dimension {
            name: "ResourceLocation".into(),
            values: vec!["uksouth".into()],
        })
        .unwrap();
        assert_eq!(
            query.to_json(),
            json!({
                "type": "ActualCost",
                "timeframe": "Custom",
                "timePeriod": { "from": "2024-01-01T00:00:00+00:00", "to": "2024-01-31T23:59:59+00:00" },
                "dataset": {
                    "granularity": "Daily",
                    "aggregation": { "totalCost": { "name": "Cost", "function": "Sum" } },
                    "grouping": [
                        { "type": "Dimension", "name": "ResourceGroup" },
                        { "type": "TagKey", "name": "env" },
                    ],
                    "filter": { "dimensions": { "name": "ResourceLocation", "operator": "In", "values": ["uksouth"] } },
                },
            })
        );
        assert_eq!(query.estimated_qpu(), 1.0);
    }

    #[test]
    fn a_third_grouping_is_refused() {
        let query = QueryDefinition::new(
            CostType::AmortizedCost,
            date!(2024 - 01 - 01),
            date!(2024 - 03 - 31),
        )
        .unwrap()
        .group_by(Grouping::Dimension("ResourceGroup".into()))
        .unwrap()
        .group_by(Grouping::Dimension("ServiceName".into()))
        .unwrap();
        assert!(matches!(
            query
                .clone()
                .group_by(Grouping::Dimension("ResourceId".into())),
            Err(AzureError::InvalidRequest(_))
        ));
        assert_eq!(query.estimated_qpu(), 3.0);
        assert_eq!(
            query.to_json()["dataset"]["aggregation"],
            json!({ "totalCost": { "name": "Cost", "function": "Sum" } })
        );
    }

    #[test]
    fn bad_periods_and_filters_are_refused() {
        assert!(
            QueryDefinition::new(
                CostType::ActualCost,
                date!(2024 - 02 - 01),
                date!(2024 - 01 - 01)
            )
            .is_err()
        );
        let query = QueryDefinition::new(
            CostType::ActualCost,
            date!(2024 - 01 - 01),
            date!(2024 - 01 - 02),
        )
        .unwrap();
        assert!(
            query
                .clone()
                .filter(Filter::And(vec![Filter::Tag {
                    name: "a".into(),
                    values: vec!["b".into()]
                }]))
                .is_err()
        );
        assert!(
            query
                .filter(Filter::Dimension {
                    name: "x".into(),
                    values: vec![]
                })
                .is_err()
        );
    }

    #[test]
    fn the_forecast_body_has_the_documented_shape() {
        let forecast = ForecastDefinition::new(
            CostType::ActualCost,
            date!(2022 - 08 - 01),
            date!(2022 - 08 - 31),
        )
        .unwrap()
        .include_actual_cost(true);
        let body = forecast.to_json();
        assert_eq!(body["timeframe"], "Custom");
        assert_eq!(body["dataset"]["granularity"], "Daily");
        assert_eq!(body["dataset"]["aggregation"]["totalCost"]["name"], "Cost");
        assert_eq!(body["includeActualCost"], true);
        assert_eq!(body["includeFreshPartialCost"], false);
    }

    #[test]
    fn rows_are_read_by_column_name_whatever_the_order_and_types() {
        let body = json!({
            "properties": {
                "nextLink": null,
                "columns": [
                    { "name": "Currency", "type": "String" },
                    { "name": "UsageDate", "type": "String" },
                    { "name": "ResourceGroup", "type": "String" },
                    { "name": "Cost", "type": "Number" },
                ],
                "rows": [
                    ["GBP", "20240115", "rg-a", "12.5"],
                    ["GBP", 20240116, "rg-b", 218.68795741935486],
                    ["GBP", "2024-01-17T00:00:00", "rg-c", null],
                    ["GBP"],
                ],
            }
        });
        let result = QueryResult::from_json(body.to_string().as_bytes()).unwrap();
        let rows: Vec<_> = result.rows().collect();
        assert_eq!(rows[0].usage_date(), Some(date!(2024 - 01 - 15)));
        assert_eq!(rows[0].cost(), Some(12.5));
        assert_eq!(rows[1].usage_date(), Some(date!(2024 - 01 - 16)));
        // Within an ulp or so: serde_json parses floats fast, not round-trip exact.
        assert!((rows[1].cost().unwrap() - 218.68795741935486).abs() < 1e-9);
        assert_eq!(rows[1].text("resourcegroup"), Some("rg-b"));
        assert_eq!(rows[2].usage_date(), Some(date!(2024 - 01 - 17)));
        assert_eq!(rows[2].cost(), None);
        assert_eq!(
            rows[3].cost(),
            None,
            "a short row has no cost, and no panic"
        );
        assert!(result.require("ServiceName").is_err());
    }

    #[test]
    fn scopes_are_validated() {
        assert!(Scope::subscription("00000000-0000-0000-0000-000000000000").is_ok());
        assert!(Scope::resource_group("s", "my.rg(1)").is_ok());
        assert!(Scope::parse("/providers/Microsoft.Billing/billingAccounts/12345:6789").is_ok());
        assert!(Scope::subscription("a/../../providers").is_err());
        assert!(Scope::subscription("").is_err());
        assert!(Scope::parse("subscriptions/s/providers/Microsoft.Compute").is_err());
    }
}
