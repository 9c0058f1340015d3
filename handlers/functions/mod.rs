//! One module per Azure Function, named after its `function-specs/<name>/` folder, and the router.
//!
//! [`REGISTRY`] lists every function with its trigger. The router is built from it, so a function
//! cannot be served without being registered, and `tests/it/function_specs.rs` holds the registry equal
//! to `function-specs/`: a spec without a handler, a handler without a spec, or a trigger kind that
//! does not match fails the build's tests.
//!
//! Function modules are thin: decode the trigger, call the domain, encode the result.

pub mod http;
pub mod invoke;
pub mod queue;
pub mod timer;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;
use invoke::Handler;

/// How a function is triggered, with what its spec must declare.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// Forwarded HTTP: served at `/<route>` by [`http::router`].
    Http {
        /// `route` in function.json: the whole path, since `host.json` sets an empty `routePrefix`.
        route: &'static str,
        methods: &'static [&'static str],
    },
    /// `POST /<name>` with the timer envelope; `binding` is the trigger's `name`.
    Timer { binding: &'static str },
    /// `POST /<name>` with the queue envelope; `binding` is the trigger's `name`.
    Queue {
        binding: &'static str,
        queue: &'static str,
    },
}

impl Trigger {
    /// The `type` of the trigger binding in function.json.
    pub fn binding_type(&self) -> &'static str {
        match self {
            Trigger::Http { .. } => "httpTrigger",
            Trigger::Timer { .. } => "timerTrigger",
            Trigger::Queue { .. } => "queueTrigger",
        }
    }
}

/// A function the binary serves.
#[derive(Clone, Copy)]
pub struct FunctionDef {
    pub name: &'static str,
    pub trigger: Trigger,
    /// The envelope handler of timer and queue functions; HTTP functions are routes instead.
    pub handler: Option<Handler>,
}

/// Every function, in the order the README lists them.
pub const REGISTRY: &[FunctionDef] = &[
    http::health::FUNCTION,
    http::api::FUNCTION,
    http::security_txt::FUNCTION,
    http::stripe_webhook::FUNCTION,
    timer::heartbeat::FUNCTION,
    timer::connection_health::FUNCTION,
    timer::sync_scheduler::FUNCTION,
    timer::retention_sweeper::FUNCTION,
    queue::queue_probe::FUNCTION,
    queue::connection_check::FUNCTION,
    queue::cost_sync::FUNCTION,
    queue::anomaly_detect::FUNCTION,
    queue::budget_check::FUNCTION,
    queue::notify_fanout::FUNCTION,
    queue::notify::FUNCTION,
    queue::export::FUNCTION,
    queue::deletion::FUNCTION,
];

/// Looks a function up by its name.
pub fn find(name: &str) -> Option<&'static FunctionDef> {
    REGISTRY.iter().find(|f| f.name == name)
}

/// The whole custom handler: readiness, forwarded HTTP, and one envelope route per function.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new()
        // The host polls `GET /` until it answers (any status) before it sends invocations.
        .route("/", get(|| async { "sixpence" }))
        .merge(http::router(&state));
    for function in REGISTRY {
        let path = format!("/{}", function.name);
        router = match (function.trigger, function.handler) {
            (Trigger::Timer { .. } | Trigger::Queue { .. }, Some(handler)) => {
                router.route(&path, post(invoke::envelope(function.name, handler)))
            }
            // An HTTP function reaches `POST /<name>` only when the host could not forward it.
            (Trigger::Http { .. }, _) => router.route(&path, post(http::payload_mode::handle)),
            (_, None) => router,
        };
    }
    router.with_state(state)
}
