pub async fn ensure_all(_s: &super::Storage) -> anyhow::Result<()> {
    Ok(())
}
