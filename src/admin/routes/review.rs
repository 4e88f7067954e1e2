//! The review routes: evidence frames (`/v1/evidence/{id}`, its `/info`), the review
//! queue (`/v1/review`), confirming a frame into the lists (its PDQ hash through the same
//! path as `POST /v1/hashlists/{name}/hashes`, its descriptor through the descriptor
//! list's), dismissing it (optionally allowlisting the key at run time), the run-time
//! allowlist, and live streams' thumbnails.
//!
//! An id that is not 16 lowercase hex digits is answered exactly as an unknown one (404),
//! so the answers say nothing about which ids exist. Every review action is audited with
//! its actor.

use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;

use super::{
    AdminContext, ApiError, Body, Caller, add_descriptors_to, add_hashes_to, check_text,
    descriptor_lists, json, read_body, with_type,
};
use crate::actions::{AuditEvent, AuditRecord};
use crate::evidence::{EvidenceId, EvidenceInfo, EvidenceItem, Review, ReviewState};
use crate::policy::allowlist::AllowlistEntry;
use crate::signals::descriptor_lists::AddedDescriptor;
use crate::signals::lists::AddedHash;
use crate::stream::StreamId;
use livegate_signals::descriptor::Descriptor;
use livegate_signals::hash256::Hash256;

/// `GET /v1/review` returns at most this many items unless `?limit=` says otherwise.
const DEFAULT_REVIEW_LIMIT: usize = 100;

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The item `id`, or 404 for an unknown or malformed id alike.
fn item(context: &AdminContext, id: &str) -> Result<Arc<EvidenceItem>, ApiError> {
    EvidenceId::parse(id)
        .and_then(|id| context.services.analysis.evidence().get(id))
        .ok_or_else(|| ApiError::not_found(format!("no evidence with id {id:?}")))
}

/// A JPEG answer, never cached (evidence is what reviewers see, not what proxies keep).
fn jpeg(bytes: &[u8]) -> Response<Body> {
    let mut response = with_type(StatusCode::OK, "image/jpeg", bytes.to_vec());
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn evidence_jpeg(context: &AdminContext, id: &str) -> Result<Response<Body>, ApiError> {
    Ok(jpeg(&item(context, id)?.jpeg))
}

/// An item as the API shows it: its fields and whether its stream is still live here.
#[derive(Serialize)]
struct InfoView {
    #[serde(flatten)]
    info: EvidenceInfo,
    live: bool,
}

fn view(context: &AdminContext, info: EvidenceInfo) -> InfoView {
    let live = StreamId::parse_local(&info.stream_id)
        .and_then(|id| context.services.registry.get(&id))
        .is_some_and(|session| !session.cut_pending());
    InfoView { info, live }
}

pub(super) fn evidence_info(context: &AdminContext, id: &str) -> Result<Response<Body>, ApiError> {
    let info = item(context, id)?.info();
    Ok(json(StatusCode::OK, &view(context, info)))
}

/// `?state=open` (default): alerts and shadow cuts still open; `?state=all`: every item
/// (matches and cuts too, reviewed or not). Newest first.
pub(super) fn queue(
    context: &AdminContext,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let mut all = false;
    let mut limit = DEFAULT_REVIEW_LIMIT;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        match pair.split_once('=') {
            Some(("state", "open")) => all = false,
            Some(("state", "all")) => all = true,
            Some(("limit", value)) => {
                limit = value.parse().map_err(|_| {
                    ApiError::bad_request(format!("limit: {value:?} is not a non-negative integer"))
                })?;
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query {pair:?}: expected state=open, state=all or limit=N"
                )));
            }
        }
    }
    let items: Vec<InfoView> = context
        .services
        .analysis
        .evidence()
        .newest(limit, |info| {
            all || (matches!(info.event, AuditEvent::Alert | AuditEvent::ShadowCut)
                && info.review.state == ReviewState::Open)
        })
        .into_iter()
        .map(|info| view(context, info))
        .collect();
    #[derive(Serialize)]
    struct Queue {
        items: Vec<InfoView>,
    }
    Ok(json(StatusCode::OK, &Queue { items }))
}

/// A JSON body, or the default when the request has none.
async fn read_optional_json<T: serde::de::DeserializeOwned + Default>(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let body = read_body(context, request).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))
}

/// A reason from a body: checked, trimmed, `None` when empty.
fn reason_of(reason: Option<String>) -> Result<Option<String>, ApiError> {
    let reason = reason.unwrap_or_default();
    let reason = reason.trim();
    check_text("reason", reason)?;
    Ok((!reason.is_empty()).then(|| reason.to_string()))
}

/// The audit record of `caller`'s review action on `info`.
fn review_record(
    event: AuditEvent,
    info: &EvidenceInfo,
    caller: &Caller,
    reason: String,
) -> AuditRecord {
    let mut record = AuditRecord::about_no_stream(event, reason);
    record.actor = Some(caller.name.clone());
    record.stream_id = StreamId::parse_local(&info.stream_id);
    record.app = info.app.clone();
    record.key_fingerprint = info.key_fingerprint.clone();
    record.client = info.client.clone();
    record.pts_seconds = info.pts_seconds;
    record.evidence = Some(info.id.clone());
    record
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    list: String,
    #[serde(default)]
    descriptor_list: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Adds the frame's hash (and descriptor) to the lists named; 409 if already reviewed.
pub(super) async fn confirm(
    context: &AdminContext,
    id: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let item = item(context, id)?;
    let body: ConfirmBody = super::read_json(context, request).await?;
    let reason = reason_of(body.reason)?;
    if context.lists.current(&body.list).is_none() {
        return Err(ApiError::not_found(format!(
            "no hash list named {:?}",
            body.list
        )));
    }
    let info = item.info();
    let hash = info
        .pdq
        .as_deref()
        .and_then(|hex| Hash256::from_hex(hex).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("evidence {id} has no PDQ hash to add"),
            )
        })?;
    let label = reason
        .clone()
        .unwrap_or_else(|| format!("confirmed from evidence {id}"));
    // The descriptor, when a descriptor list is named and the frame has one of its model.
    let descriptor = match &body.descriptor_list {
        Some(name) => {
            let lists = Arc::clone(descriptor_lists(context)?);
            if !lists.contains(name) {
                return Err(ApiError::not_found(format!(
                    "no [[descriptorlist]] named {name:?}"
                )));
            }
            let descriptor = item
                .descriptor()
                .filter(|values| values.len() == lists.model().dim())
                .and_then(|values| Descriptor::new(values).ok());
            descriptor.map(|descriptor| (lists, name.clone(), descriptor))
        }
        None => None,
    };
    let evidence = context.services.analysis.evidence();
    let review = Review {
        state: ReviewState::Confirmed,
        actor: Some(caller.name.clone()),
        time: Some(now()),
        reason: reason.clone(),
        list: Some(body.list.clone()),
    };
    evidence
        .claim_review(&item, review)
        .map_err(|error| ApiError::new(StatusCode::CONFLICT, error.to_string()))?;
    let added = async {
        let hashes = add_hashes_to(
            context,
            caller,
            &body.list,
            vec![AddedHash {
                hash,
                quality: info.pdq_quality,
                label: label.clone(),
            }],
        )
        .await?;
        let descriptors = match descriptor {
            Some((lists, name, descriptor)) => Some(
                add_descriptors_to(
                    context,
                    caller,
                    &lists,
                    &name,
                    vec![AddedDescriptor {
                        descriptor,
                        source: format!("evidence {id}"),
                        pts: info.pts_seconds,
                        label: label.clone(),
                    }],
                )
                .await?,
            ),
            None => None,
        };
        Ok::<_, ApiError>((hashes, descriptors))
    }
    .await;
    evidence.settle_review(&item, added.is_ok());
    let (hashes, descriptors) = added?;
    let mut into = body.list.clone();
    if let Some(descriptors) = &descriptors {
        into.push_str(&format!(" and descriptor list {}", descriptors.name));
    }
    let record = review_record(
        AuditEvent::EvidenceConfirmed,
        &info,
        caller,
        format!("confirmed into {into}: {label}"),
    );
    context.services.analysis.actions().audit(record);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "added_hashes": hashes.added.unwrap_or_default(),
            "added_descriptors": descriptors.and_then(|d| d.added).unwrap_or_default(),
            "review": item.info().review,
        }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DismissBody {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    allowlist_key: bool,
}

/// Dismisses the frame as a false positive, optionally allowlisting its key; 409 if
/// already reviewed.
pub(super) async fn dismiss(
    context: &AdminContext,
    id: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let item = item(context, id)?;
    let body: DismissBody = read_optional_json(context, request).await?;
    let reason = reason_of(body.reason)?;
    let info = item.info();
    let allowlisted = match (&info.key_fingerprint, body.allowlist_key) {
        (Some(key), true) => Some(key.clone()),
        (None, true) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("evidence {id} names no stream key to allowlist"),
            ));
        }
        (_, false) => None,
    };
    let evidence = context.services.analysis.evidence();
    let review = Review {
        state: ReviewState::Dismissed,
        actor: Some(caller.name.clone()),
        time: Some(now()),
        reason: reason.clone(),
        list: None,
    };
    evidence
        .claim_review(&item, review)
        .map_err(|error| ApiError::new(StatusCode::CONFLICT, error.to_string()))?;
    let reason = reason.unwrap_or_else(|| "no reason given".into());
    let added = match &allowlisted {
        Some(key) => context
            .services
            .analysis
            .allowlist()
            .add(AllowlistEntry {
                key_fingerprint: key.clone(),
                actor: caller.name.clone(),
                time: now(),
                reason: reason.clone(),
                evidence: Some(info.id.clone()),
            })
            .map_err(|full| ApiError::new(StatusCode::CONFLICT, full.to_string())),
        None => Ok(()),
    };
    evidence.settle_review(&item, added.is_ok());
    added?;
    let mut said = format!("dismissed as a false positive: {reason}");
    if allowlisted.is_some() {
        said.push_str("; key allowlisted (run-time allowlist)");
    }
    let record = review_record(AuditEvent::EvidenceDismissed, &info, caller, said);
    context.services.analysis.actions().audit(record);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "review": item.info().review,
            "allowlisted": allowlisted,
        }),
    ))
}

pub(super) fn allowlist(context: &AdminContext) -> Response<Body> {
    let entries = context.services.analysis.allowlist().entries();
    json(StatusCode::OK, &serde_json::json!({ "allowlist": entries }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    #[serde(default)]
    reason: Option<String>,
}

/// Removes a key from the run-time allowlist (audited); 404 when it is not there.
pub(super) async fn remove_from_allowlist(
    context: &AdminContext,
    fingerprint: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body: RemoveBody = read_optional_json(context, request).await?;
    let reason = reason_of(body.reason)?.unwrap_or_else(|| "no reason given".into());
    let removed = context
        .services
        .analysis
        .allowlist()
        .remove(fingerprint)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "key {fingerprint:?} is not in the run-time allowlist"
            ))
        })?;
    let mut record = AuditRecord::about_no_stream(
        AuditEvent::AllowlistRemoved,
        format!("removed from the run-time allowlist: {reason}"),
    );
    record.key_fingerprint = Some(removed.key_fingerprint.clone());
    record.actor = Some(caller.name.clone());
    record.evidence = removed.evidence.clone();
    context.services.analysis.actions().audit(record);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "removed": removed }),
    ))
}

/// The latest analysed keyframe of a live stream (`[evidence] thumbnails = true`).
pub(super) fn thumbnail(context: &AdminContext, id: &str) -> Result<Response<Body>, ApiError> {
    let evidence = context.services.analysis.evidence();
    if !evidence.config().thumbnails {
        return Err(ApiError::not_found(
            "thumbnails are off ([evidence] thumbnails = false)",
        ));
    }
    StreamId::parse_local(id)
        .and_then(|id| evidence.thumbnail(id))
        .map(|bytes| jpeg(&bytes))
        .ok_or_else(|| ApiError::not_found(format!("no thumbnail for stream {id:?} (yet)")))
}
