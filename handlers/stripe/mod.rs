//! Stripe: webhook signatures and the few REST calls Sixpence makes (Customers, Checkout Sessions,
//! Billing Portal Sessions).
//!
//! There is no maintained, async, rustls-only Stripe SDK that is small; the surface we use is three
//! form-encoded POSTs and one signature scheme, so it is written here on reqwest (already in the
//! build) and the `hmac`/`sha2` crates (already in the build).

pub mod client;
pub mod signature;

pub use client::{StripeClient, StripeError};
pub use signature::{SignatureError, verify};
