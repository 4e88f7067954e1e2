//! The audit trail: what an audit record holds (time, event, stream, app, key
//! fingerprint, client, signal, pts, time to cut) and where it goes — a JSON-lines file
//! appended by a writer thread, the log, and the latest records kept in memory for the
//! admin API. Records are built in one place ([`super::Actions`]); this file only
//! stores them.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;
use tracing::{error, info, warn};

use super::{ActionsError, ActuatorConfig, lock};
use crate::signals::descriptor_lists::DescriptorListMatch;
use crate::signals::lists::ListMatch;
use crate::stream::StreamId;
use livegate_signals::hash256::Hash256;

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
    /// An operator lifted a ban (no stream: `key_fingerprint` or `client` names it).
    BanLifted,
    /// A reviewer confirmed an evidence frame: its hash (and descriptor) joined a list.
    EvidenceConfirmed,
    /// A reviewer dismissed an evidence frame as a false positive.
    EvidenceDismissed,
    /// An operator removed a key from the run-time allowlist.
    AllowlistRemoved,
    /// An operator reloaded or added to a hash or descriptor list (no stream).
    ListUpdated,
}

impl AuditEvent {
    /// The name audit records and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Match => "match",
            AuditEvent::Alert => "alert",
            AuditEvent::ShadowCut => "shadow_cut",
            AuditEvent::Cut => "cut",
            AuditEvent::ManualCut => "manual_cut",
            AuditEvent::Rejected => "rejected",
            AuditEvent::Overload => "overload",
            AuditEvent::BanLifted => "ban_lifted",
            AuditEvent::EvidenceConfirmed => "evidence_confirmed",
            AuditEvent::EvidenceDismissed => "evidence_dismissed",
            AuditEvent::AllowlistRemoved => "allowlist_removed",
            AuditEvent::ListUpdated => "list_updated",
        }
    }
}

/// A signal as audited: a PDQ list match (`kind` "pdq"), a descriptor list match
/// (`kind` "descriptor": `list`, the view as `variant`, the cosine as `score`, the
/// entry's `source`, `source_pts`, `label` and `line`) or a classifier score (`kind`
/// "classifier": `label` and `score`, and `bbox` for a detection model). Fields a kind
/// does not have are left out of the JSON.
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
    /// PDQ: the matched entry's metadata fields when they are not `livegate hash`'s
    /// (whose file and time are `source` and `source_pts`), or a run-time addition's
    /// label; classifier: the class; descriptor: the entry's label.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Detection models: the box in frame pixels, `[x, y, width, height]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f32; 4]>,
    /// Where the matched entry came from: a descriptor list record's source and pts, or
    /// the file and time of a `livegate hash` list line.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_pts: Option<f64>,
    /// The matched entry's line in its list file (PDQ and descriptor lists); absent for
    /// an entry added at run time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The version of the list that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_version: Option<u64>,
}

impl SignalRecord {
    pub fn pdq(found: &ListMatch, frame_hash: &Hash256, quality: u8, variant: &str) -> Self {
        // Run-time additions (no file line) carry a free-text label, kept as it is.
        let file_fields = found.line.and(livegate_hash_fields(&found.fields));
        let (source, source_pts, label) = match file_fields {
            Some((source, pts)) => (source.to_string(), pts, String::new()),
            None => (String::new(), None, found.fields.clone()),
        };
        SignalRecord {
            source,
            source_pts,
            kind: "pdq",
            list: found.list.to_string(),
            hash: frame_hash.to_hex(),
            matched_hash: found.hash.to_hex(),
            distance: Some(found.distance),
            quality: Some(quality),
            variant: variant.to_string(),
            label,
            line: found.line,
            list_version: Some(found.list_version),
            ..SignalRecord::empty("pdq")
        }
    }

    pub fn classifier(label: &str, score: f32, bbox: Option<[f32; 4]>) -> Self {
        SignalRecord {
            label: label.to_string(),
            score: Some(score),
            bbox,
            ..SignalRecord::empty("classifier")
        }
    }

    /// A descriptor list match of the view named `view`; `score` is the cosine.
    pub fn descriptor(found: &DescriptorListMatch, view: &str) -> Self {
        SignalRecord {
            list: found.list.to_string(),
            variant: view.to_string(),
            label: found.label.clone(),
            score: Some(found.score),
            source: found.source.clone(),
            source_pts: found.pts,
            line: found.line,
            list_version: Some(found.list_version),
            ..SignalRecord::empty("descriptor")
        }
    }

    fn empty(kind: &'static str) -> Self {
        SignalRecord {
            kind,
            list: String::new(),
            hash: String::new(),
            matched_hash: String::new(),
            distance: None,
            quality: None,
            variant: String::new(),
            label: String::new(),
            score: None,
            bbox: None,
            source: String::new(),
            source_pts: None,
            line: None,
            list_version: None,
        }
    }
}

/// The file and time a `livegate hash` list line names (`QUALITY,FILE[,PTS]` after its
/// hash), so an audit record says `source` and `source_pts` rather than the rest of a CSV
/// line; `None` for lines of other shapes, whose fields stay the `label`.
fn livegate_hash_fields(fields: &str) -> Option<(&str, Option<f64>)> {
    let mut parts = fields.split(',');
    let quality = parts.next()?.parse::<u8>().ok()?;
    let file = parts.next()?;
    let pts = match parts.next() {
        Some(pts) => Some(pts.parse::<f64>().ok()?),
        None => None,
    };
    // A number where the file goes is another format (vPDQ's `frame,quality,…`).
    (quality <= 100 && parts.next().is_none() && !file.is_empty() && file.parse::<f64>().is_err())
        .then_some((file, pts))
}

/// One audit line (time, event, stream, app, key hash, client, signal, pts,
/// time to cut). The key appears only as its fingerprint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    pub time: String,
    pub event: AuditEvent,
    /// The stream the record is about; none for a record about a key or client alone
    /// (a ban lifted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<StreamId>,
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
    /// The evidence frame of the decision (`GET /v1/evidence/{id}`), or the one reviewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Who acted, for an operator's action: the name of the admin token used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl AuditRecord {
    pub fn now(event: AuditEvent, stream_id: StreamId, reason: impl Into<String>) -> Self {
        AuditRecord {
            stream_id: Some(stream_id),
            ..AuditRecord::about_no_stream(event, reason)
        }
    }

    /// A record about no stream (a key or a client: set `key_fingerprint` or `client`).
    pub fn about_no_stream(event: AuditEvent, reason: impl Into<String>) -> Self {
        AuditRecord {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
            stream_id: None,
            app: String::new(),
            key_fingerprint: None,
            client: String::new(),
            reason: reason.into(),
            signal: None,
            pts_seconds: None,
            time_to_cut_ms: None,
            evidence: None,
            actor: None,
        }
    }
}

/// Keeps the audit trail: appends to the file on a writer thread, remembers the latest.
pub struct AuditTrail {
    file: Option<SyncSender<String>>,
    recent: Mutex<VecDeque<AuditRecord>>,
    capacity: usize,
    dropped: AtomicU64,
}

/// Lines waiting for the writer thread; beyond this, records are dropped and counted
/// rather than blocking an analysis worker.
const AUDIT_QUEUE: usize = 4096;

impl AuditTrail {
    pub fn open(config: &ActuatorConfig) -> Result<Self, ActionsError> {
        let file = match &config.audit_log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ActionsError::AuditLog {
                        path: path.clone(),
                        source,
                    })?;
                let (sender, receiver) = sync_channel(AUDIT_QUEUE);
                let path = path.clone();
                std::thread::Builder::new()
                    .name("livegate-audit".into())
                    .spawn(move || write_audit_lines(file, &path, receiver))
                    .map_err(|source| ActionsError::AuditLog {
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

    pub fn append(&self, record: &AuditRecord) {
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

    /// The latest records, oldest first.
    pub fn recent(&self) -> Vec<AuditRecord> {
        lock(&self.recent).iter().cloned().collect()
    }
}

fn write_audit_lines(mut file: std::fs::File, path: &std::path::Path, lines: Receiver<String>) {
    for line in lines {
        if let Err(error) = writeln!(file, "{line}").and_then(|()| file.flush()) {
            error!(path = %path.display(), %error, "cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::livegate_hash_fields;

    #[test]
    fn livegate_hash_lines_name_their_file_and_time() {
        assert_eq!(
            livegate_hash_fields("100,known.mp4,0.000"),
            Some(("known.mp4", Some(0.0)))
        );
        assert_eq!(livegate_hash_fields("87,cat.jpg"), Some(("cat.jpg", None)));
        // vPDQ's frame,quality,timestamp and free text stay labels.
        assert_eq!(livegate_hash_fields("17,64,0.567"), None);
        assert_eq!(livegate_hash_fields("case 12"), None);
        assert_eq!(livegate_hash_fields("100,a.mp4,soon"), None);
    }
}
