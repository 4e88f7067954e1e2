//! The admin server (`[admin]`): health and readiness probes, Prometheus metrics, the
//! bearer-token API under `/v1/` to list and cut streams, reload and extend hash
//! lists and descriptor lists, and read recent audit records, and the review console
//! (`/console`, its session cookie also authenticating `/v1/`). Routes are in
//! [`routes`], metrics in [`metrics`], the console in [`console`] and its sessions in
//! [`sessions`]; this file holds the config, the token and the HTTP/1.1 server loop
//! (with its connection cap, at which idle connections give way to new ones).
//!
//! Tokens are named, so that the audit says who acted: each `[[admin.tokens]]` entry
//! (`name` with `token` or `token_file`), and the single `admin.token` or
//! `admin.token_file`, named `admin`. The environment variable `LIVEGATE_ADMIN_TOKEN`
//! is read only when the config names no token (the config wins over the environment);
//! it is named `admin` too. Without any, the probes and metrics are served but every
//! `/v1/` request is refused with 401: the API is never open by default.

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
    /// More tokens, each with the name that audit records give whoever uses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<NamedTokenConfig>,
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
            .field("tokens", &self.tokens)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("tls", &self.tls)
            .field("session_ttl_seconds", &self.session_ttl_seconds)
            .finish()
    }
}

/// `[[admin.tokens]]`: one person's or tool's token.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamedTokenConfig {
    /// Who uses it, as audit records and the console say (`[A-Za-z0-9._@-]`, 1–64).
    pub name: String,
    /// The token itself. Never printed by `check-config`.
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    /// A file whose content (trailing whitespace removed) is the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for NamedTokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedTokenConfig")
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "(redacted)"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// The name of the single `admin.token` / `admin.token_file` / environment token.
pub const DEFAULT_TOKEN_NAME: &str = "admin";

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
        check_token_source("admin", &self.token, &self.token_file, false)?;
        let mut names = vec![];
        if self.token.is_some() || self.token_file.is_some() {
            names.push(DEFAULT_TOKEN_NAME);
        }
        for (index, named) in self.tokens.iter().enumerate() {
            let key = format!("admin.tokens[{index}]");
            let name_ok = (1..=64).contains(&named.name.len())
                && named
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
            if !name_ok {
                return Err(InvalidKey::new(
                    format!("{key}.name"),
                    "must be 1 to 64 characters of A-Z a-z 0-9 . _ @ -".into(),
                ));
            }
            if names.contains(&named.name.as_str()) {
                return Err(InvalidKey::new(
                    format!("{key}.name"),
                    format!(
                        "{:?} is already taken (the single admin.token is named {DEFAULT_TOKEN_NAME:?})",
                        named.name
                    ),
                ));
            }
            names.push(&named.name);
            check_token_source(&key, &named.token, &named.token_file, true)?;
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

/// A token given inline or by file (`key`.token / `key`.token_file): well-formed, not
/// both, and (when `required`) one of them.
fn check_token_source(
    key: &str,
    token: &Option<String>,
    token_file: &Option<PathBuf>,
    required: bool,
) -> Result<(), InvalidKey> {
    match (token, token_file) {
        (Some(_), Some(_)) => Err(InvalidKey::new(
            format!("{key}.token_file"),
            format!("set either {key}.token or {key}.token_file, not both"),
        )),
        (Some(token), None)
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(InvalidKey::new(
                format!("{key}.token"),
                "must be non-empty, without spaces or control characters".into(),
            ))
        }
        (None, Some(path)) if path.as_os_str().is_empty() => Err(InvalidKey::new(
            format!("{key}.token_file"),
            "must not be empty".into(),
        )),
        (None, None) if required => Err(InvalidKey::new(
            format!("{key}.token"),
            "set token or token_file".into(),
        )),
        _ => Ok(()),
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
    #[error("cannot read the admin token file {path} ({key}): {source}")]
    TokenFile {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin token file {path} ({key}): {problem}")]
    BadTokenFile {
        key: String,
        path: PathBuf,
        problem: &'static str,
    },
    #[error(
        "admin tokens {first:?} and {second:?} are the same token: the audit could not tell who acted"
    )]
    SharedToken { first: String, second: String },
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

/// A token with the name of whoever uses it.
#[derive(Clone)]
pub struct NamedToken {
    pub name: String,
    pub token: Token,
    pub source: TokenSource,
}

/// Who made an authenticated request: the name of the token it presented (or the
/// console session was opened with). Audit records of operator actions carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
}

/// The configured tokens; none: the API stays locked.
#[derive(Clone, Default)]
pub struct AdminTokens(Vec<NamedToken>);

impl AdminTokens {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller whose token `candidate` is. Every token is compared (in constant time
    /// each), so the time taken does not tell which one matched.
    pub fn identify(&self, candidate: &[u8]) -> Option<Caller> {
        self.0
            .iter()
            .fold(None, |found, named| {
                let matched = named.token.matches(candidate);
                found.or(matched.then_some(named))
            })
            .map(|named| Caller {
                name: named.name.clone(),
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &NamedToken> {
        self.0.iter()
    }
}

/// Reads every configured token: `[[admin.tokens]]`, and `admin.token` or
/// `admin.token_file` named [`DEFAULT_TOKEN_NAME`]; when the config names none,
/// `env_token` (the value of [`TOKEN_ENV`]; an empty value counts as unset). Two names
/// sharing one token are refused.
pub fn resolve_tokens(
    config: &AdminConfig,
    env_token: Option<String>,
) -> Result<AdminTokens, AdminError> {
    let mut tokens = Vec::new();
    let mut add = |name: &str, key: &str, token: &Option<String>, token_file: &Option<PathBuf>| {
        let (secret, source) = match (token, token_file) {
            (Some(token), _) => (token.clone(), TokenSource::Config),
            (None, Some(path)) => (read_token_file(path, key)?, TokenSource::File),
            (None, None) => return Ok(()),
        };
        tokens.push(NamedToken {
            name: name.to_string(),
            token: Token::new(&secret),
            source,
        });
        Ok::<(), AdminError>(())
    };
    add(
        DEFAULT_TOKEN_NAME,
        "admin.token_file",
        &config.token,
        &config.token_file,
    )?;
    for (index, named) in config.tokens.iter().enumerate() {
        let key = format!("admin.tokens[{index}].token_file");
        add(&named.name, &key, &named.token, &named.token_file)?;
    }
    if tokens.is_empty()
        && let Some(token) = env_token.filter(|token| !token.trim().is_empty())
    {
        tokens.push(NamedToken {
            name: DEFAULT_TOKEN_NAME.to_string(),
            token: Token::new(token.trim()),
            source: TokenSource::Environment,
        });
    }
    for (index, named) in tokens.iter().enumerate() {
        if let Some(twin) = tokens[..index]
            .iter()
            .find(|earlier| earlier.token.digest == named.token.digest)
        {
            return Err(AdminError::SharedToken {
                first: twin.name.clone(),
                second: named.name.clone(),
            });
        }
    }
    Ok(AdminTokens(tokens))
}

fn read_token_file(path: &Path, key: &str) -> Result<String, AdminError> {
    let io_error = |source| AdminError::TokenFile {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let bad = |problem| AdminError::BadTokenFile {
        key: key.to_string(),
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
    tokens: AdminTokens,
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
        let tokens = resolve_tokens(config, std::env::var(TOKEN_ENV).ok())?;
        for named in tokens.iter() {
            info!(name = %named.name, source = ?named.source, "admin API token configured");
        }
        if tokens.is_empty() {
            // A normal state (the demo runs so), not a fault: said plainly, not warned.
            info!(
                "admin API locked: /v1/ answers 401 until a token is set (admin.token, admin.token_file, [[admin.tokens]] or {TOKEN_ENV}); /healthz, /readyz and /metrics stay open"
            );
        }
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
                tokens,
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

    /// The one token `tokens` holds, with its source.
    fn only(tokens: AdminTokens) -> Option<NamedToken> {
        assert!(tokens.0.len() <= 1, "one token at most");
        tokens.0.into_iter().next()
    }

    #[test]
    fn token_precedence_is_config_then_file_then_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").expect("write token");
        let env = || Some("from-env".to_string());

        let inline = only(resolve_tokens(&config("token = \"inline\""), env()).expect("resolves"))
            .expect("a token");
        assert_eq!(inline.source, TokenSource::Config);
        assert_eq!(inline.name, DEFAULT_TOKEN_NAME);
        assert!(inline.token.matches(b"inline"));

        let with_file = config(&format!("token_file = {:?}", file.display().to_string()));
        let from_file =
            only(resolve_tokens(&with_file, env()).expect("resolves")).expect("a token");
        assert_eq!(from_file.source, TokenSource::File);
        assert!(
            from_file.token.matches(b"from-file"),
            "trailing newline is trimmed"
        );
        assert!(!from_file.token.matches(b"from-file\n"));

        let from_env =
            only(resolve_tokens(&config(""), env()).expect("resolves")).expect("a token");
        assert_eq!(from_env.source, TokenSource::Environment);
        assert!(from_env.token.matches(b"from-env"));

        assert!(only(resolve_tokens(&config(""), Some("  ".into())).expect("resolves")).is_none());
        assert!(only(resolve_tokens(&config(""), None).expect("resolves")).is_none());
    }

    #[test]
    fn named_tokens_say_who_is_calling() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("bob");
        std::fs::write(&file, "bob-secret\n").expect("write token");
        let text = format!(
            "token = \"root-secret\"\n[[tokens]]\nname = \"alice\"\ntoken = \"alice-secret\"\n\
             [[tokens]]\nname = \"bob\"\ntoken_file = {:?}",
            file.display().to_string()
        );
        let parsed = config(&text);
        parsed.validate().expect("valid");
        // The environment is not read when the config names tokens.
        let tokens = resolve_tokens(&parsed, Some("from-env".into())).expect("resolves");
        let caller = |secret: &[u8]| tokens.identify(secret).map(|caller| caller.name);
        assert_eq!(caller(b"root-secret").as_deref(), Some(DEFAULT_TOKEN_NAME));
        assert_eq!(caller(b"alice-secret").as_deref(), Some("alice"));
        assert_eq!(caller(b"bob-secret").as_deref(), Some("bob"));
        assert_eq!(caller(b"from-env"), None);
        assert_eq!(caller(b"alice-secre"), None);

        let twins = config(
            "[[tokens]]\nname = \"a\"\ntoken = \"same\"\n[[tokens]]\nname = \"b\"\ntoken = \"same\"",
        );
        let error = resolve_tokens(&twins, None)
            .err()
            .expect("shared token refused");
        assert!(error.to_string().contains("\"a\" and \"b\""), "{error}");
    }

    #[test]
    fn bad_token_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let missing = dir.path().join("missing");
        for path in [empty, missing] {
            let shown = path.display().to_string();
            for (text, key) in [
                (format!("token_file = {shown:?}"), "admin.token_file"),
                (
                    format!("[[tokens]]\nname = \"ops\"\ntoken_file = {shown:?}"),
                    "admin.tokens[0].token_file",
                ),
            ] {
                let error = match resolve_tokens(&config(&text), None) {
                    Ok(_) => panic!("{shown} should be refused"),
                    Err(error) => error.to_string(),
                };
                assert!(error.contains(key), "{error}");
                assert!(error.contains(&shown), "{error}");
            }
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
            ("[[tokens]]\nname = \"ops\"", "admin.tokens[0].token"),
            (
                "[[tokens]]\nname = \"a b\"\ntoken = \"x\"",
                "admin.tokens[0].name",
            ),
            (
                "token = \"x\"\n[[tokens]]\nname = \"admin\"\ntoken = \"y\"",
                "admin.tokens[0].name",
            ),
            (
                "[[tokens]]\nname = \"a\"\ntoken = \"x\"\n[[tokens]]\nname = \"a\"\ntoken = \"y\"",
                "admin.tokens[1].name",
            ),
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
        let text = "token = \"hunter2-token\"\n[[tokens]]\nname = \"ops\"\ntoken = \"hunter2-ops\"";
        let rendered = toml::to_string(&config(text)).expect("render");
        assert!(!rendered.contains("hunter2"), "{rendered}");
        let debugged = format!("{:?}", config(text));
        assert!(!debugged.contains("hunter2"), "{debugged}");
    }
}
