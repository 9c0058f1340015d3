//! The business rules, and the interfaces ("ports") they need from the outside world.
//!
//! Nothing under `domain` imports axum, reqwest, the Functions envelopes or an Azure SDK type: the
//! storage adapters in `crate::storage` and the Azure clients implement these traits, and the function
//! modules in `crate::functions` translate triggers into calls here.

pub mod anomalies;
pub mod audit;
pub mod billing;
pub mod budgets;
pub mod connections;
pub mod costs;
pub mod deletion;
pub mod events;
pub mod exports;
pub mod idempotency;
pub mod incidents;
pub mod inventory;
pub mod notifications;
pub mod store;
pub mod sync;
pub mod system;
pub mod tenancy;
