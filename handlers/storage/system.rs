use crate::domain::system::*;
pub struct TableSystemStore;
impl TableSystemStore {
    pub fn new(_s: super::Storage) -> Self {
        Self
    }
}
#[async_trait::async_trait]
impl SystemStore for TableSystemStore {
    async fn record_heartbeat(&self, _h: &Heartbeat) -> anyhow::Result<()> {
        Ok(())
    }
    async fn last_heartbeat(&self) -> anyhow::Result<Option<Heartbeat>> {
        Ok(None)
    }
    async fn record_probe(&self, _r: &ProbeReceipt) -> anyhow::Result<()> {
        Ok(())
    }
    async fn probe(&self, _id: uuid::Uuid) -> anyhow::Result<Option<ProbeReceipt>> {
        Ok(None)
    }
    async fn last_probe(&self) -> anyhow::Result<Option<ProbeReceipt>> {
        Ok(None)
    }
}
