//! Webhooks (`[[actuator.webhook]]`): each audit record of a subscribed event is POSTed
//! as JSON on its own task, with retries and doubling back-off, so no verdict ever waits
//! for a receiver.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::warn;

use super::audit::{AuditEvent, AuditRecord};

/// `[[actuator.webhook]]`: a JSON POST of each audit record of the chosen events.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
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

/// The URI of an `http://` webhook; `None` for anything else (https is not built in).
pub(super) fn webhook_target(url: &str) -> Option<hyper::Uri> {
    let uri: hyper::Uri = url.parse().ok()?;
    (uri.scheme_str() == Some("http") && uri.host().is_some()).then_some(uri)
}

/// The configured webhooks and the count of deliveries that failed for good.
pub(super) struct Webhooks {
    targets: Vec<(WebhookConfig, hyper::Uri)>,
    runtime: tokio::runtime::Handle,
    failures: Arc<AtomicU64>,
}

impl Webhooks {
    /// Must be called inside the tokio runtime that will run the deliveries.
    pub(super) fn new(configs: &[WebhookConfig]) -> Self {
        Webhooks {
            targets: configs
                .iter()
                .filter_map(|webhook| {
                    webhook_target(&webhook.url).map(|uri| (webhook.clone(), uri))
                })
                .collect(),
            runtime: tokio::runtime::Handle::current(),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Posts `record` to every webhook that wants its event, each on its own task.
    pub(super) fn post(&self, record: &AuditRecord) {
        for (webhook, uri) in &self.targets {
            if webhook.events.contains(&record.event) {
                let body = serde_json::to_vec(record).unwrap_or_default();
                let failures = Arc::clone(&self.failures);
                let (webhook, uri) = (webhook.clone(), uri.clone());
                self.runtime.spawn(async move {
                    if let Err(error) = post_with_retries(&webhook, uri, body).await {
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
    uri: hyper::Uri,
    body: Vec<u8>,
) -> Result<(), WebhookError> {
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        let result = tokio::time::timeout(
            Duration::from_millis(webhook.timeout_ms),
            post_once(uri.clone(), body.clone()),
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

async fn post_once(uri: hyper::Uri, body: Vec<u8>) -> Result<(), WebhookError> {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(uri)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "livegate")
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|error| WebhookError::Http(error.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|error| WebhookError::Http(error.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(response.status()))
    }
}
