//! A simulated Azure tenant for development and tests: the token endpoint, Subscriptions,
//! Authorization permissions, Cost Management query/forecast, Resource Graph and Advisor, served on
//! loopback with data generated from a seed and switchable faults. Responses are shaped after the
//! azure-rest-api-specs examples in `fixtures/azure/`.
//!
//! Development only: never part of the deploy package.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use sixpence_azure_sim::{SimConfig, SimTenant, Fault};
//! let sim = SimTenant::start(SimConfig::default()).await?;
//! let creds = sim.credentials(0);
//! println!("ARM {} token {}", sim.base_url(), creds.token_url);
//! sim.apply_fault(0, Fault::ServerError { status: 503, endpoints: vec!["query".into()], requests: Some(2), seconds: None });
//! # Ok(()) }
//! ```

mod cost;
mod model;
mod rng;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::Date;

pub use model::{Anomaly, AnomalyKind, ChargeType, Metric, UNITS_PER_GBP};

/// Money in ten-thousandths of a pound: exact sums, reconcilable to the cent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Money(i64);

impl Money {
    pub const fn from_units(units: i64) -> Money {
        Money(units)
    }
    /// Ten-thousandths of a pound.
    pub const fn units(self) -> i64 {
        self.0
    }
    /// Whole pence, rounded half away from zero.
    pub fn pence(self) -> i64 {
        let q = self.0 / 100;
        let r = self.0 % 100;
        if r >= 50 {
            q + 1
        } else if r <= -50 {
            q - 1
        } else {
            q
        }
    }
    /// Parses a JSON cost value (as Cost Management sends it) into units, rounding to the unit.
    pub fn from_f64(gbp: f64) -> Money {
        Money((gbp * UNITS_PER_GBP as f64).round() as i64)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:04} GBP", a / 10_000, a % 10_000)
    }
}

/// The Cost Management quota per simulated tenant (QPU per window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QpuQuota {
    pub per_10_seconds: u32,
    pub per_minute: u32,
    pub per_hour: u32,
}

impl Default for QpuQuota {
    /// The documented limits: 12 QPU / 10 s, 60 / min, 600 / h.
    fn default() -> Self {
        QpuQuota {
            per_10_seconds: 12,
            per_minute: 60,
            per_hour: 600,
        }
    }
}

/// A very large subscription for benchmarks: `resources x meters_per_resource` cost rows per day,
/// generated lazily (only the resource list is held in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeMode {
    /// Index of the subscription of tenant 0 that is made large.
    pub subscription: usize,
    pub resources: usize,
    pub meters_per_resource: u16,
}

impl LargeMode {
    /// About 2,700 rows a day: over 1 million cost rows in 13 months.
    pub fn million_rows() -> LargeMode {
        LargeMode {
            subscription: 0,
            resources: 2_700,
            meters_per_resource: 1,
        }
    }
    pub fn rows_per_day(&self) -> usize {
        self.resources * usize::from(self.meters_per_resource.max(1))
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// "Today" for the simulated tenant: cost data runs to the day before. `None`: the current UTC date.
    /// Same seed and same `today` give the same data.
    pub today: Option<Date>,
    /// Whole months of history before the current month (13 gives 13 full months plus month-to-date).
    pub history_months: u32,
    pub tenants: usize,
    pub subscriptions_per_tenant: usize,
    pub resources_per_subscription: usize,
    /// Cost Management rows per page (`$top` on the request overrides it).
    pub cost_page_size: usize,
    /// Advisor recommendations per page.
    pub advisor_page_size: usize,
    /// Resource Graph rows per page when the request has no `$top`.
    pub resource_graph_default_top: usize,
    pub token_lifetime_secs: u64,
    /// `None` disables Cost Management quota enforcement (benchmarks).
    pub quota: Option<QpuQuota>,
    /// Resource Graph per-principal quota: queries per 5 s window (`None`: unlimited).
    pub resource_graph_quota: Option<u32>,
    pub large: Option<LargeMode>,
    pub bind: SocketAddr,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            today: None,
            history_months: 13,
            tenants: 2,
            subscriptions_per_tenant: 3,
            resources_per_subscription: 40,
            cost_page_size: 1000,
            advisor_page_size: 5,
            resource_graph_default_top: 100,
            token_lifetime_secs: 3599,
            quota: Some(QpuQuota::default()),
            resource_graph_quota: Some(15),
            large: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Built-in (and one custom) roles a principal can hold on a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Reader,
    CostManagementReader,
    Contributor,
    Owner,
    /// A custom role granting `Microsoft.Resources/*/write` (over-privileged).
    ResourceWriter,
}

impl Role {
    fn reads_resources(self) -> bool {
        !matches!(self, Role::CostManagementReader | Role::ResourceWriter)
    }
    fn reads_costs(self) -> bool {
        !matches!(self, Role::ResourceWriter)
    }
}

/// Why the client secret stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// AADSTS7000222: the secret expired.
    SecretExpired,
    /// AADSTS7000215: the secret was deleted or rotated.
    SecretInvalid,
}

/// Cost Management retry-after headers a throttle storm can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryHeader {
    Qpu,
    Entity,
    Tenant,
    ClientType,
    RetryAfter,
}

/// A switchable fault for one simulated tenant. `endpoints` names: `token`, `subscriptions`,
/// `permissions`, `query`, `forecast`, `resourcegraph`, `advisor`; empty means every ARM endpoint
/// (never the token endpoint unless named). `requests` and `seconds` bound a fault; with neither it
/// lasts until cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// 429 with the real headers for each endpoint family.
    Throttle {
        #[serde(default)]
        endpoints: Vec<String>,
        #[serde(default)]
        requests: Option<u32>,
        #[serde(default)]
        seconds: Option<u64>,
        #[serde(default = "default_retry_after")]
        retry_after: u64,
        /// Cost Management headers carrying `retry_after` (default: all five).
        #[serde(default)]
        headers: Vec<RetryHeader>,
    },
    /// 500 or 503 (with `Retry-After`).
    ServerError {
        #[serde(default = "default_status")]
        status: u16,
        #[serde(default)]
        endpoints: Vec<String>,
        #[serde(default)]
        requests: Option<u32>,
        #[serde(default)]
        seconds: Option<u64>,
    },
    Slow {
        delay_ms: u64,
        #[serde(default)]
        endpoints: Vec<String>,
        #[serde(default)]
        requests: Option<u32>,
        #[serde(default)]
        seconds: Option<u64>,
    },
    /// The token endpoint refuses the secret; existing tokens get 401 InvalidAuthenticationToken.
    RevokeCredentials {
        reason: Revocation,
    },
    RestoreCredentials,
    /// Existing tokens expire now (401 ExpiredAuthenticationToken).
    ExpireTokens,
    /// No role left on the subscription: 403 AuthorizationFailed on data calls, gone from the list.
    RemoveRoleAssignment {
        subscription: String,
    },
    /// Back to Reader only.
    RestoreRoleAssignment {
        subscription: String,
    },
    /// Adds an over-privileged assignment (Owner `*` by default).
    OverPrivileged {
        subscription: String,
        #[serde(default = "default_over")]
        role: Role,
    },
    SetRoles {
        subscription: String,
        roles: Vec<Role>,
    },
    /// Forget the Cost Management and Resource Graph quota windows.
    ResetQuota,
    /// Clears every fault of the tenant (credentials, roles, storms, delays, quota windows).
    Clear,
}

fn default_retry_after() -> u64 {
    5
}
fn default_status() -> u16 {
    503
}
fn default_over() -> Role {
    Role::Owner
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    UnknownTenant(String),
    UnknownSubscription(String),
}

impl std::error::Error for SimError {}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::UnknownTenant(t) => write!(f, "unknown simulated tenant '{t}'"),
            SimError::UnknownSubscription(s) => write!(f, "unknown simulated subscription '{s}'"),
        }
    }
}

/// A request the simulator refused because it would have changed something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteAttempt {
    pub method: String,
    pub path: String,
}

/// Credentials and endpoints of one simulated tenant (demo values, not secrets of anything real).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub tenant_id: String,
    pub domain: String,
    pub client_id: String,
    pub client_secret: String,
    pub principal_object_id: String,
    /// `{base}/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    /// Scope to request (`https://management.azure.com/.default`; `{base}/.default` also works).
    pub scope: String,
    pub subscriptions: Vec<String>,
}

/// One cost cell as a flat record (from [`SimTenant::cost_rows`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostRow {
    pub date: Date,
    /// Lower-case resource id; empty for a reservation purchase.
    pub resource_id: String,
    pub meter: u16,
    pub charge_type: ChargeType,
    pub amount: Money,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionTruth {
    pub subscription_id: String,
    pub display_name: String,
    /// Days with no cost at all (the API omits them).
    #[serde(with = "model::iso_date::vec")]
    pub missing_days: Vec<Date>,
    pub reservation_monthly: Option<Money>,
    pub resources: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantTruth {
    pub tenant_id: String,
    pub display_name: String,
    pub subscriptions: Vec<SubscriptionTruth>,
    pub anomalies: Vec<Anomaly>,
}

/// What the data contains, for tests of sync and anomaly detection.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroundTruth {
    pub seed: u64,
    pub currency: &'static str,
    #[serde(with = "model::iso_date")]
    pub today: Date,
    #[serde(with = "model::iso_date")]
    pub data_start: Date,
    #[serde(with = "model::iso_date")]
    pub data_end: Date,
    pub tenants: Vec<TenantTruth>,
}

/// A running simulated tenant. Dropping it stops the server.
pub struct SimTenant {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimTenant {
    /// Builds the data from the seed and starts serving on `config.bind` (loopback, free port by default).
    pub async fn start(config: SimConfig) -> anyhow::Result<SimTenant> {
        let today = config
            .today
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
        let model = model::Model::build(&model::ModelParams {
            seed: config.seed,
            today,
            history_months: config.history_months,
            tenants: config.tenants,
            subscriptions_per_tenant: config.subscriptions_per_tenant,
            resources_per_subscription: config.resources_per_subscription,
            large: config.large,
        });
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(server::Shared {
            state: Mutex::new(server::State::new(&model)),
            model: Arc::new(model),
            config,
            base_url,
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "azure simulator stopped");
            }
        });
        Ok(SimTenant {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:{port}`: both the ARM endpoint and the login authority.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn tenant_count(&self) -> usize {
        self.shared.model.tenants.len()
    }

    /// Index of a tenant by id or domain.
    pub fn tenant_index(&self, tenant: &str) -> Option<usize> {
        server::find_tenant(&self.shared.model, tenant)
    }

    /// Credentials of tenant `index` (panics on an out-of-range index: a test bug).
    pub fn credentials(&self, index: usize) -> Credentials {
        server::credentials(&self.shared, index)
    }

    /// First and last day with cost data.
    pub fn data_range(&self) -> (Date, Date) {
        (self.shared.model.start, self.shared.model.end)
    }

    pub fn today(&self) -> Date {
        self.shared.model.today
    }

    pub fn ground_truth(&self) -> GroundTruth {
        server::ground_truth(&self.shared.model)
    }

    pub fn anomalies(&self) -> Vec<Anomaly> {
        self.shared
            .model
            .tenants
            .iter()
            .flat_map(|t| t.anomalies.iter().cloned())
            .collect()
    }

    /// Exact total cost of a subscription from `from` to `to` (inclusive), as every query must sum to.
    pub fn ground_truth_cost(
        &self,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
    ) -> Option<Money> {
        let sub = self.shared.model.find_subscription(subscription)?;
        Some(Money(sub.total(from, to, metric)))
    }

    /// Exact totals by one Cost Management dimension (e.g. `ServiceName`, `ResourceGroupName`).
    pub fn ground_truth_cost_by(
        &self,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
        dimension: &str,
    ) -> Option<BTreeMap<String, Money>> {
        let sub = self.shared.model.find_subscription(subscription)?;
        cost::totals_by(sub, from, to, metric, dimension)
            .map(|m| m.into_iter().map(|(k, v)| (k, Money(v))).collect())
    }

    /// Exact cost by the values of one tag key ("" for costs without it).
    pub fn ground_truth_cost_by_tag(
        &self,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
        key: &str,
    ) -> Option<BTreeMap<String, Money>> {
        let sub = self.shared.model.find_subscription(subscription)?;
        Some(
            cost::totals_by_tag(sub, from, to, metric, key)
                .into_iter()
                .map(|(k, v)| (k, Money(v)))
                .collect(),
        )
    }

    /// Every non-zero cost cell of a subscription, generated lazily (constant memory).
    pub fn cost_rows(
        &self,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
    ) -> Option<impl Iterator<Item = CostRow> + '_> {
        let sub = self.shared.model.find_subscription(subscription)?;
        Some(
            sub.cells(from, to, metric, model::Mode::Billed)
                .map(|c| CostRow {
                    date: c.date,
                    resource_id: c.resource.map(|r| r.cost_id.clone()).unwrap_or_default(),
                    meter: c.meter,
                    charge_type: c.charge_type,
                    amount: Money(c.amount),
                }),
        )
    }

    /// Counts cost cells without building rows (for the large mode).
    pub fn count_cost_rows(
        &self,
        subscription: &str,
        from: Date,
        to: Date,
        metric: Metric,
    ) -> Option<u64> {
        let sub = self.shared.model.find_subscription(subscription)?;
        Some(sub.cells(from, to, metric, model::Mode::Billed).count() as u64)
    }

    pub fn apply_fault(&self, tenant: usize, fault: Fault) -> Result<(), SimError> {
        server::apply_fault(&self.shared, tenant, fault)
    }

    pub fn clear_faults(&self, tenant: usize) -> Result<(), SimError> {
        server::apply_fault(&self.shared, tenant, Fault::Clear)
    }

    /// Requests received by an endpoint (`token`, `subscriptions`, `permissions`, `query`,
    /// `forecast`, `resourcegraph`, `advisor`, `write`, `unknown`), whatever the answer.
    pub fn request_count(&self, endpoint: &str) -> u64 {
        self.shared
            .lock()
            .counts
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }

    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.shared.lock().counts.clone()
    }

    /// Every non-read request received (answered 405).
    pub fn write_attempts(&self) -> Vec<WriteAttempt> {
        self.shared.lock().writes.clone()
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimTenant {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
