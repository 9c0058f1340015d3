//! The integration test binary (one binary, so Cargo links once): one module per area.

mod storage_blob;
mod storage_oauth;
mod storage_queue;
mod storage_shared_key;
mod storage_table;
mod support;
