//! The simulated estate: tenants, subscriptions, resources, anomalies, and the cost of every
//! (resource, meter, day) cell as a pure function of the seed. Nothing row-shaped is stored: rows are
//! computed on demand, so a subscription with millions of cost rows costs only its resource list.

use std::collections::BTreeSet;

use serde::Serialize;
use time::{Date, Duration, Month, Weekday};

use crate::rng::{self, Rng};

/// Dates serialize as `yyyy-mm-dd` (the `time` serde default for JSON is a tuple).
pub mod iso_date {
    use serde::Serializer;
    use time::Date;

    pub fn text(d: &Date) -> String {
        format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
    }
    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&text(d))
    }
    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&text(d)),
                None => s.serialize_none(),
            }
        }
    }
    pub mod vec {
        use super::*;
        pub fn serialize<S: Serializer>(d: &[Date], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(d.iter().map(text))
        }
    }
}

/// Money in ten-thousandths of a pound (4 decimal places), so every sum is exact.
pub const UNITS_PER_GBP: i64 = 10_000;

/// Which Cost Management dataset a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum Metric {
    ActualCost,
    AmortizedCost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ChargeType {
    Usage,
    Purchase,
}

impl ChargeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeType::Usage => "Usage",
            ChargeType::Purchase => "Purchase",
        }
    }
}

/// One kind of billable resource.
#[derive(Debug)]
pub struct Kind {
    pub service: &'static str,
    pub meter_category: &'static str,
    pub meter_subcategory: &'static str,
    /// Meter names and their share of the resource's daily cost (shares sum to 1).
    pub meters: &'static [(&'static str, f64)],
    /// ARM provider type, e.g. `Microsoft.Compute/virtualMachines`; for child types
    /// (`Microsoft.Sql/servers/databases`) the parent is named by `parent_prefix`.
    pub provider_type: &'static str,
    pub parent_prefix: Option<&'static str>,
    pub prefix: &'static str,
    pub daily_gbp: (f64, f64),
    /// Dev/test resources of this kind are mostly stopped at weekends.
    pub office_hours: bool,
    pub weekend_factor: f64,
    pub extra_growth: f64,
    pub skus: &'static [(&'static str, &'static str)],
    pub weight: u64,
}

pub const VM: Kind = Kind {
    service: "Virtual Machines",
    meter_category: "Virtual Machines",
    meter_subcategory: "Dsv5 Series",
    meters: &[("D4s v5", 1.0)],
    provider_type: "Microsoft.Compute/virtualMachines",
    parent_prefix: None,
    prefix: "vm",
    daily_gbp: (3.0, 28.0),
    office_hours: true,
    weekend_factor: 1.0,
    extra_growth: 0.0,
    skus: &[
        ("Standard_D2s_v5", "Standard"),
        ("Standard_D4s_v5", "Standard"),
        ("Standard_D8s_v5", "Standard"),
        ("Standard_B2ms", "Standard"),
    ],
    weight: 5,
};

static BASE_KINDS: &[Kind] = &[
    VM,
    Kind {
        service: "Storage",
        meter_category: "Storage",
        meter_subcategory: "Premium SSD Managed Disks",
        meters: &[("P10 LRS Disk", 1.0)],
        provider_type: "Microsoft.Compute/disks",
        parent_prefix: None,
        prefix: "disk",
        daily_gbp: (0.3, 2.5),
        office_hours: false,
        weekend_factor: 1.0,
        extra_growth: 0.0,
        skus: &[("Premium_LRS", "Premium"), ("StandardSSD_LRS", "Standard")],
        weight: 4,
    },
    Kind {
        service: "Storage",
        meter_category: "Storage",
        meter_subcategory: "Tiered Block Blob",
        meters: &[("Hot LRS Data Stored", 0.8), ("Hot Read Operations", 0.2)],
        provider_type: "Microsoft.Storage/storageAccounts",
        parent_prefix: None,
        prefix: "st",
        daily_gbp: (0.1, 9.0),
        office_hours: false,
        weekend_factor: 1.0,
        extra_growth: 0.35,
        skus: &[("Standard_LRS", "Standard"), ("Standard_GRS", "Standard")],
        weight: 4,
    },
    Kind {
        service: "SQL Database",
        meter_category: "SQL Database",
        meter_subcategory: "General Purpose - Compute Gen5",
        meters: &[("vCore", 0.85), ("General Purpose Data Stored", 0.15)],
        provider_type: "Microsoft.Sql/servers/databases",
        parent_prefix: Some("sql"),
        prefix: "sqldb",
        daily_gbp: (4.0, 35.0),
        office_hours: false,
        weekend_factor: 1.0,
        extra_growth: 0.05,
        skus: &[
            ("GP_Gen5_2", "GeneralPurpose"),
            ("GP_Gen5_4", "GeneralPurpose"),
        ],
        weight: 2,
    },
    Kind {
        service: "Azure App Service",
        meter_category: "Azure App Service",
        meter_subcategory: "Premium v3 Plan",
        meters: &[("P1 v3 App", 1.0)],
        provider_type: "Microsoft.Web/serverFarms",
        parent_prefix: None,
        prefix: "asp",
        daily_gbp: (3.5, 9.0),
        office_hours: true,
        weekend_factor: 1.0,
        extra_growth: 0.0,
        skus: &[("P1v3", "PremiumV3"), ("P2v3", "PremiumV3")],
        weight: 2,
    },
    Kind {
        service: "Log Analytics",
        meter_category: "Log Analytics",
        meter_subcategory: "",
        meters: &[("Analytics Logs Data Ingestion", 1.0)],
        provider_type: "Microsoft.OperationalInsights/workspaces",
        parent_prefix: None,
        prefix: "log",
        daily_gbp: (0.5, 14.0),
        office_hours: false,
        weekend_factor: 0.6,
        extra_growth: 0.1,
        skus: &[("PerGB2018", "")],
        weight: 1,
    },
    Kind {
        service: "Key Vault",
        meter_category: "Key Vault",
        meter_subcategory: "",
        meters: &[("Operations", 1.0)],
        provider_type: "Microsoft.KeyVault/vaults",
        parent_prefix: None,
        prefix: "kv",
        daily_gbp: (0.005, 0.2),
        office_hours: false,
        weekend_factor: 1.0,
        extra_growth: 0.0,
        skus: &[("standard", "A")],
        weight: 1,
    },
    Kind {
        service: "Virtual Network",
        meter_category: "Virtual Network",
        meter_subcategory: "IP Addresses",
        meters: &[("Standard IPv4 Static Public IP", 1.0)],
        provider_type: "Microsoft.Network/publicIPAddresses",
        parent_prefix: None,
        prefix: "pip",
        daily_gbp: (0.08, 0.1),
        office_hours: false,
        weekend_factor: 1.0,
        extra_growth: 0.0,
        skus: &[("Standard", "Regional")],
        weight: 2,
    },
];

/// Only ever appears through a `NewService` anomaly.
static NEW_SERVICE_KIND: Kind = Kind {
    service: "Azure Cosmos DB",
    meter_category: "Azure Cosmos DB",
    meter_subcategory: "",
    meters: &[("100 RU/s", 1.0)],
    provider_type: "Microsoft.DocumentDB/databaseAccounts",
    parent_prefix: None,
    prefix: "cosmos",
    daily_gbp: (6.0, 20.0),
    office_hours: false,
    weekend_factor: 1.0,
    extra_growth: 0.0,
    skus: &[("Standard", "")],
    weight: 0,
};

/// Only ever appears through a `RemovedService` anomaly.
static REMOVED_SERVICE_KIND: Kind = Kind {
    service: "Redis Cache",
    meter_category: "Redis Cache",
    meter_subcategory: "Standard",
    meters: &[("C1 Cache Instance", 1.0)],
    provider_type: "Microsoft.Cache/Redis",
    parent_prefix: None,
    prefix: "redis",
    daily_gbp: (2.0, 6.0),
    office_hours: false,
    weekend_factor: 1.0,
    extra_growth: 0.0,
    skus: &[("Standard", "Standard")],
    weight: 0,
};

const LOCATIONS: &[(&str, &str, u64)] = &[
    ("uksouth", "UK South", 7),
    ("ukwest", "UK West", 2),
    ("westeurope", "West Europe", 1),
];
const TEAMS: &[&str] = &["platform", "data", "web", "finance", "ml"];
const RESOURCE_GROUPS: &[&str] = &[
    "rg-web-prod",
    "rg-data-prod",
    "rg-shared",
    "rg-dev",
    "rg-analytics",
    "rg-network",
    "RG-Legacy-App",
];
/// Cost rows of some resources in this group report its name in lower case (the fixtures show one
/// resource group spelled two ways in one response).
const MIXED_CASE_GROUP: &str = "RG-Legacy-App";
const SUBSCRIPTION_NAMES: &[&str] = &[
    "Production",
    "Development",
    "Data Platform",
    "Shared Services",
    "Sandbox",
];
const TENANT_NAMES: &[(&str, &str)] = &[
    ("Contoso", "contoso"),
    ("Fabrikam", "fabrikam"),
    ("Northwind", "northwind"),
    ("Tailwind", "tailwind"),
];

#[derive(Debug, Clone)]
pub struct Resource {
    pub index: usize,
    pub kind: &'static Kind,
    pub name: String,
    /// The resource group as ARM spells it.
    pub resource_group: String,
    /// The resource group as this resource's cost rows spell it.
    pub cost_resource_group: String,
    /// ARM id (mixed case).
    pub id: String,
    /// ResourceId as Cost Management reports it (lower case).
    pub cost_id: String,
    pub location: &'static str,
    pub location_display: &'static str,
    pub tags: Vec<(&'static str, String)>,
    pub sku: (&'static str, &'static str),
    /// Typical daily cost in units before growth, pattern and noise.
    pub base_daily: f64,
    pub weekend_factor: f64,
    pub meters: u16,
    pub active_from: Option<Date>,
    pub active_until: Option<Date>,
    /// VMs only: stopped (deallocated) since this day, so no compute cost from then on.
    pub deallocated_since: Option<Date>,
}

impl Resource {
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn meter_name(&self, m: u16) -> String {
        let table = self.kind.meters;
        let (name, _) = table[usize::from(m) % table.len()];
        if usize::from(m) < table.len() {
            name.to_string()
        } else {
            format!("{name} {m}")
        }
    }

    fn meter_share(&self, m: u16) -> f64 {
        let table = self.kind.meters;
        if usize::from(self.meters) == table.len() {
            table[usize::from(m)].1
        } else {
            1.0 / f64::from(self.meters.max(1))
        }
    }

    fn active_on(&self, d: Date) -> bool {
        self.active_from.is_none_or(|f| d >= f) && self.active_until.is_none_or(|u| d <= u)
    }

    /// Whether the resource still exists now (for the inventory).
    pub fn exists_at(&self, today: Date) -> bool {
        self.active_until.is_none_or(|u| u >= today)
    }
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub monthly_units: i64,
    /// Indices of the VMs it covers (their usage is £0 in ActualCost).
    pub vms: Vec<usize>,
}

#[derive(Debug, Clone)]
enum Effect {
    Resource {
        index: usize,
        from: Date,
        to: Date,
        factor: f64,
    },
    Group {
        name: String,
        from: Date,
        factor: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AnomalyKind {
    Spike,
    Drop,
    NewService,
    RemovedService,
    LevelShift,
}

/// One injected anomaly: what a detector should find.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    pub tenant_id: String,
    pub subscription_id: String,
    pub kind: AnomalyKind,
    /// Cost Management dimension the series is keyed by: `ResourceId`, `ResourceGroupName` or
    /// `ServiceName`.
    pub dimension: &'static str,
    /// The series value as cost rows report it (resource ids in lower case; compare case-insensitively).
    pub series: String,
    pub service_name: String,
    /// First affected day.
    #[serde(with = "iso_date")]
    pub start: Date,
    /// Last affected day, inclusive; `None` when the change persists.
    #[serde(with = "iso_date::option")]
    pub end: Option<Date>,
    /// Cost multiplier for spikes, drops and level shifts.
    pub factor: Option<f64>,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct SubModel {
    pub tenant_index: usize,
    pub index: usize,
    key: u64,
    seed: u64,
    pub start: Date,
    pub end: Date,
    pub subscription_id: String,
    pub display_name: String,
    pub resource_groups: Vec<String>,
    pub resources: Vec<Resource>,
    pub growth_per_year: f64,
    pub missing_days: BTreeSet<Date>,
    pub reservation: Option<Reservation>,
    effects: Vec<Effect>,
}

#[derive(Debug, Clone)]
pub struct TenantModel {
    pub index: usize,
    pub tenant_id: String,
    pub domain: String,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub principal_object_id: String,
    pub subscriptions: Vec<SubModel>,
    pub anomalies: Vec<Anomaly>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub seed: u64,
    pub today: Date,
    /// First day with cost data (the first of a month).
    pub start: Date,
    /// Last day with cost data (yesterday).
    pub end: Date,
    pub tenants: Vec<TenantModel>,
}

/// Parameters the model is built from (a subset of [`crate::SimConfig`]).
#[derive(Debug, Clone)]
pub struct ModelParams {
    pub seed: u64,
    pub today: Date,
    pub history_months: u32,
    pub tenants: usize,
    pub subscriptions_per_tenant: usize,
    pub resources_per_subscription: usize,
    pub large: Option<crate::LargeMode>,
}

pub fn first_of_month(d: Date) -> Date {
    d.replace_day(1).unwrap_or(d)
}

pub fn add_months(d: Date, months: i32) -> Date {
    let total = d.year() * 12 + (d.month() as i32 - 1) + months;
    let year = total.div_euclid(12);
    let month = Month::try_from((total.rem_euclid(12) + 1) as u8).unwrap_or(Month::January);
    Date::from_calendar_date(year, month, 1).unwrap_or(d)
}

pub fn last_of_month(d: Date) -> Date {
    add_months(d, 1) - Duration::days(1)
}

pub fn yyyymmdd(d: Date) -> i64 {
    i64::from(d.year()) * 10_000 + i64::from(d.month() as u8) * 100 + i64::from(d.day())
}

fn days_between(a: Date, b: Date) -> i64 {
    i64::from(b.to_julian_day() - a.to_julian_day())
}

fn pick_weighted<'a, T>(rng: &mut Rng, items: &'a [T], weight: impl Fn(&T) -> u64) -> &'a T {
    let total: u64 = items.iter().map(&weight).sum();
    let mut x = rng.below(total);
    for it in items {
        let w = weight(it);
        if x < w {
            return it;
        }
        x -= w;
    }
    &items[0]
}

fn pick_date(rng: &mut Rng, lo: Date, hi: Date) -> Date {
    if hi <= lo {
        return lo;
    }
    lo + Duration::days(rng.below(days_between(lo, hi) as u64 + 1) as i64)
}

impl Model {
    pub fn build(p: &ModelParams) -> Model {
        let end = p.today - Duration::days(1);
        let start = add_months(first_of_month(end), -(p.history_months.max(1) as i32));
        let mut rng = Rng::derive(p.seed, &[0x7E4A47]);
        let mut tenants = Vec::new();
        for t in 0..p.tenants.max(1) {
            let (name, slug) = TENANT_NAMES[t % TENANT_NAMES.len()];
            let suffix = if t < TENANT_NAMES.len() {
                String::new()
            } else {
                t.to_string()
            };
            let tenant_id = rng.uuid();
            let client_id = rng.uuid();
            let secret_bytes = rng.bytes16();
            let client_secret = format!(
                "sim~{}",
                secret_bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let principal_object_id = rng.uuid();
            let mut tenant = TenantModel {
                index: t,
                tenant_id,
                domain: format!("{slug}{suffix}.onmicrosoft.com"),
                display_name: format!("{name}{suffix}"),
                client_id,
                client_secret,
                principal_object_id,
                subscriptions: Vec::new(),
                anomalies: Vec::new(),
            };
            for s in 0..p.subscriptions_per_tenant.max(1) {
                let (resources, meters) = match p.large {
                    Some(l) if t == 0 && s == l.subscription => {
                        (l.resources, Some(l.meters_per_resource.max(1)))
                    }
                    _ => (p.resources_per_subscription, None),
                };
                let sub_name = SUBSCRIPTION_NAMES[s % SUBSCRIPTION_NAMES.len()];
                let display = format!("{} {}", tenant.display_name, sub_name);
                let sub =
                    build_subscription(p, &mut tenant, s, &display, resources, meters, start, end);
                tenant.subscriptions.push(sub);
            }
            tenants.push(tenant);
        }
        Model {
            seed: p.seed,
            today: p.today,
            start,
            end,
            tenants,
        }
    }

    pub fn find_subscription(&self, id: &str) -> Option<&SubModel> {
        self.tenants
            .iter()
            .flat_map(|t| t.subscriptions.iter())
            .find(|s| s.subscription_id.eq_ignore_ascii_case(id))
    }
}

#[allow(clippy::too_many_arguments)]
fn build_subscription(
    p: &ModelParams,
    tenant: &mut TenantModel,
    s: usize,
    display_name: &str,
    n_resources: usize,
    meters_override: Option<u16>,
    start: Date,
    end: Date,
) -> SubModel {
    let key = (tenant.index as u64) << 32 | s as u64;
    let mut rng = Rng::derive(p.seed, &[0x5AB, key]);
    let subscription_id = rng.uuid();
    // Resource groups: always the shared one, then a seeded selection of the others.
    let mut groups: Vec<String> = vec!["rg-shared".to_string()];
    let extra = 3 + rng.below(3) as usize;
    let mut offset = rng.below(RESOURCE_GROUPS.len() as u64) as usize;
    while groups.len() < extra + 1 {
        let g = RESOURCE_GROUPS[offset % RESOURCE_GROUPS.len()];
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
        offset += 1;
    }
    if s == 0 && !groups.iter().any(|g| g == MIXED_CASE_GROUP) {
        groups.push(MIXED_CASE_GROUP.to_string());
    }
    let growth_per_year = rng.range_f(0.03, 0.15);

    let mut sub = SubModel {
        tenant_index: tenant.index,
        index: s,
        key,
        seed: p.seed,
        start,
        end,
        subscription_id,
        display_name: display_name.to_string(),
        resource_groups: groups,
        resources: Vec::new(),
        growth_per_year,
        missing_days: BTreeSet::new(),
        reservation: None,
        effects: Vec::new(),
    };
    for i in 0..n_resources {
        let mut r = Rng::derive(p.seed, &[0x7E5, key, i as u64]);
        let kind = pick_weighted(&mut r, BASE_KINDS, |k| k.weight);
        let res = make_resource(&sub, &mut r, i, kind, meters_override, end);
        sub.resources.push(res);
    }

    // A monthly VM reservation covering up to two running VMs.
    let vms: Vec<usize> = sub
        .resources
        .iter()
        .filter(|r| r.kind.provider_type == VM.provider_type && r.deallocated_since.is_none())
        .map(|r| r.index)
        .take(2)
        .collect();
    if !vms.is_empty() {
        let daily: f64 = vms.iter().map(|i| sub.resources[*i].base_daily).sum();
        sub.reservation = Some(Reservation {
            monthly_units: (daily * 30.44 * 0.62).round() as i64,
            vms,
        });
    }

    inject_anomalies(p, tenant, &mut sub, &mut rng, meters_override);

    // Genuinely missing days: nothing at all is billed (never the 1st, never on an anomaly day).
    let anomaly_days: Vec<Date> = tenant
        .anomalies
        .iter()
        .filter(|a| a.subscription_id == sub.subscription_id)
        .map(|a| a.start)
        .collect();
    let mut tries = 0;
    while sub.missing_days.len() < 3 && tries < 50 {
        tries += 1;
        let d = pick_date(
            &mut rng,
            start + Duration::days(20),
            end - Duration::days(3),
        );
        if d.day() == 1 || anomaly_days.iter().any(|a| days_between(*a, d).abs() <= 3) {
            continue;
        }
        sub.missing_days.insert(d);
    }
    sub
}

fn make_resource(
    sub: &SubModel,
    r: &mut Rng,
    i: usize,
    kind: &'static Kind,
    meters_override: Option<u16>,
    end: Date,
) -> Resource {
    let group = r.pick(&sub.resource_groups).clone();
    let cost_resource_group = if group == MIXED_CASE_GROUP && i % 2 == 1 {
        group.to_ascii_lowercase()
    } else {
        group.clone()
    };
    let short = group
        .to_ascii_lowercase()
        .trim_start_matches("rg-")
        .replace('-', "");
    let name = if kind.prefix == "st" {
        format!("st{short}{i:04}")
    } else {
        format!("{}-{short}-{i:04}", kind.prefix)
    };
    let (ns, ty) = kind
        .provider_type
        .split_once('/')
        .unwrap_or((kind.provider_type, ""));
    let id = match (kind.parent_prefix, ty.split_once('/')) {
        (Some(pp), Some((parent_ty, child_ty))) => format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/{ns}/{parent_ty}/{pp}-{short}-{i:04}/{child_ty}/{name}",
            sub.subscription_id
        ),
        _ => format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/{}/{name}",
            sub.subscription_id, kind.provider_type
        ),
    };
    let (location, location_display, _) = *pick_weighted(r, LOCATIONS, |l| l.2);
    let env = if group == "rg-dev" {
        "dev"
    } else if r.chance(0.2) {
        "test"
    } else {
        "prod"
    };
    let mut tags = Vec::new();
    if r.chance(0.88) {
        tags.push(("env", env.to_string()));
        tags.push(("team", (*r.pick(TEAMS)).to_string()));
        tags.push(("costCenter", format!("CC-{}", 1001 + r.below(6))));
    }
    let weekend_factor = if kind.office_hours && env != "prod" {
        0.3
    } else {
        kind.weekend_factor
    };
    let base_daily = r.range_f(kind.daily_gbp.0, kind.daily_gbp.1) * UNITS_PER_GBP as f64;
    let deallocated_since = if kind.provider_type == VM.provider_type && r.chance(0.12) {
        Some(end - Duration::days(5 + r.below(40) as i64))
    } else {
        None
    };
    let sku = *r.pick(kind.skus);
    Resource {
        index: i,
        kind,
        cost_id: id.to_ascii_lowercase(),
        id,
        name,
        resource_group: group,
        cost_resource_group,
        location,
        location_display,
        tags,
        sku,
        base_daily,
        weekend_factor,
        meters: meters_override.unwrap_or(kind.meters.len() as u16),
        active_from: None,
        active_until: None,
        deallocated_since,
    }
}

fn inject_anomalies(
    p: &ModelParams,
    tenant: &mut TenantModel,
    sub: &mut SubModel,
    rng: &mut Rng,
    meters_override: Option<u16>,
) {
    const ALL: [AnomalyKind; 5] = [
        AnomalyKind::Spike,
        AnomalyKind::LevelShift,
        AnomalyKind::Drop,
        AnomalyKind::NewService,
        AnomalyKind::RemovedService,
    ];
    let (start, end) = (sub.start, sub.end);
    let lo = start + Duration::days(100).min(Duration::days(days_between(start, end) / 3));
    let hi = end - Duration::days(10);
    let reserved: Vec<usize> = sub
        .reservation
        .as_ref()
        .map(|r| r.vms.clone())
        .unwrap_or_default();
    let candidates: Vec<usize> = sub
        .resources
        .iter()
        .filter(|r| {
            r.deallocated_since.is_none()
                && !reserved.contains(&r.index)
                && r.base_daily >= 2.0 * UNITS_PER_GBP as f64
        })
        .map(|r| r.index)
        .collect();
    for kind in [ALL[(2 * sub.index) % 5], ALL[(2 * sub.index + 1) % 5]] {
        let day = pick_date(rng, lo, hi);
        let base = Anomaly {
            tenant_id: tenant.tenant_id.clone(),
            subscription_id: sub.subscription_id.clone(),
            kind,
            dimension: "ResourceId",
            series: String::new(),
            service_name: String::new(),
            start: day,
            end: None,
            factor: None,
            description: String::new(),
        };
        let anomaly = match kind {
            AnomalyKind::Spike | AnomalyKind::Drop => {
                if candidates.is_empty() {
                    continue;
                }
                let idx = candidates[rng.below(candidates.len() as u64) as usize];
                let (len, factor) = if kind == AnomalyKind::Spike {
                    (1 + rng.below(2) as i64, (4.0 + rng.below(5) as f64).round())
                } else {
                    (3, 0.05)
                };
                let to = day + Duration::days(len - 1);
                sub.effects.push(Effect::Resource {
                    index: idx,
                    from: day,
                    to,
                    factor,
                });
                let r = &sub.resources[idx];
                Anomaly {
                    series: r.cost_id.clone(),
                    service_name: r.kind.service.to_string(),
                    end: Some(to),
                    factor: Some(factor),
                    description: format!(
                        "{} of {} x{factor} for {len} day(s)",
                        if kind == AnomalyKind::Spike {
                            "spike"
                        } else {
                            "drop"
                        },
                        r.name
                    ),
                    ..base
                }
            }
            AnomalyKind::LevelShift => {
                // A group other than the mixed-case one, so the series has a single spelling.
                let groups: Vec<&String> = sub
                    .resource_groups
                    .iter()
                    .filter(|g| g.as_str() != MIXED_CASE_GROUP)
                    .collect();
                let group = (*rng.pick(&groups)).clone();
                let factor = 1.6;
                sub.effects.push(Effect::Group {
                    name: group.clone(),
                    from: day,
                    factor,
                });
                Anomaly {
                    dimension: "ResourceGroupName",
                    series: group.clone(),
                    service_name: String::new(),
                    factor: Some(factor),
                    description: format!("level shift of {group} x{factor} from {day}"),
                    ..base
                }
            }
            AnomalyKind::NewService | AnomalyKind::RemovedService => {
                let new = kind == AnomalyKind::NewService;
                let k: &'static Kind = if new {
                    &NEW_SERVICE_KIND
                } else {
                    &REMOVED_SERVICE_KIND
                };
                for j in 0..2 {
                    let i = sub.resources.len();
                    let mut r = Rng::derive(p.seed, &[0xA40, sub.key, i as u64, j]);
                    let mut res = make_resource(sub, &mut r, i, k, meters_override, end);
                    if new {
                        res.active_from = Some(day);
                    } else {
                        res.active_until = Some(day - Duration::days(1));
                    }
                    sub.resources.push(res);
                }
                Anomaly {
                    dimension: "ServiceName",
                    series: k.service.to_string(),
                    service_name: k.service.to_string(),
                    description: if new {
                        format!("{} appears on {day}", k.service)
                    } else {
                        format!(
                            "{} removed: last cost on {}",
                            k.service,
                            day - Duration::days(1)
                        )
                    },
                    ..base
                }
            }
        };
        tenant.anomalies.push(anomaly);
    }
}

/// One cost cell: the cost of one meter of one resource (or a reservation purchase) on one day.
#[derive(Debug, Clone, Copy)]
pub struct CostCell<'a> {
    pub date: Date,
    /// `None` for a reservation purchase (no resource).
    pub resource: Option<&'a Resource>,
    pub meter: u16,
    pub charge_type: ChargeType,
    /// Ten-thousandths of a pound.
    pub amount: i64,
}

/// Whether cells come from the billed history or from the noiseless model (forecasts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Billed,
    Expected,
}

impl SubModel {
    pub fn tenant_key(&self) -> u64 {
        self.key
    }

    fn is_reserved(&self, index: usize) -> Option<usize> {
        self.reservation
            .as_ref()
            .and_then(|r| r.vms.iter().position(|v| *v == index))
    }

    fn multiplier(&self, r: &Resource, d: Date) -> f64 {
        let mut m = 1.0;
        for e in &self.effects {
            match e {
                Effect::Resource {
                    index,
                    from,
                    to,
                    factor,
                } if *index == r.index && d >= *from && d <= *to => m *= factor,
                Effect::Group { name, from, factor } if *name == r.resource_group && d >= *from => {
                    m *= factor
                }
                _ => {}
            }
        }
        m
    }

    /// The cost of meter `m` of resource `r` on day `d`, in units.
    pub fn cell_amount(&self, r: &Resource, d: Date, m: u16, metric: Metric, mode: Mode) -> i64 {
        if d < self.start || (mode == Mode::Billed && d > self.end) {
            return 0;
        }
        if mode == Mode::Billed && self.missing_days.contains(&d) {
            return 0;
        }
        if !r.active_on(d) || r.deallocated_since.is_some_and(|since| d >= since) {
            return 0;
        }
        if let Some(j) = self.is_reserved(r.index) {
            return if metric == Metric::AmortizedCost && m == 0 {
                self.amortized_share(d, j)
            } else {
                0
            };
        }
        let years = days_between(self.start, d) as f64 / 365.0;
        let growth = 1.0 + (self.growth_per_year + r.kind.extra_growth) * years;
        let weekly = match d.weekday() {
            Weekday::Saturday | Weekday::Sunday => r.weekend_factor,
            _ => 1.0,
        };
        let (noise, mult) = match mode {
            Mode::Billed => (
                0.94 + 0.12
                    * rng::unit(
                        self.seed,
                        &[
                            self.key,
                            r.index as u64,
                            d.to_julian_day() as u64,
                            u64::from(m),
                        ],
                    ),
                self.multiplier(r, d),
            ),
            // Forecasts carry persistent changes (level shifts) but no noise or transient anomalies.
            Mode::Expected => (
                1.0,
                self.effects
                    .iter()
                    .map(|e| match e {
                        Effect::Group { name, factor, .. } if *name == r.resource_group => *factor,
                        _ => 1.0,
                    })
                    .product(),
            ),
        };
        (r.base_daily * r.meter_share(m) * growth * weekly * noise * mult).round() as i64
    }

    /// The reservation's cost for one covered VM on one day, amortized exactly across the month:
    /// the month's cells (non-missing days x covered VMs) sum to the purchase to the unit.
    fn amortized_share(&self, d: Date, vm_slot: usize) -> i64 {
        let Some(res) = &self.reservation else {
            return 0;
        };
        let first = first_of_month(d);
        let last = last_of_month(d);
        let missing_before = self.missing_days.range(first..d).count() as i64;
        let missing_total = self.missing_days.range(first..=last).count() as i64;
        let days = i64::from(last.day()) - missing_total;
        let k = res.vms.len() as i64;
        let cells = days * k;
        if cells <= 0 {
            return 0;
        }
        let ordinal = i64::from(d.day()) - 1 - missing_before;
        let idx = ordinal * k + vm_slot as i64;
        res.monthly_units / cells + i64::from(idx < res.monthly_units % cells)
    }

    /// Every non-zero cell from `from` to `to` (inclusive), day by day, lazily.
    pub fn cells(&self, from: Date, to: Date, metric: Metric, mode: Mode) -> CellIter<'_> {
        let from = from.max(self.start);
        let to = if mode == Mode::Billed {
            to.min(self.end)
        } else {
            to
        };
        CellIter {
            sub: self,
            metric,
            mode,
            date: from,
            to,
            resource: 0,
            meter: 0,
            purchase_done: false,
        }
    }

    /// Sum of all cells in the range, in units.
    pub fn total(&self, from: Date, to: Date, metric: Metric) -> i64 {
        self.cells(from, to, metric, Mode::Billed)
            .map(|c| c.amount)
            .sum()
    }
}

pub struct CellIter<'a> {
    sub: &'a SubModel,
    metric: Metric,
    mode: Mode,
    date: Date,
    to: Date,
    resource: usize,
    meter: u16,
    purchase_done: bool,
}

impl<'a> Iterator for CellIter<'a> {
    type Item = CostCell<'a>;

    fn next(&mut self) -> Option<CostCell<'a>> {
        loop {
            if self.date > self.to {
                return None;
            }
            if !self.purchase_done {
                self.purchase_done = true;
                if self.metric == Metric::ActualCost
                    && self.date.day() == 1
                    && let Some(res) = &self.sub.reservation
                {
                    return Some(CostCell {
                        date: self.date,
                        resource: None,
                        meter: 0,
                        charge_type: ChargeType::Purchase,
                        amount: res.monthly_units,
                    });
                }
            }
            let Some(r) = self.sub.resources.get(self.resource) else {
                self.date = self.date.next_day()?;
                self.resource = 0;
                self.meter = 0;
                self.purchase_done = false;
                continue;
            };
            if self.meter >= r.meters {
                self.resource += 1;
                self.meter = 0;
                continue;
            }
            let m = self.meter;
            self.meter += 1;
            let amount = self
                .sub
                .cell_amount(r, self.date, m, self.metric, self.mode);
            if amount != 0 {
                return Some(CostCell {
                    date: self.date,
                    resource: Some(r),
                    meter: m,
                    charge_type: ChargeType::Usage,
                    amount,
                });
            }
        }
    }
}

impl CostCell<'_> {
    /// The value of a Cost Management dimension for this cell (`None`: unknown dimension).
    pub fn dimension(&self, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        let r = self.resource;
        let purchase_service = || VM.service.to_string();
        Some(match lower.as_str() {
            "resourcegroup" | "resourcegroupname" => {
                r.map(|r| r.cost_resource_group.clone()).unwrap_or_default()
            }
            "servicename" => r
                .map(|r| r.kind.service.to_string())
                .unwrap_or_else(purchase_service),
            "metercategory" => r
                .map(|r| r.kind.meter_category.to_string())
                .unwrap_or_else(purchase_service),
            "metersubcategory" => r
                .map(|r| r.kind.meter_subcategory.to_string())
                .unwrap_or_else(|| "Reservation".to_string()),
            "meter" => r
                .map(|r| r.meter_name(self.meter))
                .unwrap_or_else(|| "Reservation".to_string()),
            "resourceid" => r.map(|r| r.cost_id.clone()).unwrap_or_default(),
            "resourcetype" => r
                .map(|r| r.kind.provider_type.to_ascii_lowercase())
                .unwrap_or_default(),
            "resourcelocation" => r
                .map(|r| r.location_display.to_string())
                .unwrap_or_default(),
            "chargetype" => self.charge_type.as_str().to_string(),
            "pricingmodel" => match (self.charge_type, r) {
                (ChargeType::Purchase, _) => "Reservation".to_string(),
                _ => "OnDemand".to_string(),
            },
            _ => return None,
        })
    }

    pub fn tag(&self, name: &str) -> Option<&str> {
        self.resource.and_then(|r| r.tag(name))
    }
}
