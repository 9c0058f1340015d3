//! Queue functions: one message, one idempotent unit of work.

pub mod anomaly_detect;
pub mod budget_check;
pub mod connection_check;
pub mod cost_sync;
pub mod deletion;
pub mod export;
pub mod notify;
pub mod notify_fanout;
pub mod queue_probe;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::host::QueueTrigger;

/// Reads a versioned JSON message of `kind`. A message that does not parse, or has a version this
/// binary does not know, is [`Error::InvalidMessage`]: it fails every attempt and ends in the
/// poison queue with the reason logged, never dropped.
pub(crate) fn versioned_message<T: DeserializeOwned>(
    trigger: &QueueTrigger,
    kind: &str,
    expected: u32,
    version: impl Fn(&T) -> u32,
) -> Result<T> {
    let message: T = trigger
        .json()
        .map_err(|e| Error::InvalidMessage(format!("not a {kind} message: {e}")))?;
    let found = version(&message);
    if found != expected {
        return Err(Error::InvalidMessage(format!(
            "{kind} message version {found} is not {expected}"
        )));
    }
    Ok(message)
}
