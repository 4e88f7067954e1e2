//! The fleet backend: every node keeps the [`LocalBackend`]'s state in memory and shares
//! it through NATS JetStream, so a key banned on one node is refused on all of them,
//! hashes and descriptors learned or added anywhere are matched everywhere, every node's
//! audit records land on one stream, and an operator can cut a stream from any node.
//!
//! **Local first.** Every [`Backend`] call is answered from this node's memory and
//! returns at once: a ban or an addition is applied here, then queued in the
//! [`outbox::Outbox`] for the [`link`] to publish. A node therefore never waits on NATS
//! to cut or to admit; while NATS is unreachable it enforces what it knows plus its own
//! decisions, and publishes those when NATS is back.
//!
//! **Expiry without per-message TTL** (NATS 2.9): each ban carries its `expires_at`;
//! nodes ignore expired ones, and the bans stream's `max_age` removes them eventually.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use tracing::warn;

use super::{Backend, BanTarget, LocalBackend};
use crate::actions::AuditRecord;
use crate::signals::descriptor_lists::{
    AddedDescriptor, DescriptorAddReport, DescriptorListSetError,
};
use crate::signals::lists::{AddReport, AddedHash, ListSetError};
use crate::stream::node_id;

pub mod config;
pub mod fleet;
mod link;
pub mod outbox;
pub mod wire;

pub use config::ClusterConfig;
pub use fleet::{Command, Fleet, FleetError, Gathered};
pub use link::credentials;
use outbox::{Kind, Outbox};
use wire::{BanMessage, DescriptorsMessage, HashesMessage, Subjects};

/// Why the cluster backend could not start (NATS being unreachable is not one of them:
/// the node then runs on local state and connects later).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The I/O error is in the message, not a `source`: printed once.
    #[error("cannot read {path} (cluster.{key}): {error}")]
    Credentials {
        key: &'static str,
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    #[error("cluster.{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("cluster: cannot start the NATS client: {0}")]
    Client(String),
}

/// What this node has taken from the fleet, by kind: the `kind` label of
/// `livegate_cluster_applied_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Ban,
    Hash,
    Descriptor,
}

impl Applied {
    pub const ALL: [Applied; 3] = [Applied::Ban, Applied::Hash, Applied::Descriptor];

    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Ban => "ban",
            Applied::Hash => "hash",
            Applied::Descriptor => "descriptor",
        }
    }
}

/// Another node, as its heartbeats tell.
#[derive(Debug, Clone)]
struct Peer {
    node: String,
    started_at_ms: u64,
    last_seen: Instant,
}

/// A peer is listed while its last heartbeat is this recent.
const PEER_ALIVE: Duration = Duration::from_secs(5);

/// The link's view of the fleet, read by `/v1/cluster` and `/metrics`.
pub struct ClusterStatus {
    connected: AtomicBool,
    /// Whether the JetStream streams exist and the consumers run: until then additions
    /// from the fleet are not being applied.
    synced: AtomicBool,
    last_error: Mutex<Option<String>>,
    applied: [AtomicU64; 3],
    /// Messages from the fleet that were malformed or named a list this node lacks.
    skipped: AtomicU64,
    peers: Mutex<HashMap<String, Peer>>,
    /// From a decision on its node to applied here (bans, hashes, descriptors).
    apply_lag: Histogram,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClusterStatus {
    fn new() -> Self {
        ClusterStatus {
            connected: AtomicBool::new(false),
            synced: AtomicBool::new(false),
            last_error: Mutex::new(None),
            applied: Default::default(),
            skipped: AtomicU64::new(0),
            peers: Mutex::new(HashMap::new()),
            apply_lag: Histogram::new([
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0,
            ]),
        }
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn applied(&self, kind: Applied) -> u64 {
        self.applied[kind as usize].load(Ordering::Relaxed)
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    pub fn apply_lag(&self) -> &Histogram {
        &self.apply_lag
    }

    fn set_error(&self, error: impl Into<String>) {
        *lock(&self.last_error) = Some(error.into());
    }

    fn count_applied(&self, kind: Applied, count: usize, made_at_ms: u64) {
        self.applied[kind as usize].fetch_add(count as u64, Ordering::Relaxed);
        let now = wire::unix_ms(SystemTime::now());
        self.apply_lag
            .observe(now.saturating_sub(made_at_ms) as f64 / 1000.0);
    }

    fn count_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The live peers (heartbeat within [`PEER_ALIVE`]), by node id.
    fn live_peers(&self) -> Vec<PeerView> {
        let mut peers: Vec<PeerView> = lock(&self.peers)
            .iter()
            .filter(|(_, peer)| peer.last_seen.elapsed() < PEER_ALIVE)
            .map(|(node_id, peer)| PeerView {
                node: peer.node.clone(),
                node_id: node_id.clone(),
                last_seen_ms: peer.last_seen.elapsed().as_millis() as u64,
                started_at_ms: peer.started_at_ms,
            })
            .collect();
        peers.sort_by(|a, b| a.node.cmp(&b.node).then(a.node_id.cmp(&b.node_id)));
        peers
    }

    pub fn peer_count(&self) -> usize {
        self.live_peers().len()
    }
}

/// A live peer in `/v1/cluster`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PeerView {
    pub node: String,
    pub node_id: String,
    pub last_seen_ms: u64,
    pub started_at_ms: u64,
}

/// What the backend calls and the link share.
struct Shared {
    config: ClusterConfig,
    /// Counts the streams being declared again after a reconnection: the followers
    /// then check whether NATS lost them (and read the new ones from their start).
    resyncs: tokio::sync::watch::Sender<u64>,
    /// The link's tasks, stopped at shutdown.
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    subjects: Subjects,
    node_id: &'static str,
    outbox: Outbox,
    status: ClusterStatus,
    local: LocalBackend,
}

/// One node of a fleet.
pub struct ClusterBackend {
    shared: Arc<Shared>,
    fleet: Fleet,
}

impl ClusterBackend {
    /// Starts the NATS client and the link around `local` (this node's lists and audit
    /// trail); returns at once, connected or not, with the commands other nodes send
    /// this one (cut a stream, list streams) for the server to serve.
    pub async fn start(
        config: ClusterConfig,
        local: LocalBackend,
    ) -> Result<(ClusterBackend, tokio::sync::mpsc::Receiver<Command>), ClusterError> {
        let shared = Arc::new(Shared {
            resyncs: tokio::sync::watch::Sender::new(0),
            tasks: Mutex::new(Vec::new()),
            subjects: Subjects::new(&config.prefix),
            node_id: node_id(),
            outbox: Outbox::new(config.outbox_max_messages),
            status: ClusterStatus::new(),
            local,
            config,
        });
        let (client, commands) = link::start(Arc::clone(&shared)).await?;
        let fleet = Fleet::new(client, Arc::clone(&shared));
        Ok((ClusterBackend { shared, fleet }, commands))
    }

    fn queue(&self, kind: Kind, subject: String, message: &impl Serialize) {
        match serde_json::to_vec(message) {
            Ok(payload) => self.shared.outbox.push(kind, subject, Bytes::from(payload)),
            Err(error) => warn!(%error, "cluster: cannot encode a message for the fleet"),
        }
    }
}

impl Backend for ClusterBackend {
    fn ban(&self, target: &BanTarget, duration: Duration) {
        self.shared.local.ban(target, duration);
        let now = SystemTime::now();
        let ban = BanMessage::new(
            target,
            wire::unix_ms(now + duration),
            wire::unix_ms(now),
            &self.shared.config.node,
        );
        self.queue(Kind::Ban, self.shared.subjects.ban(target), &ban);
    }

    fn ban_remaining(&self, target: &BanTarget) -> Option<Duration> {
        self.shared.local.ban_remaining(target)
    }

    fn bans(&self) -> Vec<(BanTarget, Duration)> {
        self.shared.local.bans()
    }

    fn lift_ban(&self, target: &BanTarget) -> bool {
        let lifted = self.shared.local.lift_ban(target);
        // Replaces the target's ban in the stream (one message per subject), so nodes
        // that replay it later find the lift, not the ban.
        let lift = BanMessage::lift(
            target,
            wire::unix_ms(SystemTime::now()),
            &self.shared.config.node,
        );
        self.queue(Kind::Ban, self.shared.subjects.ban(target), &lift);
        lifted
    }

    fn add_hashes(&self, list: &str, hashes: &[AddedHash]) -> Result<AddReport, ListSetError> {
        let report = self.shared.local.add_hashes(list, hashes)?;
        for chunk in hashes.chunks(wire::HASHES_PER_MESSAGE) {
            let message = HashesMessage::new(list, &self.shared.config.node, chunk);
            self.queue(
                Kind::Hashes,
                self.shared.subjects.learned_hashes(list),
                &message,
            );
        }
        Ok(report)
    }

    fn add_descriptors(
        &self,
        list: &str,
        entries: &[AddedDescriptor],
    ) -> Result<DescriptorAddReport, DescriptorListSetError> {
        let report = self.shared.local.add_descriptors(list, entries)?;
        // A list exists, so the model does.
        let model = self.shared.local.descriptor_model().unwrap_or_default();
        for chunk in entries.chunks(wire::DESCRIPTORS_PER_MESSAGE) {
            let message = DescriptorsMessage::new(list, model, &self.shared.config.node, chunk);
            self.queue(
                Kind::Descriptors,
                self.shared.subjects.learned_descriptors(list),
                &message,
            );
        }
        Ok(report)
    }

    fn publish_audit(&self, record: &AuditRecord) {
        self.shared.local.publish_audit(record);
        /// An audit record with the name of the node that wrote it.
        #[derive(Serialize)]
        struct FleetRecord<'a> {
            node: &'a str,
            #[serde(flatten)]
            record: &'a AuditRecord,
        }
        let subject = self
            .shared
            .subjects
            .event(self.shared.node_id, record.event.as_str());
        self.queue(
            Kind::Event,
            subject,
            &FleetRecord {
                node: &self.shared.config.node,
                record,
            },
        );
    }

    fn recent_audit(&self) -> Vec<AuditRecord> {
        self.shared.local.recent_audit()
    }

    fn fleet(&self) -> Option<&Fleet> {
        Some(&self.fleet)
    }
}
