//! The admin server (`[admin]`): health and readiness probes, Prometheus metrics, the
//! bearer-token API under `/v1/` to list and cut streams, reload and extend hash
//! lists and descriptor lists, and read recent audit records, and the review console
//! (`/console`, its session cookie also authenticating `/v1/`). Routes are in
//! [`routes`], metrics in [`metrics`], the console in [`console`] and its sessions in
//! [`sessions`]; this file holds the config, the token and the HTTP/1.1 server loop
//! (with its connection cap, at which idle connections give way to new ones).
//!
//! The token comes from `admin.token`, else `admin.token_file`, else the environment
//! variable `LIVEGATE_ADMIN_TOKEN` (the config wins over the environment). Without any,
//! the probes and metrics are served but every `/v1/` request is refused with 401:
//! the API is never open by default.

pub mod console;
pub mod metrics;
pub mod routes;
pub mod sessions;
pub mod streams;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

use crate::ingest::tls::{CertificateError, CertificateStore};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{debug, info};

use crate::config::InvalidKey;
use crate::session::Services;
use crate::signals::descriptor_lists::DescriptorListSet;
use crate::signals::lists::ListSet;

/// The environment variable read when the config names no token.
pub const TOKEN_ENV: &str = "LIVEGATE_ADMIN_TOKEN";

/// `[admin]`.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin HTTP server (port 0: any free port, logged at startup).
    pub listen: SocketAddr,
    /// Bearer token for `/v1/*`. Never printed by `check-config`.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// A file whose content (trailing whitespace removed) is the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Largest accepted request body; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate (reloaded on SIGHUP); plain HTTP without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::config::TlsFilesConfig>,
    /// A console session ends this long after its login.
    #[serde(default = "default_session_ttl_seconds")]
    pub session_ttl_seconds: u64,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "(redacted)"))
            .field("token_file", &self.token_file)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tls", &self.tls)
            .field("session_ttl_seconds", &self.session_ttl_seconds)
            .finish()
    }
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_session_ttl_seconds() -> u64 {
    8 * 3600
}

/// Longest `admin.session_ttl_seconds`: a console session is not a standing credential.
const MAX_SESSION_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Bounds of `admin.max_body_bytes`.
const MIN_BODY_BYTES: usize = 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// A token file longer than this is not a token.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

impl AdminConfig {
    /// Checks the section; the error is `(key, message)`.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if let Some(token) = &self.token {
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(InvalidKey::new(
                    "admin.token".into(),
                    "must be non-empty, without spaces or control characters".into(),
                ));
            }
            if self.token_file.is_some() {
                return Err(InvalidKey::new(
                    "admin.token_file".into(),
                    "set either admin.token or admin.token_file, not both".into(),
                ));
            }
        }
        if self
            .token_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return Err(InvalidKey::new(
                "admin.token_file".into(),
                "must not be empty".into(),
            ));
        }
        if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return Err(InvalidKey::new(
                "admin.max_body_bytes".into(),
                format!("must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES}"),
            ));
        }
        if !(1..=MAX_SESSION_TTL_SECONDS).contains(&self.session_ttl_seconds) {
            return Err(InvalidKey::new(
                "admin.session_ttl_seconds".into(),
                format!("must be between 1 and {MAX_SESSION_TTL_SECONDS} (7 days)"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Tls(#[from] CertificateError),
    #[error("cannot listen on {addr} (admin.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the admin token file {path} (admin.token_file): {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin token file {path} (admin.token_file): {problem}")]
    BadTokenFile {
        path: PathBuf,
        problem: &'static str,
    },
}

/// Where the admin token came from (logged at startup; the token itself never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Config,
    File,
    Environment,
}

/// The bearer token, kept only as its SHA-256 so that comparing it takes the same time
/// whatever the candidate (length included) and the secret is not held in memory.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    pub fn new(secret: impl AsRef<[u8]>) -> Token {
        Token {
            digest: Sha256::digest(secret.as_ref()).into(),
        }
    }

    /// Constant-time comparison of `candidate` with the token.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let candidate: [u8; 32] = Sha256::digest(candidate).into();
        let difference = candidate
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

/// Finds the token: `admin.token`, else `admin.token_file`, else `env_token` (the value
/// of [`TOKEN_ENV`]; an empty value counts as unset). `None`: the API stays locked.
pub fn resolve_token(
    config: &AdminConfig,
    env_token: Option<String>,
) -> Result<Option<(Token, TokenSource)>, AdminError> {
    if let Some(token) = &config.token {
        return Ok(Some((Token::new(token), TokenSource::Config)));
    }
    if let Some(path) = &config.token_file {
        return Ok(Some((
            Token::new(&read_token_file(path)?),
            TokenSource::File,
        )));
    }
    Ok(env_token
        .filter(|token| !token.trim().is_empty())
        .map(|token| (Token::new(token.trim()), TokenSource::Environment)))
}

fn read_token_file(path: &Path) -> Result<String, AdminError> {
    let io_error = |source| AdminError::TokenFile {
        path: path.to_path_buf(),
        source,
    };
    let bad = |problem| AdminError::BadTokenFile {
        path: path.to_path_buf(),
        problem,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(bad("longer than 4096 bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
    let token = text.trim_end();
    if token.is_empty() {
        return Err(bad("empty"));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    Ok(token.to_string())
}

/// Where the proxy is in its life, for `/readyz`.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Lists loaded, listeners bound, not yet accepting.
    Starting = 0,
    /// Accepting publishers.
    Serving = 1,
    /// Shutting down: no new publishers.
    Draining = 2,
}

impl Readiness {
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Relaxed) {
            value if value == Phase::Serving as u8 => Phase::Serving,
            value if value == Phase::Draining as u8 => Phase::Draining,
            _ => Phase::Starting,
        }
    }
}

/// What the routes work on.
pub struct AdminContext {
    services: Arc<Services>,
    lists: Arc<ListSet>,
    /// `None` without `[descriptor]`.
    descriptor_lists: Option<Arc<DescriptorListSet>>,
    readiness: Arc<Readiness>,
    ingest_listeners: usize,
    token: Option<Token>,
    max_body_bytes: usize,
    metrics: metrics::Metrics,
    console: console::Console,
}

/// Connections held at once. Idle ones must not keep probes and the API out (64 sockets
/// that never send a request used to stall `/healthz` for the whole header timeout): at
/// the cap, the oldest connection with no request in progress — one still (or never)
/// sending its request head, or a keep-alive between requests — is closed to admit the
/// new one. A per-address limit would not do: probes often come from the same address as
/// everything else (a node, a sidecar, a NAT). Only 64 requests actually being served
/// make a new connection wait, and unauthenticated requests are answered at once.
const MAX_CONNECTIONS: usize = 64;
/// A client must send its request head within this, or the connection is closed: short,
/// since every real client (probe, scraper, operator tool) sends its request at once.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound admin listener with everything its routes need.
pub struct AdminServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    context: Arc<AdminContext>,
    /// With `admin.tls`: the certificate (for reloads) and the acceptor that presents it.
    tls: Option<(Arc<CertificateStore>, tokio_rustls::TlsAcceptor)>,
}

impl AdminServer {
    /// Resolves the token and binds `admin.listen`.
    pub async fn bind(
        config: &AdminConfig,
        services: Arc<Services>,
        lists: Arc<ListSet>,
        descriptor_lists: Option<Arc<DescriptorListSet>>,
        readiness: Arc<Readiness>,
        ingest_listeners: usize,
    ) -> Result<AdminServer, AdminError> {
        let token = match resolve_token(config, std::env::var(TOKEN_ENV).ok())? {
            Some((token, source)) => {
                info!(source = ?source, "admin API token configured");
                Some(token)
            }
            None => {
                // A normal state (the demo runs so), not a fault: said plainly, not warned.
                info!(
                    "admin API locked: /v1/ answers 401 until a token is set (admin.token, admin.token_file or {TOKEN_ENV}); /healthz, /readyz and /metrics stay open"
                );
                None
            }
        };
        let bind_error = |source| AdminError::Bind {
            addr: config.listen,
            source,
        };
        let tls = match &config.tls {
            Some(files) => {
                let store = CertificateStore::load(files, "admin.tls")?;
                let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config()?);
                Some((store, acceptor))
            }
            None => None,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let metrics = metrics::Metrics::new(
            Arc::clone(&services.registry),
            Arc::clone(&services.analysis),
            Arc::clone(&lists),
            descriptor_lists.clone(),
        );
        Ok(AdminServer {
            listener,
            local_addr,
            context: Arc::new(AdminContext {
                services,
                lists,
                descriptor_lists,
                readiness,
                ingest_listeners,
                token,
                max_body_bytes: config.max_body_bytes,
                metrics,
                console: console::Console::new(
                    Duration::from_secs(config.session_ttl_seconds),
                    config.tls.is_some(),
                ),
            }),
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The HTTPS certificate, with `admin.tls`, for reloads (SIGHUP).
    pub fn certificate(&self) -> Option<Arc<CertificateStore>> {
        self.tls.as_ref().map(|(store, _)| Arc::clone(store))
    }

    /// Serves until `stop` turns true; open connections then finish their current
    /// request and close.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        info!(listen = %self.local_addr, "admin listening");
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let open = Arc::new(OpenConnections::default());
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = stopped(&mut stop) => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, "admin accept failed");
                    continue;
                }
            };
            let permit = match Arc::clone(&permits).try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    open.evict_oldest_idle();
                    tokio::select! {
                        permit = Arc::clone(&permits).acquire_owned() => match permit {
                            Ok(permit) => permit,
                            Err(_) => break,
                        },
                        () = stopped(&mut stop) => break,
                    }
                }
            };
            let slot = open.add();
            let context = Arc::clone(&self.context);
            let mut stop = stop.clone();
            let acceptor = self.tls.as_ref().map(|(_, acceptor)| acceptor.clone());
            connections.spawn(async move {
                let _permit = permit;
                let stream = match acceptor {
                    None => AdminStream::Plain(stream),
                    // The TLS handshake shares the request head's deadline.
                    Some(acceptor) => {
                        match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => AdminStream::Tls(Box::new(stream)),
                            Ok(Err(error)) => {
                                debug!(%peer, %error, "admin TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!(%peer, "admin TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                let control = Arc::clone(&slot.control);
                let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
                    let context = Arc::clone(&context);
                    let control = Arc::clone(&control);
                    // For the console's login rate limit.
                    request.extensions_mut().insert(console::Peer(peer));
                    async move {
                        let _busy = Busy::mark(&control);
                        Ok::<_, std::convert::Infallible>(routes::handle(&context, request).await)
                    }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                let finished = tokio::select! {
                    result = connection.as_mut() => Some(result),
                    () = stopped(&mut stop) => None,
                    () = slot.control.evict.notified() => {
                        debug!(%peer, "idle admin connection closed to admit a new one (at the connection cap)");
                        return;
                    }
                };
                let result = match finished {
                    Some(result) => result,
                    None => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = result {
                    debug!(%peer, %error, "admin connection ended with an error");
                }
            });
            // Reap finished connections so the set does not grow with every request.
            while connections.try_join_next().is_some() {}
        }
        connections.shutdown().await;
        info!("admin server stopped");
    }
}

/// An admin connection: plain HTTP, or HTTPS with `admin.tls`.
enum AdminStream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for AdminStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            AdminStream::Plain(stream) => std::pin::Pin::new(stream).poll_read(cx, buf),
            AdminStream::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for AdminStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            AdminStream::Plain(stream) => std::pin::Pin::new(stream).poll_write(cx, buf),
            AdminStream::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            AdminStream::Plain(stream) => std::pin::Pin::new(stream).poll_flush(cx),
            AdminStream::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            AdminStream::Plain(stream) => std::pin::Pin::new(stream).poll_shutdown(cx),
            AdminStream::Tls(stream) => std::pin::Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The admin server's open connections, oldest first, for eviction at the cap.
#[derive(Default)]
struct OpenConnections {
    inner: std::sync::Mutex<OpenInner>,
}

#[derive(Default)]
struct OpenInner {
    next_id: u64,
    by_age: std::collections::BTreeMap<u64, Arc<ConnectionControl>>,
}

/// What the accept loop needs of a connection: whether a request is in progress, and a
/// way to close it.
#[derive(Default)]
struct ConnectionControl {
    busy: AtomicBool,
    evict: Notify,
}

impl OpenConnections {
    /// Poisoning only means a panic mid-update of a plain map; it stays usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, OpenInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn add(self: &Arc<Self>) -> OpenSlot {
        let control = Arc::new(ConnectionControl::default());
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.by_age.insert(id, Arc::clone(&control));
        OpenSlot {
            open: Arc::clone(self),
            id,
            control,
        }
    }

    /// Closes the oldest connection with no request in progress, if there is one.
    fn evict_oldest_idle(&self) {
        let mut inner = self.lock();
        let oldest_idle = inner
            .by_age
            .iter()
            .find(|(_, control)| !control.busy.load(Ordering::Relaxed))
            .map(|(&id, _)| id);
        if let Some(control) = oldest_idle.and_then(|id| inner.by_age.remove(&id)) {
            // Stored if the task is not waiting yet: it sees the eviction on its next poll.
            control.evict.notify_one();
        }
    }
}

/// A connection's entry in [`OpenConnections`], removed when the connection ends.
struct OpenSlot {
    open: Arc<OpenConnections>,
    id: u64,
    control: Arc<ConnectionControl>,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.open.lock().by_age.remove(&self.id);
    }
}

/// Marks a connection busy while one of its requests is being handled.
struct Busy<'a>(&'a ConnectionControl);

impl<'a> Busy<'a> {
    fn mark(control: &'a ConnectionControl) -> Self {
        control.busy.store(true, Ordering::Relaxed);
        Busy(control)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Relaxed);
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> AdminConfig {
        toml::from_str(&format!("listen = \"127.0.0.1:0\"\n{text}")).expect("admin config")
    }

    #[test]
    fn token_precedence_is_config_then_file_then_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").expect("write token");
        let env = || Some("from-env".to_string());

        let (token, source) = resolve_token(&config("token = \"inline\""), env())
            .expect("resolves")
            .expect("a token");
        assert_eq!(source, TokenSource::Config);
        assert!(token.matches(b"inline"));

        let with_file = config(&format!("token_file = {:?}", file.display().to_string()));
        let (token, source) = resolve_token(&with_file, env())
            .expect("resolves")
            .expect("a token");
        assert_eq!(source, TokenSource::File);
        assert!(token.matches(b"from-file"), "trailing newline is trimmed");
        assert!(!token.matches(b"from-file\n"));

        let (token, source) = resolve_token(&config(""), env())
            .expect("resolves")
            .expect("a token");
        assert_eq!(source, TokenSource::Environment);
        assert!(token.matches(b"from-env"));

        assert!(
            resolve_token(&config(""), Some("  ".into()))
                .expect("resolves")
                .is_none()
        );
        assert!(
            resolve_token(&config(""), None)
                .expect("resolves")
                .is_none()
        );
    }

    #[test]
    fn bad_token_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let missing = dir.path().join("missing");
        for path in [empty, missing] {
            let with_file = config(&format!("token_file = {:?}", path.display().to_string()));
            let error = match resolve_token(&with_file, None) {
                Ok(_) => panic!("{} should be refused", path.display()),
                Err(error) => error.to_string(),
            };
            assert!(error.contains("admin.token_file"), "{error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
        }
    }

    #[test]
    fn token_comparison_needs_the_exact_token() {
        let token = Token::new("s3cret-token");
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-toke"));
        assert!(!token.matches(b"s3cret-token2"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            ("token = \"\"", "admin.token"),
            ("token = \"a b\"", "admin.token"),
            ("token = \"a\"\ntoken_file = \"x\"", "admin.token_file"),
            ("max_body_bytes = 10", "admin.max_body_bytes"),
            ("session_ttl_seconds = 0", "admin.session_ttl_seconds"),
        ];
        for (text, key) in cases {
            let found = config(text).validate().expect_err(text).key;
            assert_eq!(found, key, "{text}");
        }
        config("token = \"ok\"").validate().expect("valid");
    }

    #[test]
    fn the_token_is_never_rendered() {
        let rendered = toml::to_string(&config("token = \"hunter2-token\"")).expect("render");
        assert!(!rendered.contains("hunter2"), "{rendered}");
        let debugged = format!("{:?}", config("token = \"hunter2-token\""));
        assert!(!debugged.contains("hunter2"), "{debugged}");
    }
}
