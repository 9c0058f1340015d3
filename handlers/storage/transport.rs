//! HTTP clients for the two SDK generations, built from one set of [`TransportSettings`].
//!
//! We build the clients ourselves (instead of taking the SDK defaults) for three reasons: extra trusted roots
//! for tests against Azurite over HTTPS, automatic decompression switched off (the blob SDK's ranged
//! downloads break with it, see `BlobClient::download`), and redirects off like the SDK defaults.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, Url};

use super::StorageError;
use super::connection::{Auth, StorageConnection, TransportSettings};
use super::shared_key::SharedKeyPolicy;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The 1.x client options (blobs, queues): transport, and retries when overridden.
pub(crate) fn client_options(
    settings: &TransportSettings,
) -> Result<azure_core::http::ClientOptions, StorageError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_gzip()
        .no_deflate();
    for pem in &settings.extra_root_certificates_pem {
        let certificate = reqwest::Certificate::from_pem(pem).map_err(|e| {
            StorageError::invalid_input("storage.transport", format!("extra root certificate: {e}"))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    let client = builder.build().map_err(|e| {
        StorageError::other("storage.transport", format!("building HTTP client: {e}"))
    })?;

    let mut options = azure_core::http::ClientOptions {
        transport: Some(azure_core::http::Transport::new(Arc::new(client))),
        ..Default::default()
    };
    if let Some(max_retries) = settings.max_retries {
        options.retry = azure_core::http::RetryOptions::exponential(
            azure_core::http::ExponentialRetryOptions {
                max_retries,
                ..Default::default()
            },
        );
    }
    Ok(options)
}

/// The 0.21 client options (tables).
pub(crate) fn legacy_client_options(
    settings: &TransportSettings,
) -> Result<azure_core_legacy::ClientOptions, StorageError> {
    let mut builder = reqwest_legacy::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .redirect(reqwest_legacy::redirect::Policy::none());
    for pem in &settings.extra_root_certificates_pem {
        let certificate = reqwest_legacy::Certificate::from_pem(pem).map_err(|e| {
            StorageError::invalid_input("storage.transport", format!("extra root certificate: {e}"))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    let client = builder.build().map_err(|e| {
        StorageError::other("storage.transport", format!("building HTTP client: {e}"))
    })?;

    let mut options = azure_core_legacy::ClientOptions::new(
        azure_core_legacy::TransportOptions::new(Arc::new(client)),
    );
    if let Some(max_retries) = settings.max_retries {
        options = options.retry(azure_core_legacy::RetryOptions::exponential(
            azure_core_legacy::ExponentialRetryOptions::default().max_retries(max_retries),
        ));
    }
    Ok(options)
}

/// What a 1.x service client (blobs, queues) is built from: the service endpoint, the bearer
/// credential (none with a shared key, which a per-try signing policy applies instead) and the
/// client options.
#[derive(Debug)]
pub(crate) struct ServiceParts {
    pub(crate) endpoint: Url,
    pub(crate) credential: Option<Arc<dyn TokenCredential>>,
    pub(crate) options: ClientOptions,
}

impl ServiceParts {
    pub(crate) fn new(
        connection: &StorageConnection,
        service: &'static str,
        endpoint: &Url,
    ) -> Result<Self, StorageError> {
        let mut options = client_options(&connection.transport)?;
        let credential = match &connection.auth {
            Auth::SharedKey(key) => {
                options
                    .per_try_policies
                    .push(SharedKeyPolicy::new(key.clone()));
                None
            }
            Auth::Token(credential) => {
                require_https(service, endpoint)?;
                Some(credential.clone())
            }
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            credential,
            options,
        })
    }
}

/// The 1.x clients refuse to send a bearer token over plain HTTP; say so at construction instead.
pub(crate) fn require_https(service: &'static str, url: &Url) -> Result<(), StorageError> {
    if url.scheme() == "https" {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            "storage.connection",
            format!("the {service} endpoint must use https with a token credential"),
        ))
    }
}
