//! What an operator can see and do to this node's live streams — list them, cut one,
//! cut every stream of a key — shared by the admin routes and by the requests other
//! nodes of a fleet send ([`serve_commands`]), so a cut asked on any node is the same
//! cut, audited the same way, on the node that holds the stream.

use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;
use tokio::sync::mpsc;
use tracing::info;

use crate::actions::{AuditEvent, Cut, Finding};
use crate::backend::cluster::Command;
use crate::backend::cluster::wire::is_fingerprint;
use crate::session::{Closer, EndKind, IngestMode, Services, SessionState};
use crate::stream::StreamId;

pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// One live stream as `GET /v1/streams` shows it.
#[derive(Serialize)]
pub struct StreamView {
    id: StreamId,
    /// The fleet node's name (with `[cluster]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    /// The fleet node's id, the prefix of its stream ids (with `[cluster]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<&'static str>,
    state: &'static str,
    app: Option<String>,
    /// The redacted key (`abc***#fingerprint`), never the key.
    key: Option<String>,
    key_fingerprint: Option<String>,
    client: String,
    ingest: String,
    /// The listener's protocol: rtmp, rtmps or srt.
    protocol: Option<&'static str>,
    /// An SRT stream's link statistics (RTT, loss, retransmissions) on both links.
    #[serde(skip_serializing_if = "Option::is_none")]
    srt: Option<crate::ingest::srt::SrtLinksView>,
    /// `pass` or `gate` (the ingest's `mode`).
    mode: &'static str,
    codec: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// `WIDTHxHEIGHT`, when known.
    resolution: Option<String>,
    /// Whether `GET /v1/streams/{id}/thumbnail` has a picture (`[evidence] thumbnails`).
    thumbnail: bool,
    started_at: String,
    bytes_from_publisher: u64,
    bytes_from_origin: u64,
    keyframes_seen: u64,
    keyframes_analysed: u64,
    last_match_distance: Option<u32>,
}

impl StreamView {
    fn of(session: &SessionState, node: Option<&str>, thumbnail: bool) -> StreamView {
        let identity = session.identity();
        let state = if session.cut_pending() {
            "closing"
        } else if identity.key.is_some() {
            "publishing"
        } else {
            "connecting"
        };
        StreamView {
            id: session.id,
            node: node.map(str::to_string),
            node_id: node.map(|_| crate::stream::node_id()),
            state,
            app: identity.app,
            key: identity.key.as_ref().map(ToString::to_string),
            key_fingerprint: identity.key.map(|key| key.fingerprint().to_string()),
            client: session.client.to_string(),
            ingest: session.ingest.to_string(),
            protocol: session.protocol().map(crate::config::Protocol::as_str),
            srt: session.srt.view(),
            mode: if session.gated.load(Ordering::Relaxed) {
                IngestMode::Gate.as_str()
            } else {
                IngestMode::Pass.as_str()
            },
            codec: identity.codec.map(|codec| codec.as_str().to_string()),
            width: identity.width,
            height: identity.height,
            resolution: identity
                .width
                .zip(identity.height)
                .map(|(width, height)| format!("{width}x{height}")),
            thumbnail,
            started_at: rfc3339(session.started_at),
            bytes_from_publisher: session.bytes_from_publisher.load(Ordering::Relaxed),
            bytes_from_origin: session.bytes_from_origin.load(Ordering::Relaxed),
            keyframes_seen: session.keyframes_seen.load(Ordering::Relaxed),
            keyframes_analysed: session.keyframes_analysed.load(Ordering::Relaxed),
            last_match_distance: session.last_match_distance(),
        }
    }
}

/// This node's name in the fleet, `None` on its own.
fn node_name(services: &Services) -> Option<&str> {
    services
        .analysis
        .actions()
        .backend()
        .fleet()
        .map(|fleet| fleet.node())
}

/// This node's live streams.
pub fn list(services: &Services) -> Vec<StreamView> {
    let node = node_name(services);
    let evidence = services.analysis.evidence();
    services
        .registry
        .list()
        .iter()
        .map(|session| {
            let thumbnail = evidence.thumbnail(session.id).is_some();
            StreamView::of(session, node, thumbnail)
        })
        .collect()
}

/// Whether this node serves the stream `id`.
pub fn is_live_here(services: &Services, id: &str) -> bool {
    StreamId::parse_local(id).is_some_and(|id| services.registry.get(&id).is_some())
}

/// A manual cut under way.
#[derive(Debug, Serialize)]
pub struct CutAccepted {
    pub id: StreamId,
    pub status: &'static str,
    pub reason: String,
    pub banned_key_fingerprint: Option<String>,
}

/// Why a manual cut did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CutRefused {
    #[error("no live stream with id {0:?}")]
    NotFound(String),
    #[error("stream {0} is already closing")]
    AlreadyClosing(StreamId),
}

impl CutRefused {
    pub fn status(&self) -> u16 {
        match self {
            CutRefused::NotFound(_) => 404,
            CutRefused::AlreadyClosing(_) => 409,
        }
    }
}

/// Cuts this node's stream `id` on the word of operator `actor` (`reason` already
/// checked), bans its key and audits it as a manual cut.
pub fn cut(
    services: &Services,
    id: &str,
    reason: &str,
    actor: &str,
) -> Result<CutAccepted, CutRefused> {
    let session = StreamId::parse_local(id)
        .and_then(|id| services.registry.get(&id))
        .ok_or_else(|| CutRefused::NotFound(id.to_string()))?;
    let reason = format!("manual cut: {reason}");
    let outcome = services.analysis.actions().cut(
        &session,
        Cut {
            closer: Closer::Operator,
            kind: EndKind::OperatorCut,
            finding: Finding {
                actor: Some(actor.to_string()),
                ..Finding::new(AuditEvent::ManualCut, reason.clone())
            },
            keyframe_arrived: None,
            ban: true,
            learn: Default::default(),
        },
    );
    if !outcome.won {
        return Err(CutRefused::AlreadyClosing(session.id));
    }
    info!(session = %session.id, %reason, %actor, "manual cut requested");
    Ok(CutAccepted {
        id: session.id,
        status: "closing",
        reason,
        banned_key_fingerprint: outcome.banned,
    })
}

/// Cuts every stream of this node publishing with the key `fingerprint` (for `actor`);
/// their keys are banned by the cuts. Returns the streams cut.
pub fn cut_key(services: &Services, fingerprint: &str, reason: &str, actor: &str) -> Vec<StreamId> {
    services
        .registry
        .list()
        .iter()
        .filter(|session| {
            session
                .identity()
                .key
                .is_some_and(|key| key.fingerprint() == fingerprint)
        })
        .filter_map(|session| {
            cut(services, &session.id.to_string(), reason, actor)
                .ok()
                .map(|accepted| accepted.id)
        })
        .collect()
}

/// Longest reason kept from another node's request.
const MAX_REMOTE_REASON_CHARS: usize = 1000;

/// Text another node sent, bounded and without control characters (it goes into logs
/// and the audit).
fn clean_remote(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The reason another node sent, cleaned, naming that node.
fn remote_reason(reason: &str, from: &str) -> String {
    format!(
        "{} (asked on node {})",
        clean_remote(reason, MAX_REMOTE_REASON_CHARS),
        clean_remote(from, 64)
    )
}

/// The operator another node acted for (a node of an older version sends none).
fn remote_actor(actor: Option<&str>) -> String {
    clean_remote(actor.unwrap_or("unknown"), 64)
}

/// Answers other nodes' requests until the cluster link goes away.
pub async fn serve_commands(mut commands: mpsc::Receiver<Command>, services: Arc<Services>) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::CutStream { request, reply } => {
                let reason = remote_reason(&request.reason, &request.from);
                let actor = remote_actor(request.actor.as_deref());
                let answer = match cut(&services, &request.stream, &reason, &actor) {
                    Ok(accepted) => (202, serde_json::to_value(accepted)),
                    Err(refused) => (
                        refused.status(),
                        Ok(serde_json::json!({ "error": refused.to_string() })),
                    ),
                };
                let _ = reply.send((answer.0, answer.1.unwrap_or_default()));
            }
            Command::CutKey { request, reply } => {
                if !is_fingerprint(&request.fingerprint) {
                    let _ = reply.send((
                        400,
                        serde_json::json!({ "error": "fingerprint: not 16 lowercase hex digits" }),
                    ));
                    continue;
                }
                let reason = remote_reason(&request.reason, &request.from);
                let actor = remote_actor(request.actor.as_deref());
                let cut = cut_key(&services, &request.fingerprint, &reason, &actor);
                let _ = reply.send((200, serde_json::json!({ "cut": cut })));
            }
            Command::Streams { reply } => {
                let _ = reply.send((200, serde_json::json!({ "streams": list(&services) })));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_reasons_are_bounded_and_printable() {
        let reason = remote_reason(&format!("bad\nline{}", "x".repeat(5000)), "node\u{1b}-b");
        assert!(!reason.chars().any(char::is_control), "{reason}");
        assert!(reason.chars().count() < MAX_REMOTE_REASON_CHARS + 100);
        assert!(reason.ends_with("(asked on node node-b)"), "{reason}");
    }
}
