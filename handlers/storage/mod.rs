// TEMPORARY STUB (not committed): replaced by the storage branch.
pub mod names;
pub mod system;
#[derive(Clone)]
pub struct Storage;
pub struct StorageConnection;
impl StorageConnection {
    pub fn from_settings(_s: &crate::config::StorageSettings) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
impl Storage {
    pub fn new(_c: StorageConnection) -> anyhow::Result<Self> {
        Ok(Self)
    }
}
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
