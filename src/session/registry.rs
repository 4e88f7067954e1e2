//! The registry of live sessions: who is publishing what, and the handle that ends it.
//!
//! Stream keys are secrets: a session only ever holds a [`RedactedKey`], built once from
//! the key the inspector saw, which carries a short prefix and a SHA-256 fingerprint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime};
use tokio::sync::Notify;

use crate::actions::AuditRecord;
use crate::stream::{RedactedKey, StreamId, VideoCodec};

/// Who ended a session: the `closer` of the "session closed" log line and the label of
/// `livegate_sessions_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    /// The publisher closed, reset, stalled, or sent what livegate refuses.
    Publisher,
    /// The origin closed, reset, stalled, or could not be reached.
    Origin,
    /// A verdict (a signal matched, or the key is banned or refused at `publish`).
    Policy,
    /// An operator, through the admin API.
    Operator,
    /// Analysis fell behind with `on_overload = "closed"`.
    Overload,
    /// livegate is shutting down.
    Shutdown,
    /// livegate itself failed.
    Internal,
}

impl Closer {
    pub const ALL: [Closer; 7] = [
        Closer::Publisher,
        Closer::Origin,
        Closer::Policy,
        Closer::Operator,
        Closer::Overload,
        Closer::Shutdown,
        Closer::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Closer::Publisher => "publisher",
            Closer::Origin => "origin",
            Closer::Policy => "policy",
            Closer::Operator => "operator",
            Closer::Overload => "overload",
            Closer::Shutdown => "shutdown",
            Closer::Internal => "internal",
        }
    }
}

/// How a session ended: the `kind` label of `livegate_sessions_closed_total`, so that
/// dashboards tell routine ends from refusals and cuts without parsing reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// The closer ended its connection (end of stream).
    Closed,
    /// A read or write failed (reset, broken pipe).
    Reset,
    /// The closer did not send, answer or read in time (handshake, publish, idle, write).
    Timeout,
    /// The origin could not be reached.
    Unreachable,
    /// Not the protocol the listener speaks (e.g. not an RTMP handshake).
    NotProtocol,
    /// The stream cannot be inspected and `on_parse_error = "cut"`.
    Uninspectable,
    /// Over a limit (`max_publisher_kbps`, bytes held behind an incomplete command).
    OverLimit,
    /// `publish` of a banned key.
    Banned,
    /// A `publish` refused for another reason (a second key on one connection).
    Rejected,
    /// A verdict cut the stream.
    PolicyCut,
    /// An operator cut the stream.
    OperatorCut,
    /// Analysis fell behind (`on_overload = "closed"`).
    OverloadCut,
    /// livegate shut down.
    Shutdown,
    /// livegate itself failed.
    Internal,
}

impl EndKind {
    pub const ALL: [EndKind; 14] = [
        EndKind::Closed,
        EndKind::Reset,
        EndKind::Timeout,
        EndKind::Unreachable,
        EndKind::NotProtocol,
        EndKind::Uninspectable,
        EndKind::OverLimit,
        EndKind::Banned,
        EndKind::Rejected,
        EndKind::PolicyCut,
        EndKind::OperatorCut,
        EndKind::OverloadCut,
        EndKind::Shutdown,
        EndKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndKind::Closed => "closed",
            EndKind::Reset => "reset",
            EndKind::Timeout => "timeout",
            EndKind::Unreachable => "unreachable",
            EndKind::NotProtocol => "not_protocol",
            EndKind::Uninspectable => "uninspectable",
            EndKind::OverLimit => "over_limit",
            EndKind::Banned => "banned",
            EndKind::Rejected => "rejected",
            EndKind::PolicyCut => "policy_cut",
            EndKind::OperatorCut => "operator_cut",
            EndKind::OverloadCut => "overload_cut",
            EndKind::Shutdown => "shutdown",
            EndKind::Internal => "internal",
        }
    }
}

/// Why a connection was refused at accept: the `reason` label of
/// `livegate_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener's `max_connections`.
    MaxConnections,
    /// The listener's `max_connections_per_client`.
    PerClient,
    /// A PROXY protocol header missing, untrusted or malformed (`proxy_protocol`).
    ProxyProtocol,
    /// An SRT caller's streamid missing, malformed, or not a publish (refused at the
    /// handshake).
    Streamid,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::MaxConnections,
        Refusal::PerClient,
        Refusal::ProxyProtocol,
        Refusal::Streamid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::PerClient => "per_client",
            Refusal::ProxyProtocol => "proxy_protocol",
            Refusal::Streamid => "streamid",
        }
    }
}

/// A request to end a session from outside its pumps: shutdown, a policy cut, a
/// manual cut.
#[derive(Debug, Clone, PartialEq)]
pub struct CutRequest {
    pub closer: Closer,
    pub kind: EndKind,
    pub reason: String,
    /// For a cut to audit: written by the relay once both sockets are closed.
    pub evidence: Option<Arc<CutEvidence>>,
}

/// The audit record of a cut, completed with the time to cut when the sockets close.
#[derive(Debug, Clone, PartialEq)]
pub struct CutEvidence {
    pub record: AuditRecord,
    /// When the decisive keyframe's first byte arrived (none for manual cuts).
    pub keyframe_arrived: Option<Instant>,
}

/// What the demuxer has learned about the stream.
#[derive(Debug, Clone, Default)]
pub struct StreamIdentity {
    pub app: Option<String>,
    pub key: Option<RedactedKey>,
    pub codec: Option<VideoCodec>,
    /// Picture size announced by the stream's `onMetaData`.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl StreamIdentity {
    /// Takes the size from `onMetaData` numbers, ignoring values no video has.
    pub fn set_dimensions(&mut self, width: Option<f64>, height: Option<f64>) {
        let pixels = |value: Option<f64>| {
            value
                .filter(|value| value.is_finite() && (1.0..=65_535.0).contains(value))
                .map(|value| value as u32)
        };
        self.width = pixels(width);
        self.height = pixels(height);
    }
}

/// One live session's shared state: written by its pumps, read by the registry's users.
#[derive(Debug)]
pub struct SessionState {
    pub id: StreamId,
    pub ingest: SocketAddr,
    pub client: SocketAddr,
    pub started_at: SystemTime,
    pub bytes_from_publisher: AtomicU64,
    pub bytes_from_origin: AtomicU64,
    pub keyframes_seen: AtomicU64,
    pub keyframes_analysed: AtomicU64,
    pub frames_seen: AtomicU64,
    /// Gate mode: the session's bytes wait for keyframe verdicts.
    pub gated: AtomicBool,
    /// Distance of the nearest list match of the latest matching keyframe;
    /// `NO_MATCH` until one matches.
    last_match_distance: AtomicU32,
    identity: Mutex<StreamIdentity>,
    cut_request: OnceLock<CutRequest>,
    cut_notify: Notify,
    /// The listener's protocol, set when the session opens.
    protocol: OnceLock<crate::config::Protocol>,
    /// An SRT session's two links, for their statistics.
    pub srt: crate::ingest::srt::SrtLinks,
}

impl SessionState {
    pub fn set_protocol(&self, protocol: crate::config::Protocol) {
        let _ = self.protocol.set(protocol);
    }

    pub fn protocol(&self) -> Option<crate::config::Protocol> {
        self.protocol.get().copied()
    }

    pub fn identity(&self) -> StreamIdentity {
        lock(&self.identity).clone()
    }

    pub fn update_identity(&self, update: impl FnOnce(&mut StreamIdentity)) {
        update(&mut lock(&self.identity));
    }

    /// Asks the session to end. The first request wins; later ones are ignored (and
    /// get `false`).
    pub fn request_cut(&self, request: CutRequest) -> bool {
        let first = self.cut_request.set(request).is_ok();
        if first {
            self.cut_notify.notify_one();
        }
        first
    }

    /// True once a cut has been requested: the session is closing.
    pub fn cut_pending(&self) -> bool {
        self.cut_request.get().is_some()
    }

    /// The cut requested so far, if any (without waiting).
    pub fn pending_cut(&self) -> Option<CutRequest> {
        self.cut_request.get().cloned()
    }

    /// Notes the distance of a keyframe's nearest list match.
    pub fn record_match_distance(&self, distance: u32) {
        self.last_match_distance.store(distance, Ordering::Relaxed);
    }

    /// The distance of the latest matching keyframe's nearest match, if any matched.
    pub fn last_match_distance(&self) -> Option<u32> {
        let distance = self.last_match_distance.load(Ordering::Relaxed);
        (distance != NO_MATCH).then_some(distance)
    }

    /// Resolves once a cut has been requested, with the request.
    pub async fn cut_requested(&self) -> CutRequest {
        loop {
            if let Some(request) = self.cut_request.get() {
                return request.clone();
            }
            self.cut_notify.notified().await;
        }
    }
}

const NO_MATCH: u32 = u32::MAX;

/// Poisoning only means another thread panicked mid-update of plain data; the data is
/// still usable, so the registry keeps serving rather than cascading the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// All live sessions, by id.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    next_id: AtomicU64,
    sessions: Mutex<HashMap<StreamId, Arc<SessionState>>>,
    /// Refused connections, indexed by [`Refusal`].
    refused: [AtomicU64; Refusal::ALL.len()],
    /// Bytes relayed by sessions that have ended, updated under the `sessions` lock so
    /// that [`SessionRegistry::bytes_relayed`] never counts a session twice or not at all.
    ended_bytes: Mutex<BytesRelayed>,
}

/// Bytes relayed in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BytesRelayed {
    pub publisher_to_origin: u64,
    pub origin_to_publisher: u64,
}

impl BytesRelayed {
    fn add(&mut self, state: &SessionState) {
        self.publisher_to_origin += state.bytes_from_publisher.load(Ordering::Relaxed);
        self.origin_to_publisher += state.bytes_from_origin.load(Ordering::Relaxed);
    }
}

/// Removes a session from the registry when its relay ends, however it ends.
pub struct Registration {
    registry: Arc<SessionRegistry>,
    pub state: Arc<SessionState>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sessions = lock(&self.registry.sessions);
        sessions.remove(&self.state.id);
        lock(&self.registry.ended_bytes).add(&self.state);
    }
}

impl SessionRegistry {
    pub fn register(self: &Arc<Self>, ingest: SocketAddr, client: SocketAddr) -> Registration {
        let id = StreamId::local(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let state = Arc::new(SessionState {
            id,
            ingest,
            client,
            started_at: SystemTime::now(),
            bytes_from_publisher: AtomicU64::new(0),
            bytes_from_origin: AtomicU64::new(0),
            keyframes_seen: AtomicU64::new(0),
            keyframes_analysed: AtomicU64::new(0),
            frames_seen: AtomicU64::new(0),
            gated: AtomicBool::new(false),
            last_match_distance: AtomicU32::new(NO_MATCH),
            identity: Mutex::new(StreamIdentity::default()),
            cut_request: OnceLock::new(),
            cut_notify: Notify::new(),
            protocol: OnceLock::new(),
            srt: Default::default(),
        });
        lock(&self.sessions).insert(id, Arc::clone(&state));
        Registration {
            registry: Arc::clone(self),
            state,
        }
    }

    pub fn get(&self, id: &StreamId) -> Option<Arc<SessionState>> {
        lock(&self.sessions).get(id).cloned()
    }

    /// A snapshot of the live sessions, ordered by id.
    pub fn list(&self) -> Vec<Arc<SessionState>> {
        let mut sessions: Vec<_> = lock(&self.sessions).values().cloned().collect();
        sessions.sort_by_key(|session| session.id);
        sessions
    }

    pub fn len(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn count_refused(&self, refusal: Refusal) {
        self.refused[refusal as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused for `refusal`.
    pub fn refused_for(&self, refusal: Refusal) -> u64 {
        self.refused[refusal as usize].load(Ordering::Relaxed)
    }

    /// Connections refused, whatever the reason.
    pub fn refused(&self) -> u64 {
        Refusal::ALL
            .iter()
            .map(|&refusal| self.refused_for(refusal))
            .sum()
    }

    /// Bytes relayed since start, by ended and live sessions alike (for counters that
    /// must never go down when a session ends).
    pub fn bytes_relayed(&self) -> BytesRelayed {
        let sessions = lock(&self.sessions);
        let mut total = *lock(&self.ended_bytes);
        for state in sessions.values() {
            total.add(state);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_removes_itself() {
        let registry = Arc::new(SessionRegistry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let first = registry.register(addr, addr);
        let second = registry.register(addr, addr);
        assert_ne!(first.state.id, second.state.id);
        assert_eq!(registry.len(), 2);
        drop(first);
        assert_eq!(registry.list().len(), 1);
        assert!(registry.get(&second.state.id).is_some());
    }

    #[test]
    fn bytes_relayed_keeps_counting_ended_sessions() {
        let registry = Arc::new(SessionRegistry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let first = registry.register(addr, addr);
        let second = registry.register(addr, addr);
        first
            .state
            .bytes_from_publisher
            .store(100, Ordering::Relaxed);
        first.state.bytes_from_origin.store(7, Ordering::Relaxed);
        second
            .state
            .bytes_from_publisher
            .store(20, Ordering::Relaxed);
        let before = registry.bytes_relayed();
        drop(first);
        assert_eq!(registry.bytes_relayed(), before);
        assert_eq!(
            before,
            BytesRelayed {
                publisher_to_origin: 120,
                origin_to_publisher: 7
            }
        );
    }

    #[test]
    fn dimensions_ignore_values_no_video_has() {
        let mut identity = StreamIdentity::default();
        identity.set_dimensions(Some(1280.0), Some(f64::NAN));
        assert_eq!((identity.width, identity.height), (Some(1280), None));
        identity.set_dimensions(Some(-1.0), Some(1e9));
        assert_eq!((identity.width, identity.height), (None, None));
    }

    #[tokio::test]
    async fn first_cut_request_wins() {
        let registry = Arc::new(SessionRegistry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let session = registry.register(addr, addr);
        let state = Arc::clone(&session.state);
        let waiter = tokio::spawn(async move { state.cut_requested().await });
        assert!(session.state.request_cut(CutRequest {
            closer: Closer::Shutdown,
            kind: EndKind::Shutdown,
            reason: "first".into(),
            evidence: None,
        }));
        assert!(session.state.cut_pending());
        assert!(!session.state.request_cut(CutRequest {
            closer: Closer::Policy,
            kind: EndKind::PolicyCut,
            reason: "second".into(),
            evidence: None,
        }));
        let request = waiter.await.expect("waiter");
        assert_eq!(request.closer, Closer::Shutdown);
        assert_eq!(request.reason, "first");
    }
}
