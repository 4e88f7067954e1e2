//! The proxy as a whole: loads the hash lists (and, with `[descriptor]`, the descriptor
//! lists), starts the analysis workers, binds every
//! `[[ingest]]` and the `[admin]` server, serves until told to stop, then drains
//! sessions for `shutdown_grace_ms` before cutting the rest; the admin server (with
//! `/readyz` answering "draining") stops last.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::actions::{Actions, ActionsError, AuditTrail};
use crate::admin::{AdminError, AdminServer, Phase, Readiness};
use crate::analysis::{Analysis, DescriptorPool, SignalSources};
use crate::backend::cluster::ClusterError;
use crate::backend::{Backend, ClusterBackend, LocalBackend};
use crate::config::Config;
use crate::config::Protocol;
use crate::evidence::EvidenceStore;
use crate::ingest::tls::{CertificateStore, OriginTls};
use crate::policy::PolicyMode;
use crate::session::Services;
use crate::session::{
    Closer, ConnectionGauge, EndKind, IngestListener, SessionRegistry, SrtBindError,
    SrtIngestListener,
};
use crate::signals::descriptor_lists::{DescriptorListSet, DescriptorListSetError};
use crate::signals::lists::{ListSet, ListSetError};
use crate::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("loading hash lists: {0}")]
    Lists(#[from] ListSetError),
    #[error("loading descriptor lists: {0}")]
    DescriptorLists(#[from] DescriptorListSetError),
    #[error("descriptor.model_tag: {0}")]
    DescriptorModel(#[from] livegate_signals::descriptor::ModelError),
    #[error(transparent)]
    Actions(#[from] ActionsError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A model that cannot load (the classifier's or the descriptor's): the error names
    /// the section and key.
    #[error(transparent)]
    Model(#[from] crate::onnx::ModelError),
    #[error("internal error while starting: {0}")]
    Internal(String),
    #[error(transparent)]
    Certificate(#[from] crate::ingest::tls::CertificateError),
    #[error(transparent)]
    SrtBind(#[from] SrtBindError),
    #[error(transparent)]
    Evidence(#[from] crate::evidence::DiskError),
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
    /// The `protocol = "srt"` listeners.
    srt_listeners: Vec<SrtIngestListener>,
    local_addrs: Vec<SocketAddr>,
    services: Arc<Services>,
    lists: Arc<ListSet>,
    descriptor_lists: Option<Arc<DescriptorListSet>>,
    admin: Option<AdminServer>,
    readiness: Arc<Readiness>,
    /// The certificates of the `rtmps` listeners, for reloads.
    certificates: Vec<Arc<CertificateStore>>,
}

/// How often the drain checks whether sessions have ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// At shutdown, how long decisions queued for the fleet may take to be published.
const CLUSTER_FLUSH: Duration = Duration::from_secs(2);
/// After the grace period, how long cut sessions get to close their sockets.
const CUT_SETTLE: Duration = Duration::from_secs(2);

impl Server {
    /// Loads the lists, starts analysis and binds every ingest listener; fails naming the
    /// list file or the address that was wrong.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let lists = {
            let configs = config.hashlist.clone();
            match tokio::task::spawn_blocking(move || ListSet::load(&configs)).await {
                Ok(loaded) => Arc::new(loaded?),
                Err(join) => return Err(ServerError::Internal(join.to_string())),
            }
        };
        match config.policy.mode {
            PolicyMode::Enforce => info!("policy mode: enforce (cut verdicts cut streams)"),
            PolicyMode::Shadow => warn!(
                "policy mode: SHADOW - nothing is cut; what would be is audited as shadow_cut"
            ),
        }
        let descriptor_lists = match &config.descriptor {
            Some(descriptor) => {
                let model = descriptor.list_model()?;
                let configs = config.descriptorlist.clone();
                let loaded =
                    tokio::task::spawn_blocking(move || DescriptorListSet::load(&configs, &model))
                        .await
                        .map_err(|join| ServerError::Internal(join.to_string()))??;
                Some(Arc::new(loaded))
            }
            None => None,
        };
        let local = LocalBackend::new(
            Arc::clone(&lists),
            descriptor_lists.clone(),
            AuditTrail::open(&config.actuator)?,
        );
        let (backend, fleet_commands): (Arc<dyn Backend>, _) = match config.cluster.clone() {
            Some(cluster) => {
                info!(node = %cluster.node, servers = ?cluster.servers, prefix = %cluster.prefix, "joining the cluster");
                let (backend, commands) = ClusterBackend::start(cluster, local).await?;
                (Arc::new(backend), Some(commands))
            }
            None => (Arc::new(local), None),
        };
        let actions = Arc::new(Actions::new(
            config.actuator.clone(),
            backend,
            Arc::new(Telemetry::default()),
        )?);
        let classifier = match config.classifier.clone() {
            Some(classifier) => Some(crate::analysis::ClassifierPool::start(classifier)?),
            None => None,
        };
        let descriptor = match (&config.descriptor, &descriptor_lists) {
            (Some(descriptor), Some(lists)) => {
                if config.descriptorlist.is_empty() {
                    warn!(
                        "[descriptor] without any [[descriptorlist]]: descriptors are computed but nothing is matched"
                    );
                }
                Some(DescriptorPool::start(
                    descriptor.clone(),
                    Arc::clone(lists),
                )?)
            }
            _ => None,
        };
        let mut listeners = Vec::with_capacity(config.ingest.len());
        let mut local_addrs = Vec::with_capacity(config.ingest.len());
        let mut certificates = Vec::new();
        let mut origin_tls = std::collections::HashMap::new();
        let mut srt_listeners = Vec::new();
        for (index, ingest) in config.ingest.iter().enumerate() {
            if ingest.protocol == Protocol::Srt {
                let listener = SrtIngestListener::bind(ingest.clone(), index)?;
                local_addrs.push(listener.local_addr());
                srt_listeners.push(listener);
                continue;
            }
            let tls = match &ingest.tls {
                Some(files) => {
                    let store = CertificateStore::load(files, &format!("ingest[{index}].tls"))?;
                    let server_config = store.server_config()?;
                    certificates.push(store);
                    Some(server_config)
                }
                None => None,
            };
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
            if let Some(tls) = &ingest.origin_tls {
                let key = format!("ingest[{index}].origin_tls");
                let dialer = OriginTls::load(tls, &ingest.origin, &key)?;
                origin_tls.insert(local, Arc::new(dialer));
            }
            let mut ingest = ingest.clone();
            ingest.listen = local;
            local_addrs.push(local);
            let listener = IngestListener::new(listener, ingest);
            listeners.push(match tls {
                Some(tls) => listener.with_tls(tls),
                None => listener,
            });
        }
        let analysis = Analysis::start(
            config.analysis.clone(),
            config.policy.clone(),
            SignalSources {
                lists: Arc::clone(&lists),
                classifier,
                descriptor,
                descriptor_lists: config.descriptorlist.clone(),
            },
            actions,
            config.actuator.learn_into.as_deref(),
            EvidenceStore::open(config.evidence.clone())?,
        );
        let services = Arc::new(Services {
            registry: Arc::new(SessionRegistry::default()),
            analysis,
            origin_tls,
        });
        if let Some(commands) = fleet_commands {
            // Other nodes' requests (cut a stream here, list this node's streams) are
            // served even without [admin].
            tokio::spawn(crate::admin::streams::serve_commands(
                commands,
                Arc::clone(&services),
            ));
        }
        let readiness = Arc::new(Readiness::default());
        let admin = match &config.admin {
            Some(admin) => Some(
                AdminServer::bind(
                    admin,
                    Arc::clone(&services),
                    Arc::clone(&lists),
                    descriptor_lists.clone(),
                    Arc::clone(&readiness),
                    listeners.len(),
                )
                .await?,
            ),
            None => None,
        };
        if let Some(certificate) = admin.as_ref().and_then(AdminServer::certificate) {
            certificates.push(certificate);
        }
        Ok(Server {
            config,
            listeners,
            srt_listeners,
            local_addrs,
            services,
            lists,
            descriptor_lists,
            admin,
            readiness,
            certificates,
        })
    }

    /// The certificates of the `rtmps` listeners, for reloads (SIGHUP).
    pub fn certificates(&self) -> Vec<Arc<CertificateStore>> {
        self.certificates.clone()
    }

    /// The bound addresses, in `[[ingest]]` order (useful when a config asks for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The admin server's bound address, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    pub fn registry(&self) -> Arc<SessionRegistry> {
        Arc::clone(&self.services.registry)
    }

    pub fn services(&self) -> Arc<Services> {
        Arc::clone(&self.services)
    }

    /// The hash lists, for reloads (SIGHUP, admin API).
    pub fn lists(&self) -> Arc<ListSet> {
        Arc::clone(&self.lists)
    }

    /// The descriptor lists (with `[descriptor]`), for reloads (SIGHUP, admin API).
    pub fn descriptor_lists(&self) -> Option<Arc<DescriptorListSet>> {
        self.descriptor_lists.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (stop_admin, admin_stopped) = watch::channel(false);
        let admin = self
            .admin
            .map(|admin| tokio::spawn(admin.serve(admin_stopped)));
        let mut gauges: Vec<ConnectionGauge> = Vec::new();
        let mut accept_loops = Vec::new();
        for listener in self.listeners {
            gauges.push(listener.sessions());
            accept_loops.push(tokio::spawn(
                listener.serve(Arc::clone(&self.services), stop_rx.clone()),
            ));
        }
        for listener in self.srt_listeners {
            gauges.push(listener.sessions());
            accept_loops.push(tokio::spawn(
                listener.serve(Arc::clone(&self.services), stop_rx.clone()),
            ));
        }
        for (addr, ingest) in self.local_addrs.iter().zip(&self.config.ingest) {
            info!(listen = %addr, protocol = ingest.protocol.as_str(), "ingest listening");
        }
        self.readiness.set(Phase::Serving);
        shutdown.await;
        self.readiness.set(Phase::Draining);
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
            let sessions = self.services.registry.list();
            info!(
                sessions = sessions.len(),
                "grace period over: closing remaining sessions"
            );
            let actions = self.services.analysis.actions();
            for session in sessions {
                actions.close(
                    &session,
                    Closer::Shutdown,
                    EndKind::Shutdown,
                    "livegate is shutting down",
                );
            }
            wait_until(|| active() == 0, CUT_SETTLE).await;
        }
        let _ = stop_admin.send(true);
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        // Last: the cuts and bans of the drain reach the fleet.
        if let Some(fleet) = self.services.analysis.actions().backend().fleet() {
            fleet.shutdown(CLUSTER_FLUSH).await;
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
