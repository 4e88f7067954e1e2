//! The accept loop of one `[[ingest]]`: a connection cap, a per-client cap, the PROXY
//! protocol header (`proxy_protocol`), one relay task per publisher (over TLS on an
//! `rtmps` listener), and a stop signal for graceful shutdown.
//!
//! Both caps refuse at once (the socket is closed on accept), count the refusal by
//! reason, and log at most one warning per second per listener with the number held
//! back, so a connection flood cannot flood the log too. A PROXY header is read in the
//! connection's own task (it may take up to the handshake timeout), and the client it
//! names is the session's client. A connection from a trusted proxy is capped per client
//! only once its header is read, by the real client's address: capping it at accept
//! would cap the proxy, which carries every client. A refused header is counted and
//! logged like the caps.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{error, warn};

use crate::config::IngestConfig;
use crate::ingest::proxy_protocol::ProxyPolicy;
use crate::ingest::tls::TlsIncoming;
use crate::session::Refusal;
use crate::session::{self, Services};

/// At most one refusal warning per this interval per listener.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// An ingest listener, bound and ready to accept.
pub struct IngestListener {
    listener: TcpListener,
    ingest: Arc<IngestConfig>,
    connections: Arc<Semaphore>,
    clients: Arc<ClientCounts>,
    proxy: Arc<ProxyPolicy>,
    /// Set on an `rtmps` listener; its certificate resolver follows reloads.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl IngestListener {
    pub fn new(listener: TcpListener, ingest: IngestConfig) -> Self {
        let connections = Arc::new(Semaphore::new(ingest.max_connections));
        IngestListener {
            listener,
            clients: Arc::new(ClientCounts::new(ingest.max_connections_per_client)),
            proxy: Arc::new(ProxyPolicy::of(&ingest)),
            ingest: Arc::new(ingest),
            connections,
            tls: None,
        }
    }

    /// Makes this an RTMPS listener: every accepted socket does a TLS handshake first.
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sessions of this listener still running.
    pub fn sessions(&self) -> ConnectionGauge {
        ConnectionGauge {
            connections: Arc::clone(&self.connections),
            max: self.ingest.max_connections,
        }
    }

    /// Accepts until `stop` turns true. Running sessions are not touched: draining them
    /// is the caller's business.
    pub async fn serve(self, services: Arc<Services>, mut stop: watch::Receiver<bool>) {
        // Shared with the connection tasks, which refuse bad PROXY headers.
        let refusals = Arc::new(Mutex::new(RefusalLog::default()));
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            let (mut socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Per-connection failures (e.g. a reset before accept, or fd
                    // exhaustion) must not end the listener; back off briefly instead.
                    error!(listen = %self.ingest.listen, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let refuse = |refusal| {
                services.registry.count_refused(refusal);
                lock(&refusals).refused(&self.ingest, peer, refusal);
            };
            // A proxy's connections are capped by the client its header names, below.
            let accept_slot = if self.proxy.may_proxy(peer.ip()) {
                None
            } else {
                let Some(slot) = self.clients.take(peer.ip()) else {
                    refuse(Refusal::PerClient);
                    continue;
                };
                Some(slot)
            };
            let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() else {
                refuse(Refusal::MaxConnections);
                continue;
            };
            let ingest = Arc::clone(&self.ingest);
            let services = Arc::clone(&services);
            let proxy = Arc::clone(&self.proxy);
            let clients = Arc::clone(&self.clients);
            let refusals = Arc::clone(&refusals);
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let refuse = |client, refusal, detail: Option<&dyn std::fmt::Display>| {
                    services.registry.count_refused(refusal);
                    lock(&refusals).refused_detailed(&ingest, client, refusal, detail);
                };
                let client = match proxy.read_header(&mut socket, peer).await {
                    Ok(client) => client,
                    Err(refusal) => {
                        return refuse(peer, Refusal::ProxyProtocol, Some(&refusal));
                    }
                };
                let slot = match accept_slot {
                    Some(slot) => slot,
                    None => match clients.take(client.ip()) {
                        Some(slot) => slot,
                        None => return refuse(client, Refusal::PerClient, None),
                    },
                };
                match tls {
                    None => session::run_session(socket, client, ingest, services).await,
                    Some(tls) => {
                        let incoming = TlsIncoming::new(socket, tls);
                        session::run_session(incoming, client, ingest, services).await
                    }
                };
                drop(permit);
                drop(slot);
            });
        }
    }
}

/// Counts a listener's running sessions, also after the listener itself has stopped.
#[derive(Clone)]
pub struct ConnectionGauge {
    pub(super) connections: Arc<Semaphore>,
    pub(super) max: usize,
}

impl ConnectionGauge {
    pub fn active(&self) -> usize {
        self.max - self.connections.available_permits()
    }
}

/// Sessions per client, for `max_connections_per_client`. A client is an IPv4 address
/// or an IPv6 /64: one host usually holds a whole /64, so counting single IPv6 addresses
/// would not cap it at all.
pub(super) struct ClientCounts {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientCounts {
    pub(super) fn new(max: usize) -> Self {
        ClientCounts {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more session of `ip`, or `None` at the cap (0: no cap).
    pub(super) fn take(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        if self.max == 0 {
            return Some(ClientSlot { owner: None });
        }
        let client = client_of(ip);
        let mut counts = self.lock();
        let count = counts.entry(client).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            owner: Some((Arc::clone(self), client)),
        })
    }

    /// Poisoning only means a panic mid-update of a plain map; it stays usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One session's place in its client's count, given back on drop.
pub(super) struct ClientSlot {
    owner: Option<(Arc<ClientCounts>, IpAddr)>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some((counts, client)) = &self.owner else {
            return;
        };
        let mut map = counts.lock();
        if let Some(count) = map.get_mut(client) {
            *count -= 1;
            if *count == 0 {
                map.remove(client);
            }
        }
    }
}

/// The key a client is counted (and banned) under: IPv4 as is (IPv4-mapped IPv6 too),
/// IPv6 by /64.
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// Throttles refusal warnings: the first at once, then at most one per
/// [`REFUSAL_LOG_INTERVAL`], each with the number held back since the last one.
#[derive(Default)]
pub(super) struct RefusalLog {
    last_logged: Option<Instant>,
    suppressed: u64,
}

/// Poisoning only means a panic mid-update of the throttle's two fields; it stays usable.
pub(super) fn lock(log: &Mutex<RefusalLog>) -> std::sync::MutexGuard<'_, RefusalLog> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RefusalLog {
    pub(super) fn refused(&mut self, ingest: &IngestConfig, client: SocketAddr, refusal: Refusal) {
        self.refused_detailed(ingest, client, refusal, None);
    }

    /// Logs a refusal; `detail` says what was wrong (with a PROXY header, a streamid).
    pub(super) fn refused_detailed(
        &mut self,
        ingest: &IngestConfig,
        client: SocketAddr,
        refusal: Refusal,
        detail: Option<&dyn std::fmt::Display>,
    ) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        self.last_logged = Some(now);
        let suppressed = std::mem::take(&mut self.suppressed);
        match refusal {
            Refusal::MaxConnections => warn!(
                listen = %ingest.listen,
                %client,
                max_connections = ingest.max_connections,
                suppressed,
                "connection refused: at max_connections"
            ),
            Refusal::PerClient => warn!(
                listen = %ingest.listen,
                %client,
                max_connections_per_client = ingest.max_connections_per_client,
                suppressed,
                "connection refused: at max_connections_per_client"
            ),
            Refusal::ProxyProtocol => warn!(
                listen = %ingest.listen,
                %client,
                reason = %detail.map(ToString::to_string).unwrap_or_default(),
                suppressed,
                "connection refused: PROXY protocol header"
            ),
            Refusal::Streamid => warn!(
                listen = %ingest.listen,
                %client,
                reason = %detail.map(ToString::to_string).unwrap_or_default(),
                suppressed,
                "SRT caller refused at the handshake: streamid"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            client_of(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn a_client_gets_its_slots_back_when_sessions_end() {
        let counts = Arc::new(ClientCounts::new(2));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = counts.take(ip).expect("first");
        let second = counts.take(ip).expect("second");
        assert!(counts.take(ip).is_none(), "third over the cap");
        assert!(counts.take("192.0.2.2".parse().expect("ip")).is_some());
        drop(first);
        assert!(
            counts.take(ip).is_some(),
            "a slot freed by an ended session"
        );
        drop(second);
        let unlimited = Arc::new(ClientCounts::new(0));
        let held: Vec<_> = (0..100).filter_map(|_| unlimited.take(ip)).collect();
        assert_eq!(held.len(), 100);
    }
}
