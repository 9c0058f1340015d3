//! Queue functions: one message, one idempotent unit of work.

pub mod connection_check;
pub mod cost_sync;
pub mod queue_probe;
