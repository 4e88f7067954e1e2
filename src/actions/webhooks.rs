//! Webhooks (`[[actuator.webhook]]`): each audit record of a subscribed event is POSTed
//! as JSON on its own task, with retries and doubling back-off, so no verdict ever waits
//! for a receiver. `https://` receivers are verified (against `ca`, else the system's
//! roots) with the TLS client livegate uses for `rtmps://` origins.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::warn;

use super::audit::{AuditEvent, AuditRecord};
use crate::config::OriginTlsConfig;
use crate::ingest::tls::{CertificateError, OriginTls};

/// `[[actuator.webhook]]`: a JSON POST of each audit record of the chosen events.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://HOST:PORT/PATH` or `https://HOST:PORT/PATH`.
    pub url: String,
    /// PEM CA certificates an `https://` receiver's chain must end at; default: the
    /// system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
    #[serde(default = "defaults::webhook_events")]
    pub events: Vec<AuditEvent>,
    #[serde(default = "defaults::webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts after the first, with doubling back-off from 200 ms.
    #[serde(default = "defaults::webhook_retries")]
    pub retries: u32,
}

mod defaults {
    use super::AuditEvent;

    pub fn webhook_events() -> Vec<AuditEvent> {
        vec![
            AuditEvent::Cut,
            AuditEvent::ManualCut,
            AuditEvent::ShadowCut,
            AuditEvent::Alert,
        ]
    }
    pub fn webhook_timeout_ms() -> u64 {
        2000
    }
    pub fn webhook_retries() -> u32 {
        3
    }
}

/// The URI of an `http://` or `https://` webhook; `None` for anything else.
pub(super) fn webhook_target(url: &str) -> Option<hyper::Uri> {
    let uri: hyper::Uri = url.parse().ok()?;
    (matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()).then_some(uri)
}

/// Where one webhook posts: its URI, and its TLS client when it is `https://`.
#[derive(Clone)]
struct Target {
    uri: hyper::Uri,
    tls: Option<Arc<OriginTls>>,
}

/// The configured webhooks and the count of deliveries that failed for good.
pub(super) struct Webhooks {
    targets: Vec<(WebhookConfig, Target)>,
    runtime: tokio::runtime::Handle,
    failures: Arc<AtomicU64>,
}

impl Webhooks {
    /// Must be called inside the tokio runtime that will run the deliveries. Fails when an
    /// `https://` webhook's CA file (or, without one, the system's roots) cannot be read.
    pub(super) fn new(configs: &[WebhookConfig]) -> Result<Self, CertificateError> {
        let mut targets = Vec::with_capacity(configs.len());
        for (index, webhook) in configs.iter().enumerate() {
            let Some(uri) = webhook_target(&webhook.url) else {
                continue;
            };
            let tls = match uri.scheme_str() {
                Some("https") => {
                    let config = OriginTlsConfig {
                        server_name: None,
                        ca: webhook.ca.clone(),
                        verify: true,
                    };
                    let host = uri.host().unwrap_or_default();
                    let key = format!("actuator.webhook[{index}]");
                    Some(Arc::new(OriginTls::load(&config, host, &key)?))
                }
                _ => None,
            };
            targets.push((webhook.clone(), Target { uri, tls }));
        }
        Ok(Webhooks {
            targets,
            runtime: tokio::runtime::Handle::current(),
            failures: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Posts `record` to every webhook that wants its event, each on its own task.
    pub(super) fn post(&self, record: &AuditRecord) {
        for (webhook, target) in &self.targets {
            if webhook.events.contains(&record.event) {
                let body = serde_json::to_vec(record).unwrap_or_default();
                let failures = Arc::clone(&self.failures);
                let (webhook, target) = (webhook.clone(), target.clone());
                self.runtime.spawn(async move {
                    if let Err(error) = post_with_retries(&webhook, &target, body).await {
                        failures.fetch_add(1, Ordering::Relaxed);
                        warn!(url = %webhook.url, %error, "webhook failed");
                    }
                });
            }
        }
    }

    pub(super) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
enum WebhookError {
    #[error("{0}")]
    Http(String),
    #[error("status {0}")]
    Status(hyper::StatusCode),
    #[error("no answer within {0} ms")]
    Timeout(u64),
}

async fn post_with_retries(
    webhook: &WebhookConfig,
    target: &Target,
    body: Vec<u8>,
) -> Result<(), WebhookError> {
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        let result = tokio::time::timeout(
            Duration::from_millis(webhook.timeout_ms),
            post_once(
                target,
                body.clone(),
                Duration::from_millis(webhook.timeout_ms),
            ),
        )
        .await
        .unwrap_or(Err(WebhookError::Timeout(webhook.timeout_ms)));
        match result {
            Ok(()) => return Ok(()),
            Err(error) if attempt >= webhook.retries => return Err(error),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}

/// One POST on a connection of its own (plain TCP, or TLS for `https://`).
async fn post_once(target: &Target, body: Vec<u8>, limit: Duration) -> Result<(), WebhookError> {
    use http_body_util::Full;

    let http = |error: &dyn std::fmt::Display| WebhookError::Http(error.to_string());
    let uri = &target.uri;
    let host = uri.host().unwrap_or_default();
    let default_port = if target.tls.is_some() { 443 } else { 80 };
    let port = uri.port_u16().unwrap_or(default_port);
    let address = format!(
        "{}:{port}",
        host.trim_start_matches('[').trim_end_matches(']')
    );
    let socket = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|error| http(&error))?;
    // A connection of its own: the request goes in origin form, its authority in Host.
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let authority = uri.authority().map_or(host, |authority| authority.as_str());
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "livegate")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|error| http(&error))?;
    let status = match &target.tls {
        None => send(socket, request).await?,
        Some(tls) => {
            let stream = tls
                .secure(socket, &address, limit)
                .await
                .map_err(|error| http(&error))?;
            send(stream, request).await?
        }
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(status))
    }
}

/// Sends `request` over `io` with HTTP/1.1 and returns the response status.
async fn send<I>(
    io: I,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<hyper::StatusCode, WebhookError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |error: hyper::Error| WebhookError::Http(error.to_string());
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(http)?;
    // The connection task ends when the sender is dropped (or the receiver closes).
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(http)?;
    Ok(response.status())
}
