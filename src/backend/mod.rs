//! Node-shared state behind one trait: key bans, hashes and descriptors added to lists
//! (learned from a cut or added through the API), audit events, and cutting a stream that may live on
//! another node. [`local::LocalBackend`] is today's in-process behaviour; a cluster
//! implementation (NATS JetStream, a later issue) shares the same calls across nodes.
//!
//! Every method is synchronous and must never block a relay task: bans and lookups are
//! answered from memory, which a cluster implementation keeps current from its
//! subscriptions. Calls that a cluster implementation will complete asynchronously
//! (publish and forget, or a request with a reply) are marked so; their callers already
//! treat them as fire-and-forget or run them off the relay.

use std::time::Duration;

use crate::actions::AuditRecord;
use crate::signals::descriptor_lists::{
    AddedDescriptor, DescriptorAddReport, DescriptorListSetError,
};
use crate::signals::lists::{AddReport, AddedHash, ListSetError};

pub mod local;

pub use local::LocalBackend;

/// Why a cut of a stream not served here failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteCutError {
    /// No node serves a stream with this id.
    #[error("no live stream with id {0:?}")]
    NotFound(String),
}

/// State every node of a fleet must agree on.
pub trait Backend: Send + Sync {
    /// Refuses `fingerprint`'s `publish` for `duration` from now. Cluster: applied at once
    /// locally, then published asynchronously to the other nodes.
    fn ban(&self, fingerprint: &str, duration: Duration);

    /// How long `fingerprint` stays banned; `None` when it may publish. Called on the
    /// relay at each `publish`: answered from memory.
    fn ban_remaining(&self, fingerprint: &str) -> Option<Duration>;

    /// Adds hashes to the list `list` (a learned cut stream, or the admin API). Rebuilds
    /// an index: call it off the relay and off analysis workers. Cluster: applied
    /// locally, then published asynchronously for the other nodes to apply.
    fn add_hashes(&self, list: &str, hashes: &[AddedHash]) -> Result<AddReport, ListSetError>;

    /// Adds descriptors to the descriptor list `list` (a learned cut stream, or the admin
    /// API); near-duplicates of what it holds are skipped. Scans the list: call it off the
    /// relay and off analysis workers. Cluster: applied locally, then published
    /// asynchronously for the other nodes to apply.
    fn add_descriptors(
        &self,
        list: &str,
        entries: &[AddedDescriptor],
    ) -> Result<DescriptorAddReport, DescriptorListSetError>;

    /// Stores an audit record. Cluster: also published asynchronously to the fleet's
    /// event stream.
    fn publish_audit(&self, record: &AuditRecord);

    /// The latest audit records, oldest first.
    fn recent_audit(&self) -> Vec<AuditRecord>;

    /// Asks the node serving the stream with id `stream` (as written, `NODE-SEQ`) to cut
    /// it; for an id not served here. Cluster: a request with a reply, to be awaited off
    /// the relay.
    fn cut_remote(&self, stream: &str, reason: &str) -> Result<(), RemoteCutError>;
}
