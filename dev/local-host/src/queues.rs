//! Queue triggers and output bindings, following the queue extension's listener and processor
//! (functions-host.md §1.7, §1.8).
//!
//! Per queue function: create the queue and its `-poison` twin; receive up to `batchSize` messages,
//! run them concurrently, and fetch the next batch once the messages in flight fall to
//! `newBatchThreshold`; when the queue is empty back off exponentially from 100 ms to
//! `maxPollingInterval`, and poll again at once after finding messages (or when this host itself
//! enqueued something, like the host's shared queue watcher).
//!
//! Per message: a message already dequeued more than `maxDequeueCount` times goes straight to poison;
//! a message that cannot be bound (not base64 under `messageEncoding: base64`) counts as a failed
//! attempt without an invocation; otherwise the envelope is POSTed. On 2xx the outputs are written
//! and the message deleted; on failure it is poisoned when its dequeue count has reached
//! `maxDequeueCount`, or else made visible again after `visibilityTimeout`. While an invocation runs
//! the message's lease is renewed, so a slow handler never sees its message delivered twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::Host;
use crate::app_root::{MIN_POLLING_INTERVAL, MessageEncoding, QueueOptions};
use crate::payload::{self, InvocationResult, QueueDelivery};
use crate::spec::{FunctionSpec, OutputBinding, Trigger};
use crate::storage::{BindingStorage, StoredMessage};

/// How long a received message stays invisible while its invocation runs (the listener's lease).
const LEASE: Duration = Duration::from_secs(600);
/// The lease is renewed at half its length.
const LEASE_RENEWAL: Duration = Duration::from_secs(300);
/// Wait between attempts to create a queue while storage is not reachable yet.
const STORAGE_RETRY: Duration = Duration::from_secs(2);

/// Storage accounts by connection name, and the pollers' wake-up calls by queue name.
pub struct Queues {
    stores: HashMap<String, Arc<dyn BindingStorage>>,
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
    created: Mutex<HashSet<String>>,
    options: QueueOptions,
}

impl Queues {
    /// Connects every storage connection that a queue trigger or queue/blob output names.
    pub fn connect(
        functions: &[FunctionSpec],
        options: QueueOptions,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let mut names = std::collections::BTreeSet::new();
        for function in functions {
            if let Trigger::Queue { connection, .. } = &function.trigger {
                names.insert(connection.clone());
            }
            for output in &function.outputs {
                if let OutputBinding::Queue { connection, .. }
                | OutputBinding::Blob { connection, .. } = output
                {
                    names.insert(connection.clone());
                }
            }
        }
        let mut stores = HashMap::new();
        for name in names {
            let store = crate::storage::connect(&name, lookup)
                .with_context(|| format!("storage connection `{name}`"))?;
            stores.insert(name, store);
        }
        Ok(Self {
            stores,
            wakers: Mutex::new(HashMap::new()),
            created: Mutex::new(HashSet::new()),
            options,
        })
    }

    pub fn store(&self, connection: &str) -> anyhow::Result<Arc<dyn BindingStorage>> {
        self.stores
            .get(connection)
            .cloned()
            .ok_or_else(|| anyhow!("no storage connection `{connection}`"))
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        match self.wakers.lock() {
            Ok(mut map) => map.entry(queue.to_owned()).or_default().clone(),
            Err(_) => Arc::new(Notify::new()),
        }
    }

    /// Tells the poller of `queue` (if this host runs one) to poll now.
    fn wake(&self, queue: &str) {
        if let Ok(map) = self.wakers.lock()
            && let Some(notify) = map.get(queue)
        {
            notify.notify_one();
        }
    }

    /// Encodes message bytes for storage per `messageEncoding`.
    fn encode(&self, bytes: &[u8]) -> String {
        match self.options.message_encoding {
            MessageEncoding::Base64 => STANDARD.encode(bytes),
            MessageEncoding::None => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Sends `bytes` to `queue`, creating the queue the first time, and wakes its poller.
    pub async fn send(
        &self,
        store: &dyn BindingStorage,
        queue: &str,
        bytes: &[u8],
    ) -> anyhow::Result<()> {
        let known = self
            .created
            .lock()
            .map(|s| s.contains(queue))
            .unwrap_or(false);
        if !known {
            store.create_queue(queue).await?;
            if let Ok(mut set) = self.created.lock() {
                set.insert(queue.to_owned());
            }
        }
        store.send(queue, &self.encode(bytes)).await?;
        self.wake(queue);
        Ok(())
    }

    /// The admin API's "invoke a queue function": put `input` on its queue.
    pub async fn enqueue(&self, function: &FunctionSpec, input: &[u8]) -> anyhow::Result<()> {
        let Trigger::Queue {
            queue, connection, ..
        } = &function.trigger
        else {
            bail!("`{}` is not a queue function", function.name);
        };
        let store = self.store(connection)?;
        self.send(store.as_ref(), queue, input).await?;
        say!(
            "admin: enqueued a message on `{queue}` for `{}`",
            function.name
        );
        Ok(())
    }
}

/// Decodes a stored message per `messageEncoding`. The error is why it cannot be bound.
pub fn decode_message(text: &str, encoding: MessageEncoding) -> Result<Vec<u8>, String> {
    match encoding {
        MessageEncoding::None => Ok(text.as_bytes().to_vec()),
        MessageEncoding::Base64 => {
            // `Convert.FromBase64String` skips white space.
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            STANDARD.decode(compact.as_bytes()).map_err(|e| {
                format!("the message is not valid base64 and messageEncoding is base64 ({e})")
            })
        }
    }
}

/// Polls `function`'s queue until the process stops.
pub async fn run_poller(host: Arc<Host>, function: FunctionSpec) {
    let Trigger::Queue {
        queue, connection, ..
    } = &function.trigger
    else {
        return;
    };
    let Some(queues) = host.queues.as_ref() else {
        return;
    };
    let store = match queues.store(connection) {
        Ok(store) => store,
        Err(err) => {
            say!("{}: not polling: {err:#}", function.name);
            return;
        }
    };
    let poison = poison_queue(queue);
    let mut reported = false;
    loop {
        let created = async {
            store.create_queue(queue).await?;
            store.create_queue(&poison).await
        };
        match created.await {
            Ok(()) => break,
            Err(err) => {
                if !reported {
                    say!(
                        "{}: cannot create `{queue}` yet, retrying: {err:#}",
                        function.name
                    );
                    reported = true;
                }
                tokio::time::sleep(STORAGE_RETRY).await;
            }
        }
    }
    if let Ok(mut set) = queues.created.lock() {
        set.insert(queue.clone());
        set.insert(poison.clone());
    }

    let options = &host.app.host.queues;
    let threshold = usize::try_from(options.new_batch_threshold).unwrap_or(usize::MAX);
    let (in_flight, mut in_flight_rx) = watch::channel(0usize);
    let in_flight = Arc::new(in_flight);
    let wake = queues.waker(queue);
    let mut delay = MIN_POLLING_INTERVAL;
    let mut failing = false;
    loop {
        // Fetch the next batch only once the current one has mostly finished.
        let _ = in_flight_rx.wait_for(|n| *n <= threshold).await;
        match store.receive(queue, options.batch_size, LEASE).await {
            Err(err) => {
                if !failing {
                    say!("{}: cannot read `{queue}`: {err:#}", function.name);
                    failing = true;
                }
                tokio::time::sleep(options.max_polling_interval).await;
            }
            Ok(messages) if messages.is_empty() => {
                failing = false;
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = wake.notified() => {}
                }
                delay = (delay * 2).min(options.max_polling_interval);
            }
            Ok(messages) => {
                failing = false;
                delay = MIN_POLLING_INTERVAL;
                for message in messages {
                    in_flight.send_modify(|n| *n += 1);
                    let host = host.clone();
                    let function = function.clone();
                    let store = store.clone();
                    let in_flight = in_flight.clone();
                    tokio::spawn(async move {
                        process(&host, &function, store.as_ref(), message).await;
                        in_flight.send_modify(|n| *n = n.saturating_sub(1));
                    });
                }
            }
        }
    }
}

pub fn poison_queue(queue: &str) -> String {
    format!("{queue}-poison")
}

/// One delivery of one message.
async fn process(
    host: &Host,
    function: &FunctionSpec,
    store: &dyn BindingStorage,
    message: StoredMessage,
) {
    let Trigger::Queue {
        binding,
        queue,
        binary,
        ..
    } = &function.trigger
    else {
        return;
    };
    let options = &host.app.host.queues;
    let invocation_id = Uuid::new_v4();
    let label = format!("{} ({invocation_id})", function.name);
    let attempt = format!(
        "message {} attempt {}/{}",
        message.id, message.dequeue_count, options.max_dequeue_count
    );

    // The processor's first check: a message already past the limit is not invoked again.
    if message.dequeue_count > options.max_dequeue_count {
        let reason = format!(
            "dequeue count {} exceeds maxDequeueCount {}",
            message.dequeue_count, options.max_dequeue_count
        );
        move_to_poison(
            host,
            function,
            store,
            &message,
            &message.pop_receipt,
            &reason,
        )
        .await;
        return;
    }

    let decoded = decode_message(&message.text, options.message_encoding);
    let invoked = decoded.is_ok();
    let (outcome, pop_receipt) = match decoded {
        Err(reason) => (Err(reason), message.pop_receipt.clone()),
        Ok(body) => {
            let invocation = invoke(
                host,
                function,
                binding,
                *binary,
                &message,
                &body,
                invocation_id,
            );
            with_lease(store, queue, &message, invocation).await
        }
    };

    host.emit(crate::Event::QueueAttempt {
        function: function.name.clone(),
        message_id: message.id.clone(),
        dequeue_count: message.dequeue_count,
        invoked,
        succeeded: outcome.is_ok(),
    });
    match outcome {
        Ok(()) => match store.delete(queue, &message.id, &pop_receipt).await {
            Ok(()) => say!("{label}: {attempt} succeeded; deleted"),
            Err(err) => say!(
                "{label}: {attempt} succeeded but could not be deleted (it will be delivered again): {err:#}"
            ),
        },
        Err(reason) if message.dequeue_count >= options.max_dequeue_count => {
            say!("{label}: {attempt} failed: {reason}");
            move_to_poison(host, function, store, &message, &pop_receipt, &reason).await;
        }
        Err(reason) => {
            say!(
                "{label}: {attempt} failed: {reason}; retrying after visibilityTimeout {} ms",
                options.visibility_timeout.as_millis()
            );
            if let Err(err) = store
                .set_visibility(queue, &message.id, &pop_receipt, options.visibility_timeout)
                .await
            {
                say!(
                    "{label}: could not release message {} (it reappears when its lease ends): {err:#}",
                    message.id
                );
            }
        }
    }
}

/// Invokes the handler and writes the outputs of a successful invocation.
async fn invoke(
    host: &Host,
    function: &FunctionSpec,
    binding: &str,
    binary: bool,
    message: &StoredMessage,
    body: &[u8],
    invocation_id: Uuid,
) -> Result<(), String> {
    let delivery = QueueDelivery {
        id: &message.id,
        pop_receipt: &message.pop_receipt,
        dequeue_count: message.dequeue_count,
        insertion_time: message.insertion_time,
        expiration_time: message.expiration_time,
        next_visible_time: message.next_visible_time,
        body,
    };
    let envelope = payload::queue_envelope(
        binding,
        binary,
        &delivery,
        &function.name,
        OffsetDateTime::now_utc(),
        Uuid::new_v4(),
    );
    let result = host
        .invoker
        .invoke(&function.name, invocation_id, &envelope)
        .await
        .map_err(|e| e.to_string())?;
    let binding_data = message_binding_data(message, body);
    write_outputs(host, function, &result, &binding_data)
        .await
        .map_err(|e| format!("output bindings failed: {e:#}"))
}

/// Binding data usable in output paths: the message's JSON properties, `queueTrigger`, `id`, ….
fn message_binding_data(message: &StoredMessage, body: &[u8]) -> Map<String, Value> {
    let text = String::from_utf8_lossy(body).into_owned();
    let mut data = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    data.insert("QueueTrigger".into(), Value::String(text));
    data.entry("Id")
        .or_insert_with(|| Value::String(message.id.clone()));
    data.entry("DequeueCount")
        .or_insert_with(|| Value::from(message.dequeue_count));
    data
}

/// Copies the original stored text to `<queue>-poison`, then deletes the message.
async fn move_to_poison(
    host: &Host,
    function: &FunctionSpec,
    store: &dyn BindingStorage,
    message: &StoredMessage,
    pop_receipt: &str,
    reason: &str,
) {
    let Trigger::Queue { queue, .. } = &function.trigger else {
        return;
    };
    let label = &function.name;
    let poison = poison_queue(queue);
    if let Err(err) = store.send(&poison, &message.text).await {
        say!(
            "{label}: could not copy message {} to `{poison}`; it stays on `{queue}`: {err:#}",
            message.id
        );
        return;
    }
    match store.delete(queue, &message.id, pop_receipt).await {
        Ok(()) => {
            say!(
                "{label}: moved message {} to `{poison}` after {} attempts: {reason}",
                message.id,
                message.dequeue_count
            );
            host.emit(crate::Event::Poisoned {
                function: function.name.clone(),
                message_id: message.id.clone(),
                dequeue_count: message.dequeue_count,
                reason: reason.to_owned(),
            });
        }
        Err(err) => say!(
            "{label}: copied message {} to `{poison}` but could not delete it: {err:#}",
            message.id
        ),
    }
}

/// Runs `invocation` while keeping the message invisible (renewing its lease at half-time, like the
/// listener); returns its outcome and the latest pop receipt, which every renewal changes.
async fn with_lease<F>(
    store: &dyn BindingStorage,
    queue: &str,
    message: &StoredMessage,
    invocation: F,
) -> (Result<(), String>, String)
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let mut receipt = message.pop_receipt.clone();
    tokio::pin!(invocation);
    loop {
        tokio::select! {
            outcome = &mut invocation => return (outcome, receipt),
            () = tokio::time::sleep(LEASE_RENEWAL) => {
                match store.set_visibility(queue, &message.id, &receipt, LEASE).await {
                    Ok(renewed) => receipt = renewed,
                    Err(err) => say!("could not renew the lease of message {} on `{queue}`: {err:#}", message.id),
                }
            }
        }
    }
}

/// Writes the queue and blob outputs of a successful invocation, as the host's bindings would.
pub async fn write_outputs(
    host: &Host,
    function: &FunctionSpec,
    result: &InvocationResult,
    binding_data: &Map<String, Value>,
) -> anyhow::Result<()> {
    for output in &function.outputs {
        let Some(value) = result.output(output.name()) else {
            continue;
        };
        match output {
            OutputBinding::Http { .. } => {}
            OutputBinding::Queue {
                queue,
                connection,
                binary,
                ..
            } => {
                let queues = host
                    .queues
                    .as_ref()
                    .ok_or_else(|| anyhow!("no storage connection for queue outputs"))?;
                let store = queues.store(connection)?;
                let messages = payload::queue_output_messages(value, *binary);
                for message in &messages {
                    queues.send(store.as_ref(), queue, message).await?;
                }
                say!(
                    "{}: wrote {} message(s) to `{queue}`",
                    function.name,
                    messages.len()
                );
            }
            OutputBinding::Blob {
                path,
                connection,
                binary,
                ..
            } => {
                let queues = host
                    .queues
                    .as_ref()
                    .ok_or_else(|| anyhow!("no storage connection for blob outputs"))?;
                let store = queues.store(connection)?;
                let resolved = resolve_path(path, binding_data, OffsetDateTime::now_utc())?;
                let (container, name) = resolved
                    .split_once('/')
                    .filter(|(c, n)| !c.is_empty() && !n.is_empty())
                    .ok_or_else(|| anyhow!("blob path `{resolved}` is not `container/name`"))?;
                let bytes = payload::binding_bytes(value, *binary);
                let size = bytes.len();
                store.put_blob(container, name, bytes).await?;
                say!("{}: wrote blob `{resolved}` ({size} bytes)", function.name);
            }
            OutputBinding::Unsupported { name, kind } => {
                say!(
                    "{}: output `{name}` ({kind}) is not supported by the local host; ignored",
                    function.name
                );
            }
        }
    }
    Ok(())
}

/// Resolves binding expressions in a blob path: `{rand-guid}`, `{DateTime}`, `{sys.randguid}`,
/// `{sys.utcnow}` and any binding data name (case-insensitive), such as a message property.
pub fn resolve_path(
    path: &str,
    binding_data: &Map<String, Value>,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| anyhow!("unterminated {{…}} in blob path `{path}`"))?;
        let expression = &after[..end];
        let value = match expression.to_ascii_lowercase().as_str() {
            "rand-guid" | "sys.randguid" => Uuid::new_v4().to_string(),
            // The host formats `{DateTime}` as a path-safe UTC timestamp.
            "datetime" | "sys.utcnow" => {
                let t = now.to_offset(time::UtcOffset::UTC);
                format!(
                    "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            }
            _ => binding_data
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(expression))
                .map(|(_, v)| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .ok_or_else(|| {
                    anyhow!("blob path `{path}`: no binding data named `{expression}`")
                })?,
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_messages_decode_and_others_cannot_be_bound() {
        assert_eq!(
            decode_message("bm90IGpzb24=", MessageEncoding::Base64).unwrap(),
            b"not json"
        );
        assert_eq!(
            decode_message("bm90\nIGpzb24=", MessageEncoding::Base64).unwrap(),
            b"not json"
        );
        assert!(decode_message("not json", MessageEncoding::Base64).is_err());
        assert_eq!(
            decode_message("not json", MessageEncoding::None).unwrap(),
            b"not json"
        );
    }

    #[test]
    fn blob_paths_resolve_binding_expressions() {
        let data = json!({"workspaceId": "w1", "QueueTrigger": "x"});
        let data = data.as_object().unwrap();
        let now = time::macros::datetime!(2026-05-01 10:00:07 UTC);
        assert_eq!(
            resolve_path("raw/{WORKSPACEID}/{DateTime}.json", data, now).unwrap(),
            "raw/w1/2026-05-01T10-00-07Z.json"
        );
        let random = resolve_path("archive/{rand-guid}.json", data, now).unwrap();
        assert_eq!(random.len(), "archive/.json".len() + 36);
        assert!(resolve_path("a/{missing}", data, now).is_err());
    }
}
