//! The tokio side of the fleet backend: one NATS client and the tasks around it.
//!
//! - **connection**: the client connects in the background and reconnects for ever;
//!   its events set `connected`, and each (re)connection re-declares the JetStream
//!   streams (idempotent), so a NATS that lost its storage is set up again.
//! - **outbox**: publishes this node's queued decisions in batches, removing each once
//!   JetStream acknowledged it; when NATS does not answer it waits and retries the same
//!   messages; what JetStream refuses for good (a full stream) is dropped and counted.
//! - **bans** and **learned**: ordered push consumers (the client re-creates them after
//!   a reconnection from the last sequence seen) that apply other nodes' bans (latest
//!   per target) and every learned hash and descriptor (from the start: a node joining
//!   later gets everything still kept) to this node's memory, in batches of what has
//!   arrived; a stream NATS lost is read again from its start.
//! - **shutdown**: [`stop`] publishes what is queued, then ends the tasks.
//! - **commands** and **heartbeats**: core NATS requests from other nodes, handed to the
//!   server's command task; a heartbeat a second, so nodes know their peers.

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use async_nats::jetstream::{self, consumer, stream};

use crate::backend::Backend;

use super::fleet::Command;
use super::outbox::Outgoing;
use super::wire::{
    self, BanMessage, CutKeyRequest, CutStreamRequest, DescriptorsMessage, FleetCommand,
    HashesMessage, Heartbeat, Reply,
};
use super::{Applied, ClusterError, Peer, Shared, lock};
use crate::signals::descriptor_lists::AddedDescriptor;
use crate::signals::lists::AddedHash;

/// Messages from a followed stream applied together, at most.
const APPLY_BATCH: usize = 256;
/// Messages published per round trip to JetStream.
const OUTBOX_BATCH: usize = 256;
/// Pause after a failed publish or setup before trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Requests from other nodes waiting for the server's command task.
const COMMAND_QUEUE: usize = 64;
/// JetStream's deduplication window: a retried publish within it is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Builds the client (connecting in the background) and starts the tasks.
pub(super) async fn start(
    shared: Arc<Shared>,
) -> Result<(async_nats::Client, mpsc::Receiver<Command>), ClusterError> {
    let (reconnected, mut reconnections) = mpsc::unbounded_channel::<()>();
    let options = credentials(&shared.config)?
        .name(format!(
            "livegate {} {}",
            shared.config.node, shared.node_id
        ))
        .connection_timeout(shared.config.connect_timeout())
        .request_timeout(Some(shared.config.request_timeout()))
        .retry_on_initial_connect()
        .max_reconnects(None)
        // Converge quickly after an outage: a node retries at most every 2 s.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 250).min(2000))
        })
        .event_callback({
            let shared = Arc::clone(&shared);
            move |event| {
                let shared = Arc::clone(&shared);
                let reconnected = reconnected.clone();
                async move { on_event(&shared, event, &reconnected) }
            }
        });
    let client = options
        .connect(shared.config.servers.clone())
        .await
        .map_err(|error| ClusterError::Client(error.to_string()))?;
    let (commands_in, commands_out) = mpsc::channel(COMMAND_QUEUE);
    let js = jetstream::new(client.clone());
    spawn(&shared, {
        let shared = Arc::clone(&shared);
        let client = client.clone();
        async move {
            // Each (re)connection declares the streams again (a NATS that lost its
            // storage is set up anew); the followers and the outbox start after the
            // first.
            let mut first = true;
            while reconnections.recv().await.is_some() {
                setup(&shared, &js, first).await;
                if first {
                    spawn(&shared, publish_outbox(Arc::clone(&shared), js.clone()));
                    for (followed, stream) in [
                        (Followed::Bans, shared.subjects.bans_stream()),
                        (Followed::Learned, shared.subjects.learned_stream()),
                    ] {
                        let follow = Follow {
                            shared: Arc::clone(&shared),
                            js: js.clone(),
                            client: client.clone(),
                            followed,
                            stream,
                        };
                        spawn(&shared, follow.run());
                    }
                    first = false;
                }
            }
        }
    });
    spawn(&shared, warn_if_unreachable(Arc::clone(&shared)));
    spawn(
        &shared,
        serve_commands(Arc::clone(&shared), client.clone(), commands_in),
    );
    spawn(&shared, heartbeats(Arc::clone(&shared), client.clone()));
    Ok((client, commands_out))
}

/// Spawns one of the link's tasks, to be stopped by [`stop`].
fn spawn(shared: &Shared, task: impl std::future::Future<Output = ()> + Send + 'static) {
    let handle = tokio::spawn(task);
    lock(&shared.tasks).push(handle.abort_handle());
}

/// Stops the link: publishes what the outbox holds while NATS answers (for at most
/// `grace`), then ends the tasks and closes the connection. Returns what was left
/// unpublished.
pub(super) async fn stop(shared: &Shared, client: &async_nats::Client, grace: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + grace;
    while !shared.outbox.is_empty()
        && shared.status.connected()
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for task in lock(&shared.tasks).drain(..) {
        task.abort();
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), client.drain()).await;
    shared.outbox.len()
}

/// The client's options with the configured credential; reading a file fails naming
/// its key (`check-config` calls it too, so a bad credential fails before deployment).
pub fn credentials(
    config: &super::ClusterConfig,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    let read = |key: &'static str, path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|error| ClusterError::Credentials {
            key,
            path: path.to_path_buf(),
            error,
        })
    };
    let options = async_nats::ConnectOptions::new();
    if let Some(token) = &config.token {
        return Ok(options.token(token.clone()));
    }
    if let Some(path) = &config.token_file {
        let token = read("token_file", path)?.trim_end().to_string();
        if token.is_empty() {
            return Err(ClusterError::Invalid {
                key: "token_file",
                message: format!("{} is empty", path.display()),
            });
        }
        return Ok(options.token(token));
    }
    if let Some(path) = &config.creds_file {
        let creds = read("creds_file", path)?;
        return options
            .credentials(&creds)
            .map_err(|error| ClusterError::Invalid {
                key: "creds_file",
                message: format!("{}: {error}", path.display()),
            });
    }
    if let Some(path) = &config.nkey_seed_file {
        let seed = read("nkey_seed_file", path)?.trim().to_string();
        // Check the seed now: the client would only fail while connecting, in a loop.
        if let Err(error) = nkeys::KeyPair::from_seed(&seed) {
            return Err(ClusterError::Invalid {
                key: "nkey_seed_file",
                message: format!("{}: not an nkey seed ({error})", path.display()),
            });
        }
        return Ok(options.nkey(seed));
    }
    Ok(options)
}

fn on_event(shared: &Shared, event: async_nats::Event, reconnected: &mpsc::UnboundedSender<()>) {
    match event {
        async_nats::Event::Connected => {
            shared.status.connected.store(true, Ordering::Relaxed);
            info!(
                node = %shared.config.node,
                queued = shared.outbox.len(),
                "cluster connected: publishing queued decisions and catching up"
            );
            let _ = reconnected.send(());
        }
        async_nats::Event::Disconnected => {
            shared.status.connected.store(false, Ordering::Relaxed);
            shared.status.set_error("disconnected from NATS");
            warn!("cluster unreachable: running on local state, decisions are queued");
        }
        async_nats::Event::ServerError(error) => {
            shared.status.set_error(format!("server error: {error}"));
            warn!(%error, "cluster: NATS server error");
        }
        async_nats::Event::ClientError(error) => {
            shared.status.set_error(format!("client error: {error}"));
            // While disconnected every reconnection attempt fails the same way: the
            // disconnection was already reported.
            if shared.status.connected() {
                warn!(%error, "cluster: NATS client error");
            } else {
                debug!(%error, "cluster: NATS client error while disconnected");
            }
        }
        other => debug!(event = %other, "cluster: NATS event"),
    }
}

/// Says once, after the connect timeout, that a node started without NATS.
async fn warn_if_unreachable(shared: Arc<Shared>) {
    tokio::time::sleep(shared.config.connect_timeout()).await;
    if !shared.status.connected() {
        shared.status.set_error("NATS unreachable since startup");
        warn!(
            servers = ?shared.config.servers,
            "cluster unreachable at startup: running on local state, will keep trying"
        );
    }
}

/// Declares the three streams, retrying until it works; marks the node synced.
async fn setup(shared: &Shared, js: &jetstream::Context, first: bool) {
    loop {
        match declare_streams(shared, js).await {
            Ok(()) => {
                shared.status.synced.store(true, Ordering::Relaxed);
                *lock(&shared.status.last_error) = None;
                if !first {
                    info!("cluster resynced: streams declared, consumers resume where they were");
                    shared.resyncs.send_modify(|count| *count += 1);
                }
                return;
            }
            Err(error) => {
                shared.status.synced.store(false, Ordering::Relaxed);
                shared
                    .status
                    .set_error(format!("declaring JetStream streams: {error}"));
                debug!(%error, "cluster: cannot declare the JetStream streams yet");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

async fn declare_streams(shared: &Shared, js: &jetstream::Context) -> Result<(), String> {
    let config = &shared.config;
    let subjects = &shared.subjects;
    let declarations = [
        stream::Config {
            name: subjects.bans_stream(),
            subjects: vec![subjects.bans()],
            // The latest ban of each key; expired ones age out (NATS 2.9 has no
            // per-message TTL).
            max_messages_per_subject: 1,
            max_age: Duration::from_secs(config.ban_retention_seconds),
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        },
        stream::Config {
            name: subjects.learned_stream(),
            subjects: vec![subjects.learned()],
            max_bytes: config.learned_max_bytes as i64,
            // Full: refuse new additions rather than forget old ones a later node needs.
            discard: stream::DiscardPolicy::New,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        },
        stream::Config {
            name: subjects.events_stream(),
            subjects: vec![subjects.events()],
            max_bytes: config.events_max_bytes as i64,
            max_age: Duration::from_secs(config.events_max_age_seconds),
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        },
    ];
    for declaration in declarations {
        let name = declaration.name.clone();
        tokio::time::timeout(
            config.request_timeout(),
            js.get_or_create_stream(declaration),
        )
        .await
        .map_err(|_| format!("stream {name}: no answer"))?
        .map_err(|error| format!("stream {name}: {error}"))?;
    }
    Ok(())
}

/// Publishes the outbox, batch by batch, for ever.
async fn publish_outbox(shared: Arc<Shared>, js: jetstream::Context) {
    loop {
        shared.outbox.wait().await;
        let batch = shared.outbox.peek(OUTBOX_BATCH);
        let done = publish_batch(&shared, &js, &batch).await;
        let all = done.stored.len() + done.refused.len() == batch.len();
        shared.outbox.acknowledged(&done.stored);
        shared.outbox.refused(&done.refused);
        if !all {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// What became of a batch: the rest is retried.
struct Published<'a> {
    stored: Vec<&'a Outgoing>,
    /// Refused for good by JetStream (a full stream, a message over the server's
    /// payload limit): retrying would block everything queued behind them.
    refused: Vec<&'a Outgoing>,
}

/// Whether JetStream refused the message itself rather than being unreachable.
fn refused_for_good(error: &async_nats::jetstream::context::PublishError) -> bool {
    use async_nats::jetstream::context::PublishErrorKind;
    matches!(
        error.kind(),
        PublishErrorKind::Other | PublishErrorKind::MaxPayloadExceeded
    )
}

/// Sends every message of `batch`, then awaits their acknowledgements.
async fn publish_batch<'a>(
    shared: &Shared,
    js: &jetstream::Context,
    batch: &'a [Outgoing],
) -> Published<'a> {
    let mut done = Published {
        stored: Vec::with_capacity(batch.len()),
        refused: Vec::new(),
    };
    let mut refuse = |message: &'a Outgoing, error: &dyn std::fmt::Display| {
        shared.status.set_error(format!("publishing: {error}"));
        warn!(%error, subject = %message.subject, kind = message.kind.as_str(), "cluster: JetStream refused a message: dropped");
        done.refused.push(message);
    };
    let mut pending = Vec::with_capacity(batch.len());
    for message in batch {
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .message_id(message.message_id(shared.node_id));
        match js.send_publish(message.subject.clone(), publish).await {
            Ok(ack) => pending.push((message, ack)),
            Err(error)
                if error.kind()
                    == async_nats::jetstream::context::PublishErrorKind::MaxPayloadExceeded =>
            {
                refuse(message, &error);
            }
            Err(error) => {
                shared.status.set_error(format!("publishing: {error}"));
                debug!(%error, "cluster: publish failed, will retry");
                break;
            }
        }
    }
    for (message, ack) in pending {
        match tokio::time::timeout(shared.config.request_timeout(), ack).await {
            Ok(Ok(_)) => done.stored.push(message),
            Ok(Err(error)) if refused_for_good(&error) => refuse(message, &error),
            Ok(Err(error)) => {
                shared.status.set_error(format!("publishing: {error}"));
                debug!(%error, subject = %message.subject, "cluster: publish not acknowledged, will retry");
            }
            Err(_) => {
                shared
                    .status
                    .set_error("publishing: no acknowledgement in time");
            }
        }
    }
    done
}

/// Whether a message from JetStream was published by this process (its `Nats-Msg-Id`
/// starts with this node id): it was applied here when it was made.
fn published_here(shared: &Shared, message: &async_nats::jetstream::Message) -> bool {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(async_nats::header::NATS_MESSAGE_ID))
        .is_some_and(|id| {
            id.as_str()
                .strip_prefix(shared.node_id)
                .is_some_and(|rest| rest.starts_with('-'))
        })
}

/// Which of the fleet's streams a follower applies.
#[derive(Clone, Copy)]
enum Followed {
    /// The latest ban of each target, then each new one.
    Bans,
    /// Every learned hash and descriptor, from the start.
    Learned,
}

/// One of the fleet's streams, followed by an ordered consumer (which the client
/// re-creates after a reconnection, from the last sequence seen).
struct Follow {
    shared: Arc<Shared>,
    js: jetstream::Context,
    client: async_nats::Client,
    followed: Followed,
    stream: String,
}

impl Follow {
    /// Hands every message to `apply` for ever. After each resync it checks whether
    /// NATS lost the stream (a server without persistent storage restarted): the new
    /// stream's sequences start again at 1, where the client's consumer would wait for
    /// the old ones, so it is then read again from its start.
    async fn run(self) {
        let mut resyncs = self.shared.resyncs.subscribe();
        loop {
            let (mut messages, created) = self.messages().await;
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(Ok(message)) => {
                            // What else has already arrived goes with it: one list update
                            // for many messages (a node catching up replays thousands).
                            let mut batch = vec![message];
                            while batch.len() < APPLY_BATCH {
                                match messages.next().now_or_never() {
                                    Some(Some(Ok(message))) => batch.push(message),
                                    Some(Some(Err(error))) => {
                                        debug!(%error, stream = %self.stream, "cluster: consumer");
                                    }
                                    Some(None) | None => break,
                                }
                            }
                            batch.retain(|message| !published_here(&self.shared, message));
                            self.apply(batch).await;
                        }
                        Some(Err(error)) => debug!(%error, stream = %self.stream, "cluster: consumer"),
                        None => break,
                    },
                    changed = resyncs.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if self.recreated(created).await {
                            warn!(stream = %self.stream, "cluster: NATS lost the stream; reading the new one from its start");
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn apply(&self, batch: Vec<async_nats::jetstream::Message>) {
        match self.followed {
            Followed::Bans => {
                for message in &batch {
                    apply_ban(&self.shared, &message.payload);
                }
            }
            Followed::Learned if batch.is_empty() => {}
            Followed::Learned => {
                let shared = Arc::clone(&self.shared);
                let batch: Vec<(String, Bytes)> = batch
                    .into_iter()
                    .map(|message| (message.subject.to_string(), message.payload.clone()))
                    .collect();
                // Adding rebuilds or scans an index: not on the runtime's threads.
                let applied =
                    tokio::task::spawn_blocking(move || apply_learned(&shared, &batch)).await;
                if let Err(error) = applied {
                    warn!(%error, "cluster: applying learned entries panicked");
                }
            }
        }
    }

    /// Whether the stream now on the server is not the one created at `created`.
    async fn recreated(&self, created: time::OffsetDateTime) -> bool {
        match self.js.get_stream(&self.stream).await {
            Ok(mut stream) => stream
                .info()
                .await
                .is_ok_and(|info| info.created != created),
            Err(_) => true,
        }
    }

    /// A new ordered consumer and when its stream was created; retried until the
    /// stream exists (it may not be declared yet).
    async fn messages(&self) -> (consumer::push::Ordered, time::OffsetDateTime) {
        loop {
            match tokio::time::timeout(self.shared.config.request_timeout(), self.attempt()).await {
                Ok(Ok(follow)) => return follow,
                Ok(Err(error)) => {
                    debug!(%error, stream = %self.stream, "cluster: cannot follow the stream yet");
                }
                Err(_) => debug!(stream = %self.stream, "cluster: following the stream timed out"),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn attempt(&self) -> Result<(consumer::push::Ordered, time::OffsetDateTime), String> {
        let mut stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|error| error.to_string())?;
        let created = stream
            .info()
            .await
            .map_err(|error| error.to_string())?
            .created;
        let (subject, deliver_policy) = match self.followed {
            Followed::Bans => (
                self.shared.subjects.bans(),
                consumer::DeliverPolicy::LastPerSubject,
            ),
            Followed::Learned => (self.shared.subjects.learned(), consumer::DeliverPolicy::All),
        };
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: subject,
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|error| error.to_string())?;
        let messages = consumer
            .messages()
            .await
            .map_err(|error| error.to_string())?;
        Ok((messages, created))
    }
}

fn apply_ban(shared: &Shared, payload: &[u8]) {
    let (ban, target) = match BanMessage::parse(payload) {
        Ok(parsed) => parsed,
        Err(error) => {
            shared.status.count_skipped();
            warn!(%error, "cluster: skipped a malformed ban");
            return;
        }
    };
    if ban.lifted {
        shared.local.lift_ban(&target);
        shared.status.count_applied(Applied::Ban, 1, ban.made_at_ms);
        return;
    }
    // Expired bans stop applying; a node's own bans come back after its restart.
    if let Some(left) = wire::remaining(ban.expires_at_ms, SystemTime::now()) {
        shared.local.ban_until(target, Instant::now() + left);
        shared.status.count_applied(Applied::Ban, 1, ban.made_at_ms);
    }
}

/// Learned additions of one list from one or more messages, applied in one call.
struct ListAdditions<T> {
    entries: Vec<T>,
    /// Each message's entry count and when it was made.
    messages: Vec<(usize, u64)>,
}

impl<T> Default for ListAdditions<T> {
    fn default() -> Self {
        ListAdditions {
            entries: Vec::new(),
            messages: Vec::new(),
        }
    }
}

impl<T> ListAdditions<T> {
    fn push(&mut self, entries: Vec<T>, made_at_ms: u64) {
        self.messages.push((entries.len(), made_at_ms));
        self.entries.extend(entries);
    }

    /// Counts the messages as applied, or as skipped with `error`.
    fn settle(&self, shared: &Shared, list: &str, kind: Applied, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                debug!(%list, count = self.entries.len(), kind = kind.as_str(), "cluster: applied learned entries");
                for &(count, made_at_ms) in &self.messages {
                    shared.status.count_applied(kind, count, made_at_ms);
                }
            }
            Err(error) => {
                // A list this node does not have, or one that is full: the others
                // still apply.
                warn!(%list, messages = self.messages.len(), %error, "cluster: skipped learned entries");
                for _ in &self.messages {
                    shared.status.count_skipped();
                }
            }
        }
    }
}

/// Applies learned hashes and descriptors, one call per list for the whole batch.
fn apply_learned(shared: &Shared, batch: &[(String, Bytes)]) {
    let descriptor_subjects = format!("{}.learned.descriptor.", shared.config.prefix);
    let mut hashes: BTreeMap<String, ListAdditions<AddedHash>> = BTreeMap::new();
    let mut descriptors: BTreeMap<String, ListAdditions<AddedDescriptor>> = BTreeMap::new();
    let model_here = shared.local.descriptor_model().unwrap_or("none");
    for (subject, payload) in batch {
        let parsed = if subject.starts_with(&descriptor_subjects) {
            DescriptorsMessage::parse(payload)
                .map_err(|error| error.to_string())
                .and_then(|(message, entries)| {
                    if message.model != model_here {
                        return Err(format!(
                            "descriptors of model {:?}, this node's [descriptor] is {model_here:?}",
                            message.model
                        ));
                    }
                    descriptors
                        .entry(message.list)
                        .or_default()
                        .push(entries, message.made_at_ms);
                    Ok(())
                })
        } else {
            HashesMessage::parse(payload)
                .map_err(|error| error.to_string())
                .map(|(message, entries)| {
                    hashes
                        .entry(message.list)
                        .or_default()
                        .push(entries, message.made_at_ms);
                })
        };
        if let Err(error) = parsed {
            shared.status.count_skipped();
            warn!(%subject, %error, "cluster: skipped learned entries");
        }
    }
    for (list, additions) in &hashes {
        let outcome = shared
            .local
            .add_hashes(list, &additions.entries)
            .map(drop)
            .map_err(|error| error.to_string());
        additions.settle(shared, list, Applied::Hash, outcome);
    }
    for (list, additions) in &descriptors {
        let outcome = shared
            .local
            .add_descriptors(list, &additions.entries)
            .map(drop)
            .map_err(|error| error.to_string());
        additions.settle(shared, list, Applied::Descriptor, outcome);
    }
}

/// Hands requests from other nodes to the server's command task and sends its answer.
async fn serve_commands(
    shared: Arc<Shared>,
    client: async_nats::Client,
    commands: mpsc::Sender<Command>,
) {
    let mut subscriptions = Vec::new();
    for subject in [
        shared.subjects.node_commands(shared.node_id),
        shared.subjects.fleet_commands(),
    ] {
        match client.subscribe(subject.clone()).await {
            Ok(subscription) => subscriptions.push(subscription),
            Err(error) => {
                shared
                    .status
                    .set_error(format!("subscribing to {subject}: {error}"));
                warn!(%subject, %error, "cluster: cannot take requests from other nodes");
            }
        }
    }
    let mut requests = futures_util::stream::select_all(subscriptions);
    while let Some(message) = requests.next().await {
        let Some(reply_to) = message.reply.clone() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let client = client.clone();
        let commands = commands.clone();
        tokio::spawn(async move {
            let (status, body) =
                answer(&shared, &message.subject, &message.payload, &commands).await;
            let reply = Reply {
                node: shared.config.node.clone(),
                node_id: shared.node_id.to_string(),
                status,
                body,
            };
            match serde_json::to_vec(&reply) {
                Ok(payload) => {
                    if let Err(error) = client.publish(reply_to, payload.into()).await {
                        debug!(%error, "cluster: cannot answer a request");
                    }
                }
                Err(error) => warn!(%error, "cluster: cannot encode an answer"),
            }
        });
    }
}

fn error_body(message: impl Into<String>) -> serde_json::Value {
    serde_json::json!({ "error": message.into() })
}

/// This node's answer to one request.
async fn answer(
    shared: &Shared,
    subject: &str,
    payload: &[u8],
    commands: &mpsc::Sender<Command>,
) -> (u16, serde_json::Value) {
    let (reply, answered) = oneshot::channel();
    let command = if subject == shared.subjects.node_cut(shared.node_id) {
        match wire::parse_request::<CutStreamRequest>(payload) {
            Ok(request) => Command::CutStream { request, reply },
            Err(error) => return (400, error_body(format!("cut request: {error}"))),
        }
    } else {
        match FleetCommand::from_subject(subject) {
            Some(FleetCommand::CutKey) => match wire::parse_request::<CutKeyRequest>(payload) {
                Ok(request) => Command::CutKey { request, reply },
                Err(error) => return (400, error_body(format!("cut_key request: {error}"))),
            },
            Some(FleetCommand::Streams) => Command::Streams { reply },
            None => return (404, error_body(format!("no command {subject}"))),
        }
    };
    if commands.try_send(command).is_err() {
        return (
            503,
            error_body("node busy: too many requests from the fleet"),
        );
    }
    match tokio::time::timeout(shared.config.request_timeout(), answered).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => (503, error_body("node shutting down")),
        Err(_) => (504, error_body("node did not answer in time")),
    }
}

/// Says this node is alive every second and keeps the peers it hears.
async fn heartbeats(shared: Arc<Shared>, client: async_nats::Client) {
    let beat = Heartbeat {
        node: shared.config.node.clone(),
        node_id: shared.node_id.to_string(),
        started_at_ms: wire::unix_ms(SystemTime::now()),
    };
    let payload: Bytes = match serde_json::to_vec(&beat) {
        Ok(payload) => payload.into(),
        Err(error) => {
            warn!(%error, "cluster: cannot encode the heartbeat");
            return;
        }
    };
    let listening = {
        let shared = Arc::clone(&shared);
        let subscription = client.subscribe(shared.subjects.heartbeat()).await;
        async move {
            let Ok(mut subscription) = subscription else {
                warn!("cluster: cannot hear other nodes' heartbeats");
                return;
            };
            while let Some(message) = subscription.next().await {
                let Ok(beat) = Heartbeat::parse(&message.payload) else {
                    shared.status.count_skipped();
                    continue;
                };
                if beat.node_id == shared.node_id {
                    continue;
                }
                lock(&shared.status.peers).insert(
                    beat.node_id,
                    Peer {
                        node: beat.node,
                        started_at_ms: beat.started_at_ms,
                        last_seen: Instant::now(),
                    },
                );
            }
        }
    };
    spawn(&shared, listening);
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        every.tick().await;
        if shared.status.connected() {
            let _ = client
                .publish(shared.subjects.heartbeat(), payload.clone())
                .await;
        }
    }
}
