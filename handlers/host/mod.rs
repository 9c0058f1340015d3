//! The Azure Functions custom-handler protocol, modelled once.
//!
//! The Functions host talks to this binary over loopback HTTP. Timer and queue invocations (and HTTP
//! functions that are not forwarded) arrive as `POST /{FunctionName}` with a `{Data, Metadata}` JSON
//! envelope and expect `{Outputs, Logs, ReturnValue}` back; pure HTTP functions are forwarded as plain
//! HTTP (`enableForwardingHttpRequest`). This module owns the wire shapes and their traps so function
//! modules only ever see typed values:
//!
//! - string inputs and metadata arrive JSON-encoded a second time (`"\"hello\""`, `"1"`), see [`value`];
//! - the host base64-decodes any output *string* it can, so outputs are only built through [`output`];
//! - any non-2xx answer fails the invocation and the host retries or poisons the message.
//!
//! Nothing here knows about Sixpence's domain; it is the `lambda-events` of this project.

pub mod http;
pub mod invocation;
pub mod output;
pub mod queue;
pub mod timer;
pub mod value;

pub use http::{HttpRequestData, HttpResponseData};
pub use invocation::{InvocationContext, InvokeRequest, InvokeResponse, PayloadError};
pub use output::Outputs;
pub use queue::{QueueMetadata, QueueTrigger};
pub use timer::{ScheduleStatus, TimerInfo};

/// Header the host sets on every invocation; carried into every log line.
pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";
