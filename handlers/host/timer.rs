//! The timer trigger's `Data.<binding>` value.

use serde_json::Value;
use time::OffsetDateTime;

use super::invocation::{InvokeRequest, PayloadError};
use super::value;

/// What the host tells a timer function about this firing.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerInfo {
    /// The firing is late (the app was down or scaled to zero past the scheduled time).
    pub is_past_due: bool,
    /// Absent on the first run and when the schedule monitor is off (`"ScheduleStatus": null`).
    pub schedule_status: Option<ScheduleStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleStatus {
    pub last: Option<OffsetDateTime>,
    pub next: Option<OffsetDateTime>,
    pub last_updated: Option<OffsetDateTime>,
}

impl TimerInfo {
    /// Reads the timer binding `binding` from an invocation.
    ///
    /// Accepts the object the host really sends and, defensively, the same object JSON-encoded as a
    /// string. Field names are matched case-insensitively because the host's serialiser is.
    pub fn from_request(request: &InvokeRequest, binding: &str) -> Result<Self, PayloadError> {
        let raw = request.binding(binding)?;
        let object = match raw {
            Value::Object(map) => map.clone(),
            Value::String(text) => match serde_json::from_str::<Value>(&value::unquote(text)) {
                Ok(Value::Object(map)) => map,
                _ => return Err(invalid(binding, "expected a timer object")),
            },
            _ => return Err(invalid(binding, "expected a timer object")),
        };
        let field = |name: &str| {
            object
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let is_past_due = match field("IsPastDue") {
            None | Some(Value::Null) => false,
            Some(v) => {
                value::boolean(v).ok_or_else(|| invalid(binding, "IsPastDue is not a boolean"))?
            }
        };
        let schedule_status = match field("ScheduleStatus") {
            None | Some(Value::Null) => None,
            Some(Value::Object(status)) => {
                let at = |name: &str| {
                    status
                        .iter()
                        .find(|(key, _)| key.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| value::timestamp(v))
                };
                Some(ScheduleStatus {
                    last: at("Last"),
                    next: at("Next"),
                    last_updated: at("LastUpdated"),
                })
            }
            Some(_) => return Err(invalid(binding, "ScheduleStatus is not an object")),
        };
        Ok(Self {
            is_past_due,
            schedule_status,
        })
    }
}

fn invalid(name: &str, reason: &str) -> PayloadError {
    PayloadError::InvalidBinding {
        name: name.to_owned(),
        reason: reason.to_owned(),
    }
}
