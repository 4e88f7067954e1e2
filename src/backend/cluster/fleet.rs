//! The operator's reach across the fleet, for the admin API: cut a stream that another
//! node serves, ask every node (cut a key everywhere, list every stream), and the
//! cluster's status. Requests are core NATS request/reply with
//! `cluster.request_timeout_ms`; they run on the admin server's tasks, never on a relay.
//!
//! The other half, [`Command`], is what this node is asked by others; the server's
//! command task answers it with the same code as the local API.

use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::outbox::Kind;
use super::wire::{CutKeyRequest, CutStreamRequest, FleetCommand, Reply};
use super::{Applied, PeerView, Shared};

/// How long a fleet-wide request waits for nodes it does not know of yet.
const GATHER_GRACE: Duration = Duration::from_millis(100);

/// A request from another node, with where to send the answer: an HTTP status and a
/// JSON body.
#[derive(Debug)]
pub enum Command {
    /// Cut one of this node's streams.
    CutStream {
        request: CutStreamRequest,
        reply: oneshot::Sender<(u16, serde_json::Value)>,
    },
    /// Cut this node's streams of a key (the asking node bans it).
    CutKey {
        request: CutKeyRequest,
        reply: oneshot::Sender<(u16, serde_json::Value)>,
    },
    /// List this node's streams.
    Streams {
        reply: oneshot::Sender<(u16, serde_json::Value)>,
    },
}

/// Why a request to the fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("the cluster is unreachable (NATS disconnected): try the node that serves it")]
    Unreachable,
    #[error("no node serves a stream with id {0:?}")]
    NoSuchNode(String),
    #[error("node {node_id} did not answer within {timeout:?}")]
    Timeout { node_id: String, timeout: Duration },
    #[error("NATS request failed: {0}")]
    Request(String),
    #[error("node {node_id} answered something that is not a reply: {message}")]
    BadReply { node_id: String, message: String },
}

/// Every node's answer to a fleet-wide request.
#[derive(Debug, Clone, Serialize)]
pub struct Gathered {
    pub replies: Vec<Reply>,
    /// Live peers (by heartbeat) that did not answer in time.
    pub unanswered: Vec<PeerView>,
}

/// `/v1/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    pub enabled: bool,
    pub node: String,
    pub node_id: String,
    pub prefix: String,
    pub servers: Vec<String>,
    pub connected: bool,
    /// Streams exist and this node applies what the fleet publishes.
    pub synced: bool,
    pub outbox: OutboxView,
    pub published: PublishedView,
    pub applied: AppliedView,
    /// Messages from the fleet this node could not apply (malformed, unknown list).
    pub skipped: u64,
    pub peers: Vec<PeerView>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxView {
    pub messages: usize,
    pub oldest_age_ms: u64,
    pub dropped: u64,
    /// Refused for good by JetStream (a full stream, an oversized message).
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishedView {
    pub bans: u64,
    pub hashes: u64,
    pub descriptors: u64,
    pub events: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppliedView {
    pub bans: u64,
    pub hashes: u64,
    pub descriptors: u64,
}

/// The admin API's handle on the fleet.
pub struct Fleet {
    client: async_nats::Client,
    shared: Arc<Shared>,
}

impl Fleet {
    pub(super) fn new(client: async_nats::Client, shared: Arc<Shared>) -> Self {
        Fleet { client, shared }
    }

    pub fn node(&self) -> &str {
        &self.shared.config.node
    }

    pub fn node_id(&self) -> &'static str {
        self.shared.node_id
    }

    pub fn status(&self) -> &super::ClusterStatus {
        &self.shared.status
    }

    /// Stops the link at shutdown: what the outbox holds is published first while NATS
    /// answers, for at most `grace`; what is left is logged.
    pub async fn shutdown(&self, grace: Duration) {
        let left = super::link::stop(&self.shared, &self.client, grace).await;
        if left > 0 {
            tracing::warn!(
                unpublished = left,
                "cluster: decisions not published at shutdown (NATS unreachable)"
            );
        }
    }

    /// Whether `/readyz` waits on NATS.
    pub fn ready_requires_cluster(&self) -> bool {
        self.shared.config.ready_requires_cluster
    }

    pub fn outbox_messages(&self) -> usize {
        self.shared.outbox.len()
    }

    pub fn outbox_oldest_age(&self) -> Duration {
        self.shared.outbox.oldest_age()
    }

    pub fn outbox_dropped(&self) -> u64 {
        self.shared.outbox.dropped()
    }

    pub fn outbox_refused(&self) -> u64 {
        self.shared.outbox.refused_count()
    }

    pub fn published(&self, kind: Kind) -> u64 {
        self.shared.outbox.published(kind)
    }

    pub fn view(&self) -> ClusterView {
        let status = &self.shared.status;
        let outbox = &self.shared.outbox;
        ClusterView {
            enabled: true,
            node: self.shared.config.node.clone(),
            node_id: self.shared.node_id.to_string(),
            prefix: self.shared.config.prefix.clone(),
            servers: self.shared.config.servers.clone(),
            connected: status.connected(),
            synced: status.synced.load(std::sync::atomic::Ordering::Relaxed),
            outbox: OutboxView {
                messages: outbox.len(),
                oldest_age_ms: outbox.oldest_age().as_millis() as u64,
                dropped: outbox.dropped(),
                refused: outbox.refused_count(),
            },
            published: PublishedView {
                bans: outbox.published(Kind::Ban),
                hashes: outbox.published(Kind::Hashes),
                descriptors: outbox.published(Kind::Descriptors),
                events: outbox.published(Kind::Event),
            },
            applied: AppliedView {
                bans: status.applied(Applied::Ban),
                hashes: status.applied(Applied::Hash),
                descriptors: status.applied(Applied::Descriptor),
            },
            skipped: status.skipped(),
            peers: status.live_peers(),
            last_error: super::lock(&status.last_error).clone(),
        }
    }

    fn timeout(&self) -> Duration {
        self.shared.config.request_timeout()
    }

    /// Asks the node that serves `stream` (`NODE_ID-SEQ`) to cut it.
    pub async fn cut_stream(
        &self,
        stream: &str,
        reason: &str,
        actor: &str,
    ) -> Result<Reply, FleetError> {
        let node_id = stream
            .rsplit_once('-')
            .map(|(node_id, _)| node_id)
            .filter(|node_id| super::config::is_subject_token(node_id))
            .ok_or_else(|| FleetError::NoSuchNode(stream.to_string()))?;
        if !self.shared.status.connected() {
            return Err(FleetError::Unreachable);
        }
        let request = CutStreamRequest {
            stream: stream.to_string(),
            reason: reason.to_string(),
            from: self.shared.config.node.clone(),
            actor: Some(actor.to_string()),
        };
        let payload =
            serde_json::to_vec(&request).map_err(|error| FleetError::Request(error.to_string()))?;
        let subject = self.shared.subjects.node_cut(node_id);
        let answer =
            tokio::time::timeout(self.timeout(), self.client.request(subject, payload.into()))
                .await
                .map_err(|_| FleetError::Timeout {
                    node_id: node_id.to_string(),
                    timeout: self.timeout(),
                })?;
        let message = answer.map_err(|error| match error.kind() {
            async_nats::RequestErrorKind::NoResponders => {
                FleetError::NoSuchNode(stream.to_string())
            }
            async_nats::RequestErrorKind::TimedOut => FleetError::Timeout {
                node_id: node_id.to_string(),
                timeout: self.timeout(),
            },
            _ => FleetError::Request(error.to_string()),
        })?;
        Reply::parse(&message.payload).map_err(|error| FleetError::BadReply {
            node_id: node_id.to_string(),
            message: error.to_string(),
        })
    }

    /// Asks every other node; returns when every live peer answered or the request
    /// timeout passed. This node's own answer is not included.
    pub async fn gather(
        &self,
        command: FleetCommand,
        body: &impl Serialize,
    ) -> Result<Gathered, FleetError> {
        if !self.shared.status.connected() {
            return Err(FleetError::Unreachable);
        }
        let payload =
            serde_json::to_vec(body).map_err(|error| FleetError::Request(error.to_string()))?;
        let inbox = self.client.new_inbox();
        let mut answers = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|error| FleetError::Request(error.to_string()))?;
        self.client
            .publish_with_reply(
                self.shared.subjects.fleet_command(command),
                inbox,
                payload.into(),
            )
            .await
            .map_err(|error| FleetError::Request(error.to_string()))?;
        let mut expected: Vec<PeerView> = self.shared.status.live_peers();
        let mut replies = Vec::new();
        let started = tokio::time::Instant::now();
        let deadline = started + self.timeout();
        // A node that joined within the last heartbeat is not a known peer yet: answers
        // are taken for a short while even once every known peer answered.
        let grace = started + GATHER_GRACE.min(self.timeout());
        while !expected.is_empty() || tokio::time::Instant::now() < grace {
            let until = if expected.is_empty() { grace } else { deadline };
            use futures_util::StreamExt;
            let Ok(Some(message)) = tokio::time::timeout_at(until, answers.next()).await else {
                break;
            };
            let Ok(reply) = Reply::parse(&message.payload) else {
                self.shared.status.count_skipped();
                continue;
            };
            if reply.node_id == self.shared.node_id {
                continue;
            }
            expected.retain(|peer| peer.node_id != reply.node_id);
            replies.push(reply);
        }
        Ok(Gathered {
            replies,
            unanswered: expected,
        })
    }
}
