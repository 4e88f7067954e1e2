//! Per-connection session: wait for the publisher's handshake start (C0 + C1), dial the
//! origin, then two pumps copy bytes verbatim in each direction while the tap feeds a
//! copy of the publisher's bytes to the demuxer.
//!
//! Each read from the publisher is parsed by the tap, then written to the origin: the
//! tap only parses and offers keyframes to the analysis pool (a push onto a bounded
//! queue, never a wait), so inspection adds parsing time to a read, not a queue — and a
//! banned key's `publish`, or bytes livegate cannot parse, never reach the origin.
//! Commands and other non-media messages (small, capped by `limits.max_command_bytes`)
//! are held from their first byte until the demuxer has parsed them whole, so none of
//! an unparseable or refused command reaches the origin either. A session ends when
//! either side closes, a timeout fires (no handshake start, no `publish`, no bytes in
//! either direction, a write the other side does not take), the publisher exceeds
//! `max_publisher_kbps`, the stream cannot be parsed (with `on_parse_error = "cut"`),
//! its key is banned, or someone requests a cut (policy, operator, shutdown); ending
//! drops both sockets at once. `closer` names the side that stopped: the one that
//! closed, did not read, or did not answer.

use bytes::BytesMut;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tracing::{debug, info, warn};

use crate::actuator::{Actuator, AuditEvent, AuditRecord};
use crate::analysis::{Analysis, StreamAnalysis, UninspectableReason};
use crate::config::{IngestConfig, OnParseError};
use crate::held_bytes::HeldBytes;
use crate::session::{Closer, CutEvidence, CutRequest, RedactedKey, SessionRegistry, SessionState};
use livegate_rtmp::{DemuxEvent, Demuxer, split_stream_key};

/// Bytes read from a socket at a time; large enough for a video frame's worth of chunks
/// in a few reads, small enough that a thousand sessions stay cheap.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How and why a session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEnd {
    pub closer: Closer,
    pub reason: String,
    /// A cut to audit once the sockets are closed.
    pub evidence: Option<Arc<CutEvidence>>,
}

impl SessionEnd {
    fn new(closer: Closer, reason: impl Into<String>) -> Self {
        SessionEnd {
            closer,
            reason: reason.into(),
            evidence: None,
        }
    }
}

impl From<CutRequest> for SessionEnd {
    fn from(request: CutRequest) -> Self {
        SessionEnd {
            closer: request.closer,
            reason: request.reason,
            evidence: request.evidence,
        }
    }
}

/// What every session shares: the registry and the analysis pool (with its actuator).
pub struct Services {
    pub registry: Arc<SessionRegistry>,
    pub analysis: Arc<Analysis>,
}

/// Relays one accepted publisher connection until it ends, then logs how it ended.
pub async fn run_session(
    publisher: TcpStream,
    client: SocketAddr,
    ingest: Arc<IngestConfig>,
    services: Arc<Services>,
) -> SessionEnd {
    let registration = services.registry.register(ingest.listen, client);
    let state = Arc::clone(&registration.state);
    info!(
        session = state.id,
        %client,
        listen = %ingest.listen,
        origin = %ingest.origin,
        "session opened"
    );
    let stream = services
        .analysis
        .open_stream(Arc::clone(&state), ingest.on_parse_error);
    let tap = Tap::new(&ingest, Arc::clone(&state), Arc::clone(&stream), &services);
    let end = relay(publisher, &ingest, &state, tap).await;
    // Both sockets are closed once `relay` returns.
    let closed_at = Instant::now();
    stream.end();
    if let Some(evidence) = &end.evidence {
        let mut record = evidence.record.clone();
        record.time_to_cut_ms = evidence
            .keyframe_arrived
            .map(|arrived| closed_at.duration_since(arrived).as_secs_f64() * 1000.0);
        services.analysis.stats.observations.record_cut(&record);
        services.analysis.actuator().record(record);
    }
    log_close(&state, &end);
    end
}

/// C0 (the version byte) and C1: what a publisher must send before the origin is dialled.
const HANDSHAKE_START_LEN: usize = 1 + 1536;
/// RTMP's C0 version byte; nginx-rtmp refuses any other (6 would be RTMPE).
const RTMP_VERSION: u8 = 3;
/// S0 + S1 + S2, the origin's side of the handshake: as long as the client's C0 + C1 + C2.
const ORIGIN_HANDSHAKE_LEN: u64 = livegate_rtmp::demux::HANDSHAKE_LEN;
/// How often a stalled write re-checks whether the side it forwards from has gone: that
/// socket usually holds unread bytes, so it stays readable and cannot simply be awaited.
const STALL_POLL: Duration = Duration::from_millis(100);
/// Once the sending side has gone during a stalled write, how long the last bytes get to
/// drain before the session ends (an origin's brief pause must not truncate a stream's end).
const SOURCE_GONE_GRACE: Duration = Duration::from_secs(1);
/// `max_publisher_kbps` is a publisher's average over windows of this length.
const BITRATE_WINDOW: Duration = Duration::from_secs(5);

async fn relay(
    mut publisher: TcpStream,
    ingest: &IngestConfig,
    state: &Arc<SessionState>,
    tap: Tap,
) -> SessionEnd {
    let started = Instant::now();
    // The origin is dialled only for a publisher that starts an RTMP handshake: idle or
    // non-RTMP sockets cost the origin nothing. A cut (shutdown) still ends the wait.
    let connected = tokio::select! {
        connected = connect(&mut publisher, ingest) => connected,
        request = state.cut_requested() => return SessionEnd::from(request),
    };
    let (origin, handshake_start) = match connected {
        Ok(connected) => connected,
        Err(end) => return end,
    };
    // Both directions carry small, latency-sensitive control messages (handshake,
    // commands, acks): Nagle's delay would show up as added latency.
    for socket in [&publisher, &origin] {
        if let Err(error) = socket.set_nodelay(true) {
            debug!(session = state.id, %error, "cannot set TCP_NODELAY");
        }
    }
    let activity = Activity::new(started);
    let (publisher_read, publisher_write) = publisher.into_split();
    let (origin_read, origin_write) = origin.into_split();
    let inbound = Inbound {
        publisher: publisher_read,
        origin: origin_write,
        pending: handshake_start,
        publish_deadline: started + ingest.publish_timeout(),
    };
    tokio::select! {
        end = pump_publisher_to_origin(inbound, tap, ingest, state, &activity) => end,
        end = pump_origin_to_publisher(origin_read, publisher_write, ingest, state, &activity) => end,
        end = idle_watch(ingest, state, &activity) => end,
        request = state.cut_requested() => SessionEnd::from(request),
    }
}

/// Waits for the publisher's C0 + C1, then dials the origin. Returns the origin and the
/// bytes read so far (to be observed and forwarded unchanged).
async fn connect(
    publisher: &mut TcpStream,
    ingest: &IngestConfig,
) -> Result<(TcpStream, BytesMut), SessionEnd> {
    let handshake_start = read_handshake_start(publisher, ingest).await?;
    let origin = dial_origin(ingest).await?;
    Ok((origin, handshake_start))
}

async fn read_handshake_start(
    publisher: &mut TcpStream,
    ingest: &IngestConfig,
) -> Result<BytesMut, SessionEnd> {
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let read = async {
        while buffer.len() < HANDSHAKE_START_LEN {
            match publisher.read_buf(&mut buffer).await {
                Ok(0) => {
                    return Err(SessionEnd::new(
                        Closer::Publisher,
                        format!(
                            "publisher closed the connection after {} of the {HANDSHAKE_START_LEN} bytes of C0 + C1 (origin not dialled)",
                            buffer.len()
                        ),
                    ));
                }
                Ok(_) => {}
                Err(error) => {
                    return Err(SessionEnd::new(
                        Closer::Publisher,
                        format!("reading from publisher: {error}"),
                    ));
                }
            }
            if buffer[0] != RTMP_VERSION {
                return Err(SessionEnd::new(
                    Closer::Publisher,
                    format!(
                        "not RTMP: first byte {:#04x} is not RTMP version 3 (C0); origin not dialled",
                        buffer[0]
                    ),
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
            format!(
                "publisher sent {} of the {HANDSHAKE_START_LEN} bytes of an RTMP handshake start (C0 + C1) within {} ms (origin not dialled)",
                buffer.len(),
                ingest.handshake_timeout_ms
            ),
        )),
    }
}

async fn dial_origin(ingest: &IngestConfig) -> Result<TcpStream, SessionEnd> {
    let origin = &ingest.origin;
    match tokio::time::timeout(
        ingest.connect_timeout(),
        TcpStream::connect(origin.as_str()),
    )
    .await
    {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(SessionEnd::new(
            Closer::Origin,
            format!("origin {origin} unreachable: {error}"),
        )),
        Err(_) => Err(SessionEnd::new(
            Closer::Origin,
            format!(
                "origin {origin} did not accept within {} ms",
                ingest.connect_timeout_ms
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

/// Who a silent session waits on. The publisher is the stream's source, so silence is
/// its doing — except while the origin owes the rest of the handshake (S0 + S1 + S2):
/// the publisher has sent C0 + C1 (the origin is dialled only then) and cannot go on.
fn silent_side(state: &SessionState) -> Option<Closer> {
    let from_origin = state.bytes_from_origin.load(Ordering::Relaxed);
    (from_origin < ORIGIN_HANDSHAKE_LEN).then_some(Closer::Origin)
}

/// How a session that reached `what` without progress ends, blaming the side it waits on.
fn stalled(state: &SessionState, what: String) -> SessionEnd {
    match silent_side(state) {
        Some(closer) => SessionEnd::new(
            closer,
            format!(
                "{what}: the origin did not answer the RTMP handshake (sent {} of {ORIGIN_HANDSHAKE_LEN} bytes)",
                state.bytes_from_origin.load(Ordering::Relaxed)
            ),
        ),
        None => SessionEnd::new(Closer::Publisher, what),
    }
}

/// Ends the session once no bytes have moved in either direction for `idle_timeout_ms`.
async fn idle_watch(
    ingest: &IngestConfig,
    state: &SessionState,
    activity: &Activity,
) -> SessionEnd {
    loop {
        let deadline = activity.last() + ingest.idle_timeout();
        if Instant::now() >= deadline {
            return stalled(
                state,
                format!(
                    "no bytes in either direction for {} ms",
                    ingest.idle_timeout_ms
                ),
            );
        }
        tokio::time::sleep_until(deadline.into()).await;
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
            WriteFailure::Failed(error) => {
                SessionEnd::new(receiver, format!("writing to {to}: {error}"))
            }
            WriteFailure::TimedOut => SessionEnd::new(
                receiver,
                format!(
                    "{to} stopped reading: a write to it did not complete within {write_timeout_ms} ms (write_timeout_ms)"
                ),
            ),
            WriteFailure::SourceGone => SessionEnd::new(
                sender,
                format!("{from} closed the connection while the {to} was not reading"),
            ),
        }
    }
}

/// Writes `bytes` to `to` within `limit`, ending early if `from` (the socket they came
/// from) closes while the write is stalled.
async fn forward(
    to: &mut OwnedWriteHalf,
    bytes: &[u8],
    from: &OwnedReadHalf,
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
        () = closed_by_peer(from) => {}
    }
    match tokio::time::timeout(SOURCE_GONE_GRACE, write).await {
        Ok(written) => written.map_err(WriteFailure::Failed),
        Err(_) => Err(WriteFailure::SourceGone),
    }
}

/// Resolves once the peer of `socket` has closed or reset it. A FIN or RST queued behind
/// unread bytes that fill the receive window cannot be seen: `write_timeout_ms` bounds
/// that case.
async fn closed_by_peer(socket: &OwnedReadHalf) {
    loop {
        match socket.ready(Interest::READABLE).await {
            Ok(ready) if !ready.is_read_closed() => tokio::time::sleep(STALL_POLL).await,
            _ => return,
        }
    }
}

/// The publisher-to-origin direction: the sockets, the bytes read before the origin was
/// dialled (forwarded first), and the deadline for `publish`.
struct Inbound {
    publisher: OwnedReadHalf,
    origin: OwnedWriteHalf,
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
    inbound: Inbound,
    mut tap: Tap,
    ingest: &IngestConfig,
    state: &SessionState,
    activity: &Activity,
) -> SessionEnd {
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
            let read = if tap.awaits_publish() {
                let read = publisher.read_buf(&mut buffer);
                match tokio::time::timeout_at(publish_deadline.into(), read).await {
                    Ok(read) => read,
                    Err(_) => {
                        return stalled(
                            state,
                            format!(
                                "no RTMP publish command within {} ms",
                                ingest.publish_timeout_ms
                            ),
                        );
                    }
                }
            } else {
                publisher.read_buf(&mut buffer).await
            };
            match read {
                Ok(0) => {
                    return SessionEnd::new(Closer::Publisher, "publisher closed the connection");
                }
                Ok(_) => {}
                Err(error) => {
                    return SessionEnd::new(
                        Closer::Publisher,
                        format!("reading from publisher: {error}"),
                    );
                }
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
        if held.len() > tap.max_held_bytes {
            return SessionEnd::new(
                Closer::Publisher,
                format!(
                    "{} bytes held behind an incomplete command message, above limits.max_buffered_bytes",
                    held.len()
                ),
            );
        }
        for piece in held.release_before(tap.release_limit()) {
            if let Err(failure) =
                forward(&mut origin, &piece, &publisher, ingest.write_timeout()).await
            {
                return failure.end(Closer::Origin, Closer::Publisher, ingest.write_timeout_ms);
            }
            state
                .bytes_from_publisher
                .fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
    }
}

async fn pump_origin_to_publisher(
    mut origin: OwnedReadHalf,
    mut publisher: OwnedWriteHalf,
    ingest: &IngestConfig,
    state: &SessionState,
    activity: &Activity,
) -> SessionEnd {
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    loop {
        if buffer.capacity() - buffer.len() < READ_BUFFER_BYTES / 4 {
            buffer.reserve(READ_BUFFER_BYTES);
        }
        match origin.read_buf(&mut buffer).await {
            Ok(0) => return SessionEnd::new(Closer::Origin, "origin closed the connection"),
            Ok(_) => {}
            Err(error) => {
                return SessionEnd::new(Closer::Origin, format!("reading from origin: {error}"));
            }
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

/// Reads remembered to map a frame's stream offset back to its arrival time: enough
/// for a keyframe spread over many reads.
const ARRIVALS_KEPT: usize = 512;

/// The passive observer of the publisher's bytes.
struct Tap {
    /// `None` once the stream proved unparseable under `on_parse_error = "pass"`.
    demuxer: Option<Demuxer>,
    events: Vec<DemuxEvent>,
    on_parse_error: OnParseError,
    published: bool,
    state: Arc<SessionState>,
    stream: Arc<StreamAnalysis>,
    actuator: Arc<Actuator>,
    /// Stream offset just past each recent read, with when that read completed.
    arrivals: VecDeque<(u64, Instant)>,
    offset: u64,
    /// Most bytes held back behind an incomplete command before the session ends.
    max_held_bytes: usize,
    /// When the read being observed completed.
    read_at: Instant,
    /// Since when video has flowed without a keyframe (`None`: none yet, or a keyframe
    /// was the last).
    keyframe_gap_since: Option<Instant>,
    max_keyframe_interval: Duration,
}

impl Tap {
    fn new(
        ingest: &IngestConfig,
        state: Arc<SessionState>,
        stream: Arc<StreamAnalysis>,
        services: &Services,
    ) -> Self {
        Tap {
            demuxer: Some(Demuxer::new(ingest.demux_limits())),
            events: Vec::new(),
            on_parse_error: ingest.on_parse_error,
            published: false,
            state,
            stream,
            actuator: Arc::clone(services.analysis.actuator()),
            arrivals: VecDeque::with_capacity(ARRIVALS_KEPT),
            offset: 0,
            max_held_bytes: ingest.limits.max_buffered_bytes,
            read_at: Instant::now(),
            keyframe_gap_since: None,
            max_keyframe_interval: ingest.max_keyframe_interval(),
        }
    }

    /// Stream offset before which every byte read may go to the origin: all of them,
    /// except from the start of a command the demuxer has not yet parsed.
    fn release_limit(&self) -> u64 {
        self.demuxer
            .as_ref()
            .and_then(Demuxer::held_from)
            .unwrap_or(self.offset)
    }

    /// True while the publish deadline applies: the stream is inspected and has not
    /// yet sent `publish`.
    fn awaits_publish(&self) -> bool {
        self.demuxer.is_some() && !self.published
    }

    /// When the byte at `offset` arrived (the oldest remembered read if it is older).
    fn arrival_of(&self, offset: u64) -> Instant {
        let index = self.arrivals.partition_point(|(end, _)| *end <= offset);
        self.arrivals
            .get(index)
            .or(self.arrivals.front())
            .map_or_else(Instant::now, |(_, arrived)| *arrived)
    }

    /// Parses bytes read from the publisher, before they are forwarded. An error ends
    /// the session: the stream cannot be inspected (`on_parse_error = "cut"`), or its
    /// key is banned.
    fn observe(&mut self, bytes: &[u8], now: Instant) -> Result<(), SessionEnd> {
        self.read_at = now;
        self.offset += bytes.len() as u64;
        if self.arrivals.len() == ARRIVALS_KEPT {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((self.offset, now));
        let Some(demuxer) = self.demuxer.as_mut() else {
            return Ok(());
        };
        let parsed = demuxer
            .feed(bytes, &mut self.events)
            .map_err(|error| (UninspectableReason::Unparseable, error.to_string()));
        let mut events = std::mem::take(&mut self.events);
        let mut uninspectable = parsed.err();
        for event in events.drain(..) {
            match self.handle(event) {
                Ok(()) => {}
                Err(EventProblem::Uninspectable(reason, why)) => {
                    uninspectable.get_or_insert((reason, why));
                }
                Err(EventProblem::End(end)) => return Err(end),
            }
        }
        self.events = events;
        let Some((reason, why)) = uninspectable else {
            return Ok(());
        };
        self.stream.count_uninspectable(reason);
        match self.on_parse_error {
            OnParseError::Pass => {
                warn!(
                    session = self.state.id,
                    error = %why,
                    "stream cannot be inspected; relaying it uninspected (on_parse_error = \"pass\")"
                );
                self.demuxer = None;
                Ok(())
            }
            OnParseError::Cut => Err(SessionEnd::new(
                Closer::Publisher,
                format!("stream cannot be inspected (on_parse_error = \"cut\"): {why}"),
            )),
        }
    }

    /// Records what an event tells about the stream and hands keyframes to analysis.
    fn handle(&mut self, event: DemuxEvent) -> Result<(), EventProblem> {
        let state = &self.state;
        match event {
            DemuxEvent::Connect { app, tc_url, .. } => {
                debug!(session = state.id, %app, tc_url = tc_url.as_deref().unwrap_or(""), "connect");
                state.update_identity(|identity| identity.app = Some(app));
            }
            DemuxEvent::Publish { stream_key, .. } => {
                // The key alone identifies the stream (as nginx-rtmp's `name`): a
                // `?query` (often a token) must neither be logged nor let a banned key
                // back in under a new query.
                let (key, _query) = split_stream_key(&stream_key);
                let key = RedactedKey::new(key);
                self.published = true;
                let identity = state.identity();
                let app = identity.app.as_deref().unwrap_or("");
                info!(session = state.id, app, %key, "publish");
                // Every publish is admitted, not just the first: after closeStream or
                // deleteStream a connection may publish again, and the origin takes it.
                // One connection carries one stream key: bans, allowlists, the audit and
                // analysis all hang on it.
                if let Some(admitted) = &identity.key
                    && admitted.fingerprint() != key.fingerprint()
                {
                    let reason = format!(
                        "publish of stream key {key} on a connection already publishing {admitted}: one stream key per connection"
                    );
                    return Err(self.reject(app, &key, reason));
                }
                state.update_identity(|identity| identity.key = Some(key.clone()));
                if let Some(remaining) = self.actuator.ban_remaining(key.fingerprint()) {
                    let reason = format!(
                        "stream key {key} is banned for {} more seconds",
                        remaining.as_secs().max(1)
                    );
                    return Err(self.reject(app, &key, reason));
                }
            }
            DemuxEvent::VideoConfig { codec, extradata } => {
                debug!(
                    session = state.id,
                    ?codec,
                    extradata_bytes = extradata.len(),
                    "video config"
                );
                state.update_identity(|identity| identity.codec = Some(codec));
                self.stream.set_codec(codec, extradata);
            }
            DemuxEvent::VideoFrame(frame) => {
                state.frames_seen.fetch_add(1, Ordering::Relaxed);
                if frame.keyframe {
                    state.keyframes_seen.fetch_add(1, Ordering::Relaxed);
                    self.keyframe_gap_since = None;
                    let arrived = self.arrival_of(frame.start_offset);
                    self.stream.offer_keyframe(frame, arrived);
                } else {
                    let since = *self.keyframe_gap_since.get_or_insert(self.read_at);
                    if self.read_at.duration_since(since) > self.max_keyframe_interval {
                        return Err(EventProblem::Uninspectable(
                            UninspectableReason::NoKeyframe,
                            format!(
                                "video without a keyframe for more than {} ms (max_keyframe_interval_ms): livegate inspects keyframes",
                                self.max_keyframe_interval.as_millis()
                            ),
                        ));
                    }
                }
            }
            DemuxEvent::Metadata(metadata) => {
                debug!(
                    session = state.id,
                    width = metadata.width,
                    height = metadata.height,
                    framerate = metadata.framerate,
                    encoder = metadata.encoder.as_deref().unwrap_or(""),
                    "metadata"
                );
                state.update_identity(|identity| {
                    identity.set_dimensions(metadata.width, metadata.height);
                });
            }
            DemuxEvent::UnsupportedVideo { description } => {
                return Err(EventProblem::Uninspectable(
                    UninspectableReason::UnsupportedVideo,
                    format!("unsupported video: {description}"),
                ));
            }
        }
        Ok(())
    }
}

impl Tap {
    /// Refuses a `publish` before it reaches the origin, with a `rejected` audit record.
    fn reject(&self, app: &str, key: &RedactedKey, reason: String) -> EventProblem {
        let mut record = AuditRecord::now(AuditEvent::Rejected, self.state.id, reason.clone());
        record.app = app.to_string();
        record.key_fingerprint = Some(key.fingerprint().to_string());
        record.client = self.state.client.to_string();
        self.actuator.record(record);
        EventProblem::End(SessionEnd::new(Closer::Policy, reason))
    }
}

/// Why an event stops the stream being relayed as it is.
enum EventProblem {
    /// Video livegate cannot inspect: `on_parse_error` decides.
    Uninspectable(UninspectableReason, String),
    /// The session must end, whatever the config.
    End(SessionEnd),
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
        session = state.id,
        client = %state.client,
        closer = end.closer.as_str(),
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
