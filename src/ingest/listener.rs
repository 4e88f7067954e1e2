//! The accept loop of one `[[ingest]]`: a connection cap, one relay task per publisher,
//! and a stop signal for graceful shutdown.

use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{error, warn};

use crate::config::IngestConfig;
use crate::relay::{self, Services};

/// An ingest listener, bound and ready to accept.
pub struct IngestListener {
    listener: TcpListener,
    ingest: Arc<IngestConfig>,
    connections: Arc<Semaphore>,
}

impl IngestListener {
    pub fn new(listener: TcpListener, ingest: IngestConfig) -> Self {
        let connections = Arc::new(Semaphore::new(ingest.max_connections));
        IngestListener {
            listener,
            ingest: Arc::new(ingest),
            connections,
        }
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
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            let (socket, client) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Per-connection failures (e.g. a reset before accept, or fd
                    // exhaustion) must not end the listener; back off briefly instead.
                    error!(listen = %self.ingest.listen, %error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() else {
                services.registry.count_refused();
                warn!(
                    listen = %self.ingest.listen,
                    %client,
                    max_connections = self.ingest.max_connections,
                    "connection refused: at max_connections"
                );
                continue;
            };
            let ingest = Arc::clone(&self.ingest);
            let services = Arc::clone(&services);
            tokio::spawn(async move {
                relay::run_session(socket, client, ingest, services).await;
                drop(permit);
            });
        }
    }
}

/// Counts a listener's running sessions, also after the listener itself has stopped.
#[derive(Clone)]
pub struct ConnectionGauge {
    connections: Arc<Semaphore>,
    max: usize,
}

impl ConnectionGauge {
    pub fn active(&self) -> usize {
        self.max - self.connections.available_permits()
    }
}
