//! Anomalies in the product: which series are watched, what is stored about an anomaly, when
//! someone is told, and the per-workspace settings that decide it.
//!
//! The statistics live in the `sixpence-analytics` crate (detector, episodes, root cause, alert
//! gate); this module turns a subscription's stored cost rows into the series it watches, runs the
//! engine over the days a sync changed, and decides, for each change of an episode, which event (if
//! any) it raises. Pure: the `anomaly-detect` queue function loads and stores around it.
//!
//! ## Decisions
//! - **Amortized cost.** Reservation and savings-plan purchases are commitments someone signed, not
//!   anomalies; amortized cost spreads them over the days they cover, so a purchase does not show
//!   as a spike every month or year (actual cost would flag every purchase day).
//! - **Every series starts on the subscription's first day of cost.** A missing day is zero spend
//!   (the Query API omits zero days), and a service or resource group that appears later starts
//!   with zeros, so the detector sees it as new cost rather than as a series with no history.
//! - **One event per real problem.** A spike on one VM is usually anomalous at the subscription,
//!   its resource group and its service at once. All three are stored (each is listed and has its
//!   root cause), but a resource group or service episode overlapping an alerted subscription
//!   episode of the same direction is not alerted again (the subscription event's root cause
//!   already names it), nor a service episode overlapping an alerted resource group episode with
//!   the same top resource.
//! - **History is not news.** A first sync reads 13 months, and the detector finds the anomalies
//!   of that year. They are stored and listed, but only an episode whose last day is within
//!   [`ALERT_RECENT_DAYS`] of the newest synced day raises an event; a year of old incidents
//!   arriving as one storm of notifications is exactly what alert recipients must not get.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sixpence_analytics::episode::{Episode, EpisodeChange, EpisodeStatus};
use sixpence_analytics::root_cause::{self, ChildDelta};
use sixpence_analytics::{DailySeries, DetectorConfig, Sensitivity};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use super::costs::{Micros, View, resource_group_of};
use super::events::{AnomalyCause, AnomalyEvent, AnomalyStatus, Event, EventKind, Severity};
use super::store::{StoreError, Version, Versioned};
use super::tenancy::{UserId, WorkspaceId};

/// Days before the newest synced day within which an episode's last day must fall for it to be
/// alerted. 35: the previous month is re-read (and so can still gain restated anomalies) until the
/// 10th of the next, so a month and a few days covers everything a nightly sync can still change,
/// while a first sync's 13 months of history are stored without a storm of stale alerts.
pub const ALERT_RECENT_DAYS: i64 = 35;

/// Days before an episode whose median is a child series' baseline in a root cause: four weeks,
/// every weekday four times, and long enough that a few anomalous days do not move the median.
pub const ROOT_CAUSE_BASELINE_DAYS: i64 = 28;

/// Contributors kept per dimension in a stored root cause; the rest is summed into one
/// [`OTHER`] entry so shares still add up to 1.
pub const ROOT_CAUSE_TOP: usize = 10;

/// Key of the entry holding the contributors beyond [`ROOT_CAUSE_TOP`].
pub const OTHER: &str = "(other)";

/// The level of a watched series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    Subscription,
    ResourceGroup,
    Service,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Subscription, Level::ResourceGroup, Level::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Subscription => "subscription",
            Level::ResourceGroup => "resourceGroup",
            Level::Service => "service",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == text)
    }

    fn words(self) -> &'static str {
        match self {
            Level::Subscription => "Subscription",
            Level::ResourceGroup => "Resource group",
            Level::Service => "Service",
        }
    }
}

/// Per-workspace analytics settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsSettings {
    /// How readily the detector flags days.
    pub sensitivity: Sensitivity,
    /// Minimum |impact| of an episode, in the billing currency, for an alert.
    pub min_impact: Micros,
    /// Minimum |impact| in percent of the expected spend for an alert.
    pub min_impact_percent: f64,
    /// Which levels are watched.
    pub dimensions: Vec<Level>,
}

/// The defaults, chosen on purpose:
/// - **Medium** sensitivity: the three-sigma rule, about one false flag per series a year on
///   well-behaved spend; the detector's documentation records the measurements behind it.
/// - **10 in the billing currency and 10 %**, both required (the engine's `AlertPolicy` default):
///   below ten units nobody acts on a cost anomaly, whatever its percent (a +300 % jump on a 2p
///   series is noise), and below 10 % a move is within what weekly and month-start patterns do to a
///   large subscription every week (+£50 on £40,000 a day is not news). Detection stores everything;
///   these only decide who is told.
/// - **Every level** (subscription, resource group, service): the subscription catches what no
///   single child shows, the children point at where to look; duplicates across levels are not
///   alerted twice (see the module docs).
impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self {
            sensitivity: Sensitivity::Medium,
            min_impact: Micros(10_000_000),
            min_impact_percent: 10.0,
            dimensions: Level::ALL.to_vec(),
        }
    }
}

impl AnalyticsSettings {
    /// Checks values a client sent; the reason in the client's words.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_impact.0 < 0 {
            return Err("minImpact must not be negative".to_owned());
        }
        if !self.min_impact_percent.is_finite()
            || !(0.0..=10_000.0).contains(&self.min_impact_percent)
        {
            return Err("minImpactPercent must be between 0 and 10000".to_owned());
        }
        if self.dimensions.is_empty() {
            return Err(
                "dimensions must name at least one of subscription, resourceGroup, service"
                    .to_owned(),
            );
        }
        let unique: BTreeSet<&Level> = self.dimensions.iter().collect();
        if unique.len() != self.dimensions.len() {
            return Err("dimensions must not repeat a value".to_owned());
        }
        Ok(())
    }

    pub fn detector(&self) -> DetectorConfig {
        DetectorConfig {
            sensitivity: self.sensitivity,
        }
    }

    pub fn alert_policy(&self) -> sixpence_analytics::alert::AlertPolicy {
        sixpence_analytics::alert::AlertPolicy {
            min_impact: self.min_impact.0 as f64 / 1e6,
            min_impact_pct: self.min_impact_percent,
            directions: sixpence_analytics::alert::AlertDirections::Both,
        }
    }
}

/// What an analyst said about an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Planned or expected spend (a migration, a load test): no more alerts for this episode.
    Expected,
    /// Dealt with: no more alerts for this episode.
    Resolved,
    /// Not an anomaly at all (a false alarm): no more alerts for this episode.
    NotAnomaly,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Expected => "expected",
            Verdict::Resolved => "resolved",
            Verdict::NotAnomaly => "notAnomaly",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    pub verdict: Verdict,
    pub by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default)]
    pub note: Option<String>,
}

/// Where a stored anomaly stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// The last assessed days are (or may still be) part of it.
    Open,
    /// The series went back to normal.
    Closed,
    /// A restatement proved it normal, or it was merged into another episode.
    Retracted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Closed => "closed",
            State::Retracted => "retracted",
        }
    }
}

/// One contributor in a stored root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cause {
    /// The child's key (resource id lower-cased, resource group, service or meter category).
    pub key: String,
    /// How a person knows it ("vm-batch-07 (Virtual Machines)").
    pub label: String,
    /// Share of the net impact, 0–1; the shares of one dimension add up to 1.
    pub share: f64,
    /// The part of the impact credited to it.
    pub impact: Micros,
}

/// The anomaly's impact explained, per child dimension.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCauses {
    /// `resource`, `resourceGroup`, `service`, `meterCategory` → contributors, largest first.
    pub by: BTreeMap<String, Vec<Cause>>,
}

impl RootCauses {
    /// The headline contributors: resources when known, else the first dimension with any.
    pub fn headline(&self) -> (&str, &[Cause]) {
        for dimension in ["resource", "service", "resourceGroup", "meterCategory"] {
            if let Some(causes) = self.by.get(dimension).filter(|c| !c.is_empty()) {
                return (dimension, causes);
            }
        }
        ("resource", &[])
    }
}

/// What was last told about an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notified {
    pub status: AnomalyStatus,
    pub revision: u32,
}

/// An anomaly as stored: the episode, what explains it, and what people said and were told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub id: Uuid,
    pub subscription: String,
    pub level: Level,
    /// The series' value at its level (the subscription id, resource group or service name).
    pub value: String,
    pub currency: String,
    pub state: State,
    pub episode: Episode,
    pub causes: RootCauses,
    #[serde(default)]
    pub notified: Option<Notified>,
    /// Kept apart by the store: detection never overwrites it.
    #[serde(skip)]
    pub feedback: Option<Feedback>,
}

impl Anomaly {
    /// How the customer names the series ("Resource group rg-web").
    pub fn scope_words(&self) -> String {
        format!("{} {}", self.level.words(), self.value)
    }

    /// The resource that contributed most to the impact, if the root cause names one.
    pub fn top_resource(&self) -> Option<&str> {
        self.causes
            .by
            .get("resource")
            .and_then(|c| c.first())
            .map(|c| c.key.as_str())
            .filter(|k| *k != OTHER && *k != root_cause::UNATTRIBUTED)
    }

    pub fn impact(&self) -> Micros {
        micros(self.episode.cumulative_impact)
    }
}

/// Series key (the episode's series id) of a watched series.
pub fn series_key(subscription: &str, level: Level, value: &str) -> String {
    match level {
        Level::Subscription => format!("sub:{subscription}"),
        other => format!("sub:{subscription}:{}:{value}", other.as_str()),
    }
}

/// The stable id of an episode: the same workspace, series and first day always give the same id,
/// so a redelivered message upserts the anomaly it stored before.
pub fn anomaly_id(workspace: WorkspaceId, series: &str, opened_on: Date) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(workspace.to_string().as_bytes());
    hash.update(b"\n");
    hash.update(series.as_bytes());
    hash.update(b"\n");
    hash.update(sixpence_analytics::format_date(opened_on).as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

pub fn micros(units: f64) -> Micros {
    Micros::from_f64(sixpence_analytics::money::finite(units)).unwrap_or_default()
}

fn units(amount: Micros) -> f64 {
    amount.0 as f64 / 1e6
}

/// One stored row of a subscription, as the detector needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CostPoint {
    pub day: Date,
    pub view: View,
    /// Lower-cased resource id (empty for costs without a resource).
    pub resource: String,
    /// The view's second dimension (charge type, service or meter category).
    pub value: String,
    pub amount: Micros,
}

/// Per-day amounts of one subscription by every dimension the detector and root cause use.
#[derive(Debug, Default)]
pub struct SubscriptionCosts {
    /// First day with any cost (the start of every series).
    pub first_day: Option<Date>,
    total: BTreeMap<Date, i64>,
    resource_groups: BTreeMap<String, BTreeMap<Date, i64>>,
    services: BTreeMap<String, BTreeMap<Date, i64>>,
    meter_categories: BTreeMap<String, BTreeMap<Date, i64>>,
    /// (resource group, resource) → day → amount (charge-type view).
    resources: BTreeMap<(String, String), BTreeMap<Date, i64>>,
    /// (service, resource) → day → amount (service view).
    service_resources: BTreeMap<(String, String), BTreeMap<Date, i64>>,
    /// (service, resource group) → day → amount (service view).
    service_groups: BTreeMap<(String, String), BTreeMap<Date, i64>>,
    /// (resource group, service) → day → amount (service view).
    group_services: BTreeMap<(String, String), BTreeMap<Date, i64>>,
    /// (resource group, meter category) → day → amount (meter view).
    group_meters: BTreeMap<(String, String), BTreeMap<Date, i64>>,
    /// resource → (service → amount): the service a resource is mostly billed as.
    resource_service: BTreeMap<String, BTreeMap<String, i64>>,
}

fn add(map: &mut BTreeMap<Date, i64>, day: Date, amount: i64) {
    *map.entry(day).or_insert(0) += amount;
}

impl SubscriptionCosts {
    pub fn new(points: &[CostPoint]) -> Self {
        let mut out = SubscriptionCosts::default();
        for p in points {
            let a = p.amount.0;
            let group = resource_group_of(&p.resource).to_ascii_lowercase();
            match &p.view {
                View::ChargeType => {
                    if a != 0 {
                        out.first_day = Some(out.first_day.map_or(p.day, |d| d.min(p.day)));
                    }
                    add(&mut out.total, p.day, a);
                    add(
                        out.resource_groups.entry(group.clone()).or_default(),
                        p.day,
                        a,
                    );
                    add(
                        out.resources
                            .entry((group, p.resource.clone()))
                            .or_default(),
                        p.day,
                        a,
                    );
                }
                View::Service => {
                    add(out.services.entry(p.value.clone()).or_default(), p.day, a);
                    add(
                        out.service_resources
                            .entry((p.value.clone(), p.resource.clone()))
                            .or_default(),
                        p.day,
                        a,
                    );
                    add(
                        out.service_groups
                            .entry((p.value.clone(), group.clone()))
                            .or_default(),
                        p.day,
                        a,
                    );
                    add(
                        out.group_services
                            .entry((group, p.value.clone()))
                            .or_default(),
                        p.day,
                        a,
                    );
                    *out.resource_service
                        .entry(p.resource.clone())
                        .or_default()
                        .entry(p.value.clone())
                        .or_insert(0) += a.abs();
                }
                View::MeterCategory => {
                    add(
                        out.meter_categories.entry(p.value.clone()).or_default(),
                        p.day,
                        a,
                    );
                    add(
                        out.group_meters
                            .entry((group, p.value.clone()))
                            .or_default(),
                        p.day,
                        a,
                    );
                }
                // Tag views are not a monitored level; the detector is never given them.
                View::Tag(_) => {}
            }
        }
        out
    }

    /// The watched series of `levels`, each from the first day of cost to `to` (zero-filled).
    pub fn series(&self, levels: &[Level], to: Date) -> Vec<(Level, String, DailySeries)> {
        let Some(start) = self.first_day.filter(|d| *d <= to) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let build = |map: &BTreeMap<Date, i64>| {
            let mut values = Vec::new();
            let mut d = start;
            while d <= to {
                values.push(Some(units(Micros(map.get(&d).copied().unwrap_or(0)))));
                d += Duration::days(1);
            }
            DailySeries::from_values(start, values)
        };
        for level in levels {
            match level {
                Level::Subscription => out.push((*level, String::new(), build(&self.total))),
                Level::ResourceGroup => {
                    for (name, days) in &self.resource_groups {
                        if !name.is_empty() {
                            out.push((*level, name.clone(), build(days)));
                        }
                    }
                }
                Level::Service => {
                    for (name, days) in &self.services {
                        if !name.is_empty() {
                            out.push((*level, name.clone(), build(days)));
                        }
                    }
                }
            }
        }
        out
    }

    fn resource_label(&self, resource: &str) -> String {
        if resource.is_empty() {
            return "(no resource: purchases and fees)".to_owned();
        }
        let name = resource.rsplit('/').next().unwrap_or(resource);
        match self
            .resource_service
            .get(resource)
            .and_then(|s| s.iter().max_by_key(|(_, a)| **a))
        {
            Some((service, _)) if !service.is_empty() => format!("{name} ({service})"),
            _ => name.to_owned(),
        }
    }

    /// The root cause of `episode` on the series (`level`, `value`), per child dimension.
    pub fn root_causes(&self, level: Level, value: &str, episode: &Episode) -> RootCauses {
        let days: Vec<Date> = episode.days.iter().map(|d| d.date).collect();
        let mut by = BTreeMap::new();
        let mut put = |dimension: &str, children: Vec<(String, String, &BTreeMap<Date, i64>)>| {
            let causes = attribute(episode, &days, &children);
            if !causes.is_empty() {
                by.insert(dimension.to_owned(), causes);
            }
        };
        let v = value.to_ascii_lowercase();
        match level {
            Level::Subscription => {
                put(
                    "resourceGroup",
                    self.resource_groups
                        .iter()
                        .map(|(k, m)| (k.clone(), label_or_none(k), m))
                        .collect(),
                );
                put(
                    "service",
                    self.services
                        .iter()
                        .map(|(k, m)| (k.clone(), label_or_none(k), m))
                        .collect(),
                );
                put(
                    "meterCategory",
                    self.meter_categories
                        .iter()
                        .map(|(k, m)| (k.clone(), label_or_none(k), m))
                        .collect(),
                );
                put(
                    "resource",
                    self.resources
                        .iter()
                        .map(|((_, r), m)| (r.clone(), self.resource_label(r), m))
                        .collect(),
                );
            }
            Level::ResourceGroup => {
                put(
                    "resource",
                    self.resources
                        .iter()
                        .filter(|((g, _), _)| *g == v)
                        .map(|((_, r), m)| (r.clone(), self.resource_label(r), m))
                        .collect(),
                );
                put(
                    "service",
                    self.group_services
                        .iter()
                        .filter(|((g, _), _)| *g == v)
                        .map(|((_, s), m)| (s.clone(), label_or_none(s), m))
                        .collect(),
                );
                put(
                    "meterCategory",
                    self.group_meters
                        .iter()
                        .filter(|((g, _), _)| *g == v)
                        .map(|((_, k), m)| (k.clone(), label_or_none(k), m))
                        .collect(),
                );
            }
            Level::Service => {
                put(
                    "resource",
                    self.service_resources
                        .iter()
                        .filter(|((s, _), _)| s == value)
                        .map(|((_, r), m)| (r.clone(), self.resource_label(r), m))
                        .collect(),
                );
                put(
                    "resourceGroup",
                    self.service_groups
                        .iter()
                        .filter(|((s, _), _)| s == value)
                        .map(|((_, g), m)| (g.clone(), label_or_none(g), m))
                        .collect(),
                );
            }
        }
        RootCauses { by }
    }
}

fn label_or_none(key: &str) -> String {
    if key.is_empty() {
        "(none)".to_owned()
    } else {
        key.to_owned()
    }
}

/// Attributes the episode's impact to `children`: each child's actual over the episode's days
/// against its baseline (the median day of the [`ROOT_CAUSE_BASELINE_DAYS`] before the episode),
/// the baselines rescaled so they add up to the parent's expected spend. The children partition
/// the parent's cost, so their deltas then add up to the parent's impact exactly and the shares
/// are of the whole impact, not of whatever the baselines happen to sum to.
fn attribute(
    episode: &Episode,
    days: &[Date],
    children: &[(String, String, &BTreeMap<Date, i64>)],
) -> Vec<Cause> {
    if children.is_empty() || days.is_empty() {
        return Vec::new();
    }
    let base_from = episode.start - Duration::days(ROOT_CAUSE_BASELINE_DAYS);
    let mut deltas: Vec<(usize, f64, f64)> = Vec::new();
    for (i, (_, _, series)) in children.iter().enumerate() {
        let actual: f64 = days
            .iter()
            .map(|d| units(Micros(series.get(d).copied().unwrap_or(0))))
            .sum();
        let mut base: Vec<f64> = Vec::new();
        let mut d = base_from;
        while d < episode.start {
            base.push(units(Micros(series.get(&d).copied().unwrap_or(0))));
            d += Duration::days(1);
        }
        base.sort_by(f64::total_cmp);
        let median = if base.is_empty() {
            0.0
        } else if base.len() % 2 == 1 {
            base[base.len() / 2]
        } else {
            (base[base.len() / 2 - 1] + base[base.len() / 2]) / 2.0
        };
        let expected = median * days.len() as f64;
        if actual != 0.0 || expected != 0.0 {
            deltas.push((i, actual, expected));
        }
    }
    let expected_sum: f64 = deltas.iter().map(|d| d.2).sum();
    let scale = if expected_sum.abs() > 1e-9 {
        episode.cumulative_expected / expected_sum
    } else {
        1.0
    };
    let input: Vec<ChildDelta> = deltas
        .iter()
        .map(|(i, actual, expected)| ChildDelta {
            key: i.to_string(),
            actual: *actual,
            expected: expected * scale,
        })
        .collect();
    let attributed = root_cause::attribute(episode.cumulative_impact, &input);
    let mut out: Vec<Cause> = Vec::new();
    let mut rest: Option<Cause> = None;
    for (n, c) in attributed.contributors.iter().enumerate() {
        let (key, label) = match c.key.parse::<usize>() {
            Ok(i) => (children[i].0.clone(), children[i].1.clone()),
            Err(_) => (c.key.clone(), c.key.clone()),
        };
        if n < ROOT_CAUSE_TOP {
            out.push(Cause {
                key,
                label,
                share: c.share,
                impact: micros(c.attributed),
            });
        } else {
            let r = rest.get_or_insert_with(|| Cause {
                key: OTHER.to_owned(),
                label: OTHER.to_owned(),
                share: 0.0,
                impact: Micros(0),
            });
            r.share += c.share;
            r.impact = Micros(r.impact.0 + micros(c.attributed).0);
        }
    }
    out.extend(rest);
    out
}

/// What the detection of one night decided for one anomaly: the new state to store and the event
/// to raise (if any).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub anomaly: Anomaly,
    pub event: Option<AnomalyStatus>,
}

/// An anomaly that is (or is about to be) alerted, as far as covering others goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerted {
    pub level: Level,
    pub start: Date,
    pub end: Date,
    pub direction: sixpence_analytics::Direction,
    /// The resource that contributed most, if known.
    pub top_resource: Option<String>,
}

impl Alerted {
    pub fn of(anomaly: &Anomaly) -> Self {
        Alerted {
            level: anomaly.level,
            start: anomaly.episode.start,
            end: anomaly.episode.end,
            direction: anomaly.episode.direction,
            top_resource: anomaly.top_resource().map(str::to_owned),
        }
    }

    /// Whether telling `anomaly` would repeat this alert: a more general level, the same
    /// direction, overlapping days, and (below the subscription, whose root cause lists every
    /// child) the same resource behind both.
    fn covers(&self, anomaly: &Anomaly) -> bool {
        self.level < anomaly.level
            && self.direction == anomaly.episode.direction
            && self.start <= anomaly.episode.end
            && anomaly.episode.start <= self.end
            && (self.level == Level::Subscription
                || (self.top_resource.is_some()
                    && self.top_resource.as_deref() == anomaly.top_resource()))
    }
}

/// Context of the alert decision.
pub struct AlertContext<'a> {
    pub settings: &'a AnalyticsSettings,
    /// The newest synced day.
    pub latest_day: Date,
    /// Anomalies of the subscription that are or will be alerted (levels are decided in order:
    /// subscription, resource groups, services).
    pub alerted: &'a [Alerted],
}

/// The event an anomaly's new state raises, given what was told before.
pub fn event_for(
    anomaly: &Anomaly,
    previous: Option<Notified>,
    ctx: &AlertContext<'_>,
) -> Option<AnomalyStatus> {
    if anomaly.feedback.is_some() {
        // Expected, resolved or not an anomaly: the analyst has it; this episode stops alerting.
        return None;
    }
    match previous {
        Some(told) => match anomaly.state {
            State::Retracted | State::Closed if told.status == AnomalyStatus::Resolved => None,
            State::Retracted | State::Closed => Some(AnomalyStatus::Resolved),
            State::Open => Some(AnomalyStatus::Updated),
        },
        None => {
            if anomaly.state == State::Retracted {
                return None;
            }
            let recent = (ctx.latest_day - anomaly.episode.end).whole_days() <= ALERT_RECENT_DAYS;
            let material = sixpence_analytics::alert::should_alert(
                &anomaly.episode,
                &ctx.settings.alert_policy(),
            );
            let covered = ctx.alerted.iter().any(|a| a.covers(anomaly));
            (recent && material && !covered).then_some(AnomalyStatus::New)
        }
    }
}

/// The event of an anomaly in `status`. Dedupe key `anomaly:<id>:<status>:<revision>`.
pub fn anomaly_event(
    workspace: WorkspaceId,
    anomaly: &Anomaly,
    status: AnomalyStatus,
    at: OffsetDateTime,
) -> Event {
    let e = &anomaly.episode;
    let (dimension, causes) = anomaly.causes.headline();
    let causes = causes
        .iter()
        .map(|c| AnomalyCause {
            dimension: dimension.to_owned(),
            label: c.label.clone(),
            share: c.share,
            impact: c.impact,
        })
        .collect();
    let actual: f64 = e.days.iter().map(|d| d.actual).sum();
    let kind = match e.kind {
        sixpence_analytics::AnomalyKind::Spike => "spike",
        sixpence_analytics::AnomalyKind::Drop => "drop",
        sixpence_analytics::AnomalyKind::NewCost => "newCost",
        sixpence_analytics::AnomalyKind::RemovedCost => "removedCost",
        sixpence_analytics::AnomalyKind::LevelShift => "levelShift",
        sixpence_analytics::AnomalyKind::Growth => "steadyGrowth",
    };
    let status_word = match status {
        AnomalyStatus::New => "new",
        AnomalyStatus::Updated => "updated",
        AnomalyStatus::Resolved => "resolved",
    };
    // Delivery ranks them; a resolution is good news.
    let severity = match status {
        AnomalyStatus::Resolved => Severity::Info,
        _ => Severity::Warning,
    };
    let event = AnomalyEvent {
        anomaly: anomaly.id,
        status,
        scope: anomaly.scope_words(),
        first_day: e.start,
        last_day: e.end,
        anomaly_kind: kind.to_owned(),
        actual: micros(actual),
        expected: micros(e.cumulative_expected),
        impact: micros(e.cumulative_impact),
        impact_percent: e.cumulative_impact_pct(),
        currency: anomaly.currency.clone(),
        causes,
    };
    Event::new(
        workspace,
        at,
        severity,
        format!("anomaly:{}:{status_word}:{}", anomaly.id, e.revision),
        EventKind::Anomaly(event),
    )
}

/// The watched series an episode change belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRef<'a> {
    pub workspace: WorkspaceId,
    pub subscription: &'a str,
    pub level: Level,
    pub value: &'a str,
    pub currency: &'a str,
}

/// Applies one episode change to the stored anomalies of its series: the anomaly to write (new
/// state, root cause recomputed). `stored` is looked up by anomaly id.
pub fn apply_change(
    series: SeriesRef<'_>,
    change: &EpisodeChange,
    stored: &BTreeMap<Uuid, Anomaly>,
    costs: &SubscriptionCosts,
) -> Option<Anomaly> {
    let SeriesRef {
        workspace,
        subscription,
        level,
        value,
        currency,
    } = series;
    match change {
        EpisodeChange::Opened(e) | EpisodeChange::Updated(e) | EpisodeChange::Closed(e) => {
            let id = anomaly_id(workspace, &e.id.series, e.id.opened_on);
            let previous = stored.get(&id);
            Some(Anomaly {
                id,
                subscription: subscription.to_owned(),
                level,
                value: value.to_owned(),
                currency: currency.to_owned(),
                state: match e.status {
                    EpisodeStatus::Open => State::Open,
                    EpisodeStatus::Closed => State::Closed,
                },
                episode: e.clone(),
                causes: costs.root_causes(level, value, e),
                notified: previous.and_then(|p| p.notified),
                feedback: previous.and_then(|p| p.feedback.clone()),
            })
        }
        EpisodeChange::Retracted { id, .. } => {
            let id = anomaly_id(workspace, &id.series, id.opened_on);
            let mut previous = stored.get(&id)?.clone();
            previous.state = State::Retracted;
            previous.episode.revision = previous.episode.revision.saturating_add(1);
            Some(previous)
        }
    }
}

/// Storage of anomalies and analytics settings.
#[async_trait::async_trait]
pub trait AnomalyStore: Send + Sync {
    /// The workspace's settings (the defaults when never set).
    async fn settings(&self, workspace: WorkspaceId) -> Result<AnalyticsSettings, StoreError>;
    async fn put_settings(
        &self,
        workspace: WorkspaceId,
        settings: &AnalyticsSettings,
    ) -> Result<(), StoreError>;
    /// Every anomaly of the workspace (with its feedback).
    async fn list(&self, workspace: WorkspaceId) -> Result<Vec<Versioned<Anomaly>>, StoreError>;
    async fn get(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
    ) -> Result<Option<Versioned<Anomaly>>, StoreError>;
    /// Writes what detection decided, leaving feedback alone.
    async fn save(&self, workspace: WorkspaceId, anomaly: &Anomaly) -> Result<(), StoreError>;
    /// Records an analyst's feedback, if the anomaly is still at `version` (when given).
    async fn set_feedback(
        &self,
        workspace: WorkspaceId,
        id: Uuid,
        feedback: &Feedback,
        version: Option<&Version>,
    ) -> Result<Version, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixpence_analytics::episode::{EpisodeDay, EpisodeId};
    use sixpence_analytics::{AnomalyKind, Direction};

    fn d(day: u8) -> Date {
        Date::from_calendar_date(2026, time::Month::March, day).unwrap()
    }

    fn episode(start: Date, impact: f64, expected: f64) -> Episode {
        Episode {
            id: EpisodeId {
                series: "sub:s".into(),
                opened_on: start,
            },
            direction: Direction::Up,
            kind: AnomalyKind::Spike,
            start,
            end: start,
            peak: EpisodeDay {
                date: start,
                kind: AnomalyKind::Spike,
                actual: expected + impact,
                expected,
                impact,
                score: 9.0,
            },
            cumulative_impact: impact,
            cumulative_expected: expected,
            days: vec![EpisodeDay {
                date: start,
                kind: AnomalyKind::Spike,
                actual: expected + impact,
                expected,
                impact,
                score: 9.0,
            }],
            status: EpisodeStatus::Open,
            revision: 0,
        }
    }

    fn point(day: Date, view: View, resource: &str, value: &str, units: i64) -> CostPoint {
        CostPoint {
            day,
            view,
            resource: resource.into(),
            value: value.into(),
            amount: Micros(units * 1_000_000),
        }
    }

    #[test]
    fn root_cause_shares_add_up_and_name_the_resource_that_moved() {
        let vm = "/subscriptions/s/resourcegroups/batch/providers/microsoft.compute/virtualmachines/vm-batch-07";
        let db = "/subscriptions/s/resourcegroups/data/providers/microsoft.sql/servers/sql-01";
        let mut points = Vec::new();
        for day in 1..=29 {
            let (vm_cost, db_cost) = if day == 29 { (600, 110) } else { (100, 100) };
            for (r, c, svc) in [
                (vm, vm_cost, "Virtual Machines"),
                (db, db_cost, "SQL Database"),
            ] {
                points.push(point(d(day), View::ChargeType, r, "Usage", c));
                points.push(point(d(day), View::Service, r, svc, c));
                points.push(point(d(day), View::MeterCategory, r, svc, c));
            }
        }
        let costs = SubscriptionCosts::new(&points);
        let e = episode(d(29), 510.0, 200.0);
        let causes = costs.root_causes(Level::Subscription, "", &e);
        for (dimension, list) in &causes.by {
            let total: f64 = list.iter().map(|c| c.share).sum();
            assert!((total - 1.0).abs() < 1e-9, "{dimension}: {total}");
            let impact: i64 = list.iter().map(|c| c.impact.0).sum();
            assert!(
                (impact - 510_000_000).abs() <= list.len() as i64,
                "{dimension}"
            );
        }
        let (dimension, top) = causes.headline();
        assert_eq!(dimension, "resource");
        assert_eq!(top[0].label, "vm-batch-07 (Virtual Machines)");
        assert!((top[0].share - 500.0 / 510.0).abs() < 1e-9);
        let groups = &causes.by["resourceGroup"];
        assert_eq!(groups[0].key, "batch");
    }

    #[test]
    fn ids_are_stable_and_differ_by_series_and_day() {
        let w = WorkspaceId::new();
        assert_eq!(anomaly_id(w, "sub:a", d(3)), anomaly_id(w, "sub:a", d(3)));
        assert_ne!(anomaly_id(w, "sub:a", d(3)), anomaly_id(w, "sub:a", d(4)));
        assert_ne!(anomaly_id(w, "sub:a", d(3)), anomaly_id(w, "sub:b", d(3)));
    }

    fn anomaly(level: Level, e: Episode) -> Anomaly {
        Anomaly {
            id: Uuid::new_v4(),
            subscription: "s".into(),
            level,
            value: "v".into(),
            currency: "GBP".into(),
            state: State::Open,
            episode: e,
            causes: RootCauses::default(),
            notified: None,
            feedback: None,
        }
    }

    #[test]
    fn alerts_are_new_once_then_updated_then_resolved_and_stop_with_feedback() {
        let settings = AnalyticsSettings::default();
        let ctx = AlertContext {
            settings: &settings,
            latest_day: d(30),
            alerted: &[],
        };
        let mut a = anomaly(Level::Subscription, episode(d(29), 500.0, 100.0));
        assert_eq!(event_for(&a, None, &ctx), Some(AnomalyStatus::New));
        let told = Notified {
            status: AnomalyStatus::New,
            revision: 0,
        };
        assert_eq!(
            event_for(&a, Some(told), &ctx),
            Some(AnomalyStatus::Updated)
        );
        a.state = State::Closed;
        assert_eq!(
            event_for(&a, Some(told), &ctx),
            Some(AnomalyStatus::Resolved)
        );
        // Small: below the gate.
        let small = anomaly(Level::Subscription, episode(d(29), 5.0, 100.0));
        assert_eq!(event_for(&small, None, &ctx), None);
        // Old history is stored, not told.
        let old = anomaly(Level::Subscription, episode(d(1), 500.0, 100.0));
        let late = AlertContext {
            latest_day: d(1) + Duration::days(ALERT_RECENT_DAYS + 1),
            ..ctx
        };
        assert_eq!(event_for(&old, None, &late), None);
        // Expected: no more alerts for it.
        let mut expected = anomaly(Level::Subscription, episode(d(29), 500.0, 100.0));
        expected.feedback = Some(Feedback {
            verdict: Verdict::Expected,
            by: UserId {
                tenant: Uuid::nil(),
                object: Uuid::nil(),
            },
            at: OffsetDateTime::UNIX_EPOCH,
            note: None,
        });
        assert_eq!(event_for(&expected, Some(told), &ctx), None);
        // A child covered by an alerted subscription episode is stored, not told again.
        let parent = anomaly(Level::Subscription, episode(d(29), 500.0, 100.0));
        let parents = [Alerted::of(&parent)];
        let covered = AlertContext {
            alerted: &parents,
            ..ctx
        };
        let child = anomaly(Level::Service, episode(d(29), 500.0, 100.0));
        assert_eq!(event_for(&child, None, &covered), None);
        // A service anomaly repeats a resource group's alert only when one resource is behind both.
        let cause = |key: &str| RootCauses {
            by: [(
                "resource".to_owned(),
                vec![Cause {
                    key: key.to_owned(),
                    label: key.to_owned(),
                    share: 1.0,
                    impact: Micros(400_000_000),
                }],
            )]
            .into(),
        };
        let mut group = anomaly(Level::ResourceGroup, episode(d(29), 500.0, 100.0));
        group.causes = cause("vm-1");
        let groups = [Alerted::of(&group)];
        let by_group = AlertContext {
            alerted: &groups,
            ..ctx
        };
        let mut same = anomaly(Level::Service, episode(d(29), 500.0, 100.0));
        same.causes = cause("vm-1");
        assert_eq!(event_for(&same, None, &by_group), None);
        let mut other = anomaly(Level::Service, episode(d(29), 500.0, 100.0));
        other.causes = cause("db-2");
        assert_eq!(event_for(&other, None, &by_group), Some(AnomalyStatus::New));
    }
}
