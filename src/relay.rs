//! Per-connection session: dial the origin, then two pumps copy bytes verbatim in each
//! direction while the tap feeds a copy of the publisher's bytes to the demuxer.
//!
//! Each read from the publisher is parsed by the tap, then written to the origin: the
//! tap only parses and offers keyframes to the analysis pool (a push onto a bounded
//! queue, never a wait), so inspection adds parsing time to a read, not a queue — and a
//! banned key's `publish`, or bytes livegate cannot parse, never reach the origin. A
//! session ends when either side closes, a timeout fires, the stream cannot be parsed
//! (with `on_parse_error = "cut"`), its key is banned, or someone requests a cut (policy,
//! operator, shutdown); ending drops both sockets at once.

use bytes::BytesMut;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tracing::{debug, info, warn};

use crate::actuator::{Actuator, AuditEvent, AuditRecord};
use crate::analysis::{Analysis, StreamAnalysis};
use crate::config::{IngestConfig, OnParseError};
use crate::ingest::rtmp::{DemuxEvent, Demuxer, split_stream_key};
use crate::session::{Closer, CutEvidence, CutRequest, RedactedKey, SessionRegistry, SessionState};

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
    let stream = services.analysis.open_stream(Arc::clone(&state));
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

async fn relay(
    publisher: TcpStream,
    ingest: &IngestConfig,
    state: &Arc<SessionState>,
    tap: Tap,
) -> SessionEnd {
    let origin = match dial_origin(ingest).await {
        Ok(origin) => origin,
        Err(end) => return end,
    };
    // Both directions carry small, latency-sensitive control messages (handshake,
    // commands, acks): Nagle's delay would show up as added latency.
    for socket in [&publisher, &origin] {
        if let Err(error) = socket.set_nodelay(true) {
            debug!(session = state.id, %error, "cannot set TCP_NODELAY");
        }
    }
    let (publisher_read, publisher_write) = publisher.into_split();
    let (origin_read, origin_write) = origin.into_split();
    tokio::select! {
        end = pump_publisher_to_origin(publisher_read, origin_write, tap, ingest, state) => end,
        end = pump_origin_to_publisher(origin_read, publisher_write, state) => end,
        request = state.cut_requested() => SessionEnd::from(request),
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

async fn pump_publisher_to_origin(
    mut publisher: OwnedReadHalf,
    mut origin: OwnedWriteHalf,
    mut tap: Tap,
    ingest: &IngestConfig,
    state: &SessionState,
) -> SessionEnd {
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let publish_deadline = Instant::now() + ingest.publish_timeout();
    loop {
        let (wait, waiting_for_publish) = if tap.awaits_publish() {
            let left = publish_deadline.saturating_duration_since(Instant::now());
            (
                left.min(ingest.idle_timeout()),
                left <= ingest.idle_timeout(),
            )
        } else {
            (ingest.idle_timeout(), false)
        };
        if buffer.capacity() - buffer.len() < READ_BUFFER_BYTES / 4 {
            buffer.reserve(READ_BUFFER_BYTES);
        }
        let read = match tokio::time::timeout(wait, publisher.read_buf(&mut buffer)).await {
            Ok(read) => read,
            Err(_) if waiting_for_publish => {
                return SessionEnd::new(
                    Closer::Publisher,
                    format!(
                        "no RTMP publish command within {} ms",
                        ingest.publish_timeout_ms
                    ),
                );
            }
            Err(_) => {
                return SessionEnd::new(
                    Closer::Publisher,
                    format!("publisher idle for {} ms", ingest.idle_timeout_ms),
                );
            }
        };
        match read {
            Ok(0) => return SessionEnd::new(Closer::Publisher, "publisher closed the connection"),
            Ok(_) => {}
            Err(error) => {
                return SessionEnd::new(
                    Closer::Publisher,
                    format!("reading from publisher: {error}"),
                );
            }
        }
        let chunk = buffer.split().freeze();
        if let Err(end) = tap.observe(&chunk, Instant::now()) {
            return end;
        }
        // A cut decided while this read was parsed (by a worker thread) wins before the
        // bytes go out: nothing of the publisher's reaches the origin after the decision.
        if let Some(request) = state.pending_cut() {
            return SessionEnd::from(request);
        }
        if let Err(error) = origin.write_all(&chunk).await {
            return SessionEnd::new(Closer::Origin, format!("writing to origin: {error}"));
        }
        state
            .bytes_from_publisher
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

async fn pump_origin_to_publisher(
    mut origin: OwnedReadHalf,
    mut publisher: OwnedWriteHalf,
    state: &SessionState,
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
        let chunk = buffer.split().freeze();
        if let Err(error) = publisher.write_all(&chunk).await {
            return SessionEnd::new(Closer::Publisher, format!("writing to publisher: {error}"));
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
        }
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
            .map_err(|error| error.to_string());
        let mut events = std::mem::take(&mut self.events);
        let mut uninspectable = parsed.err();
        for event in events.drain(..) {
            match self.handle(event) {
                Ok(()) => {}
                Err(EventProblem::Uninspectable(why)) => {
                    uninspectable.get_or_insert(why);
                }
                Err(EventProblem::End(end)) => return Err(end),
            }
        }
        self.events = events;
        match uninspectable {
            None => Ok(()),
            Some(why) if self.on_parse_error == OnParseError::Pass => {
                warn!(
                    session = self.state.id,
                    error = %why,
                    "stream cannot be inspected; relaying it uninspected (on_parse_error = \"pass\")"
                );
                self.demuxer = None;
                Ok(())
            }
            Some(why) => Err(SessionEnd::new(
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
                    let arrived = self.arrival_of(frame.start_offset);
                    self.stream.offer_keyframe(frame, arrived);
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
                return Err(EventProblem::Uninspectable(format!(
                    "unsupported video: {description}"
                )));
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
    Uninspectable(String),
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
