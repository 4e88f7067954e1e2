//! Acting on verdicts: cut a session, ban its stream key, write the audit record, call
//! webhooks, and learn the cut stream's hashes.
//!
//! Nothing here delays a cut: the cut request wakes the session's relay at once, while
//! audit lines go to a writer thread and webhooks to their own tasks.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tracing::{error, info, warn};

use crate::signals::lists::{AddedHash, ListMatch, ListSet};
use crate::stream::StreamId;
use livegate_signals::hash256::Hash256;

/// `[actuator]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActuatorConfig {
    /// How long a cut stream's key is refused at `publish`.
    #[serde(default = "defaults::ban_seconds")]
    pub ban_seconds: u64,
    /// JSON-lines audit file (appended); without it, audit records go to the log only.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Recent audit records kept in memory (for the admin API).
    #[serde(default = "defaults::audit_memory")]
    pub audit_memory: usize,
    /// On a cut, add the stream's recently analysed keyframe hashes to this list, so other
    /// copies of the same footage are caught even if the list held only a few frames.
    #[serde(default)]
    pub learn_into: Option<String>,
    /// How many of the cut stream's latest analysed keyframes are learned.
    #[serde(default = "defaults::learn_keyframes")]
    pub learn_keyframes: usize,
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
}

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

impl Default for ActuatorConfig {
    fn default() -> Self {
        ActuatorConfig {
            ban_seconds: defaults::ban_seconds(),
            audit_log: None,
            audit_memory: defaults::audit_memory(),
            learn_into: None,
            learn_keyframes: defaults::learn_keyframes(),
            webhook: Vec::new(),
        }
    }
}

mod defaults {
    use super::AuditEvent;

    pub fn ban_seconds() -> u64 {
        600
    }
    pub fn audit_memory() -> usize {
        1000
    }
    pub fn learn_keyframes() -> usize {
        10
    }
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

impl ActuatorConfig {
    /// Checks what can be checked without other sections; the error is `(key, message)`.
    pub fn validate(&self, list_names: &[&str]) -> Result<(), (String, String)> {
        if let Some(list) = &self.learn_into
            && !list_names.contains(&list.as_str())
        {
            return Err((
                "actuator.learn_into".into(),
                format!("no [[hashlist]] is named {list:?}"),
            ));
        }
        for (index, webhook) in self.webhook.iter().enumerate() {
            let key = |name: &str| format!("actuator.webhook[{index}].{name}");
            if webhook_target(&webhook.url).is_none() {
                return Err((
                    key("url"),
                    format!("{:?} is not an http://HOST:PORT/PATH URL", webhook.url),
                ));
            }
            if webhook.timeout_ms == 0 {
                return Err((key("timeout_ms"), "must be greater than 0".into()));
            }
            if webhook.retries > 10 {
                return Err((key("retries"), "must be at most 10".into()));
            }
        }
        Ok(())
    }
}

/// The URI of an `http://` webhook; `None` for anything else (https is not built in).
fn webhook_target(url: &str) -> Option<hyper::Uri> {
    let uri: hyper::Uri = url.parse().ok()?;
    (uri.scheme_str() == Some("http") && uri.host().is_some()).then_some(uri)
}

#[derive(Debug, thiserror::Error)]
pub enum ActuatorError {
    #[error("cannot open audit log {path} (actuator.audit_log): {source}")]
    AuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What an audit record is about.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    Match,
    Alert,
    ShadowCut,
    Cut,
    ManualCut,
    Rejected,
    Overload,
}

/// A signal as audited: a PDQ list match (`kind` "pdq") or a classifier score
/// (`kind` "classifier": `label` and `score`, and `bbox` for a detection model).
/// Fields a kind does not have are left out of the JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SignalRecord {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub list: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hash: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub matched_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// PDQ: the matched entry's metadata fields from the list file; classifier: the class.
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Detection models: the box in frame pixels, `[x, y, width, height]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f32; 4]>,
}

impl SignalRecord {
    pub fn pdq(found: &ListMatch, frame_hash: &Hash256, quality: u8, variant: &str) -> Self {
        SignalRecord {
            kind: "pdq",
            list: found.list.to_string(),
            hash: frame_hash.to_hex(),
            matched_hash: found.hash.to_hex(),
            distance: Some(found.distance),
            quality: Some(quality),
            variant: variant.to_string(),
            label: found.fields.clone(),
            score: None,
            bbox: None,
        }
    }

    pub fn classifier(label: &str, score: f32, bbox: Option<[f32; 4]>) -> Self {
        SignalRecord {
            kind: "classifier",
            list: String::new(),
            hash: String::new(),
            matched_hash: String::new(),
            distance: None,
            quality: None,
            variant: String::new(),
            label: label.to_string(),
            score: Some(score),
            bbox,
        }
    }
}

/// One audit line (DESIGN.md: time, event, stream, app, key hash, client, signal, pts,
/// time to cut). The key appears only as its fingerprint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    pub time: String,
    pub event: AuditEvent,
    pub stream_id: StreamId,
    pub app: String,
    pub key_fingerprint: Option<String>,
    pub client: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pts_seconds: Option<f64>,
    /// For a cut: from the matching keyframe's first byte arriving to both sockets closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_cut_ms: Option<f64>,
}

impl AuditRecord {
    pub fn now(event: AuditEvent, stream_id: StreamId, reason: impl Into<String>) -> Self {
        AuditRecord {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
            stream_id,
            app: String::new(),
            key_fingerprint: None,
            client: String::new(),
            reason: reason.into(),
            signal: None,
            pts_seconds: None,
            time_to_cut_ms: None,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps the audit trail: appends to the file on a writer thread, remembers the latest.
struct AuditTrail {
    file: Option<SyncSender<String>>,
    recent: Mutex<VecDeque<AuditRecord>>,
    capacity: usize,
    dropped: AtomicU64,
}

/// Lines waiting for the writer thread; beyond this, records are dropped and counted
/// rather than blocking an analysis worker.
const AUDIT_QUEUE: usize = 4096;

impl AuditTrail {
    fn open(config: &ActuatorConfig) -> Result<Self, ActuatorError> {
        let file = match &config.audit_log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ActuatorError::AuditLog {
                        path: path.clone(),
                        source,
                    })?;
                let (sender, receiver) = sync_channel(AUDIT_QUEUE);
                let path = path.clone();
                std::thread::Builder::new()
                    .name("livegate-audit".into())
                    .spawn(move || write_audit_lines(file, &path, receiver))
                    .map_err(|source| ActuatorError::AuditLog {
                        path: config.audit_log.clone().unwrap_or_default(),
                        source,
                    })?;
                Some(sender)
            }
            None => None,
        };
        Ok(AuditTrail {
            file,
            recent: Mutex::new(VecDeque::with_capacity(config.audit_memory.min(4096))),
            capacity: config.audit_memory,
            dropped: AtomicU64::new(0),
        })
    }

    fn append(&self, record: &AuditRecord) {
        let line = serde_json::to_string(record).unwrap_or_else(|error| {
            format!("{{\"event\":\"audit_error\",\"reason\":\"cannot serialise: {error}\"}}")
        });
        info!(target: "livegate::audit", record = %line, "audit");
        if let Some(file) = &self.file {
            match file.try_send(line) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        "audit file writer is behind or gone: record dropped from the file (it is in the log)"
                    );
                }
            }
        }
        let mut recent = lock(&self.recent);
        if recent.len() == self.capacity {
            recent.pop_front();
        }
        if self.capacity > 0 {
            recent.push_back(record.clone());
        }
    }
}

fn write_audit_lines(mut file: std::fs::File, path: &std::path::Path, lines: Receiver<String>) {
    for line in lines {
        if let Err(error) = writeln!(file, "{line}").and_then(|()| file.flush()) {
            error!(path = %path.display(), %error, "cannot write the audit log");
        }
    }
}

/// The actions livegate takes: shared by the analysis workers and the relay.
pub struct Actuator {
    config: ActuatorConfig,
    bans: Mutex<HashMap<String, Instant>>,
    audit: AuditTrail,
    lists: Arc<ListSet>,
    webhooks: Vec<(WebhookConfig, hyper::Uri)>,
    runtime: tokio::runtime::Handle,
    webhook_failures: Arc<AtomicU64>,
}

impl Actuator {
    /// Must be called inside the tokio runtime that will run the webhooks.
    pub fn new(config: ActuatorConfig, lists: Arc<ListSet>) -> Result<Self, ActuatorError> {
        let audit = AuditTrail::open(&config)?;
        let webhooks = config
            .webhook
            .iter()
            .filter_map(|webhook| webhook_target(&webhook.url).map(|uri| (webhook.clone(), uri)))
            .collect();
        Ok(Actuator {
            bans: Mutex::new(HashMap::new()),
            audit,
            lists,
            webhooks,
            runtime: tokio::runtime::Handle::current(),
            webhook_failures: Arc::new(AtomicU64::new(0)),
            config,
        })
    }

    /// How long `fingerprint` stays banned; `None` when it may publish.
    pub fn ban_remaining(&self, fingerprint: &str) -> Option<Duration> {
        let mut bans = lock(&self.bans);
        let now = Instant::now();
        match bans.get(fingerprint) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                bans.remove(fingerprint);
                None
            }
            None => None,
        }
    }

    pub fn ban(&self, fingerprint: &str) {
        let until = Instant::now() + Duration::from_secs(self.config.ban_seconds);
        lock(&self.bans).insert(fingerprint.to_string(), until);
    }

    /// Writes an audit record and posts it to the webhooks that want its event.
    pub fn record(&self, record: AuditRecord) {
        self.audit.append(&record);
        for (webhook, uri) in &self.webhooks {
            if webhook.events.contains(&record.event) {
                let body = serde_json::to_vec(&record).unwrap_or_default();
                let failures = Arc::clone(&self.webhook_failures);
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

    /// The latest audit records, oldest first.
    pub fn recent_records(&self) -> Vec<AuditRecord> {
        lock(&self.audit.recent).iter().cloned().collect()
    }

    pub fn webhook_failures(&self) -> u64 {
        self.webhook_failures.load(Ordering::Relaxed)
    }

    pub fn learn_keyframes(&self) -> usize {
        self.config.learn_keyframes
    }

    /// Adds a cut stream's keyframe hashes to the `learn_into` list, on a blocking
    /// thread (rebuilding an index is not for an analysis worker to wait on).
    pub fn learn(&self, hashes: Vec<(Hash256, u8)>, label: String) {
        let Some(list) = self.config.learn_into.clone() else {
            return;
        };
        if hashes.is_empty() {
            return;
        }
        let lists = Arc::clone(&self.lists);
        self.runtime.spawn_blocking(move || {
            let added: Vec<AddedHash> = hashes
                .into_iter()
                .map(|(hash, quality)| AddedHash {
                    hash,
                    quality: Some(quality),
                    label: label.clone(),
                })
                .collect();
            match lists.add_hashes(&list, &added) {
                Ok(report) => info!(list = %list, learned = added.len(), version = report.version, "learned hashes of a cut stream"),
                Err(error) => warn!(list = %list, %error, "cannot learn hashes of a cut stream"),
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::lists::HashListConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn lists(dir: &tempfile::TempDir) -> Arc<ListSet> {
        let path = dir.path().join("learned.csv");
        std::fs::write(&path, "# learned hashes\n").expect("write list");
        let config = HashListConfig {
            allow_empty: true,
            ..HashListConfig::new("learned", &path)
        };
        Arc::new(ListSet::load(&[config]).expect("load"))
    }

    /// An HTTP server answering each request with the next status of `statuses`
    /// (200 once they run out), keeping the request bodies.
    async fn webhook_receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&bodies);
        tokio::spawn(async move {
            let mut statuses = statuses.into_iter();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                let body = loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        break None;
                    };
                    if n == 0 {
                        break None;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break Some(body.to_string());
                        }
                    }
                };
                let status = statuses.next().unwrap_or(200);
                if let Some(body) = body {
                    lock(&seen).push(body);
                }
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        (url, bodies)
    }

    async fn eventually(limit: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !done() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    #[tokio::test]
    async fn webhooks_get_the_records_they_subscribe_to_with_retries() {
        let dir = tempfile::tempdir().expect("dir");
        let (url, bodies) = webhook_receiver(vec![503]).await;
        let config = ActuatorConfig {
            webhook: vec![WebhookConfig {
                url,
                events: vec![AuditEvent::Cut],
                timeout_ms: 1000,
                retries: 2,
            }],
            ..ActuatorConfig::default()
        };
        let actuator = Actuator::new(config, lists(&dir)).expect("actuator");
        actuator.record(AuditRecord::now(
            AuditEvent::Match,
            StreamId::local(1),
            "only audited",
        ));
        actuator.record(AuditRecord::now(
            AuditEvent::Cut,
            StreamId::local(2),
            "posted",
        ));
        assert!(eventually(Duration::from_secs(5), || lock(&bodies).len() == 2).await);
        // The first attempt got 503 and was retried; both bodies are the cut record.
        for body in lock(&bodies).iter() {
            let record: serde_json::Value = serde_json::from_str(body).expect("json body");
            assert_eq!(record["event"], "cut");
            assert_eq!(record["stream_id"], StreamId::local(2).to_string());
        }
        assert_eq!(actuator.webhook_failures(), 0);
        assert_eq!(actuator.recent_records().len(), 2);
    }

    #[tokio::test]
    async fn a_webhook_that_keeps_failing_is_counted_not_waited_for() {
        let dir = tempfile::tempdir().expect("dir");
        let (url, _) = webhook_receiver(vec![500, 500]).await;
        let config = ActuatorConfig {
            webhook: vec![WebhookConfig {
                url,
                events: vec![AuditEvent::Cut],
                timeout_ms: 1000,
                retries: 1,
            }],
            ..ActuatorConfig::default()
        };
        let actuator = Actuator::new(config, lists(&dir)).expect("actuator");
        let started = std::time::Instant::now();
        actuator.record(AuditRecord::now(
            AuditEvent::Cut,
            StreamId::local(3),
            "posted",
        ));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "record() waited on the webhook"
        );
        assert!(eventually(Duration::from_secs(5), || actuator.webhook_failures() == 1).await);
    }

    #[tokio::test]
    async fn bans_expire_and_learned_hashes_join_the_list() {
        let dir = tempfile::tempdir().expect("dir");
        let lists = lists(&dir);
        let config = ActuatorConfig {
            ban_seconds: 1,
            learn_into: Some("learned".into()),
            ..ActuatorConfig::default()
        };
        let actuator = Actuator::new(config, Arc::clone(&lists)).expect("actuator");
        actuator.ban("0123456789abcdef");
        assert!(actuator.ban_remaining("0123456789abcdef").is_some());
        assert!(actuator.ban_remaining("fedcba9876543210").is_none());
        let hashes = vec![
            (Hash256::from_words([1, 2, 3, 4]), 90),
            (Hash256::from_words([u64::MAX; 4]), 80),
        ];
        actuator.learn(hashes, "learned,session 7".into());
        assert!(
            eventually(Duration::from_secs(5), || lists.status()[0]
                .added_at_runtime
                == 2)
            .await
        );
        let found = lists.lookup(&[Hash256::from_words([1, 2, 3, 4])], 100);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].distance, 0);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            actuator.ban_remaining("0123456789abcdef").is_none(),
            "ban did not expire"
        );
    }

    #[test]
    fn audit_records_are_appended_as_json_lines() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = runtime.enter();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("audit.jsonl");
        let config = ActuatorConfig {
            audit_log: Some(path.clone()),
            ..ActuatorConfig::default()
        };
        let actuator = Actuator::new(config, lists(&dir)).expect("actuator");
        let mut record = AuditRecord::now(AuditEvent::Rejected, StreamId::local(9), "banned");
        record.key_fingerprint = Some("0123456789abcdef".into());
        actuator.record(record);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let text = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.ends_with('\n') || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let record: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(record["event"], "rejected");
        assert_eq!(record["key_fingerprint"], "0123456789abcdef");
        assert!(record.get("signal").is_none());
    }

    #[test]
    fn an_unwritable_audit_log_is_a_startup_error_naming_the_key() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let _guard = runtime.enter();
        let dir = tempfile::tempdir().expect("dir");
        let config = ActuatorConfig {
            audit_log: Some(dir.path().join("missing-dir/audit.jsonl")),
            ..ActuatorConfig::default()
        };
        let error = Actuator::new(config, lists(&dir)).err().expect("must fail");
        assert!(error.to_string().contains("actuator.audit_log"), "{error}");
    }
}
