//! SRT sessions: the listener of a `protocol = "srt"` ingest, which decides each caller
//! at the SRT handshake, and the session that relays an accepted caller to the SRT
//! origin.
//!
//! The handshake hook runs on libsrt's thread, before libsrt completes the connection:
//! a caller whose streamid is missing, malformed or not a publish, a listener at its
//! `max_connections` or the caller's address at `max_connections_per_client`, and a
//! banned key or client address are refused there with an SRT reject reason, so the
//! origin is never dialled for them and the caller's encoder shows why. The hook only
//! decides; counting, logging (throttled like the accept caps) and auditing a banned
//! publish happen on the listener's task, which the hook tells through a bounded queue.
//!
//! An accepted caller becomes a session like an RTMP one: the identity from its
//! streamid is reported to the tap as an application and a publish (bans checked again,
//! analysis and the registry see it), the origin is dialled with the caller's streamid
//! (or `origin_streamid`), and the relay's pumps copy each SRT message as one message.

use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info};

use super::listener::{ClientCounts, ConnectionGauge, RefusalLog, lock};
use super::registry::{Closer, EndKind, Refusal, SessionState};
use super::relay::{
    Handshake, OpenSession, Services, SessionEnd, Start, close_session, dial_end_kind,
    relay_connected,
};
use crate::backend::BanTarget;
use crate::config::IngestConfig;
use crate::ingest::srt::{self as srt_ingest, Passphrases, SrtConfig, SrtIdentity};
use crate::stream::RedactedKey;
use livegate_srt::{Handshake as SrtHandshake, Listener, RejectReason, SrtStream};

/// Refusals the hook may queue for the listener's task before it drops them (they are
/// still refused; only their log line and audit are lost under a flood).
const REFUSALS_QUEUED: usize = 256;
/// Beyond the latency, how long the end of a stream gets to reach the origin.
const DRAIN_MARGIN: Duration = Duration::from_millis(200);
/// Connections libsrt keeps waiting to be accepted.
const BACKLOG: i32 = 128;

/// A caller refused at the handshake, for the listener's task to count and log.
struct HandshakeRefusal {
    client: SocketAddr,
    /// What the caller is told.
    reason: RejectReason,
    kind: RefusalKind,
    message: String,
}

enum RefusalKind {
    /// Counted as a refused connection.
    Connection(Refusal),
    /// A banned key or client: audited as a refused publish, as for RTMP.
    Banned(SrtIdentity),
}

/// What the handshake hook needs; shared with the listener.
struct Gate {
    /// Set when the listener starts serving; until then callers are refused.
    services: OnceLock<Arc<Services>>,
    connections: Arc<Semaphore>,
    clients: Arc<ClientCounts>,
    refusals: mpsc::Sender<HandshakeRefusal>,
}

impl Gate {
    fn decide(&self, handshake: &SrtHandshake<'_>) -> Result<(), RejectReason> {
        let Err(refusal) = self.check(handshake) else {
            return Ok(());
        };
        let reason = refusal.reason;
        // A full queue only loses the log line: the caller is refused all the same.
        let _ = self.refusals.try_send(*refusal);
        Err(reason)
    }

    fn check(&self, handshake: &SrtHandshake<'_>) -> Result<(), Box<HandshakeRefusal>> {
        let client = handshake.peer;
        let refusal = |reason, kind, message: String| {
            Box::new(HandshakeRefusal {
                client,
                reason,
                kind,
                message,
            })
        };
        let Some(services) = self.services.get() else {
            return Err(refusal(
                RejectReason::OVERLOAD,
                RefusalKind::Connection(Refusal::MaxConnections),
                "the listener is not serving yet".into(),
            ));
        };
        let identity = srt_ingest::identify(handshake.streamid).map_err(|refused| {
            refusal(
                refused.reason,
                RefusalKind::Connection(Refusal::Streamid),
                refused.message,
            )
        })?;
        if self.connections.available_permits() == 0 {
            return Err(refusal(
                RejectReason::OVERLOAD,
                RefusalKind::Connection(Refusal::MaxConnections),
                "at max_connections".into(),
            ));
        }
        // Taken and given back at once: only whether a slot is free matters here; the
        // accepted connection takes its own.
        if self.clients.take(client.ip()).is_none() {
            return Err(refusal(
                RejectReason::OVERLOAD,
                RefusalKind::Connection(Refusal::PerClient),
                "at max_connections_per_client".into(),
            ));
        }
        let actions = services.analysis.actions();
        let key = RedactedKey::new(&identity.key);
        let address = BanTarget::client(client.ip());
        for (target, banned) in [
            (
                BanTarget::key(key.fingerprint()),
                format!("stream key {key}"),
            ),
            (address.clone(), address.to_string()),
        ] {
            if let Some(remaining) = actions.ban_remaining(&target) {
                let message = format!(
                    "{banned} is banned for {} more seconds (refused at the SRT handshake)",
                    remaining.as_secs().max(1)
                );
                return Err(refusal(
                    RejectReason::FORBIDDEN,
                    RefusalKind::Banned(identity),
                    message,
                ));
            }
        }
        Ok(())
    }
}

/// A bound `protocol = "srt"` listener.
pub struct SrtIngestListener {
    listener: Listener,
    ingest: Arc<IngestConfig>,
    gate: Arc<Gate>,
    refusals: mpsc::Receiver<HandshakeRefusal>,
    passphrases: Passphrases,
}

impl SrtIngestListener {
    /// Binds the ingest's `listen` address; `index` names it in errors.
    pub fn bind(ingest: IngestConfig, index: usize) -> Result<Self, SrtBindError> {
        let srt = ingest.srt.clone().unwrap_or_default();
        let passphrases = srt
            .passphrases(&|name| format!("ingest[{index}].{name}"))
            .map_err(SrtBindError::Config)?;
        let (refused, refusals) = mpsc::channel(REFUSALS_QUEUED);
        let gate = Arc::new(Gate {
            connections: Arc::new(Semaphore::new(ingest.max_connections)),
            clients: Arc::new(ClientCounts::new(ingest.max_connections_per_client)),
            services: OnceLock::new(),
            refusals: refused,
        });
        let hook_gate = Arc::clone(&gate);
        let listener = Listener::bind(
            ingest.listen,
            &srt.listener_options(&ingest, &passphrases),
            BACKLOG,
            move |handshake| hook_gate.decide(handshake),
        )
        .map_err(|error| SrtBindError::Bind {
            index,
            addr: ingest.listen,
            source: error.into(),
        })?;
        // Sessions and logs name the bound address (port 0 asks for any free port).
        let mut ingest = ingest;
        ingest.listen = listener.local_addr();
        Ok(SrtIngestListener {
            listener,
            ingest: Arc::new(ingest),
            gate,
            refusals,
            passphrases,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Sessions of this listener still running.
    pub fn sessions(&self) -> ConnectionGauge {
        ConnectionGauge {
            connections: Arc::clone(&self.gate.connections),
            max: self.ingest.max_connections,
        }
    }

    /// Accepts until `stop` turns true; running sessions are the caller's to drain.
    pub async fn serve(mut self, services: Arc<Services>, mut stop: watch::Receiver<bool>) {
        let _ = self.gate.services.set(Arc::clone(&services));
        let ingest = Arc::clone(&self.ingest);
        let srt = Arc::new(ingest.srt.clone().unwrap_or_default());
        let log = Mutex::new(RefusalLog::default());
        loop {
            let refusal = tokio::select! {
                accepted = self.listener.accept() => Err(accepted),
                Some(refusal) = self.refusals.recv() => Ok(refusal),
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            match refusal {
                Ok(refusal) => refused(refusal, &ingest, &services, &log),
                Err(Ok((stream, peer))) => self.start_session(stream, peer, &services, &srt, &log),
                Err(Err(error)) => {
                    // libsrt failing to hand over one connection must not end the listener.
                    error!(listen = %ingest.listen, %error, "SRT accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn start_session(
        &self,
        stream: SrtStream,
        peer: SocketAddr,
        services: &Arc<Services>,
        srt: &Arc<SrtConfig>,
        log: &Mutex<RefusalLog>,
    ) {
        let ingest = &self.ingest;
        // The hook checked both caps; another caller may have taken the last slot since.
        let Some(slot) = self.gate.clients.take(peer.ip()) else {
            services.registry.count_refused(Refusal::PerClient);
            return lock(log).refused(ingest, peer, Refusal::PerClient);
        };
        let Ok(permit) = Arc::clone(&self.gate.connections).try_acquire_owned() else {
            services.registry.count_refused(Refusal::MaxConnections);
            return lock(log).refused(ingest, peer, Refusal::MaxConnections);
        };
        // The hook accepted this streamid; read back from the socket, it parses again.
        let identity = match stream
            .streamid()
            .map_err(|error| error.to_string())
            .and_then(|streamid| {
                srt_ingest::identify(Some(&streamid)).map_err(|refused| refused.message)
            }) {
            Ok(identity) => identity,
            Err(message) => {
                services.registry.count_refused(Refusal::Streamid);
                return lock(log).refused_detailed(ingest, peer, Refusal::Streamid, Some(&message));
            }
        };
        let origin = srt.origin_options(ingest, &self.passphrases, &identity);
        let ingest = Arc::clone(ingest);
        let services = Arc::clone(services);
        tokio::spawn(async move {
            run_srt_session(stream, peer, identity, ingest, services, origin).await;
            drop(permit);
            drop(slot);
        });
    }
}

/// Counts and logs a handshake refusal; a banned publish is audited as a session that
/// the policy refused, exactly as an RTMP `publish` of a banned key is.
fn refused(
    refusal: HandshakeRefusal,
    ingest: &Arc<IngestConfig>,
    services: &Arc<Services>,
    log: &Mutex<RefusalLog>,
) {
    let HandshakeRefusal {
        client,
        kind,
        message,
        ..
    } = refusal;
    match kind {
        RefusalKind::Connection(refusal) => {
            services.registry.count_refused(refusal);
            lock(log).refused_detailed(ingest, client, refusal, Some(&message));
        }
        RefusalKind::Banned(identity) => {
            let mut opened = OpenSession::new(services, ingest, client);
            let state = Arc::clone(&opened.registration.state);
            let end = match opened.tap.identify(identity.app, identity.key) {
                Err(end) => end,
                // The ban ended between the handshake and now: the caller was refused
                // all the same.
                Ok(()) => SessionEnd::new(Closer::Policy, EndKind::Banned, message),
            };
            close_session(services, &state, &opened.stream, end);
        }
    }
}

/// Relays one accepted SRT caller until it ends.
async fn run_srt_session(
    publisher: SrtStream,
    client: SocketAddr,
    identity: SrtIdentity,
    ingest: Arc<IngestConfig>,
    services: Arc<Services>,
    origin: livegate_srt::SocketOptions,
) -> SessionEnd {
    let started = Instant::now();
    let opened = OpenSession::new(&services, &ingest, client);
    let state = Arc::clone(&opened.registration.state);
    let _ = state.srt.publisher.set(publisher.link());
    let end = relay(
        publisher, identity, &ingest, &state, opened.tap, started, origin,
    )
    .await;
    // Both sockets are closed once `relay` returns.
    close_session(&services, &state, &opened.stream, end)
}

async fn relay(
    publisher: SrtStream,
    identity: SrtIdentity,
    ingest: &IngestConfig,
    state: &Arc<SessionState>,
    mut tap: super::tap::Tap,
    started: Instant,
    origin: livegate_srt::SocketOptions,
) -> SessionEnd {
    if let Err(end) = tap.identify(identity.app, identity.key) {
        return end;
    }
    let Some(handshake) = tap.inspector().map(Handshake::of) else {
        return SessionEnd::new(
            Closer::Internal,
            EndKind::Internal,
            "session started without an inspector",
        );
    };
    let dialled = tokio::select! {
        dialled = srt_ingest::dial_origin(&ingest.origin, origin) => dialled,
        request = state.cut_requested() => return SessionEnd::from(request),
    };
    let origin = match dialled {
        Ok(origin) => origin,
        Err(error) => {
            return SessionEnd::new(
                Closer::Origin,
                dial_end_kind(&error),
                format!("{error} (SRT caller)"),
            );
        }
    };
    info!(session = %state.id, origin = %ingest.origin, "SRT origin connected");
    let _ = state.srt.origin.set(origin.link());
    let start = Start {
        started,
        handshake,
        handshake_start: BytesMut::new(),
    };
    // The origin plays each message out `latency_ms` after it was sent and drops what
    // is still waiting when the connection closes: at the end of a stream the last
    // messages get that long (and a margin for their acknowledgement) before the close.
    // A cut closes at once, so the origin drops what it has not played yet.
    let draining = origin.clone();
    let end = relay_connected(publisher, origin, ingest, state, tap, start).await;
    if end.closer == Closer::Publisher && end.kind == EndKind::Closed {
        let latency = ingest.srt.as_ref().map_or(
            Duration::from_millis(SrtConfig::default().latency_ms),
            |srt| Duration::from_millis(srt.latency_ms),
        );
        tokio::time::sleep(latency + DRAIN_MARGIN).await;
    }
    drop(draining);
    end
}

/// Why an SRT listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum SrtBindError {
    #[error(transparent)]
    Config(crate::config::InvalidKey),
    #[error("cannot listen for SRT on {addr} (ingest[{index}].listen): {source}")]
    Bind {
        index: usize,
        addr: SocketAddr,
        source: std::io::Error,
    },
}
