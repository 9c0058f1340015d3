//! Integration tests: one binary, modules per area. Storage tests run against a real Azurite that
//! the harness starts (installed from npm through the committed package.json).

mod app;
mod function_specs;
mod host_contract;
mod process;
mod settings;
mod support;
