//! Wiring: builds the shared state from settings and serves the router.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::OnceCell;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::connections::ConnectionService;
use crate::domain::audit::AuditLog;
use crate::domain::idempotency::IdempotencyStore;
use crate::domain::inventory::{InventoryStore, RecommendationStore};
use crate::domain::system::SystemStore;
use crate::domain::tenancy::TenancyStore;
use crate::error::{Error, Result};
use crate::functions::http::api::limits::RateLimits;
use crate::storage::Storage;

/// State shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    settings: Settings,
    storage: Storage,
    system: Arc<dyn SystemStore>,
    tenancy: Arc<dyn TenancyStore>,
    audit: Arc<dyn AuditLog>,
    idempotency: Arc<dyn IdempotencyStore>,
    connections: Arc<ConnectionService>,
    sync_ledger: Arc<dyn crate::domain::sync::SyncLedger>,
    costs: Arc<dyn crate::domain::costs::CostStore>,
    sync_runs: Arc<dyn crate::domain::sync::SyncRunStore>,
    inventory: Arc<dyn InventoryStore>,
    recommendations: Arc<dyn RecommendationStore>,
    billing: Arc<crate::billing::BillingService>,
    anomalies: Arc<dyn crate::domain::anomalies::AnomalyStore>,
    budgets: Arc<dyn crate::domain::budgets::BudgetStore>,
    exports: Arc<dyn crate::domain::exports::ExportStore>,
    /// Where producers raise events for delivery.
    events: Arc<dyn crate::domain::events::EventSink>,
    notifier: Arc<crate::notify::Notifier>,
    deletions: Arc<crate::storage::deletion::DeletionStorage>,
    /// Per-instance request quotas of the tenant API (see `functions::http::api::limits`).
    limits: RateLimits,
    /// Verifies tenant API bearer tokens; `auth::Principal` extracts through it.
    auth: Authenticator,
    /// Set once the tables, queues and containers the app uses are known to exist.
    ready: OnceCell<()>,
}

impl AppState {
    /// Builds the clients (no network I/O); fails only on configuration no request could work with.
    pub fn new(settings: Settings, storage: Storage, auth: Authenticator) -> anyhow::Result<Self> {
        let system = Arc::new(crate::storage::system::TableSystemStore::new(
            storage.clone(),
        ));
        let tenancy = Arc::new(crate::storage::tenancy::TableTenancyStore::new(
            storage.clone(),
        ));
        let audit = Arc::new(crate::storage::audit::TableAuditLog::new(storage.clone()));
        let idempotency = Arc::new(crate::storage::idempotency::TableIdempotencyStore::new(
            storage.clone(),
        ));
        let connections = Arc::new(connection_service(&settings, &storage, audit.clone()));
        let sync_ledger = Arc::new(crate::storage::sync_ledger::TableSyncLedger::new(
            storage.clone(),
        ));
        let costs = Arc::new(crate::storage::costs::TableCostStore::new(storage.clone()));
        let sync_runs = Arc::new(crate::storage::sync_runs::TableSyncRuns::new(
            storage.clone(),
        ));
        let inventory = Arc::new(crate::storage::inventory::TableInventoryStore::new(
            storage.clone(),
        ));
        let recommendations = Arc::new(crate::storage::inventory::TableRecommendationStore::new(
            storage.clone(),
        ));
        let stripe = settings
            .stripe_secret_key
            .clone()
            .map(|key| crate::stripe::StripeClient::new(settings.stripe_api_base.clone(), key));
        let billing = Arc::new(crate::billing::BillingService::new(
            Arc::new(crate::storage::billing::TableBillingStore::new(
                storage.clone(),
            )),
            Arc::new(crate::storage::events::QueueEventSink::new(storage.clone())),
            audit.clone(),
            tenancy.clone(),
            stripe,
            settings.stripe_plans.clone(),
            settings.free_subscriptions,
        ));
        let anomalies = Arc::new(crate::storage::anomalies::TableAnomalyStore::new(
            storage.clone(),
        ));
        let budgets = Arc::new(crate::storage::budgets::TableBudgetStore::new(
            storage.clone(),
        ));
        let exports = Arc::new(crate::storage::exports::TableExportStore::new(
            storage.clone(),
        ));
        let events = Arc::new(crate::storage::events::QueueEventSink::new(storage.clone()));
        let notifier = Arc::new(notifier(&settings, &storage, tenancy.clone())?);
        let deletions = Arc::new(crate::storage::deletion::DeletionStorage::new(
            storage.clone(),
        ));
        Ok(Self(Arc::new(Inner {
            notifier,
            deletions,
            settings,
            storage,
            system,
            tenancy,
            audit,
            idempotency,
            connections,
            sync_ledger,
            costs,
            sync_runs,
            inventory,
            recommendations,
            billing,
            anomalies,
            budgets,
            exports,
            events,
            limits: RateLimits::default(),
            auth,
            ready: OnceCell::new(),
        })))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }

    pub fn system(&self) -> &dyn SystemStore {
        self.0.system.as_ref()
    }

    pub fn auth(&self) -> &Authenticator {
        &self.0.auth
    }

    pub fn tenancy(&self) -> &dyn TenancyStore {
        self.0.tenancy.as_ref()
    }

    pub fn audit(&self) -> &dyn AuditLog {
        self.0.audit.as_ref()
    }

    pub fn idempotency(&self) -> &dyn IdempotencyStore {
        self.0.idempotency.as_ref()
    }

    pub fn connections(&self) -> &ConnectionService {
        &self.0.connections
    }

    pub fn sync_ledger(&self) -> &dyn crate::domain::sync::SyncLedger {
        self.0.sync_ledger.as_ref()
    }

    pub fn costs(&self) -> &dyn crate::domain::costs::CostStore {
        self.0.costs.as_ref()
    }

    pub fn sync_runs(&self) -> &dyn crate::domain::sync::SyncRunStore {
        self.0.sync_runs.as_ref()
    }

    pub fn inventory(&self) -> &dyn InventoryStore {
        self.0.inventory.as_ref()
    }

    pub fn recommendations(&self) -> &dyn RecommendationStore {
        self.0.recommendations.as_ref()
    }

    pub fn billing(&self) -> &crate::billing::BillingService {
        &self.0.billing
    }

    pub fn anomalies(&self) -> &dyn crate::domain::anomalies::AnomalyStore {
        self.0.anomalies.as_ref()
    }

    pub fn budgets(&self) -> &dyn crate::domain::budgets::BudgetStore {
        self.0.budgets.as_ref()
    }

    pub fn exports(&self) -> &dyn crate::domain::exports::ExportStore {
        self.0.exports.as_ref()
    }

    pub fn events(&self) -> &dyn crate::domain::events::EventSink {
        self.0.events.as_ref()
    }

    pub fn notifier(&self) -> &crate::notify::Notifier {
        &self.0.notifier
    }

    /// Deletion records (the "being deleted" marker) and the wipes of deletion steps.
    pub fn deletions(&self) -> &crate::storage::deletion::DeletionStorage {
        &self.0.deletions
    }

    pub fn limits(&self) -> &RateLimits {
        &self.0.limits
    }

    /// Waits until storage is prepared, preparing it if nobody has yet.
    ///
    /// Start-up kicks this off in the background right after binding the port (the host allows a
    /// custom handler 30 s to answer `GET /`, so nothing slow may come first); an invocation that
    /// arrives earlier waits for the same work instead of racing it. A failure is not cached: the
    /// next caller tries again.
    pub async fn ready(&self) -> Result<()> {
        self.0
            .ready
            .get_or_try_init(|| async {
                crate::storage::names::ensure_all(&self.0.storage)
                    .await
                    .map_err(|e| Error::Storage(e.into()))
            })
            .await
            .map(|_| ())
    }
}

/// The connections service over this deployment's storage, Azure endpoints and data keys (also
/// used by the `rotate-secrets` operator command).
pub fn connection_service(
    settings: &Settings,
    storage: &Storage,
    audit: Arc<dyn AuditLog>,
) -> ConnectionService {
    // The keyring was validated with the settings; absent, storing a secret answers 503.
    let keyring = settings.data_keys.as_ref().and_then(|keys| {
        crate::secrets::Keyring::parse(keys)
            .map(Arc::new)
            .map_err(|err| tracing::error!(error = %err, "data-encryption keyring unusable"))
            .ok()
    });
    ConnectionService::new(
        Arc::new(crate::storage::azure_connections::TableConnectionStore::new(storage.clone())),
        Arc::new(crate::azure::AzureInspector::new(settings.azure.clone())),
        Arc::new(crate::storage::events::QueueEventSink::new(storage.clone())),
        audit,
        keyring,
    )
}

fn keyring(settings: &Settings) -> Option<Arc<crate::secrets::Keyring>> {
    settings.data_keys.as_ref().and_then(|keys| {
        crate::secrets::Keyring::parse(keys)
            .map(Arc::new)
            .map_err(|err| tracing::error!(error = %err, "data-encryption keyring unusable"))
            .ok()
    })
}

/// The notifications service over this deployment's storage and settings.
fn notifier(
    settings: &Settings,
    storage: &Storage,
    tenancy: Arc<dyn TenancyStore>,
) -> anyhow::Result<crate::notify::Notifier> {
    let request_timeout = crate::notify::late_cap(settings.notify_send_timeout);
    let webhooks =
        crate::notify::WebhookClient::with_timeout(settings.webhooks.clone(), request_timeout)
            .map_err(|e| anyhow::anyhow!("the webhook HTTP client cannot be built: {e}"))?;
    let email = email_sender(settings, request_timeout)?;
    Ok(crate::notify::Notifier::new(
        storage.clone(),
        Arc::new(crate::storage::notifications::TableChannelStore::new(
            storage.clone(),
        )),
        Arc::new(crate::storage::notifications::TableDeliveryStore::new(
            storage.clone(),
        )),
        Arc::new(crate::storage::notifications::TableInbox::new(
            storage.clone(),
        )),
        tenancy,
        webhooks,
        email,
        keyring(settings),
        settings.app_url.clone(),
    )
    .with_retry_base(settings.notify_retry_base)
    .with_gather(settings.notify_gather)
    .with_send_timeout(settings.notify_send_timeout))
}

/// The email sender the settings choose (validated with them; here only the clients are built).
fn email_sender(
    settings: &Settings,
    timeout: std::time::Duration,
) -> anyhow::Result<Option<Arc<dyn crate::notify::EmailSender>>> {
    use crate::config::EmailTransport;
    let from = || {
        settings
            .mail_sender
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{} is not set", crate::config::MAIL_SENDER))
    };
    Ok(match settings.email.transport {
        EmailTransport::None => None,
        EmailTransport::Smtp => {
            let url = settings
                .smtp_url
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("{} is not set", crate::config::SMTP_URL))?;
            Some(Arc::new(crate::notify::SmtpSender::new(
                url,
                &from()?,
                timeout,
            )?))
        }
        EmailTransport::Graph => {
            // The app's own identity: the managed identity storage is reached with.
            let credential = settings
                .email
                .graph_credential
                .clone()
                .or_else(|| settings.storage.token_credential())
                .or_else(|| {
                    // The local run: the simulated tenant's Graph stand-in takes any token.
                    let loopback = settings.email.graph_url.scheme() == "http";
                    (loopback && settings.environment == crate::config::Environment::Development)
                        .then(|| {
                            Arc::new(crate::notify::email::DevelopmentGraphToken)
                                as Arc<dyn azure_core::credentials::TokenCredential>
                        })
                })
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}=graph sends with the app's managed identity, but storage is not \
                         identity-based (AzureWebJobsStorage__credential=managedidentity); \
                         use smtp or none",
                        crate::config::EMAIL_TRANSPORT
                    )
                })?;
            Some(Arc::new(crate::notify::GraphSender::new(
                &settings.email.graph_url,
                &from()?,
                credential,
                timeout,
            )?))
        }
    })
}

/// The custom handler, bound and ready to serve.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Binds `127.0.0.1:<port>` first, then builds the clients (no network I/O happens here).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, settings.port)))
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind 127.0.0.1:{}: {e}", settings.port))?;
        let storage = Storage::connect(&settings.storage)?;
        let auth = Authenticator::from_settings(&settings)?;
        Ok(Self {
            listener,
            state: AppState::new(settings, storage, auth)?,
        })
    }

    /// The port actually bound (useful when the settings asked for port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let warm = self.state.clone();
        tokio::spawn(async move {
            if let Err(err) = warm.ready().await {
                tracing::warn!(error = %err, "storage is not ready yet; invocations will retry");
            }
        });
        let router = crate::functions::router(self.state);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Resolves on SIGTERM (what the Functions host and Flex send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
