//! Sixpence: an Azure cost-management backend served as one Azure Functions custom handler.
//!
//! # Layout
//!
//! - [`host`]: the Functions custom-handler protocol (envelopes, decoding quirks, safe outputs).
//! - [`functions`]: one module per Azure Function (`function-specs/<name>/`), grouped by trigger
//!   kind, plus the router built from [`functions::REGISTRY`]. Thin: decode, call the domain, encode.
//! - [`domain`]: the business rules and the port traits they need. Knows nothing of HTTP or Azure.
//! - [`storage`]: Azure Table, Blob and Queue adapters implementing the domain's ports.
//! - [`billing`]: Stripe webhooks, Checkout and Billing Portal sessions, plan limits; [`stripe`] is
//!   its client and signature check.
//! - [`connections`], [`inventory`]: application services that span them (onboarding a customer
//!   tenant; syncing a subscription's inventory and Advisor recommendations).
//! - [`azure`], [`secrets`]: the read-only Azure client and secrets at rest.
//! - [`config`], [`telemetry`], [`error`], [`app`]: settings, logs, the one error type, wiring.
//!
//! The dependency rule: `functions` → `domain` ← `storage`. Nothing in `domain` imports a transport.

/// Wiring: shared state, binding, serving.
pub mod app;
/// Tenant API authentication: Entra ID bearer tokens, development tokens, the `Principal` extractor.
pub mod auth;
/// The read-only client for every call into a customer's Azure tenant (ARM, Entra ID tokens).
pub mod azure;
/// The billing service: Stripe webhook events, Checkout and Portal sessions, plan limits.
pub mod billing;
/// App settings, typed and validated once.
pub mod config;
/// The connections service: onboarding, health checks and key rotation, where the domain's
/// connection rules meet sealed secrets, the Azure inspector, the audit trail and events.
pub mod connections;
/// Deleting a workspace step by step, and the retention sweep.
pub mod deletion;
/// Business rules and their ports.
pub mod domain;
/// The application error and its mapping per transport.
pub mod error;
/// One module per Azure Function and the router.
/// Workspace export archives, written straight into blob storage (`domain::exports` says what is in them).
pub mod exports;
pub mod functions;
/// The Functions custom-handler protocol.
pub mod host;
/// Syncing a subscription's Resource Graph inventory and Advisor recommendations (called by the
/// cost-sync worker; each part tolerant of the other failing).
pub mod inventory;
/// Notifications: fan-out of events to channels, digests, exactly-once delivery, renderers and
/// webhook URL safety.
pub mod notify;
/// Service-principal secrets at rest: the data-key keyring, AES-256-GCM sealing bound to its place.
pub mod secrets;
/// Azure Storage adapters.
pub mod storage;
/// Stripe webhook signatures and REST calls.
pub mod stripe;
/// JSON-lines logging.
pub mod telemetry;

pub use error::{Error, Result};
