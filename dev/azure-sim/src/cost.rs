//! Cost Management query and forecast: request parsing, evaluation over the lazily generated cells,
//! and paging. Rows are produced bucket by bucket (a day, a month, or the whole period), so a page
//! costs one or two buckets of work and memory is bounded by the number of groups in a bucket.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::{Date, Duration};

use crate::model::{
    CostCell, Metric, Mode, SubModel, UNITS_PER_GBP, add_months, first_of_month, last_of_month,
    yyyymmdd,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Daily,
    Monthly,
    None,
}

#[derive(Debug, Clone)]
pub struct Aggregation {
    pub column: String,
    pub usd: bool,
}

#[derive(Debug, Clone)]
pub enum Grouping {
    Dimension(String),
    Tag(String),
}

#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Dimension { name: String, values: Vec<String> },
    Tag { name: String, values: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub metric: Metric,
    pub from: Date,
    pub to: Date,
    pub granularity: Granularity,
    pub aggregations: Vec<Aggregation>,
    pub groupings: Vec<Grouping>,
    pub filter: Option<Filter>,
    pub resource_group: Option<String>,
    /// `Some(include_actual_cost)` for a forecast.
    pub forecast: Option<bool>,
}

/// Fixed GBP to USD rate for the `*USD` aggregations (exact in units: x 5/4).
fn to_usd(units: i64) -> i64 {
    (units * 5 + 2) / 4
}

const DIMENSIONS: &[&str] = &[
    "ResourceGroup",
    "ResourceGroupName",
    "ServiceName",
    "MeterCategory",
    "MeterSubCategory",
    "Meter",
    "ResourceId",
    "ResourceType",
    "ResourceLocation",
    "ChargeType",
    "PricingModel",
];

fn known_dimension(name: &str) -> bool {
    DIMENSIONS.iter().any(|d| d.eq_ignore_ascii_case(name))
}

fn parse_date(v: Option<&Value>, what: &str) -> Result<Date, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("Invalid query definition: timePeriod '{what}' is required."))?;
    let head = s.get(..10).unwrap_or(s);
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(head, &fmt).map_err(|_| {
        format!("Invalid query definition: cannot parse timePeriod '{what}' value '{s}'.")
    })
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn parse_filter(v: &Value, depth: usize) -> Result<Filter, String> {
    if depth > 8 {
        return Err("Invalid query definition: filter is nested too deeply.".into());
    }
    let bad = || "Invalid query definition: invalid dataset filter.".to_string();
    let obj = v.as_object().ok_or_else(bad)?;
    for key in ["and", "or"] {
        if let Some(list) = obj.get(key) {
            let items = list
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|f| parse_filter(f, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            if items.is_empty() {
                return Err(bad());
            }
            return Ok(if key == "and" {
                Filter::And(items)
            } else {
                Filter::Or(items)
            });
        }
    }
    for key in ["dimensions", "tags"] {
        if let Some(c) = obj.get(key) {
            let name = str_field(c, "name").ok_or_else(bad)?.to_string();
            let op = str_field(c, "operator").unwrap_or("In");
            if !op.eq_ignore_ascii_case("In") {
                return Err(format!(
                    "Invalid query definition: operator '{op}' is not supported; only 'In' is."
                ));
            }
            let values = c
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(bad)?
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect();
            if key == "dimensions" {
                if !known_dimension(&name) {
                    return Err(format!(
                        "Invalid query definition: unknown dimension '{name}' in filter."
                    ));
                }
                return Ok(Filter::Dimension { name, values });
            }
            return Ok(Filter::Tag { name, values });
        }
    }
    Err(bad())
}

/// Parses a QueryDefinition (or ForecastDefinition) body. `today` anchors relative timeframes.
pub fn parse(body: &Value, today: Date, forecast: bool) -> Result<QuerySpec, String> {
    let dataset = body
        .get("dataset")
        .filter(|d| d.is_object())
        .ok_or("Invalid query definition, Dataset is invalid or not supplied")?;
    let metric = match str_field(body, "type").unwrap_or("") {
        t if t.eq_ignore_ascii_case("ActualCost") || t.eq_ignore_ascii_case("Usage") => {
            Metric::ActualCost
        }
        t if t.eq_ignore_ascii_case("AmortizedCost") => Metric::AmortizedCost,
        t => {
            return Err(format!(
                "Invalid query definition: type '{t}' is not supported."
            ));
        }
    };
    let timeframe = str_field(body, "timeframe").unwrap_or("");
    let (from, to) = match timeframe.to_ascii_lowercase().as_str() {
        "custom" => {
            let tp = body.get("timePeriod").ok_or(
                "Invalid query definition: timePeriod is required when timeframe is Custom.",
            )?;
            (
                parse_date(tp.get("from"), "from")?,
                parse_date(tp.get("to"), "to")?,
            )
        }
        _ if forecast => {
            return Err(
                "Invalid forecast definition: only the Custom timeframe is supported.".into(),
            );
        }
        "monthtodate" | "billingmonthtodate" => (first_of_month(today), today),
        "thecurrentmonth" => (first_of_month(today), last_of_month(today)),
        "thelastmonth" | "thelastbillingmonth" => {
            let first = add_months(first_of_month(today), -1);
            (first, last_of_month(first))
        }
        "weektodate" => {
            let back = i64::from(today.weekday().number_days_from_monday());
            (today - Duration::days(back), today)
        }
        _ => {
            return Err(format!(
                "Invalid query definition: timeframe '{timeframe}' is not supported."
            ));
        }
    };
    if to < from {
        return Err(
            "Invalid query definition: timePeriod 'from' must not be later than 'to'.".into(),
        );
    }
    if i64::from(to.to_julian_day() - from.to_julian_day()) > 366 {
        return Err(
            "Invalid query definition: The time period for pulling the data cannot exceed 1 year(s)."
                .into(),
        );
    }
    let granularity = match str_field(dataset, "granularity").unwrap_or("None") {
        g if g.eq_ignore_ascii_case("Daily") => Granularity::Daily,
        g if g.eq_ignore_ascii_case("Monthly") => Granularity::Monthly,
        g if g.eq_ignore_ascii_case("None") => Granularity::None,
        g => {
            return Err(format!(
                "Invalid query definition: granularity '{g}' is not supported."
            ));
        }
    };
    let mut aggregations = Vec::new();
    if let Some(aggs) = dataset.get("aggregation") {
        let aggs = aggs
            .as_object()
            .ok_or("Invalid query definition: aggregation must be an object.")?;
        if aggs.len() > 2 {
            return Err("Invalid query definition: at most 2 aggregations are allowed.".into());
        }
        for (alias, a) in aggs {
            let name = str_field(a, "name").unwrap_or("");
            let function = str_field(a, "function").unwrap_or("");
            if !function.eq_ignore_ascii_case("Sum") {
                return Err(format!(
                    "Invalid query definition: aggregation '{alias}' function '{function}' is not supported; use Sum."
                ));
            }
            let (column, usd) = match name.to_ascii_lowercase().as_str() {
                "cost" => ("Cost", false),
                "pretaxcost" => ("PreTaxCost", false),
                "costusd" => ("CostUSD", true),
                "pretaxcostusd" => ("PreTaxCostUSD", true),
                _ => {
                    return Err(format!(
                        "Invalid query definition: aggregation column '{name}' is not supported."
                    ));
                }
            };
            aggregations.push(Aggregation {
                column: column.to_string(),
                usd,
            });
        }
    }
    if aggregations.is_empty() {
        aggregations.push(Aggregation {
            column: "PreTaxCost".into(),
            usd: false,
        });
    }
    let mut groupings = Vec::new();
    if let Some(gs) = dataset.get("grouping") {
        let gs = gs
            .as_array()
            .ok_or("Invalid query definition: grouping must be an array.")?;
        if gs.len() > 2 {
            return Err("Invalid query definition: at most 2 groupings are allowed.".into());
        }
        if forecast && !gs.is_empty() {
            return Err("Invalid forecast definition: grouping is not supported.".into());
        }
        for g in gs {
            let name = str_field(g, "name").unwrap_or("").to_string();
            match str_field(g, "type").unwrap_or("") {
                t if t.eq_ignore_ascii_case("Dimension") => {
                    if !known_dimension(&name) {
                        return Err(format!(
                            "Invalid query definition: dimension '{name}' is not valid for grouping."
                        ));
                    }
                    let canonical = DIMENSIONS
                        .iter()
                        .find(|d| d.eq_ignore_ascii_case(&name))
                        .map_or(name.clone(), |d| (*d).to_string());
                    groupings.push(Grouping::Dimension(canonical));
                }
                t if t.eq_ignore_ascii_case("TagKey") && !name.is_empty() => {
                    groupings.push(Grouping::Tag(name))
                }
                t => {
                    return Err(format!(
                        "Invalid query definition: grouping type '{t}' is not supported."
                    ));
                }
            }
        }
    }
    let filter = match dataset.get("filter") {
        Some(f) if !f.is_null() => Some(parse_filter(f, 0)?),
        _ => None,
    };
    let forecast = if forecast {
        Some(
            body.get("includeActualCost")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        )
    } else {
        None
    };
    Ok(QuerySpec {
        metric,
        from,
        to,
        granularity,
        aggregations,
        groupings,
        filter,
        resource_group: None,
        forecast,
    })
}

/// Number of calendar months the query touches: the QPU it costs.
pub fn months_touched(spec: &QuerySpec) -> u32 {
    let a = spec.from.year() * 12 + spec.from.month() as i32;
    let b = spec.to.year() * 12 + spec.to.month() as i32;
    (b - a + 1).max(1) as u32
}

fn matches(f: &Filter, cell: &CostCell<'_>) -> bool {
    match f {
        Filter::And(fs) => fs.iter().all(|f| matches(f, cell)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, cell)),
        Filter::Dimension { name, values } => cell
            .dimension(name)
            .is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(&v))),
        Filter::Tag { name, values } => cell
            .tag(name)
            .is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v))),
    }
}

/// The date buckets of a query, in order.
pub fn buckets(spec: &QuerySpec) -> Vec<(Date, Date)> {
    let mut out = Vec::new();
    match spec.granularity {
        Granularity::None => out.push((spec.from, spec.to)),
        Granularity::Daily => {
            let mut d = spec.from;
            while d <= spec.to {
                out.push((d, d));
                match d.next_day() {
                    Some(n) => d = n,
                    None => break,
                }
            }
        }
        Granularity::Monthly => {
            let mut m = first_of_month(spec.from);
            while m <= spec.to {
                out.push((m.max(spec.from), last_of_month(m).min(spec.to)));
                m = add_months(m, 1);
            }
        }
    }
    out
}

type BucketRows = Vec<(Vec<String>, i64)>;

/// The aggregated rows of one bucket, sorted by group key, zero rows omitted.
pub fn bucket_rows(sub: &SubModel, spec: &QuerySpec, bucket: (Date, Date)) -> BucketRows {
    let mut groups: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    let mut add = |cell: &CostCell<'_>, status: Option<&str>| {
        if let Some(rg) = &spec.resource_group
            && !cell
                .resource
                .is_some_and(|r| r.resource_group.eq_ignore_ascii_case(rg))
        {
            return;
        }
        if let Some(f) = &spec.filter
            && !matches(f, cell)
        {
            return;
        }
        let mut key = Vec::with_capacity(spec.groupings.len() * 2 + 1);
        for g in &spec.groupings {
            match g {
                Grouping::Dimension(d) => key.push(cell.dimension(d).unwrap_or_default()),
                Grouping::Tag(t) => {
                    key.push(t.clone());
                    key.push(cell.tag(t).unwrap_or("").to_string());
                }
            }
        }
        if let Some(s) = status {
            key.push(s.to_string());
        }
        *groups.entry(key).or_insert(0) += cell.amount;
    };
    match spec.forecast {
        None => {
            for cell in sub.cells(bucket.0, bucket.1, spec.metric, Mode::Billed) {
                add(&cell, None);
            }
        }
        Some(include_actual) => {
            if include_actual && bucket.0 <= sub.end {
                for cell in sub.cells(bucket.0, bucket.1.min(sub.end), spec.metric, Mode::Billed) {
                    add(&cell, Some("Actual"));
                }
            }
            let future_from = bucket.0.max(sub.end + Duration::days(1));
            if future_from <= bucket.1 {
                for cell in sub.cells(future_from, bucket.1, spec.metric, Mode::Expected) {
                    add(&cell, Some("Forecast"));
                }
            }
        }
    }
    groups.into_iter().filter(|(_, v)| *v != 0).collect()
}

pub fn columns(spec: &QuerySpec) -> Vec<Value> {
    let mut cols = Vec::new();
    for a in &spec.aggregations {
        cols.push(json!({"name": a.column, "type": "Number"}));
    }
    for g in &spec.groupings {
        match g {
            Grouping::Dimension(d) => cols.push(json!({"name": d, "type": "String"})),
            Grouping::Tag(_) => {
                cols.push(json!({"name": "TagKey", "type": "String"}));
                cols.push(json!({"name": "TagValue", "type": "String"}));
            }
        }
    }
    match spec.granularity {
        Granularity::Daily => cols.push(json!({"name": "UsageDate", "type": "Number"})),
        Granularity::Monthly => cols.push(json!({"name": "BillingMonth", "type": "Datetime"})),
        Granularity::None => {}
    }
    if spec.forecast.is_some() {
        cols.push(json!({"name": "CostStatus", "type": "String"}));
    }
    cols.push(json!({"name": "Currency", "type": "String"}));
    cols
}

pub fn units_to_json(units: i64) -> Value {
    serde_json::Number::from_f64(units as f64 / UNITS_PER_GBP as f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn render_row(spec: &QuerySpec, bucket: (Date, Date), key: &[String], units: i64) -> Value {
    let mut row = Vec::with_capacity(key.len() + spec.aggregations.len() + 3);
    for a in &spec.aggregations {
        row.push(units_to_json(if a.usd { to_usd(units) } else { units }));
    }
    let (groups, status) = if spec.forecast.is_some() {
        key.split_at(key.len().saturating_sub(1))
    } else {
        (key, &[][..])
    };
    row.extend(groups.iter().map(|g| Value::String(g.clone())));
    match spec.granularity {
        Granularity::Daily => row.push(json!(yyyymmdd(bucket.0))),
        Granularity::Monthly => {
            let m = first_of_month(bucket.0);
            row.push(json!(format!(
                "{:04}-{:02}-01T00:00:00",
                m.year(),
                m.month() as u8
            )))
        }
        Granularity::None => {}
    }
    row.extend(status.iter().map(|s| Value::String(s.clone())));
    row.push(json!("GBP"));
    Value::Array(row)
}

/// Where a page starts: bucket index and row offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub bucket: usize,
    pub offset: usize,
}

/// One page of rows from `cursor`, and the cursor of the next non-empty page if there is one.
pub fn page(
    sub: &SubModel,
    spec: &QuerySpec,
    cursor: Cursor,
    size: usize,
) -> (Vec<Value>, Option<Cursor>) {
    let size = size.max(1);
    let all = buckets(spec);
    let mut out = Vec::new();
    let mut b = cursor.bucket;
    let mut off = cursor.offset;
    while b < all.len() {
        let rows = bucket_rows(sub, spec, all[b]);
        if off < rows.len() {
            let take = (size - out.len()).min(rows.len() - off);
            for (key, units) in &rows[off..off + take] {
                out.push(render_row(spec, all[b], key, *units));
            }
            off += take;
            if out.len() == size {
                if off < rows.len() {
                    return (
                        out,
                        Some(Cursor {
                            bucket: b,
                            offset: off,
                        }),
                    );
                }
                // Point the next link at the next bucket that has rows, if any.
                let mut nb = b + 1;
                while nb < all.len() {
                    if !bucket_rows(sub, spec, all[nb]).is_empty() {
                        return (
                            out,
                            Some(Cursor {
                                bucket: nb,
                                offset: 0,
                            }),
                        );
                    }
                    nb += 1;
                }
                return (out, None);
            }
        }
        b += 1;
        off = 0;
    }
    (out, None)
}

/// Totals of a metric by one dimension over a range (ground truth for tests).
/// Exact totals by the value of one tag key ("" for costs without it), as a `TagKey` grouping
/// answers.
pub fn totals_by_tag(
    sub: &SubModel,
    from: Date,
    to: Date,
    metric: Metric,
    key: &str,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for cell in sub.cells(from, to, metric, Mode::Billed) {
        *out.entry(cell.tag(key).unwrap_or("").to_string())
            .or_insert(0) += cell.amount;
    }
    out
}

pub fn totals_by(
    sub: &SubModel,
    from: Date,
    to: Date,
    metric: Metric,
    dimension: &str,
) -> Option<BTreeMap<String, i64>> {
    if !known_dimension(dimension) {
        return None;
    }
    let mut out = BTreeMap::new();
    for cell in sub.cells(from, to, metric, Mode::Billed) {
        *out.entry(cell.dimension(dimension).unwrap_or_default())
            .or_insert(0) += cell.amount;
    }
    Some(out)
}
