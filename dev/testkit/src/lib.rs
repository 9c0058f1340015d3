//! Test support for Sixpence: a real Azurite per test binary (or per test), never a fake.
//!
//! * [`Azurite::shared`] starts one in-memory Azurite per test process on three free loopback ports and
//!   hands out `&'static` access; tests isolate themselves with [`unique_name`]. One instance per process
//!   because each costs ~1.5 s and ~120 MB, and the development machines have 2 cores.
//! * [`Azurite::start`] starts a private instance that is killed when dropped.
//! * [`Azurite::start_oauth_https`] starts a private instance in OAuth mode over HTTPS, with a CA and
//!   server certificate generated at run time, for the bearer-token (production) path.
//!
//! Setting `SIXPENCE_TEST_AZURITE` to a connection string makes [`Azurite::shared`] reuse an Azurite that
//! is already running instead of starting one.
//!
//! A missing Azurite is an error with the fix in its message, never a silently skipped test.
//!
//! Only use this crate from integration tests (`tests/`): it depends on the `sixpence` library, which is
//! fine for a dev-dependency cycle as long as no unit test inside `sixpence` itself uses it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use base64::Engine as _;
use secrecy::SecretString;
use sixpence::storage::{Endpoints, StorageConnection, install_crypto_provider};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

/// The message every test shows when Azurite is missing.
pub const NOT_INSTALLED: &str = "Azurite is not installed: run `npm ci` in the repository root";

/// Set to a connection string to reuse a running Azurite in [`Azurite::shared`].
pub const REUSE_ENV: &str = "SIXPENCE_TEST_AZURITE";

/// How long Azurite gets to open its ports.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Attempts when a port picked as free was taken before Azurite bound it.
const START_ATTEMPTS: usize = 3;

/// Azurite's well-known development account and key (public knowledge, documented by Microsoft).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Tests fail fast instead of retrying for a minute (gotcha 7: the SDK even retries TLS failures).
const TEST_MAX_RETRIES: u32 = 2;

/// A running Azurite.
#[derive(Debug)]
pub struct Azurite {
    process: Option<Child>,
    endpoints: Endpoints,
    connection_string: String,
    ca_pem: Option<String>,
    // Holds certificates, the stdin watchdog and the log; removed on drop.
    _dir: Option<tempfile::TempDir>,
}

static SHARED: OnceCell<Azurite> = OnceCell::const_new();

impl Azurite {
    /// The process id of the Azurite this handle started (`None` for a shared or external one):
    /// benchmarks read its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The Azurite shared by every test of this process (started on first use).
    pub async fn shared() -> anyhow::Result<&'static Azurite> {
        SHARED
            .get_or_try_init(|| async {
                match std::env::var(REUSE_ENV) {
                    Ok(connection_string) if !connection_string.trim().is_empty() => {
                        Self::external(connection_string)
                    }
                    _ => Self::start().await,
                }
            })
            .await
    }

    /// A private in-memory Azurite over HTTP with shared-key auth, killed on drop.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(false).await
    }

    /// A private Azurite over HTTPS in OAuth mode (`--oauth basic`), killed on drop. Trust
    /// [`Self::ca_pem`]; authenticate with [`test_token_credential`] (or shared key, which stays valid).
    pub async fn start_oauth_https() -> anyhow::Result<Self> {
        Self::start_with(true).await
    }

    fn external(connection_string: String) -> anyhow::Result<Self> {
        install_crypto_provider();
        let connection = StorageConnection::parse_connection_string(&connection_string)
            .with_context(|| format!("{REUSE_ENV} is not a usable connection string"))?;
        Ok(Self {
            process: None,
            endpoints: connection.endpoints().clone(),
            connection_string,
            ca_pem: None,
            _dir: None,
        })
    }

    async fn start_with(https: bool) -> anyhow::Result<Self> {
        Self::start_binary(&azurite_binary(), https).await
    }

    async fn start_binary(binary: &Path, https: bool) -> anyhow::Result<Self> {
        install_crypto_provider();
        if !binary.exists() {
            bail!("{NOT_INSTALLED} (looked for {})", binary.display());
        }
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(binary, https).await {
                Ok(azurite) => return Ok(azurite),
                // Most likely a port taken between picking and binding: pick again.
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("Azurite did not start")))
    }

    async fn try_start(binary: &Path, https: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory for Azurite")?;

        // If the test process dies without running destructors (a static never drops, a panic=abort, a
        // SIGKILL), Azurite must not outlive it: this preload makes Node exit when its stdin (a pipe we
        // hold) closes, which the kernel does when our process ends.
        let watchdog = dir.path().join("exit-with-parent.cjs");
        std::fs::write(
            &watchdog,
            "process.stdin.on('end', () => process.exit(0));\n\
             process.stdin.on('error', () => process.exit(0));\n\
             process.stdin.resume();\n",
        )?;

        let [blob_port, queue_port, table_port] = free_ports()?;
        let mut command = Command::new(binary);
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &blob_port.to_string(),
            ])
            .args([
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                &queue_port.to_string(),
            ])
            .args([
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                &table_port.to_string(),
            ])
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
            .env("NODE_OPTIONS", format!("--require {}", watchdog.display()));

        let mut ca_pem = None;
        if https {
            let certificates = generate_certificates()?;
            let cert_path = dir.path().join("azurite-cert.pem");
            let key_path = dir.path().join("azurite-key.pem");
            std::fs::write(&cert_path, &certificates.server_cert_pem)?;
            std::fs::write(&key_path, &certificates.server_key_pem)?;
            command
                .args(["--oauth", "basic"])
                .arg("--cert")
                .arg(&cert_path)
                .arg("--key")
                .arg(&key_path);
            ca_pem = Some(certificates.ca_pem);
        }

        let log_path = dir.path().join("azurite.log");
        let log = std::fs::File::create(&log_path)?;
        command
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("spawning {} (is Node.js on PATH?)", binary.display()))?;
        let mut process = Process(Some(child));

        let deadline = Instant::now() + START_TIMEOUT;
        for port in [blob_port, queue_port, table_port] {
            loop {
                if let Some(status) = process.try_wait()? {
                    bail!(
                        "Azurite exited with {status} before opening port {port}:\n{}",
                        read_log(&log_path)
                    );
                }
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "Azurite did not open port {port} within {}s:\n{}",
                        START_TIMEOUT.as_secs(),
                        read_log(&log_path)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        let scheme = if https { "https" } else { "http" };
        let endpoints = Endpoints::loopback(blob_port, queue_port, table_port, scheme);
        let connection_string = format!(
            "DefaultEndpointsProtocol={scheme};AccountName={ACCOUNT};AccountKey={KEY};\
             BlobEndpoint={};QueueEndpoint={};TableEndpoint={};",
            endpoints.blob, endpoints.queue, endpoints.table
        );
        Ok(Self {
            process: process.0.take(),
            endpoints,
            connection_string,
            ca_pem,
            _dir: Some(dir),
        })
    }

    /// The account-key connection string with explicit endpoints (what `AzureWebJobsStorage` would hold).
    pub fn connection_string(&self) -> &str {
        &self.connection_string
    }

    /// The three service endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The PEM of the CA that signed the server certificate (HTTPS instances only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A shared-key connection to this instance, with few retries (and the CA trusted over HTTPS).
    pub fn shared_key_connection(&self) -> anyhow::Result<StorageConnection> {
        let connection = StorageConnection::with_shared_key(
            ACCOUNT,
            SecretString::from(KEY.to_owned()),
            self.endpoints.clone(),
        )?
        .with_max_retries(TEST_MAX_RETRIES);
        Ok(match &self.ca_pem {
            Some(pem) => connection.with_extra_root_certificates_pem(pem.as_bytes().to_vec()),
            None => connection,
        })
    }

    /// A bearer-token connection to this instance using [`test_token_credential`] (HTTPS instances only).
    pub fn token_connection(&self) -> anyhow::Result<StorageConnection> {
        let Some(pem) = &self.ca_pem else {
            bail!("token connections need an HTTPS Azurite: use Azurite::start_oauth_https()");
        };
        Ok(StorageConnection::with_token_credential(
            ACCOUNT,
            self.endpoints.clone(),
            test_token_credential(),
        )
        .with_extra_root_certificates_pem(pem.as_bytes().to_vec())
        .with_max_retries(TEST_MAX_RETRIES))
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        drop(Process(self.process.take()));
    }
}

/// Kills and reaps the child on drop (also on the early-return paths of `try_start`).
struct Process(Option<Child>);

impl Process {
    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        match &mut self.0 {
            Some(child) => child.try_wait(),
            None => Ok(None),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `<repo>/node_modules/.bin/azurite`, found from this crate's manifest directory (`dev/testkit`).
pub fn azurite_binary() -> PathBuf {
    repository_root()
        .join("node_modules")
        .join(".bin")
        .join("azurite")
}

/// The repository root (two levels above `dev/testkit`).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

/// Three distinct free loopback ports. The listeners are held until all three are picked so the OS cannot
/// hand out the same port twice; another process may still grab one before Azurite binds it, which
/// `start` handles by retrying.
fn free_ports() -> anyhow::Result<[u16; 3]> {
    let listeners = [
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?,
    ];
    Ok([
        listeners[0].local_addr()?.port(),
        listeners[1].local_addr()?.port(),
        listeners[2].local_addr()?.port(),
    ])
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: String = text
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    if tail.is_empty() {
        "(Azurite wrote nothing)".to_owned()
    } else {
        tail
    }
}

/// A name unique to this call, valid as a table, queue and container name alike: lowercase letters and
/// digits only, starting with a letter, at most 63 characters. `prefix` is reduced to its lowercase ASCII
/// letters and digits (and `t` is used if nothing is left).
pub fn unique_name(prefix: &str) -> String {
    let mut cleaned: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(40)
        .collect();
    if !cleaned.starts_with(|c: char| c.is_ascii_alphabetic()) {
        cleaned.insert(0, 't');
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{cleaned}{}", &suffix[..16])
}

struct Certificates {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
}

/// A throw-away CA and a leaf server certificate (CA:FALSE, SAN IP:127.0.0.1 and DNS:localhost) signed by
/// it: the shape Node's TLS stack and rustls both accept.
fn generate_certificates() -> anyhow::Result<Certificates> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let now = OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut ca_name = DistinguishedName::new();
    ca_name.push(DnType::CommonName, "Sixpence test CA");
    ca_params.distinguished_name = ca_name;
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(2);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let mut server_name = DistinguishedName::new();
    server_name.push(DnType::CommonName, "localhost");
    server_params.distinguished_name = server_name;
    server_params.not_before = now - time::Duration::hours(1);
    server_params.not_after = now + time::Duration::days(1);
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    Ok(Certificates {
        ca_pem: ca_cert.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    })
}

/// A `TokenCredential` for Azurite in OAuth mode: mints an unsigned JWT with the claims Azurite checks
/// (`iss` under `https://sts.windows.net/`, `aud` `https://storage.azure.com`, `nbf`/`iat`/`exp`). Azurite
/// does not verify signatures; Azure would reject this token, which is the point.
#[derive(Debug, Default)]
pub struct AzuriteTokenCredential;

/// The test credential as the trait object the storage layer takes.
pub fn test_token_credential() -> Arc<dyn TokenCredential> {
    Arc::new(AzuriteTokenCredential)
}

#[async_trait]
impl TokenCredential for AzuriteTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let now = OffsetDateTime::now_utc();
        let expires_on = now + time::Duration::hours(1);
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let header = serde_json::json!({"alg": "none", "typ": "JWT"});
        let claims = serde_json::json!({
            "aud": "https://storage.azure.com",
            "iss": format!("https://sts.windows.net/{tenant}/"),
            "iat": now.unix_timestamp() - 60,
            "nbf": now.unix_timestamp() - 60,
            "exp": expires_on.unix_timestamp(),
            "oid": "00000000-0000-0000-0000-00000000a11e",
            "tid": tenant,
            "sub": "sixpence-tests",
        });
        let encode = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        // An unsecured JWT (RFC 7519 §6): empty signature.
        Ok(AccessToken::new(
            format!("{}.{}.", encode(&header), encode(&claims)),
            expires_on,
        ))
    }
}

/// The development sign-in passphrase of apps started by tests and benchmarks.
pub const DEV_AUTH: &str = "integration-tests-only";

/// Settings for an in-process app on `connection_string`: development mode with development
/// sign-in ([`DEV_AUTH`]), port 0 (any free port).
pub fn app_settings(connection_string: &str) -> sixpence::config::Settings {
    let vars = [
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "1"),
        ("AzureWebJobsStorage", connection_string),
        ("SIXPENCE_ENVIRONMENT", "development"),
        ("SIXPENCE_DEV_AUTH", DEV_AUTH),
        ("SIXPENCE_DATA_KEYS", sixpence::config::DEV_DATA_KEYS),
    ];
    let mut settings = sixpence::config::Settings::from_vars(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("test app settings are valid");
    settings.port = 0;
    settings
}

/// A bearer token an app built from [`app_settings`] accepts for `email` (a development token,
/// so the email counts as verified).
pub fn dev_token(email: &str) -> String {
    let request = sixpence::auth::dev::DevTokenRequest {
        email: email.to_owned(),
        tenant: None,
        name: Some(email.split('@').next().unwrap_or(email).to_owned()),
        lifetime: std::time::Duration::from_secs(3600),
    };
    sixpence::auth::dev::mint_dev_token(&secrecy::SecretString::from(DEV_AUTH), &request)
        .expect("development token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_are_valid_for_every_kind_of_resource() {
        for prefix in ["tables", "Queue-Probe", "123", "", &"x".repeat(100)] {
            let name = unique_name(prefix);
            assert!((3..=63).contains(&name.len()), "{name}");
            assert!(name.starts_with(|c: char| c.is_ascii_lowercase()), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{name}"
            );
        }
        assert_ne!(unique_name("a"), unique_name("a"));
    }

    #[tokio::test]
    async fn a_missing_azurite_fails_with_the_fix_in_the_message() {
        let error =
            Azurite::start_binary(Path::new("/nonexistent/node_modules/.bin/azurite"), false)
                .await
                .unwrap_err();
        assert!(error.to_string().contains(NOT_INSTALLED), "{error}");
    }

    #[test]
    fn the_azurite_binary_is_looked_up_in_the_repository_node_modules() {
        assert!(azurite_binary().ends_with("node_modules/.bin/azurite"));
        assert!(repository_root().join("Cargo.toml").exists());
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().unwrap();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn generated_server_certificate_is_a_leaf_for_loopback() {
        let certificates = generate_certificates().unwrap();
        assert!(
            certificates
                .ca_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(certificates.server_key_pem.contains("PRIVATE KEY"));
    }
}
