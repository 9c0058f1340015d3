//! Queue functions: one message, one idempotent unit of work.

pub mod queue_probe;
