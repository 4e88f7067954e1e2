//! Node-shared state behind one trait: key bans, hashes and descriptors added to lists
//! (learned from a cut or added through the API), audit events, and cutting a stream that may live on
//! another node. [`local::LocalBackend`] is one process on its own;
//! [`cluster::ClusterBackend`] (`[cluster]`) shares the same state across a fleet through
//! NATS JetStream.
//!
//! Every method is synchronous and must never block a relay task: bans and lookups are
//! answered from memory, which the cluster implementation keeps current from its
//! subscriptions, and what it must tell the fleet is queued, never awaited. Requests
//! that need another node's answer go through [`Backend::fleet`], off the relay.

use std::net::IpAddr;
use std::time::Duration;

use crate::actions::AuditRecord;
use crate::signals::descriptor_lists::{
    AddedDescriptor, DescriptorAddReport, DescriptorListSetError,
};
use crate::signals::lists::{AddReport, AddedHash, ListSetError};

pub mod cluster;
pub mod local;

pub use cluster::{ClusterBackend, Fleet};
pub use local::LocalBackend;

/// What a ban refuses at `publish`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BanTarget {
    /// A stream key, by its fingerprint.
    Key(String),
    /// A client address: IPv4 as is, IPv6 by /64 (one host usually holds a whole /64).
    Client(IpAddr),
}

impl BanTarget {
    pub fn key(fingerprint: &str) -> Self {
        BanTarget::Key(fingerprint.to_string())
    }

    pub fn client(address: IpAddr) -> Self {
        BanTarget::Client(crate::session::client_of(address))
    }
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Key(fingerprint) => write!(f, "stream key #{fingerprint}"),
            BanTarget::Client(address) => write!(f, "client {address}"),
        }
    }
}

/// State every node of a fleet must agree on.
pub trait Backend: Send + Sync {
    /// Refuses `target`'s `publish` for `duration` from now. Cluster: applied at once
    /// locally, then published asynchronously to the other nodes.
    fn ban(&self, target: &BanTarget, duration: Duration);

    /// How long `target` stays banned; `None` when it may publish. Called on the relay
    /// at each `publish`: answered from memory.
    fn ban_remaining(&self, target: &BanTarget) -> Option<Duration>;

    /// The bans in force on this node, with what is left of each.
    fn bans(&self) -> Vec<(BanTarget, Duration)>;

    /// Lifts `target`'s ban (an operator's remedy for a mistaken cut); true when it was
    /// banned here. Cluster: lifted here at once, then on every node (and for nodes that
    /// join later) through the bans stream, whether or not this node held the ban.
    fn lift_ban(&self, target: &BanTarget) -> bool;

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

    /// The other nodes of the fleet (cut a stream another node serves, ask them all);
    /// `None` for a node on its own.
    fn fleet(&self) -> Option<&Fleet>;
}
