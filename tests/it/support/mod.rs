//! Test harness: storage on Azurite, and the app in-process on a free port backed by its own Azurite
//! (the app's table names are fixed, so an app test cannot share an instance with another).

use std::sync::Arc;

use sixpence::app::App;
use sixpence::config::Settings;
use sixpence::storage::{Storage, StorageConnection};
use sixpence_testkit::Azurite;
use tokio::sync::oneshot;

pub use sixpence_testkit::{DEV_AUTH, app_settings as settings, dev_token as token, unique_name};

pub mod api;
pub mod stripe;

/// Storage on the Azurite shared by this test binary, reached through the same connection-string parser
/// production uses. Tests isolate themselves with [`unique_name`]. Fails (never skips) when Azurite is
/// missing.
pub async fn storage() -> Storage {
    let azurite = Azurite::shared()
        .await
        .unwrap_or_else(|e| panic!("starting Azurite: {e:#}"));
    let connection = StorageConnection::parse_connection_string(azurite.connection_string())
        .expect("the testkit connection string parses")
        // Fail fast instead of retrying for a minute.
        .with_max_retries(2);
    Storage::connect(&connection).expect("storage clients build")
}

/// A running app, the Azurite behind it and the simulated Azure tenant it calls. Dropping it stops
/// all three.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// Kept alive for as long as the app uses it.
    pub _azurite: Arc<Azurite>,
    /// The customer tenant the app's connections reach (unless the settings named another loopback one).
    pub sim: Arc<sixpence_azure_sim::SimTenant>,
    _shutdown: oneshot::Sender<()>,
}

pub async fn spawn_app() -> TestApp {
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    spawn_app_with(azurite.clone(), settings(azurite.connection_string())).await
}

/// The app on `settings`. Its Azure endpoints point at a fresh simulated tenant unless they already
/// point at a loopback one: tests never reach the real Azure.
pub async fn spawn_app_with(azurite: Arc<Azurite>, mut settings: Settings) -> TestApp {
    sixpence::storage::install_crypto_provider();
    let sim = Arc::new(
        sixpence_azure_sim::SimTenant::start(sixpence_azure_sim::SimConfig::default())
            .await
            .expect("the simulated Azure tenant starts"),
    );
    let loopback =
        |url: &url::Url| matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if !loopback(&settings.azure.arm) || !loopback(&settings.azure.authority) {
        let base = url::Url::parse(&sim.base_url()).expect("simulator URL");
        settings.azure = sixpence::azure::AzureEndpoints {
            arm: base.clone(),
            authority: base,
        };
    }
    let app = App::build(settings).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::new(),
        _azurite: azurite,
        sim,
        _shutdown: tx,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a host envelope to `/<function>`.
    pub async fn invoke(
        &self,
        function: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/{function}")))
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "x-azure-functions-invocationid",
                uuid::Uuid::new_v4().to_string(),
            )
            .body(body)
            .send()
            .await
            .expect("request reaches the app")
    }
}

/// A fixture from tests/fixtures/host.
pub fn host_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/host/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A development token whose email the identity provider does **not** vouch for (`xms_edov` false),
/// signed like [`token`]'s (same derived key, issuer and audience); the user differs from
/// `token(email)`'s.
pub fn unverified_token(email: &str) -> String {
    use sha2::Digest as _;
    let seed: [u8; 32] = sha2::Sha256::new()
        .chain_update(b"sixpence dev-auth ed25519 v1\n")
        .chain_update(DEV_AUTH.as_bytes())
        .finalize()
        .into();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({
        "iss": sixpence::auth::dev::DEV_ISSUER,
        "aud": sixpence::auth::dev::DEV_AUDIENCE,
        "tid": sixpence::auth::dev::DEFAULT_DEV_TENANT,
        "oid": uuid::Uuid::new_v4(),
        "scp": "access_as_user",
        "email": email,
        "xms_edov": false,
        "name": "Unverified",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(sixpence::auth::dev::DEV_KEY_ID.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&der),
    )
    .expect("sign")
}

/// The webhook signing secrets the billing test apps hold: an old and a new one, as during a
/// rotation in the Stripe dashboard.
pub const WEBHOOK_SECRET_OLD: &str = "whsec_standin_old";
pub const WEBHOOK_SECRET_NEW: &str = "whsec_standin_new";

/// An app whose Stripe calls go to a fresh loopback stand-in, with two plans for sale and both
/// webhook secrets; `tweak` adjusts the settings further.
pub async fn spawn_app_with_stripe(
    tweak: impl FnOnce(&mut Settings),
) -> (TestApp, stripe::StripeStandIn) {
    let stand_in = stripe::StripeStandIn::start().await;
    let azurite = Arc::new(Azurite::start().await.expect("Azurite starts"));
    let mut config = settings(azurite.connection_string());
    config.stripe_secret_key = Some(secrecy::SecretString::from(stripe::TEST_SECRET_KEY));
    config.stripe_api_base = url::Url::parse(&stand_in.base).expect("stand-in URL");
    config.stripe_webhook_secret = Some(secrecy::SecretString::from(format!(
        "{WEBHOOK_SECRET_OLD},{WEBHOOK_SECRET_NEW}"
    )));
    config.stripe_plans = vec![
        ("team".to_owned(), "price_team_standin".to_owned()),
        ("business".to_owned(), "price_business_standin".to_owned()),
    ];
    tweak(&mut config);
    (spawn_app_with(azurite, config).await, stand_in)
}
