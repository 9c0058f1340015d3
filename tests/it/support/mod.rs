//! Shared helpers for the integration tests.

use sixpence::storage::{Storage, StorageConnection};
use sixpence_testkit::Azurite;

pub use sixpence_testkit::unique_name;

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
