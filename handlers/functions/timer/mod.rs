//! Timer functions: each schedules or records; heavy work fans out through queues.

pub mod connection_health;
pub mod heartbeat;
pub mod retention_sweeper;
pub mod sync_scheduler;
