//! The cost model: what one subscription's synced costs are, how they are fetched (the query plan)
//! and which months a sync re-reads (the windows). Pure: no storage, HTTP or Azure types.
//!
//! ## The stored model
//!
//! Cost Management answers at most two groupings per query and charges 1 QPU per month of data, so no
//! single query returns every dimension. Each month is fetched as three **views**, each grouped by
//! `ResourceId` and one more dimension, for both metrics (actual and amortized), daily:
//!
//! | view | groupings | answers by |
//! |---|---|---|
//! | [`View::ChargeType`] | ResourceId, ChargeType | resource, resource group, subscription, charge type |
//! | [`View::Service`] | ResourceId, ServiceName | service (and the resource dimensions) |
//! | [`View::MeterCategory`] | ResourceId, MeterCategory | meter category (and the resource dimensions) |
//!
//! Every view sums to the same daily total (each is a complete partition of the same costs), so any
//! grouping reads exactly one view and its totals equal what Azure itself answers for that grouping.
//! Resource group and subscription are functions of the resource id, so they need no query of their
//! own; a filter on resource, resource group or subscription works with every grouping. Service, meter
//! category and charge type are *not* functions of the resource (a VM bills compute and bandwidth), so
//! a filter on one of them combines only with a grouping from the same view.
//!
//! Money is kept in integer millionths of the billing currency ([`Micros`]): Cost Management sends
//! doubles, each is rounded once to the micro-unit on arrival and every sum after that is exact.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month};

use super::store::StoreError;
use super::tenancy::WorkspaceId;

/// Months a first sync reads before the current month (13 full months plus month to date).
pub const BACKFILL_MONTHS: i32 = 13;
/// Days back a nightly sync re-reads: Azure restates usage for up to ~72 h after the day (late
/// meter records, reservation amortisation), so five days covers that with a margin of two nights of
/// missed syncs.
pub const RESTATEMENT_DAYS: i64 = 5;
/// The previous month is re-read every night until this day of the next month. Azure finalises a
/// month's actual and amortized cost within a few days of its end (invoice generation, reservation
/// true-ups); after day 10 it no longer changes in practice.
pub const MONTH_CLOSES_ON_DAY: u8 = 10;

/// Money in millionths of the billing currency. Exact to add; rounded once from Azure's doubles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Micros(pub i64);

impl Micros {
    /// Rounds a cost value as Cost Management sends it; `None` for a non-finite or absurd value.
    pub fn from_f64(value: f64) -> Option<Micros> {
        let scaled = (value * 1_000_000.0).round();
        // ±9.2e12 currency units is far beyond any subscription's month; refuse rather than saturate.
        (scaled.is_finite() && scaled.abs() < 9.0e18).then_some(Micros(scaled as i64))
    }

    pub fn checked_add(self, other: Micros) -> Option<Micros> {
        self.0.checked_add(other.0).map(Micros)
    }

    /// Whole cents (or pence), rounded half away from zero.
    pub fn cents(self) -> i64 {
        let q = self.0 / 10_000;
        let r = self.0 % 10_000;
        if r >= 5_000 {
            q + 1
        } else if r <= -5_000 {
            q - 1
        } else {
            q
        }
    }
}

/// A plain decimal string with six places (`-12.345600`): what the API shows, exactly.
impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
    }
}

/// Which cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Metric {
    /// As billed: purchases on the day they are bought.
    Actual,
    /// Reservation and savings-plan purchases spread over the days they cover.
    Amortized,
}

impl Metric {
    pub const ALL: [Metric; 2] = [Metric::Actual, Metric::Amortized];

    /// One letter, for storage keys.
    pub fn code(self) -> &'static str {
        match self {
            Metric::Actual => "a",
            Metric::Amortized => "m",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Actual => "actual",
            Metric::Amortized => "amortized",
        }
    }
}

impl FromStr for Metric {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "actual" => Ok(Metric::Actual),
            "amortized" => Ok(Metric::Amortized),
            _ => Err(()),
        }
    }
}

/// One of the ways a month is fetched (see the module docs): three fixed views, and one per tag key
/// the workspace chose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum View {
    ChargeType,
    Service,
    MeterCategory,
    Tag(TagKey),
}

impl View {
    /// The views every month has, whatever the workspace's tag keys.
    pub const FIXED: [View; 3] = [View::ChargeType, View::Service, View::MeterCategory];

    /// The Cost Management grouping beside `ResourceId`: a dimension name, or a tag key.
    pub fn azure_grouping(&self) -> AzureGrouping<'_> {
        match self {
            View::ChargeType => AzureGrouping::Dimension("ChargeType"),
            View::Service => AzureGrouping::Dimension("ServiceName"),
            View::MeterCategory => AzureGrouping::Dimension("MeterCategory"),
            View::Tag(key) => AzureGrouping::Tag(key.as_str()),
        }
    }

    /// The column of Cost Management's answer that holds this view's value.
    pub fn azure_column(&self) -> &'static str {
        match self {
            View::ChargeType => "ChargeType",
            View::Service => "ServiceName",
            View::MeterCategory => "MeterCategory",
            View::Tag(_) => "TagValue",
        }
    }

    /// A short name for file names and logs (`ServiceName`, `tag-costcenter`).
    pub fn label(&self) -> String {
        match self {
            View::Tag(key) => format!("tag-{}", key.folded()),
            other => other.azure_column().to_owned(),
        }
    }

    /// Storage key of the view: one letter for the fixed views, `t` and the hex of the folded key
    /// for a tag (tag keys may hold characters storage keys may not).
    pub fn code(&self) -> String {
        match self {
            View::ChargeType => "c".to_owned(),
            View::Service => "s".to_owned(),
            View::MeterCategory => "k".to_owned(),
            View::Tag(key) => {
                let mut out = String::from("t");
                for b in key.folded().bytes() {
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }
}

/// How a view groups beside `ResourceId`, in Cost Management's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AzureGrouping<'a> {
    Dimension(&'a str),
    Tag(&'a str),
}

/// Most tag keys a workspace syncs: each costs two queries (actual, amortized) per month, so five
/// keys take a subscription's nightly sync from 6 to 16 QPU.
pub const MAX_TAG_KEYS: usize = 5;

/// A tag key whose values costs are synced by. Azure compares tag names without case, so two keys
/// that differ only in case are the same key ([`TagKey::folded`]); the key is sent to Azure as the
/// workspace wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagKey(String);

impl TagKey {
    /// Azure's rules for tag names: 1 to 512 characters, none of `< > % & \ ? /`.
    pub fn parse(raw: &str) -> Result<TagKey, String> {
        let key = raw.trim();
        if key.is_empty() || key.chars().count() > 512 {
            return Err("a tag key must be 1 to 512 characters".to_owned());
        }
        if let Some(c) = key
            .chars()
            .find(|c| "<>%&\\?/".contains(*c) || c.is_control())
        {
            return Err(format!("a tag key cannot contain `{}`", c.escape_default()));
        }
        Ok(TagKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key compared without case.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for TagKey {
    fn eq(&self, other: &Self) -> bool {
        self.folded() == other.folded()
    }
}
impl Eq for TagKey {}
impl PartialOrd for TagKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TagKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.folded().cmp(&other.folded())
    }
}
impl std::hash::Hash for TagKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.folded().hash(state)
    }
}
impl TryFrom<String> for TagKey {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        TagKey::parse(&value)
    }
}
impl From<TagKey> for String {
    fn from(key: TagKey) -> String {
        key.0
    }
}
impl fmt::Display for TagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a workspace's choice of tag keys: at most [`MAX_TAG_KEYS`], no key twice.
pub fn validate_tag_keys(keys: &[TagKey]) -> Result<(), String> {
    if keys.len() > MAX_TAG_KEYS {
        return Err(format!("at most {MAX_TAG_KEYS} tag keys can be synced"));
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(format!("the tag key `{key}` is listed twice"));
        }
    }
    Ok(())
}

/// What costs can be grouped and filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    Subscription,
    ResourceGroup,
    Service,
    MeterCategory,
    Resource,
    ChargeType,
    /// The values of one tag key (`tag:<key>`); costs with no value for it group under "".
    Tag(TagKey),
}

impl Dimension {
    /// The view whose second grouping this is, or `None` for a function of the resource id (readable
    /// from any view).
    pub fn view(&self) -> Option<View> {
        match self {
            Dimension::Service => Some(View::Service),
            Dimension::MeterCategory => Some(View::MeterCategory),
            Dimension::ChargeType => Some(View::ChargeType),
            Dimension::Tag(key) => Some(View::Tag(key.clone())),
            Dimension::Subscription | Dimension::ResourceGroup | Dimension::Resource => None,
        }
    }

    /// The API's name of the dimension (`service`, `tag:costCenter`).
    pub fn name(&self) -> String {
        match self {
            Dimension::Subscription => "subscription".to_owned(),
            Dimension::ResourceGroup => "resourceGroup".to_owned(),
            Dimension::Service => "service".to_owned(),
            Dimension::MeterCategory => "meterCategory".to_owned(),
            Dimension::Resource => "resource".to_owned(),
            Dimension::ChargeType => "chargeType".to_owned(),
            Dimension::Tag(key) => format!("tag:{key}"),
        }
    }

    /// This dimension's value of one stored row of `subscription`.
    pub fn value_of<'a>(&self, subscription: &'a str, row: &'a ViewRow) -> &'a str {
        match self {
            Dimension::Subscription => subscription,
            Dimension::Resource => &row.resource,
            Dimension::ResourceGroup => resource_group_of(&row.resource),
            Dimension::Service
            | Dimension::MeterCategory
            | Dimension::ChargeType
            | Dimension::Tag(_) => &row.value,
        }
    }
}

impl FromStr for Dimension {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "subscription" => Dimension::Subscription,
            "resourceGroup" => Dimension::ResourceGroup,
            "service" => Dimension::Service,
            "meterCategory" => Dimension::MeterCategory,
            "resource" => Dimension::Resource,
            "chargeType" => Dimension::ChargeType,
            other => match other.strip_prefix("tag:") {
                Some(key) => Dimension::Tag(TagKey::parse(key).map_err(|_| ())?),
                None => return Err(()),
            },
        })
    }
}

/// The view a grouping plus filters must read, or the dimension that cannot be combined.
pub fn view_for<'a>(
    group_by: Option<&'a Dimension>,
    filters: impl IntoIterator<Item = &'a Dimension>,
) -> Result<View, &'a Dimension> {
    let mut chosen = group_by.and_then(Dimension::view);
    for filter in filters {
        match (&chosen, filter.view()) {
            (_, None) => {}
            (None, Some(v)) => chosen = Some(v),
            (Some(c), Some(v)) if *c == v => {}
            (Some(_), Some(_)) => return Err(filter),
        }
    }
    Ok(chosen.unwrap_or(View::ChargeType))
}

/// The resource group of a resource id, lower-cased (Azure compares resource group names without
/// case, and Cost Management itself reports one group in several casings); empty for costs with no
/// resource (reservation purchases).
pub fn resource_group_of(resource: &str) -> &str {
    let mut parts = resource.split('/').filter(|p| !p.is_empty());
    while let Some(part) = parts.next() {
        if part.eq_ignore_ascii_case("resourcegroups") {
            return parts.next().unwrap_or("");
        }
    }
    ""
}

/// One row of one view on one day: a resource (lower-cased id, empty for none), the view's second
/// dimension and the cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRow {
    pub resource: String,
    pub value: String,
    pub amount: Micros,
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    pub year: i32,
    pub month: Month,
}

impl YearMonth {
    pub fn of(date: Date) -> Self {
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    pub fn first_day(self) -> Date {
        Date::from_calendar_date(self.year, self.month, 1).expect("the first of a month exists")
    }

    pub fn last_day(self) -> Date {
        self.next().first_day() - Duration::days(1)
    }

    pub fn next(self) -> Self {
        match self.month {
            Month::December => Self {
                year: self.year + 1,
                month: Month::January,
            },
            m => Self {
                year: self.year,
                month: m.next(),
            },
        }
    }

    pub fn minus(self, months: i32) -> Self {
        let index = self.year * 12 + i32::from(self.month as u8) - 1 - months;
        Self {
            year: index.div_euclid(12),
            month: Month::try_from((index.rem_euclid(12) + 1) as u8).expect("1..=12"),
        }
    }

    /// `2026-11`: the storage key and the monthly granularity's label.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month as u8)
    }
}

/// The days a sync re-reads: whole months (each month is replaced as one unit), up to yesterday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Date,
    pub to: Date,
}

impl Window {
    /// A first sync: 13 full months before the current one, and the current month to yesterday.
    pub fn backfill(today: Date) -> Window {
        let yesterday = today - Duration::days(1);
        Window {
            from: YearMonth::of(yesterday).minus(BACKFILL_MONTHS).first_day(),
            to: yesterday,
        }
    }

    /// A nightly sync: every month touched by the restatement days, and the previous month until it
    /// closes.
    pub fn nightly(today: Date) -> Window {
        let yesterday = today - Duration::days(1);
        let restated = YearMonth::of(today - Duration::days(RESTATEMENT_DAYS));
        let open_previous = if today.day() <= MONTH_CLOSES_ON_DAY {
            YearMonth::of(today).minus(1)
        } else {
            YearMonth::of(today)
        };
        Window {
            from: restated
                .min(open_previous)
                .min(YearMonth::of(yesterday))
                .first_day(),
            to: yesterday,
        }
    }

    /// The months of the window, oldest first, each clipped to the window.
    pub fn months(&self) -> Vec<(YearMonth, Date, Date)> {
        let mut out = Vec::new();
        let mut m = YearMonth::of(self.from);
        while m.first_day() <= self.to {
            out.push((m, m.first_day().max(self.from), m.last_day().min(self.to)));
            m = m.next();
        }
        out
    }

    /// Every day of the window.
    pub fn days(&self) -> Vec<Date> {
        let mut out = Vec::new();
        let mut d = self.from;
        while d <= self.to {
            out.push(d);
            d += Duration::days(1);
        }
        out
    }
}

/// One Query API call of the plan: a metric and a view over one month (1 QPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedQuery {
    pub month: YearMonth,
    pub from: Date,
    pub to: Date,
    pub metric: Metric,
    pub view: View,
}

/// The views a month is fetched as: the fixed three and one per chosen tag key.
pub fn views(tag_keys: &[TagKey]) -> Vec<View> {
    View::FIXED
        .into_iter()
        .chain(tag_keys.iter().cloned().map(View::Tag))
        .collect()
}

/// The queries that fetch one month completely: every view for both metrics.
pub fn month_plan(
    month: YearMonth,
    from: Date,
    to: Date,
    tag_keys: &[TagKey],
) -> Vec<PlannedQuery> {
    let views = views(tag_keys);
    let mut out = Vec::with_capacity(views.len() * Metric::ALL.len());
    for metric in Metric::ALL {
        for view in &views {
            out.push(PlannedQuery {
                month,
                from,
                to,
                metric,
                view: view.clone(),
            });
        }
    }
    out
}

/// QPU a window costs: one per query per month.
pub fn window_qpu(window: &Window, tag_keys: &[TagKey]) -> usize {
    window.months().len() * Metric::ALL.len() * (View::FIXED.len() + tag_keys.len())
}

/// The rows of one answer page of one query, merged by day, resource and value: the unit a sync
/// writes. A sync streams: it writes each page as it arrives and holds no more than one page, so its
/// memory does not grow with the subscription. A group Azure splits over two pages is stored as two
/// rows; every reader sums rows, so that changes no total.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRows {
    pub metric: Metric,
    pub view: View,
    /// The page's number within its query (from 1): part of the storage key, so pages never
    /// overwrite each other and a retry of the same page overwrites itself.
    pub page: u32,
    pub currency: Option<String>,
    pub days: BTreeMap<Date, Vec<ViewRow>>,
    index: std::collections::HashMap<(Date, String, String), usize>,
}

impl PageRows {
    pub fn new(metric: Metric, view: View, page: u32) -> Self {
        Self {
            metric,
            view,
            page,
            currency: None,
            days: BTreeMap::new(),
            index: std::collections::HashMap::new(),
        }
    }

    /// Adds one row (rows of the same resource and value on the same day are summed). `None` if
    /// the sum overflows.
    pub fn add(&mut self, day: Date, row: ViewRow) -> Option<()> {
        let rows = self.days.entry(day).or_default();
        let key = (day, row.resource.clone(), row.value.clone());
        match self.index.get(&key) {
            Some(&i) => rows[i].amount = rows[i].amount.checked_add(row.amount)?,
            None => {
                self.index.insert(key, rows.len());
                rows.push(row);
            }
        }
        Some(())
    }

    pub fn row_count(&self) -> usize {
        self.days.values().map(Vec::len).sum()
    }
}

/// One stored row as the costs API reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub subscription: String,
    pub day: Date,
    pub row: ViewRow,
}

/// Where synced costs live.
///
/// A month of one subscription is replaced as a unit: [`CostStore::write_page`] writes the new
/// rows under a fresh generation that nothing reads yet, page by page, then
/// [`CostStore::switch_month`] switches the month's pointer to it in one conditional write. Readers only ever follow pointers, so they see a month entirely from
/// one sync or entirely from another, never a mix and never a half-written one.
#[async_trait::async_trait]
pub trait CostStore: Send + Sync {
    /// The tag keys the subscription's last complete backfill fetched, or `None` if no backfill
    /// completed (then the next sync is a backfill: a backfill cut short leaves some months written,
    /// and a nightly window would never fill the rest).
    async fn backfilled(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
    ) -> Result<Option<Vec<TagKey>>, StoreError>;
    /// Records that a backfill with these tag keys completed (idempotent).
    async fn mark_backfilled(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        tag_keys: &[TagKey],
    ) -> Result<(), StoreError>;
    /// Writes one page of rows into generation `generation` of the month (not yet current).
    /// Idempotent: writing the same page again overwrites it.
    async fn write_page(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        month: YearMonth,
        generation: &str,
        page: &PageRows,
    ) -> Result<(), StoreError>;
    /// Makes generation `generation` of the month current, once every page of every view is
    /// written. `views` are the views it was fetched as (a view with no rows is still complete: no
    /// cost).
    async fn switch_month(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        month: YearMonth,
        generation: &str,
        views: &[View],
    ) -> Result<(), StoreError>;
    /// The synced months from `from` to `to` whose current generation was not fetched with `view`
    /// (a tag key chosen after they were synced).
    async fn months_without(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        from: Date,
        to: Date,
        view: &View,
    ) -> Result<Vec<YearMonth>, StoreError>;
    /// The subscriptions of the workspace that have synced costs.
    async fn subscriptions(&self, workspace: WorkspaceId) -> Result<Vec<String>, StoreError>;
    /// The current rows of one metric and view from `from` to `to` (inclusive), with the currency.
    /// One day's group may come as several rows (split over pages); sum them.
    async fn read(
        &self,
        workspace: WorkspaceId,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
        view: &View,
    ) -> Result<(Vec<StoredRow>, Option<String>), StoreError>;
}

/// Daily or monthly periods in a costs answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Daily,
    Monthly,
}

impl Period {
    /// The label of the period holding `day`: `2026-11-05` or `2026-11`.
    pub fn label(self, day: Date) -> String {
        match self {
            Period::Daily => format!(
                "{:04}-{:02}-{:02}",
                day.year(),
                day.month() as u8,
                day.day()
            ),
            Period::Monthly => YearMonth::of(day).key(),
        }
    }
}

/// A costs question: which rows count, how they are grouped.
#[derive(Debug, Clone)]
pub struct CostQuery {
    pub period: Period,
    pub group_by: Option<Dimension>,
    /// Each filter keeps the rows whose value is one of the listed (case-insensitive).
    pub filters: Vec<(Dimension, Vec<String>)>,
}

/// Sums `rows` into `(period, group) -> amount`, exactly. `None` if a sum overflows.
pub fn aggregate<'a>(
    query: &CostQuery,
    rows: impl IntoIterator<Item = &'a StoredRow>,
) -> Option<BTreeMap<(String, String), Micros>> {
    let mut out: BTreeMap<(String, String), Micros> = BTreeMap::new();
    for stored in rows {
        let keep = query.filters.iter().all(|(dim, values)| {
            let v = dim.value_of(&stored.subscription, &stored.row);
            values.iter().any(|want| want.eq_ignore_ascii_case(v))
        });
        if !keep {
            continue;
        }
        let group = match &query.group_by {
            Some(dim) => dim.value_of(&stored.subscription, &stored.row).to_owned(),
            None => String::new(),
        };
        let slot = out
            .entry((query.period.label(stored.day), group))
            .or_default();
        *slot = slot.checked_add(stored.row.amount)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn micros_round_each_double_once_and_sum_exactly() {
        // 0.1 + 0.2 != 0.3 in f64; in micros it is.
        let sum = Micros::from_f64(0.1)
            .unwrap()
            .checked_add(Micros::from_f64(0.2).unwrap())
            .unwrap();
        assert_eq!(sum, Micros::from_f64(0.3).unwrap());
        assert_eq!(
            Micros::from_f64(218.68795741935486),
            Some(Micros(218_687_957))
        );
        assert_eq!(Micros::from_f64(f64::NAN), None);
        assert_eq!(Micros::from_f64(1e300), None);
        assert_eq!(Micros(-1_234_500).to_string(), "-1.234500");
        assert_eq!(Micros(1_005_000).cents(), 101);
        assert_eq!(Micros(-1_005_000).cents(), -101);
        assert_eq!(Micros(1_004_999).cents(), 100);
    }

    #[test]
    fn backfill_is_thirteen_full_months_and_month_to_date() {
        let w = Window::backfill(date!(2026 - 11 - 23));
        assert_eq!(w.from, date!(2025 - 10 - 01));
        assert_eq!(w.to, date!(2026 - 11 - 22));
        assert_eq!(w.months().len(), 14);
        assert_eq!(window_qpu(&w, &[]), 84);
        // On the first of a month, "yesterday" closes the previous month.
        let w = Window::backfill(date!(2026 - 12 - 01));
        assert_eq!(
            (w.from, w.to),
            (date!(2025 - 10 - 01), date!(2026 - 11 - 30))
        );
    }

    #[test]
    fn nightly_rereads_the_restatement_days_and_the_open_previous_month() {
        // Mid-month: the current month only.
        let w = Window::nightly(date!(2026 - 11 - 23));
        assert_eq!(
            (w.from, w.to),
            (date!(2026 - 11 - 01), date!(2026 - 11 - 22))
        );
        assert_eq!(window_qpu(&w, &[]), 6);
        // Until day 10 the previous month is still open.
        let w = Window::nightly(date!(2026 - 11 - 10));
        assert_eq!(w.from, date!(2026 - 10 - 01));
        assert_eq!(window_qpu(&w, &[]), 12);
        let w = Window::nightly(date!(2026 - 11 - 11));
        assert_eq!(w.from, date!(2026 - 11 - 01));
        // On the 1st, yesterday is in the previous month: that month only.
        let w = Window::nightly(date!(2026 - 11 - 01));
        assert_eq!(
            (w.from, w.to),
            (date!(2026 - 10 - 01), date!(2026 - 10 - 31))
        );
        assert_eq!(w.months().len(), 1);
        // January reaches back into December.
        let w = Window::nightly(date!(2027 - 01 - 03));
        assert_eq!(w.from, date!(2026 - 12 - 01));
        assert_eq!(w.months().len(), 2);
    }

    #[test]
    fn a_month_plan_is_every_view_for_both_metrics() {
        let m = YearMonth::of(date!(2026 - 02 - 14));
        let plan = month_plan(m, m.first_day(), m.last_day(), &[]);
        assert_eq!(plan.len(), 6);
        assert_eq!(m.last_day(), date!(2026 - 02 - 28));
        assert_eq!(m.minus(14).key(), "2024-12");
        let views: std::collections::BTreeSet<_> =
            plan.iter().map(|q| (q.metric, q.view.clone())).collect();
        assert_eq!(views.len(), 6);
        // Each chosen tag key is one more view: two more queries a month.
        let keys = [
            TagKey::parse("env").unwrap(),
            TagKey::parse("costCenter").unwrap(),
        ];
        assert_eq!(month_plan(m, m.first_day(), m.last_day(), &keys).len(), 10);
        let w = Window::nightly(date!(2026 - 11 - 23));
        assert_eq!(window_qpu(&w, &keys), 10);
    }

    #[test]
    fn tag_keys_follow_azure_rules_and_compare_without_case() {
        assert_eq!(TagKey::parse("CostCenter"), TagKey::parse("costcenter"));
        assert_eq!(TagKey::parse(" env ").unwrap().as_str(), "env");
        assert!(TagKey::parse("").is_err());
        assert!(TagKey::parse("a/b").unwrap_err().contains('/'));
        assert!(TagKey::parse(&"k".repeat(513)).is_err());
        let env = TagKey::parse("env").unwrap();
        // Storage keys of tag views never hold a character a RowKey may not.
        let code = View::Tag(TagKey::parse("Cost Center #1").unwrap()).code();
        assert!(code.chars().all(|c| c.is_ascii_alphanumeric()), "{code}");
        assert_ne!(code, View::Tag(env.clone()).code());
        assert_eq!(
            "tag:Env".parse::<Dimension>(),
            Ok(Dimension::Tag(env.clone()))
        );
        assert!("tag:".parse::<Dimension>().is_err());
        let six: Vec<TagKey> = (0..6)
            .map(|i| TagKey::parse(&format!("k{i}")).unwrap())
            .collect();
        assert!(validate_tag_keys(&six).is_err());
        assert!(validate_tag_keys(&[env.clone(), TagKey::parse("ENV").unwrap()]).is_err());
        assert!(validate_tag_keys(&six[..5]).is_ok());
        // A tag grouping reads its own view; a filter on another tag key cannot be combined.
        let team = Dimension::Tag(TagKey::parse("team").unwrap());
        assert_eq!(
            view_for(
                Some(&Dimension::Tag(env.clone())),
                [&Dimension::ResourceGroup]
            ),
            Ok(View::Tag(env.clone()))
        );
        assert_eq!(view_for(Some(&Dimension::Tag(env)), [&team]), Err(&team));
    }

    #[test]
    fn resource_dimensions_come_from_the_id() {
        let id = "/subscriptions/s1/resourcegroups/rg-web/providers/microsoft.web/sites/a";
        assert_eq!(resource_group_of(id), "rg-web");
        assert_eq!(resource_group_of(""), "");
        assert_eq!(resource_group_of("/subscriptions/s1/resourceGroups"), "");
    }

    #[test]
    fn groupings_and_filters_read_one_view_or_are_refused() {
        use Dimension::*;
        assert_eq!(
            view_for(Some(&Service), [&ResourceGroup]),
            Ok(View::Service)
        );
        assert_eq!(
            view_for(Some(&Resource), [&MeterCategory]),
            Ok(View::MeterCategory)
        );
        assert_eq!(view_for(None, []), Ok(View::ChargeType));
        assert_eq!(view_for(Some(&Service), [&ChargeType]), Err(&ChargeType));
    }

    #[test]
    fn aggregation_groups_filters_and_sums_exactly() {
        let row = |sub: &str, day: Date, res: &str, value: &str, amount: i64| StoredRow {
            subscription: sub.into(),
            day,
            row: ViewRow {
                resource: res.into(),
                value: value.into(),
                amount: Micros(amount),
            },
        };
        let a = "/subscriptions/s1/resourcegroups/rg-a/providers/p/t/x";
        let b = "/subscriptions/s1/resourcegroups/rg-b/providers/p/t/y";
        let rows = vec![
            row("s1", date!(2026 - 10 - 30), a, "Storage", 100_000),
            row("s1", date!(2026 - 11 - 01), a, "Storage", 200_000),
            row("s1", date!(2026 - 11 - 01), b, "Compute", 300_001),
        ];
        let monthly = aggregate(
            &CostQuery {
                period: Period::Monthly,
                group_by: Some(Dimension::ResourceGroup),
                filters: vec![],
            },
            &rows,
        )
        .unwrap();
        assert_eq!(monthly[&("2026-11".into(), "rg-b".into())], Micros(300_001));
        assert_eq!(monthly[&("2026-10".into(), "rg-a".into())], Micros(100_000));
        let filtered = aggregate(
            &CostQuery {
                period: Period::Daily,
                group_by: None,
                filters: vec![(Dimension::Service, vec!["storage".into()])],
            },
            &rows,
        )
        .unwrap();
        assert_eq!(filtered.values().map(|m| m.0).sum::<i64>(), 300_000);
    }

    #[test]
    fn a_page_sums_split_groups_by_day() {
        let mut page = PageRows::new(Metric::Actual, View::ChargeType, 1);
        let d = date!(2026 - 11 - 02);
        let row = |v: i64| ViewRow {
            resource: "r".into(),
            value: "Usage".into(),
            amount: Micros(v),
        };
        page.add(d, row(5)).unwrap();
        page.add(d, row(7)).unwrap();
        page.add(d + Duration::days(1), row(12)).unwrap();
        assert_eq!(page.row_count(), 2);
        assert_eq!(page.days[&d][0].amount, Micros(12));
        assert_eq!(page.add(d, row(i64::MAX)), None);
    }
}
