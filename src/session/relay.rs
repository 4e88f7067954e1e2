//! Per-connection session over any [`Transport`]: wait for the publisher's handshake
//! start (RTMP's C0 + C1, as the protocol's inspector says), dial the origin, then two
//! pumps copy bytes verbatim in each direction while the tap feeds a copy of the
//! publisher's bytes to the inspector.
//!
//! Each read from the publisher is parsed by the tap, then written to the origin: the
//! tap only parses and offers keyframes to the analysis pool (a push onto a bounded
//! queue, never a wait), so inspection adds parsing time to a read, not a queue — and a
//! banned key's `publish`, or bytes livegate cannot parse, never reach the origin.
//! Commands and other non-media messages (small, capped by `limits.max_command_bytes`)
//! are held from their first byte until the inspector has parsed them whole, so none of
//! an unparseable or refused command reaches the origin either; this is also where gate
//! mode (`mode = "gate"`, see `gate.rs`) holds each keyframe's bytes, and everything
//! after them, until its verdict: the pump then also wakes for the gate's answers and
//! timeouts, and a publisher that stops while bytes are held gets them delivered once
//! judged (within `max_hold_ms`). A session ends when either side
//! closes, a timeout fires (no handshake start, no `publish`, no bytes in either
//! direction, a write the other side does not take), the publisher exceeds
//! `max_publisher_kbps`, the stream cannot be parsed (with `on_parse_error = "cut"`),
//! its key is banned, or someone requests a cut (policy, operator, overload, shutdown);
//! ending drops both sockets at once. `closer` names the side that stopped — the one
//! that closed, did not read, or did not answer — and `kind` how.

use bytes::BytesMut;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

use super::held_bytes::HeldBytes;
use super::registry::{Closer, CutEvidence, CutRequest, EndKind, SessionRegistry, SessionState};
use super::tap::Tap;
use crate::analysis::Analysis;
use crate::config::IngestConfig;
use crate::ingest::inspect::{self, Inspector};
use crate::ingest::proxy_protocol;
use crate::ingest::tls::OriginTls;
use crate::ingest::transport::{self, DialError, Incoming, IncomingError, PeerClose, Transport};

/// Bytes read from a socket at a time; large enough for a video frame's worth of chunks
/// in a few reads, small enough that a thousand sessions stay cheap.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How and why a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEnd {
    pub closer: Closer,
    pub kind: EndKind,
    pub reason: String,
    /// A cut to audit once the sockets are closed.
    pub evidence: Option<Arc<CutEvidence>>,
}

impl SessionEnd {
    pub(super) fn new(closer: Closer, kind: EndKind, reason: impl Into<String>) -> Self {
        SessionEnd {
            closer,
            kind,
            reason: reason.into(),
            evidence: None,
        }
    }
}

impl From<CutRequest> for SessionEnd {
    fn from(request: CutRequest) -> Self {
        SessionEnd {
            closer: request.closer,
            kind: request.kind,
            reason: request.reason,
            evidence: request.evidence,
        }
    }
}

/// What every session shares: the registry and the analysis pool (with its actions).
pub struct Services {
    pub registry: Arc<SessionRegistry>,
    pub analysis: Arc<Analysis>,
    /// TLS to the origin, by the bound `listen` address of each ingest that has `origin_tls`.
    pub origin_tls: std::collections::HashMap<SocketAddr, Arc<OriginTls>>,
}

/// Relays one accepted publisher connection until it ends, then logs how it ended.
pub async fn run_session<P: Incoming>(
    publisher: P,
    client: SocketAddr,
    ingest: Arc<IngestConfig>,
    services: Arc<Services>,
) -> SessionEnd {
    let opened = OpenSession::new(&services, &ingest, client);
    let origin_tls = services.origin_tls.get(&ingest.listen).map(Arc::as_ref);
    let state = Arc::clone(&opened.registration.state);
    let end = relay(publisher, &ingest, origin_tls, &state, opened.tap).await;
    close_session(&services, &state, &opened.stream, end)
}

/// A session registered, with its analysis stream and its tap, before any relaying.
pub(super) struct OpenSession {
    pub registration: super::registry::Registration,
    pub stream: Arc<crate::analysis::StreamAnalysis>,
    pub tap: Tap,
}

impl OpenSession {
    pub fn new(services: &Services, ingest: &IngestConfig, client: SocketAddr) -> Self {
        let registration = services.registry.register(ingest.listen, client);
        let state = Arc::clone(&registration.state);
        state.set_protocol(ingest.protocol);
        info!(
            session = %state.id,
            %client,
            listen = %ingest.listen,
            origin = %ingest.origin,
            protocol = ingest.protocol.as_str(),
            "session opened"
        );
        let stream = services
            .analysis
            .open_stream(Arc::clone(&state), ingest.on_parse_error);
        let tap = Tap::new(
            inspect::for_ingest(ingest),
            ingest,
            Arc::clone(&state),
            Arc::clone(&stream),
            services,
        );
        OpenSession {
            registration,
            stream,
            tap,
        }
    }
}

/// Ends a session whose sockets are closed: analysis stops, a cut is audited, the end
/// is counted and logged.
pub(super) fn close_session(
    services: &Services,
    state: &SessionState,
    stream: &crate::analysis::StreamAnalysis,
    end: SessionEnd,
) -> SessionEnd {
    let closed_at = Instant::now();
    stream.end();
    let actions = services.analysis.actions();
    if let Some(evidence) = &end.evidence {
        actions.finish_cut(evidence, closed_at);
    }
    actions.telemetry().session_closed(end.closer, end.kind);
    log_close(state, &end);
    end
}

/// Once the sending side has gone during a stalled write, how long the last bytes get to
/// drain before the session ends (an origin's brief pause must not truncate a stream's end).
const SOURCE_GONE_GRACE: Duration = Duration::from_secs(1);
/// `max_publisher_kbps` is a publisher's average over windows of this length.
const BITRATE_WINDOW: Duration = Duration::from_secs(5);

async fn relay<P: Incoming>(
    publisher: P,
    ingest: &IngestConfig,
    origin_tls: Option<&OriginTls>,
    state: &Arc<SessionState>,
    tap: Tap,
) -> SessionEnd {
    let started = Instant::now();
    let Some(inspector) = tap.inspector() else {
        return SessionEnd::new(
            Closer::Internal,
            EndKind::Internal,
            "session started without an inspector",
        );
    };
    let handshake = Handshake::of(inspector);
    // The origin is dialled only for a publisher that starts the protocol's handshake:
    // idle or foreign sockets cost the origin nothing. A cut (shutdown) still ends the wait.
    let connected = tokio::select! {
        connected = connect(publisher, inspector, ingest, state.client) => connected,
        request = state.cut_requested() => return SessionEnd::from(request),
    };
    let (publisher, origin, handshake_start) = match connected {
        Ok(connected) => connected,
        Err(end) => return end,
    };
    let Some(origin_tls) = origin_tls else {
        let start = Start {
            started,
            handshake,
            handshake_start,
        };
        return relay_connected(publisher, origin, ingest, state, tap, start).await;
    };
    let secured = tokio::select! {
        secured = origin_tls.secure(origin, &ingest.origin, ingest.connect_timeout()) => secured,
        request = state.cut_requested() => return SessionEnd::from(request),
    };
    match secured {
        Ok(origin) => {
            let start = Start {
                started,
                handshake,
                handshake_start,
            };
            relay_connected(publisher, origin, ingest, state, tap, start).await
        }
        Err(error) => SessionEnd::new(Closer::Origin, dial_end_kind(&error), error.to_string()),
    }
}

/// Where a session stands once both sides are connected.
pub(super) struct Start {
    pub started: Instant,
    pub handshake: Handshake,
    /// The publisher's bytes read so far, to be observed and forwarded unchanged.
    pub handshake_start: BytesMut,
}

/// Relays between a connected publisher and origin, over whichever transports they use.
pub(super) async fn relay_connected<P: Transport, O: Transport>(
    publisher: P,
    origin: O,
    ingest: &IngestConfig,
    state: &Arc<SessionState>,
    tap: Tap,
    start: Start,
) -> SessionEnd {
    let Start {
        started,
        handshake,
        handshake_start,
    } = start;
    for side in [publisher.send_without_delay(), origin.send_without_delay()] {
        if let Err(error) = side {
            debug!(session = %state.id, %error, "cannot disable Nagle's algorithm");
        }
    }
    let activity = Activity::new(started);
    let (publisher_read, publisher_write) = publisher.into_halves();
    let (origin_read, origin_write) = origin.into_halves();
    let inbound = Inbound {
        publisher: publisher_read,
        origin: origin_write,
        pending: handshake_start,
        publish_deadline: started + ingest.publish_timeout(),
    };
    let watch = Watch {
        ingest,
        state,
        activity: &activity,
        handshake,
    };
    tokio::select! {
        end = pump_publisher_to_origin(inbound, tap, &watch) => end,
        end = pump_origin_to_publisher(origin_read, publisher_write, &watch) => end,
        end = idle_watch(&watch) => end,
        request = state.cut_requested() => SessionEnd::from(request),
    }
}

/// What the session knows of its protocol's handshake, for timeouts and blame.
#[derive(Clone, Copy)]
pub(super) struct Handshake {
    protocol: &'static str,
    /// Bytes the origin owes before the publisher can go on.
    origin_len: u64,
}

impl Handshake {
    pub(super) fn of(inspector: &dyn Inspector) -> Self {
        Handshake {
            protocol: inspector.protocol(),
            origin_len: inspector.origin_handshake_len(),
        }
    }
}

/// What the pumps and the idle watch share.
struct Watch<'a> {
    ingest: &'a IngestConfig,
    state: &'a SessionState,
    activity: &'a Activity,
    handshake: Handshake,
}

/// Sets the publisher's connection up (TLS: its handshake, within `handshake_timeout_ms`),
/// waits for its protocol's handshake start (again within `handshake_timeout_ms`), then
/// dials the origin (and sends it a PROXY header naming `client`, with
/// `origin_proxy_protocol`, before any TLS to it). Returns both and the bytes read so far
/// (to be observed and forwarded unchanged).
async fn connect<P: Incoming>(
    publisher: P,
    inspector: &dyn Inspector,
    ingest: &IngestConfig,
    client: SocketAddr,
) -> Result<(P::Stream, tokio::net::TcpStream, BytesMut), SessionEnd> {
    let mut publisher = publisher
        .establish(ingest.handshake_timeout())
        .await
        .map_err(|error| {
            let kind = match error {
                IncomingError::Closed => EndKind::Closed,
                IncomingError::NotTls { .. } | IncomingError::Handshake(_) => EndKind::NotProtocol,
                IncomingError::TimedOut { .. } => EndKind::Timeout,
                IncomingError::Reset(_) => EndKind::Reset,
            };
            SessionEnd::new(
                Closer::Publisher,
                kind,
                format!("{error} (origin not dialled)"),
            )
        })?;
    let handshake_start = read_handshake_start(&mut publisher, inspector, ingest).await?;
    let mut origin = transport::dial_tcp(&ingest.origin, ingest.connect_timeout())
        .await
        .map_err(|error| {
            SessionEnd::new(Closer::Origin, dial_end_kind(&error), error.to_string())
        })?;
    if let Some(version) = ingest.origin_proxy_protocol {
        proxy_protocol::send_header(&mut origin, version, client)
            .await
            .map_err(|error| {
                SessionEnd::new(
                    Closer::Origin,
                    EndKind::Reset,
                    format!("sending the origin a PROXY header: {error}"),
                )
            })?;
    }
    Ok((publisher, origin, handshake_start))
}

pub(super) fn dial_end_kind(error: &DialError) -> EndKind {
    match error {
        DialError::Unreachable { .. } | DialError::Tls { .. } => EndKind::Unreachable,
        DialError::TimedOut { .. } => EndKind::Timeout,
    }
}

async fn read_handshake_start(
    publisher: &mut (impl AsyncRead + Unpin),
    inspector: &dyn Inspector,
    ingest: &IngestConfig,
) -> Result<BytesMut, SessionEnd> {
    let needed = inspector.dial_after();
    let what = inspector.handshake_start();
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let read = async {
        while buffer.len() < needed {
            match publisher.read_buf(&mut buffer).await {
                Ok(0) => {
                    return Err(SessionEnd::new(
                        Closer::Publisher,
                        EndKind::Closed,
                        format!(
                            "publisher closed the connection after {} of the {needed} bytes of {what} (origin not dialled)",
                            buffer.len()
                        ),
                    ));
                }
                Ok(_) => {}
                Err(error) => {
                    return Err(SessionEnd::new(
                        Closer::Publisher,
                        EndKind::Reset,
                        format!("reading from publisher: {error}"),
                    ));
                }
            }
            if let Err(error) = inspector.check_start(&buffer) {
                return Err(SessionEnd::new(
                    Closer::Publisher,
                    EndKind::NotProtocol,
                    format!("{error}; origin not dialled"),
                ));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(ingest.handshake_timeout(), read).await {
        Ok(Ok(())) => Ok(buffer),
        Ok(Err(end)) => Err(end),
        Err(_) => Err(SessionEnd::new(
            Closer::Publisher,
            EndKind::Timeout,
            format!(
                "publisher sent {} of the {needed} bytes of {what} within {} ms (origin not dialled)",
                buffer.len(),
                ingest.handshake_timeout_ms
            ),
        )),
    }
}

/// When each side last sent bytes, in milliseconds since the session started: what the
/// idle watch reads. Each read costs one relaxed store.
struct Activity {
    started: Instant,
    publisher: AtomicU64,
    origin: AtomicU64,
}

impl Activity {
    fn new(started: Instant) -> Self {
        Activity {
            started,
            publisher: AtomicU64::new(0),
            origin: AtomicU64::new(0),
        }
    }

    fn mark(&self, side: &AtomicU64, now: Instant) {
        let since = now.saturating_duration_since(self.started).as_millis();
        side.store(since as u64, Ordering::Relaxed);
    }

    /// When either side last sent something.
    fn last(&self) -> Instant {
        let last = self
            .publisher
            .load(Ordering::Relaxed)
            .max(self.origin.load(Ordering::Relaxed));
        self.started + Duration::from_millis(last)
    }
}

impl Watch<'_> {
    /// How a session that reached `what` without progress ends, blaming the side it
    /// waits on. The publisher is the stream's source, so silence is its doing — except
    /// while the origin owes the rest of the handshake (RTMP's S0 + S1 + S2): the
    /// publisher has sent its handshake start (the origin is dialled only then) and
    /// cannot go on.
    fn stalled(&self, what: String) -> SessionEnd {
        let from_origin = self.state.bytes_from_origin.load(Ordering::Relaxed);
        let Handshake {
            protocol,
            origin_len,
        } = self.handshake;
        if from_origin < origin_len {
            return SessionEnd::new(
                Closer::Origin,
                EndKind::Timeout,
                format!(
                    "{what}: the origin did not answer the {protocol} handshake (sent {from_origin} of {origin_len} bytes)"
                ),
            );
        }
        SessionEnd::new(Closer::Publisher, EndKind::Timeout, what)
    }
}

/// Ends the session once no bytes have moved in either direction for `idle_timeout_ms`.
async fn idle_watch(watch: &Watch<'_>) -> SessionEnd {
    let ingest = watch.ingest;
    loop {
        let deadline = watch.activity.last() + ingest.idle_timeout();
        if Instant::now() >= deadline {
            return watch.stalled(format!(
                "no bytes in either direction for {} ms",
                ingest.idle_timeout_ms
            ));
        }
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// How the session ends after a read from `side` (`None`: it read bytes).
fn read_ended(side: Closer, read: std::io::Result<usize>) -> Option<SessionEnd> {
    let name = side.as_str();
    match read {
        Ok(0) => Some(SessionEnd::new(
            side,
            EndKind::Closed,
            format!("{name} closed the connection"),
        )),
        Ok(_) => None,
        Err(error) => Some(SessionEnd::new(
            side,
            EndKind::Reset,
            format!("reading from {name}: {error}"),
        )),
    }
}

/// Why forwarding bytes to one side did not complete.
enum WriteFailure {
    /// The write failed: the receiving side reset or closed.
    Failed(std::io::Error),
    /// The receiving side took nothing for `write_timeout_ms`.
    TimedOut,
    /// The sending side closed while the receiving side was not reading.
    SourceGone,
}

impl WriteFailure {
    /// How the session ends when a write to `receiver` did not complete; `sender` is the
    /// side the bytes came from.
    fn end(self, receiver: Closer, sender: Closer, write_timeout_ms: u64) -> SessionEnd {
        let (to, from) = (receiver.as_str(), sender.as_str());
        match self {
            WriteFailure::Failed(error) => SessionEnd::new(
                receiver,
                EndKind::Reset,
                format!("writing to {to}: {error}"),
            ),
            WriteFailure::TimedOut => SessionEnd::new(
                receiver,
                EndKind::Timeout,
                format!(
                    "{to} stopped reading: a write to it did not complete within {write_timeout_ms} ms (write_timeout_ms)"
                ),
            ),
            WriteFailure::SourceGone => SessionEnd::new(
                sender,
                EndKind::Closed,
                format!("{from} closed the connection while the {to} was not reading"),
            ),
        }
    }
}

/// Writes `bytes` to `to` within `limit`, ending early if `from` (the socket they came
/// from) closes while the write is stalled.
async fn forward(
    to: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    from: &impl PeerClose,
    limit: Duration,
) -> Result<(), WriteFailure> {
    let write = to.write_all(bytes);
    tokio::pin!(write);
    // Most writes complete at once: they cost no timer and no readiness check.
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    if let Poll::Ready(written) = first {
        return written.map_err(WriteFailure::Failed);
    }
    tokio::select! {
        biased;
        written = &mut write => return written.map_err(WriteFailure::Failed),
        () = tokio::time::sleep(limit) => return Err(WriteFailure::TimedOut),
        () = from.closed_by_peer() => {}
    }
    match tokio::time::timeout(SOURCE_GONE_GRACE, write).await {
        Ok(written) => written.map_err(WriteFailure::Failed),
        Err(_) => Err(WriteFailure::SourceGone),
    }
}

/// The publisher-to-origin direction: the sockets, the bytes read before the origin was
/// dialled (forwarded first), and the deadline for `publish`.
struct Inbound<R, W> {
    publisher: R,
    origin: W,
    pending: BytesMut,
    publish_deadline: Instant,
}

/// `max_publisher_kbps`: bytes per fixed window, checked on each read (one comparison
/// and, once per window, a reset).
struct BitrateCap {
    kbps: u64,
    budget: u64,
    window_start: Instant,
    window_bytes: u64,
}

impl BitrateCap {
    fn new(kbps: u64, now: Instant) -> Option<Self> {
        (kbps > 0).then(|| BitrateCap {
            kbps,
            // 1 kbit/s = 125 bytes/s.
            budget: kbps.saturating_mul(125 * BITRATE_WINDOW.as_secs()),
            window_start: now,
            window_bytes: 0,
        })
    }

    fn add(&mut self, bytes: usize, now: Instant) -> Result<(), SessionEnd> {
        if now.duration_since(self.window_start) >= BITRATE_WINDOW {
            self.window_start = now;
            self.window_bytes = 0;
        }
        self.window_bytes += bytes as u64;
        if self.window_bytes <= self.budget {
            return Ok(());
        }
        Err(SessionEnd::new(
            Closer::Publisher,
            EndKind::OverLimit,
            format!(
                "publisher exceeded max_publisher_kbps = {}: {} bytes within {} ms (at most {} per {} s)",
                self.kbps,
                self.window_bytes,
                now.duration_since(self.window_start).as_millis(),
                self.budget,
                BITRATE_WINDOW.as_secs()
            ),
        ))
    }
}

async fn pump_publisher_to_origin(
    inbound: Inbound<impl AsyncRead + PeerClose + Unpin, impl AsyncWrite + Unpin>,
    mut tap: Tap,
    watch: &Watch<'_>,
) -> SessionEnd {
    let Watch {
        ingest,
        state,
        activity,
        handshake,
    } = *watch;
    let Inbound {
        mut publisher,
        mut origin,
        pending: mut buffer,
        publish_deadline,
    } = inbound;
    let mut held = HeldBytes::new(0);
    let mut bitrate = BitrateCap::new(ingest.max_publisher_kbps, activity.started);
    loop {
        if buffer.is_empty() {
            if buffer.capacity() < READ_BUFFER_BYTES / 4 {
                buffer.reserve(READ_BUFFER_BYTES);
            }
            let read = async {
                if !tap.awaits_publish() {
                    return Some(publisher.read_buf(&mut buffer).await);
                }
                let read = publisher.read_buf(&mut buffer);
                tokio::time::timeout_at(publish_deadline.into(), read)
                    .await
                    .ok()
            };
            // Gate mode: an answer or a timeout may release held bytes between reads.
            let read = match tap.gate_wake() {
                None => read.await,
                Some(wake) => tokio::select! {
                    read = read => read,
                    () = wake => {
                        let mut out = Outbound { held: &mut held, origin: &mut origin, publisher: &publisher };
                        if let Err(end) = release(&mut out, &mut tap, watch).await {
                            return end;
                        }
                        continue;
                    }
                },
            };
            let Some(read) = read else {
                return watch.stalled(format!(
                    "no {} publish command within {} ms",
                    handshake.protocol, ingest.publish_timeout_ms
                ));
            };
            if let Some(end) = read_ended(Closer::Publisher, read) {
                let mut out = Outbound {
                    held: &mut held,
                    origin: &mut origin,
                    publisher: &publisher,
                };
                return deliver_judged(end, &mut out, &mut tap, watch).await;
            }
        }
        let now = Instant::now();
        activity.mark(&activity.publisher, now);
        let chunk = buffer.split().freeze();
        if let Some(bitrate) = bitrate.as_mut()
            && let Err(end) = bitrate.add(chunk.len(), now)
        {
            return end;
        }
        if let Err(end) = tap.observe(&chunk, now) {
            return end;
        }
        // A cut decided while this read was parsed (by a worker thread) wins before the
        // bytes go out: nothing of the publisher's reaches the origin after the decision.
        if let Some(request) = state.pending_cut() {
            return SessionEnd::from(request);
        }
        held.push(chunk);
        let mut out = Outbound {
            held: &mut held,
            origin: &mut origin,
            publisher: &publisher,
        };
        if let Err(end) = release(&mut out, &mut tap, watch).await {
            return end;
        }
    }
}

/// Where held publisher bytes go.
struct Outbound<'a, O, P> {
    held: &'a mut HeldBytes,
    origin: &'a mut O,
    publisher: &'a P,
}

/// Forwards every held byte the inspector and the gate let go, in order. Returns whether
/// the gate still holds bytes; an error ends the session (a cut, a full buffer, a write
/// that failed).
async fn release(
    out: &mut Outbound<'_, impl AsyncWrite + Unpin, impl PeerClose>,
    tap: &mut Tap,
    watch: &Watch<'_>,
) -> Result<bool, SessionEnd> {
    let Watch { ingest, state, .. } = *watch;
    // A cut decided meanwhile wins before any byte goes out.
    if let Some(request) = state.pending_cut() {
        return Err(SessionEnd::from(request));
    }
    let inspector_limit = tap.release_limit();
    let inspector_held = tap.read_end().saturating_sub(inspector_limit);
    if inspector_held > tap.max_held_bytes as u64 {
        return Err(SessionEnd::new(
            Closer::Publisher,
            EndKind::OverLimit,
            format!(
                "{inspector_held} bytes held behind an incomplete message, above limits.max_buffered_bytes"
            ),
        ));
    }
    let gate_limit = tap.gate_limit(Instant::now())?;
    let limit = gate_limit.map_or(inspector_limit, |gate| gate.min(inspector_limit));
    for piece in out.held.release_before(limit) {
        if let Err(failure) =
            forward(out.origin, &piece, out.publisher, ingest.write_timeout()).await
        {
            return Err(failure.end(Closer::Origin, Closer::Publisher, ingest.write_timeout_ms));
        }
        state
            .bytes_from_publisher
            .fetch_add(piece.len() as u64, Ordering::Relaxed);
    }
    Ok(gate_limit.is_some())
}

/// Gate mode, once the publisher stopped (`end`): bytes it sent before stopping still
/// go once judged — the gate answers or gives up within `max_hold_ms` — then the session
/// ends as `end` says. Without held bytes it ends at once.
async fn deliver_judged(
    end: SessionEnd,
    out: &mut Outbound<'_, impl AsyncWrite + Unpin, impl PeerClose>,
    tap: &mut Tap,
    watch: &Watch<'_>,
) -> SessionEnd {
    tap.finish_gate();
    loop {
        let Some(wake) = tap.gate_wake() else {
            return end;
        };
        match release(out, tap, watch).await {
            Ok(true) => wake.await,
            Ok(false) => return end,
            Err(cut) => return cut,
        }
    }
}

async fn pump_origin_to_publisher(
    mut origin: impl AsyncRead + PeerClose + Unpin,
    mut publisher: impl AsyncWrite + Unpin,
    watch: &Watch<'_>,
) -> SessionEnd {
    let Watch {
        ingest,
        state,
        activity,
        ..
    } = *watch;
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    loop {
        if buffer.capacity() - buffer.len() < READ_BUFFER_BYTES / 4 {
            buffer.reserve(READ_BUFFER_BYTES);
        }
        if let Some(end) = read_ended(Closer::Origin, origin.read_buf(&mut buffer).await) {
            return end;
        }
        activity.mark(&activity.origin, Instant::now());
        let chunk = buffer.split().freeze();
        if let Err(failure) = forward(&mut publisher, &chunk, &origin, ingest.write_timeout()).await
        {
            return failure.end(Closer::Publisher, Closer::Origin, ingest.write_timeout_ms);
        }
        state
            .bytes_from_origin
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

fn log_close(state: &SessionState, end: &SessionEnd) {
    let identity = state.identity();
    let key = identity
        .key
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let duration_ms = state
        .started_at
        .elapsed()
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    info!(
        session = %state.id,
        client = %state.client,
        closer = end.closer.as_str(),
        kind = end.kind.as_str(),
        reason = %end.reason,
        app = identity.app.as_deref().unwrap_or(""),
        %key,
        codec = identity.codec.map(|codec| format!("{codec:?}")).unwrap_or_default(),
        bytes_from_publisher = state.bytes_from_publisher.load(Ordering::Relaxed),
        bytes_from_origin = state.bytes_from_origin.load(Ordering::Relaxed),
        frames = state.frames_seen.load(Ordering::Relaxed),
        keyframes = state.keyframes_seen.load(Ordering::Relaxed),
        duration_ms,
        "session closed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitrate_cap_averages_over_its_window() {
        let start = Instant::now();
        assert!(BitrateCap::new(0, start).is_none(), "0 is off");
        // 800 kbit/s = 100 000 bytes/s = 500 000 bytes per 5 s window.
        let mut cap = BitrateCap::new(800, start).expect("a cap");
        let second = Duration::from_secs(1);
        for i in 0..5 {
            // A burst within the window's average passes.
            cap.add(100_000, start + second * i).expect("at the cap");
        }
        // A new window starts afresh.
        cap.add(400_000, start + second * 5).expect("new window");
        let end = cap
            .add(100_001, start + second * 6)
            .expect_err("over the window's budget");
        assert_eq!(end.closer, Closer::Publisher);
        assert!(
            end.reason.contains("max_publisher_kbps = 800"),
            "{}",
            end.reason
        );
    }
}
