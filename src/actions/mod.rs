//! The one owner of what livegate does about a stream: cut it (whoever asks: policy,
//! operator, overload, shutdown, an uninspectable stream), refuse its `publish`, ban its
//! key, learn its hashes, and write the audit record — built here from the session's
//! identity, and nowhere else.
//!
//! Nothing here delays a cut: the cut request wakes the session's relay at once, while
//! audit lines go to a writer thread, webhooks to their own tasks and learning to a
//! blocking thread. Node-shared state (bans, added hashes, the audit trail) is kept by
//! the [`Backend`].

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{info, warn};

use crate::backend::{Backend, BanTarget};
use crate::config::InvalidKey;
use crate::session::{Closer, CutEvidence, CutRequest, EndKind, SessionState};
use crate::signals::descriptor_lists::AddedDescriptor;
use crate::signals::lists::AddedHash;
use crate::stream::{RedactedKey, StreamId};
use crate::telemetry::Telemetry;
use livegate_signals::descriptor::Descriptor;
use livegate_signals::hash256::Hash256;

mod audit;
mod webhooks;

pub use audit::{AuditEvent, AuditRecord, AuditTrail, SignalRecord};
pub use webhooks::WebhookConfig;
use webhooks::{Webhooks, webhook_target};

/// `[actuator]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActuatorConfig {
    /// How long a cut stream's key is refused at `publish`.
    #[serde(default = "defaults::ban_seconds")]
    pub ban_seconds: u64,
    /// A cut also bans the client's address (IPv6: its /64) for `ban_seconds`. Off by
    /// default: behind a load balancer without the PROXY protocol every client has the
    /// balancer's address, and one cut would lock everyone out.
    #[serde(default)]
    pub ban_client_address: bool,
    /// JSON-lines audit file (appended); without it, audit records go to the log only.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Recent audit records kept in memory (for the admin API).
    #[serde(default = "defaults::audit_memory")]
    pub audit_memory: usize,
    /// On a cut, add the stream's recently analysed keyframe hashes to the `[[hashlist]]`
    /// of this name, and their descriptors to the `[[descriptorlist]]` of this name (either
    /// or both may exist), so other copies of the same footage — edited ones too, through
    /// the descriptors — are caught even if the lists held only a few frames.
    #[serde(default)]
    pub learn_into: Option<String>,
    /// How many of the cut stream's latest analysed keyframes are learned.
    #[serde(default = "defaults::learn_keyframes")]
    pub learn_keyframes: usize,
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
}

impl Default for ActuatorConfig {
    fn default() -> Self {
        ActuatorConfig {
            ban_seconds: defaults::ban_seconds(),
            ban_client_address: false,
            audit_log: None,
            audit_memory: defaults::audit_memory(),
            learn_into: None,
            learn_keyframes: defaults::learn_keyframes(),
            webhook: Vec::new(),
        }
    }
}

mod defaults {
    pub fn ban_seconds() -> u64 {
        600
    }
    pub fn audit_memory() -> usize {
        1000
    }
    pub fn learn_keyframes() -> usize {
        10
    }
}

impl ActuatorConfig {
    /// Checks what can be checked without other sections; the error is `(key, message)`.
    pub fn validate(&self, list_names: &[&str]) -> Result<(), InvalidKey> {
        if let Some(list) = &self.learn_into
            && !list_names.contains(&list.as_str())
        {
            return Err(InvalidKey::new(
                "actuator.learn_into".into(),
                format!("no [[hashlist]] or [[descriptorlist]] is named {list:?}"),
            ));
        }
        for (index, webhook) in self.webhook.iter().enumerate() {
            let key = |name: &str| format!("actuator.webhook[{index}].{name}");
            if webhook_target(&webhook.url).is_none() {
                return Err(InvalidKey::new(
                    key("url"),
                    format!(
                        "{:?} is not an http:// or https://HOST:PORT/PATH URL",
                        webhook.url
                    ),
                ));
            }
            if webhook.timeout_ms == 0 {
                return Err(InvalidKey::new(
                    key("timeout_ms"),
                    "must be greater than 0".into(),
                ));
            }
            if webhook.retries > 10 {
                return Err(InvalidKey::new(key("retries"), "must be at most 10".into()));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    #[error("cannot open audit log {path} (actuator.audit_log): {source}")]
    AuditLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    WebhookTls(#[from] crate::ingest::tls::CertificateError),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a verdict says about a stream, to be audited: the event, why, the signal that
/// decided and the sample's presentation time.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub event: AuditEvent,
    pub reason: String,
    pub signal: Option<SignalRecord>,
    pub pts_seconds: Option<f64>,
    /// The decision's evidence frame id.
    pub evidence: Option<String>,
    /// The operator who acted (the admin token's name), for a manual cut.
    pub actor: Option<String>,
}

impl Finding {
    /// A finding with no signal and no sample (manual and overload cuts, overload alerts).
    pub fn new(event: AuditEvent, reason: impl Into<String>) -> Self {
        Finding {
            event,
            reason: reason.into(),
            signal: None,
            pts_seconds: None,
            evidence: None,
            actor: None,
        }
    }
}

/// A cut to make, audited once the session's sockets are closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cut {
    pub closer: Closer,
    pub kind: EndKind,
    pub finding: Finding,
    /// When the decisive keyframe's first byte arrived (for the time to cut).
    pub keyframe_arrived: Option<Instant>,
    /// Ban the stream's key for `ban_seconds`.
    pub ban: bool,
    /// What the cut learns into `learn_into`.
    pub learn: Learned,
}

/// A cut stream's footage as `learn_into` learns it: its recently analysed keyframe
/// hashes (for the hash list) and described keyframes' whole-picture descriptors (for
/// the descriptor list).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learned {
    pub hashes: Vec<(Hash256, u8)>,
    pub descriptors: Vec<LearnedDescriptor>,
}

/// One described keyframe's whole-picture descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedDescriptor {
    pub descriptor: Descriptor,
    pub pts_ms: i64,
}

/// What became of a cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutOutcome {
    /// False when another end was requested first: the session is already closing and
    /// this cut did nothing.
    pub won: bool,
    /// The key fingerprint banned by this cut.
    pub banned: Option<String>,
}

/// The actions livegate takes: shared by the analysis workers, the sessions, the admin
/// API and the server.
pub struct Actions {
    config: ActuatorConfig,
    backend: Arc<dyn Backend>,
    webhooks: Webhooks,
    telemetry: Arc<Telemetry>,
    runtime: tokio::runtime::Handle,
}

impl Actions {
    /// Must be called inside the tokio runtime that will run webhooks and learning.
    pub fn new(
        config: ActuatorConfig,
        backend: Arc<dyn Backend>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, ActionsError> {
        Ok(Actions {
            webhooks: Webhooks::new(&config.webhook)?,
            backend,
            telemetry,
            runtime: tokio::runtime::Handle::current(),
            config,
        })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The audit record of `finding` about `session`, identified by what its inspector
    /// learned (app, key fingerprint) and its client.
    fn audit_record(session: &SessionState, finding: Finding) -> AuditRecord {
        let identity = session.identity();
        let mut record = AuditRecord::now(finding.event, session.id, finding.reason);
        record.app = identity.app.unwrap_or_default();
        record.key_fingerprint = identity.key.map(|key| key.fingerprint().to_string());
        record.client = session.client.to_string();
        record.signal = finding.signal;
        record.pts_seconds = finding.pts_seconds;
        record.evidence = finding.evidence;
        record.actor = finding.actor;
        record
    }

    /// Audits a verdict that does not end the stream (match, alert, shadow cut, overload).
    pub fn record(&self, session: &SessionState, finding: Finding) {
        self.publish(Self::audit_record(session, finding));
    }

    /// Cuts `session`: its relay ends at once; the audit record is written by
    /// [`Actions::finish_cut`] when both sockets are closed. The first end requested
    /// wins: a later cut neither bans nor learns.
    pub fn cut(&self, session: &SessionState, cut: Cut) -> CutOutcome {
        let key = session.identity().key;
        let won = session.request_cut(CutRequest {
            closer: cut.closer,
            kind: cut.kind,
            reason: cut.finding.reason.clone(),
            evidence: Some(Arc::new(CutEvidence {
                record: Self::audit_record(session, cut.finding),
                keyframe_arrived: cut.keyframe_arrived,
            })),
        });
        if !won {
            return CutOutcome { won, banned: None };
        }
        let banned = key.filter(|_| cut.ban).map(|key| {
            self.ban(&BanTarget::key(key.fingerprint()));
            key.fingerprint().to_string()
        });
        if cut.ban && self.config.ban_client_address {
            self.ban(&BanTarget::client(session.client.ip()));
        }
        self.learn(cut.learn, session.id);
        CutOutcome { won, banned }
    }

    /// Ends `session` with nothing to audit (shutdown, a stream that cannot be
    /// inspected); false when another end was requested first.
    pub fn close(
        &self,
        session: &SessionState,
        closer: Closer,
        kind: EndKind,
        reason: impl Into<String>,
    ) -> bool {
        session.request_cut(CutRequest {
            closer,
            kind,
            reason: reason.into(),
            evidence: None,
        })
    }

    /// Refuses `key`'s `publish` on `session` before it reaches the origin (a banned key,
    /// or a second key on one connection): audits it as `rejected` and returns the end
    /// the session takes.
    pub fn refuse_publish(
        &self,
        session: &SessionState,
        key: &RedactedKey,
        kind: EndKind,
        reason: String,
    ) -> CutRequest {
        let mut record =
            Self::audit_record(session, Finding::new(AuditEvent::Rejected, reason.clone()));
        // The refused key, which need not be the one the connection published first.
        record.key_fingerprint = Some(key.fingerprint().to_string());
        self.publish(record);
        CutRequest {
            closer: Closer::Policy,
            kind,
            reason,
            evidence: None,
        }
    }

    /// Completes a cut once both sockets closed at `closed_at`: writes its audit record
    /// with the time to cut, and counts it.
    pub fn finish_cut(&self, evidence: &CutEvidence, closed_at: Instant) {
        let mut record = evidence.record.clone();
        // Whole microseconds: what the clock can tell, and no `4.5589200000000005` in JSON.
        record.time_to_cut_ms = evidence
            .keyframe_arrived
            .map(|arrived| closed_at.duration_since(arrived).as_micros() as f64 / 1000.0);
        self.telemetry.record_cut(&record);
        self.publish(record);
    }

    /// How long `target` stays banned; `None` when it may publish.
    pub fn ban_remaining(&self, target: &BanTarget) -> Option<Duration> {
        self.backend.ban_remaining(target)
    }

    /// Bans `target` for `actuator.ban_seconds` (on every node of a fleet).
    pub fn ban(&self, target: &BanTarget) {
        self.backend
            .ban(target, Duration::from_secs(self.config.ban_seconds));
    }

    /// The bans in force on this node, with what is left of each.
    pub fn bans(&self) -> Vec<(BanTarget, Duration)> {
        self.backend.bans()
    }

    /// Lifts `target`'s ban (on every node of a fleet), audited with `reason` and the
    /// operator who lifted it; true when it was banned on this node.
    pub fn lift_ban(&self, target: &BanTarget, reason: &str, actor: &str) -> bool {
        let was_banned = self.backend.lift_ban(target);
        let mut record = AuditRecord::about_no_stream(AuditEvent::BanLifted, reason);
        record.actor = Some(actor.to_string());
        match target {
            BanTarget::Key(fingerprint) => record.key_fingerprint = Some(fingerprint.clone()),
            BanTarget::Client(address) => record.client = address.to_string(),
        }
        tracing::info!(%target, was_banned, %reason, %actor, "ban lifted");
        self.publish(record);
        was_banned
    }

    /// Audits an operator's action that concerns no live stream (a list update).
    pub fn audit(&self, record: AuditRecord) {
        self.publish(record);
    }

    /// Stores an audit record and posts it to the webhooks that want its event.
    fn publish(&self, record: AuditRecord) {
        self.backend.publish_audit(&record);
        self.webhooks.post(&record);
    }

    /// The latest audit records, oldest first.
    pub fn recent_records(&self) -> Vec<AuditRecord> {
        self.backend.recent_audit()
    }

    pub fn webhook_failures(&self) -> u64 {
        self.webhooks.failures()
    }

    /// How many of a stream's latest analysed keyframes a cut learns.
    pub fn learn_keyframes(&self) -> usize {
        self.config.learn_keyframes
    }

    /// Adds a cut stream's keyframe hashes and descriptors to the `learn_into` lists, on
    /// a blocking thread (rebuilding an index is not for an analysis worker to wait on).
    /// Analysis collects only what a list of that name exists for.
    fn learn(&self, learned: Learned, stream: StreamId) {
        let Some(list) = self.config.learn_into.clone() else {
            return;
        };
        if learned == Learned::default() {
            return;
        }
        let backend = Arc::clone(&self.backend);
        self.runtime.spawn_blocking(move || {
            if !learned.hashes.is_empty() {
                let label = format!("learned,session {stream}");
                let added: Vec<AddedHash> = learned
                    .hashes
                    .into_iter()
                    .map(|(hash, quality)| AddedHash {
                        hash,
                        quality: Some(quality),
                        label: label.clone(),
                    })
                    .collect();
                match backend.add_hashes(&list, &added) {
                    Ok(report) => info!(list = %list, learned = added.len(), version = report.version, "learned hashes of a cut stream"),
                    Err(error) => warn!(list = %list, %error, "cannot learn hashes of a cut stream"),
                }
            }
            if !learned.descriptors.is_empty() {
                let added: Vec<AddedDescriptor> = learned
                    .descriptors
                    .into_iter()
                    .map(|learned| AddedDescriptor {
                        descriptor: learned.descriptor,
                        source: stream.to_string(),
                        pts: Some(learned.pts_ms.max(0) as f64 / 1000.0),
                        label: "learned".into(),
                    })
                    .collect();
                match backend.add_descriptors(&list, &added) {
                    Ok(report) => info!(list = %list, learned = added.len(), version = report.version, "learned descriptors of a cut stream"),
                    Err(error) => warn!(list = %list, %error, "cannot learn descriptors of a cut stream"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use crate::session::{Registration, SessionRegistry};
    use crate::signals::descriptor_lists::{DescriptorListConfig, DescriptorListSet};
    use crate::signals::lists::{HashListConfig, ListSet};
    use livegate_signals::descriptor::DescriptorModel;
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

    /// A descriptor list `learned` of 4-d descriptors, empty.
    fn descriptor_lists(dir: &tempfile::TempDir) -> Arc<DescriptorListSet> {
        let path = dir.path().join("learned.txt");
        std::fs::write(&path, "livegate-descriptors 1 model=test dim=4\n").expect("write");
        let config = DescriptorListConfig {
            allow_empty: true,
            ..DescriptorListConfig::new("learned", &path)
        };
        let model = DescriptorModel::new("test", 4).expect("model");
        Arc::new(DescriptorListSet::load(&[config], &model).expect("load"))
    }

    fn actions(config: ActuatorConfig, lists: Arc<ListSet>) -> Actions {
        actions_with(config, lists, None)
    }

    fn actions_with(
        config: ActuatorConfig,
        lists: Arc<ListSet>,
        descriptor_lists: Option<Arc<DescriptorListSet>>,
    ) -> Actions {
        let trail = AuditTrail::open(&config).expect("audit trail");
        Actions::new(
            config,
            Arc::new(LocalBackend::new(lists, descriptor_lists, trail)),
            Arc::new(Telemetry::default()),
        )
        .expect("actions without https webhooks start")
    }

    /// A live session that published `live/secret-key` from 192.0.2.7.
    fn session(registry: &Arc<SessionRegistry>) -> Registration {
        let ingest = "127.0.0.1:1935".parse().expect("addr");
        let client = "192.0.2.7:50000".parse().expect("addr");
        let registration = registry.register(ingest, client);
        registration.state.update_identity(|identity| {
            identity.app = Some("live".into());
            identity.key = Some(RedactedKey::new("secret-key"));
        });
        registration
    }

    fn policy_cut(reason: &str, ban: bool, learn: Learned) -> Cut {
        Cut {
            closer: Closer::Policy,
            kind: EndKind::PolicyCut,
            finding: Finding {
                signal: Some(SignalRecord::classifier("a", 0.9, None)),
                pts_seconds: Some(1.5),
                ..Finding::new(AuditEvent::Cut, reason)
            },
            keyframe_arrived: Some(Instant::now()),
            ban,
            learn,
        }
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
                ca: None,
                events: vec![AuditEvent::Alert],
                timeout_ms: 1000,
                retries: 2,
            }],
            ..ActuatorConfig::default()
        };
        let actions = actions(config, lists(&dir));
        let registry = Arc::new(SessionRegistry::default());
        let session = session(&registry);
        actions.record(
            &session.state,
            Finding::new(AuditEvent::Match, "only audited"),
        );
        actions.record(&session.state, Finding::new(AuditEvent::Alert, "posted"));
        assert!(eventually(Duration::from_secs(5), || lock(&bodies).len() == 2).await);
        // The first attempt got 503 and was retried; both bodies are the alert record.
        for body in lock(&bodies).iter() {
            let record: serde_json::Value = serde_json::from_str(body).expect("json body");
            assert_eq!(record["event"], "alert");
            assert_eq!(record["stream_id"], session.state.id.to_string());
        }
        assert_eq!(actions.webhook_failures(), 0);
        assert_eq!(actions.recent_records().len(), 2);
    }

    #[tokio::test]
    async fn a_webhook_that_keeps_failing_is_counted_not_waited_for() {
        let dir = tempfile::tempdir().expect("dir");
        let (url, _) = webhook_receiver(vec![500, 500]).await;
        let config = ActuatorConfig {
            webhook: vec![WebhookConfig {
                url,
                ca: None,
                events: vec![AuditEvent::Alert],
                timeout_ms: 1000,
                retries: 1,
            }],
            ..ActuatorConfig::default()
        };
        let actions = actions(config, lists(&dir));
        let registry = Arc::new(SessionRegistry::default());
        let session = session(&registry);
        let started = std::time::Instant::now();
        actions.record(&session.state, Finding::new(AuditEvent::Alert, "posted"));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "record() waited on the webhook"
        );
        assert!(eventually(Duration::from_secs(5), || actions.webhook_failures() == 1).await);
    }

    #[tokio::test]
    async fn a_cut_builds_its_record_once_bans_and_learns() {
        let dir = tempfile::tempdir().expect("dir");
        let lists = lists(&dir);
        let config = ActuatorConfig {
            ban_seconds: 1,
            learn_into: Some("learned".into()),
            ..ActuatorConfig::default()
        };
        let descriptor_lists = descriptor_lists(&dir);
        let actions = actions_with(
            config,
            Arc::clone(&lists),
            Some(Arc::clone(&descriptor_lists)),
        );
        let registry = Arc::new(SessionRegistry::default());
        let session = session(&registry);
        let descriptor = |values: [f32; 4]| Descriptor::new(values.to_vec()).expect("descriptor");
        let learned = Learned {
            hashes: vec![
                (Hash256::from_words([1, 2, 3, 4]), 90),
                (Hash256::from_words([u64::MAX; 4]), 80),
            ],
            descriptors: [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
                .into_iter()
                .enumerate()
                .map(|(index, values)| LearnedDescriptor {
                    descriptor: descriptor(values),
                    pts_ms: 1000 * index as i64,
                })
                .collect(),
        };
        let outcome = actions.cut(&session.state, policy_cut("matched", true, learned));
        let fingerprint = RedactedKey::new("secret-key").fingerprint().to_string();
        assert_eq!(
            outcome,
            CutOutcome {
                won: true,
                banned: Some(fingerprint.clone())
            }
        );
        let request = session.state.pending_cut().expect("cut requested");
        assert_eq!(
            (request.closer, request.kind, request.reason.as_str()),
            (Closer::Policy, EndKind::PolicyCut, "matched")
        );
        // Nothing is audited until the sockets are closed.
        assert!(actions.recent_records().is_empty());
        let evidence = request.evidence.expect("evidence");
        actions.finish_cut(&evidence, Instant::now());
        let records = actions.recent_records();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.event, AuditEvent::Cut);
        assert_eq!(
            (record.app.as_str(), record.client.as_str()),
            ("live", "192.0.2.7:50000")
        );
        assert_eq!(
            record.key_fingerprint.as_deref(),
            Some(fingerprint.as_str())
        );
        assert_eq!(record.pts_seconds, Some(1.5));
        assert!(record.signal.is_some() && record.time_to_cut_ms.is_some());

        assert!(
            actions
                .ban_remaining(&BanTarget::key(&fingerprint))
                .is_some()
        );
        // Without actuator.ban_client_address the client may come back with another key.
        assert_eq!(
            actions.ban_remaining(&BanTarget::client(session.state.client.ip())),
            None
        );
        assert!(
            eventually(Duration::from_secs(5), || lists.status()[0]
                .added_at_runtime
                == 2)
            .await
        );
        let found = lists.lookup(&[Hash256::from_words([1, 2, 3, 4])], 100);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].distance, 0);
        // Both descriptors learned, findable at once, with the stream and pts as source.
        assert!(
            eventually(Duration::from_secs(5), || descriptor_lists.status()[0]
                .added_at_runtime
                == 2)
            .await
        );
        let found = descriptor_lists.lookup(&[descriptor([0.1, 1.0, 0.0, 0.0])]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].source.as_str(), found[0].pts, found[0].line),
            (session.state.id.to_string().as_str(), Some(1.0), None)
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(
            actions
                .ban_remaining(&BanTarget::key(&fingerprint))
                .is_none(),
            "ban did not expire"
        );
    }

    #[tokio::test]
    async fn the_first_end_requested_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let actions = actions(ActuatorConfig::default(), lists(&dir));
        let registry = Arc::new(SessionRegistry::default());
        let session = session(&registry);
        assert!(actions.close(
            &session.state,
            Closer::Shutdown,
            EndKind::Shutdown,
            "livegate is shutting down"
        ));
        let outcome = actions.cut(
            &session.state,
            policy_cut("too late", true, Learned::default()),
        );
        assert_eq!(
            outcome,
            CutOutcome {
                won: false,
                banned: None
            }
        );
        let fingerprint = RedactedKey::new("secret-key").fingerprint().to_string();
        assert_eq!(actions.ban_remaining(&BanTarget::key(&fingerprint)), None);
        let request = session.state.pending_cut().expect("requested");
        assert_eq!((request.closer, request.evidence), (Closer::Shutdown, None));
    }

    #[test]
    fn a_refused_publish_is_audited_as_rejected_in_the_file() {
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
        let actions = actions(config, lists(&dir));
        let registry = Arc::new(SessionRegistry::default());
        let session = session(&registry);
        let other = RedactedKey::new("another-key");
        let end = actions.refuse_publish(
            &session.state,
            &other,
            EndKind::Rejected,
            "one stream key per connection".into(),
        );
        assert_eq!(
            (end.closer, end.kind, end.evidence),
            (Closer::Policy, EndKind::Rejected, None)
        );
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
        assert_eq!(record["app"], "live");
        assert_eq!(record["key_fingerprint"], other.fingerprint());
        assert!(record.get("signal").is_none());
    }

    #[test]
    fn an_unwritable_audit_log_is_a_startup_error_naming_the_key() {
        let dir = tempfile::tempdir().expect("dir");
        let config = ActuatorConfig {
            audit_log: Some(dir.path().join("missing-dir/audit.jsonl")),
            ..ActuatorConfig::default()
        };
        let error = AuditTrail::open(&config).err().expect("must fail");
        assert!(error.to_string().contains("actuator.audit_log"), "{error}");
    }
}
