//! The proxy as a whole: binds every `[[ingest]]`, serves until told to stop, then
//! drains sessions for `shutdown_grace_ms` before cutting the rest.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::config::Config;
use crate::ingest::listener::{ConnectionGauge, IngestListener};
use crate::session::{Closer, CutRequest, SessionRegistry};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} (ingest[{index}].listen): {source}")]
    Bind {
        index: usize,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A proxy whose listeners are bound.
pub struct Server {
    config: Config,
    listeners: Vec<IngestListener>,
    local_addrs: Vec<SocketAddr>,
    registry: Arc<SessionRegistry>,
}

/// How often the drain checks whether sessions have ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// After the grace period, how long cut sessions get to close their sockets.
const CUT_SETTLE: Duration = Duration::from_secs(2);

impl Server {
    /// Binds every ingest listener; fails naming the first address that cannot be bound.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let mut listeners = Vec::with_capacity(config.ingest.len());
        let mut local_addrs = Vec::with_capacity(config.ingest.len());
        for (index, ingest) in config.ingest.iter().enumerate() {
            let listener =
                TcpListener::bind(ingest.listen)
                    .await
                    .map_err(|source| ServerError::Bind {
                        index,
                        addr: ingest.listen,
                        source,
                    })?;
            let local = listener.local_addr().map_err(|source| ServerError::Bind {
                index,
                addr: ingest.listen,
                source,
            })?;
            let mut ingest = ingest.clone();
            ingest.listen = local;
            local_addrs.push(local);
            listeners.push(IngestListener::new(listener, ingest));
        }
        Ok(Server {
            config,
            listeners,
            local_addrs,
            registry: Arc::new(SessionRegistry::default()),
        })
    }

    /// The bound addresses, in `[[ingest]]` order (useful when a config asks for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn registry(&self) -> Arc<SessionRegistry> {
        Arc::clone(&self.registry)
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut gauges: Vec<ConnectionGauge> = Vec::new();
        let mut accept_loops = Vec::new();
        for (listener, addr) in self.listeners.into_iter().zip(&self.local_addrs) {
            info!(listen = %addr, "ingest listening");
            gauges.push(listener.sessions());
            accept_loops.push(tokio::spawn(
                listener.serve(Arc::clone(&self.registry), stop_rx.clone()),
            ));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        let active = || gauges.iter().map(ConnectionGauge::active).sum::<usize>();
        let grace = self.config.server.shutdown_grace();
        info!(
            sessions = active(),
            grace_ms = grace.as_millis() as u64,
            "shutting down: draining sessions"
        );
        if !wait_until(|| active() == 0, grace).await {
            let sessions = self.registry.list();
            info!(
                sessions = sessions.len(),
                "grace period over: closing remaining sessions"
            );
            for session in sessions {
                session.request_cut(CutRequest {
                    closer: Closer::Shutdown,
                    reason: "livegate is shutting down".into(),
                });
            }
            wait_until(|| active() == 0, CUT_SETTLE).await;
        }
        info!("shutdown complete");
    }
}

async fn wait_until(done: impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
    true
}
