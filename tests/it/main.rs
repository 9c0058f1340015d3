//! Integration tests: one binary (so Cargo links once), one module per area. Storage tests run against
//! a real Azurite that the harness starts (installed from npm through the committed package.json).

mod anomalies;
mod api_audit;
mod api_conventions;
mod api_isolation;
mod api_openapi;
mod api_smoke;
mod app;
mod billing;
mod budgets;
mod connections;
mod connections_leak;
mod costs;
mod deletion;
mod email;
mod exports;
mod function_specs;
mod host_contract;
mod incidents;
mod inventory;
mod notifications;
mod process;
mod security_txt;
mod settings;
mod storage_blob;
mod storage_oauth;
mod storage_queue;
mod storage_shared_key;
mod storage_table;
mod support;
