//! The admin routes: one table ([`ROUTES`]) used for dispatch and checked against
//! `docs/openapi.json` by a test, the handlers, and JSON in and out.
//!
//! Everything under `/v1/` needs `Authorization: Bearer TOKEN` (or a review console
//! session cookie, see [`super::console`]) and is checked before the route is even
//! looked up, so an unauthenticated client learns nothing about ids
//! or list names. Errors are `{"error": "..."}` with the matching status code. Request
//! bodies are read through a size limit (413 beyond `admin.max_body_bytes`, without
//! buffering the rest). Stream keys never appear: sessions only hold redacted keys.
//!
//! Descriptors are posted as a descriptor list file, exactly as `livegate describe`
//! writes it (its header must name the configured model), not as JSON: a vector is 512
//! numbers, and the file format already has a checked reader that names `line N`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

mod review;

use super::streams::{self, CutRefused, rfc3339};
use super::{AdminContext, Caller, Phase};
use crate::actions::{AuditEvent, AuditRecord};
use crate::backend::cluster::FleetError;
use crate::backend::cluster::wire::{CutKeyRequest, FleetCommand, is_fingerprint};
use crate::backend::{BanTarget, Fleet};
use crate::signals::descriptor_lists::{
    AddedDescriptor, DescriptorAddReport, DescriptorListSet, DescriptorListSetError,
    DescriptorReloadReport,
};
use crate::signals::lists::{AddReport, AddedHash, ListSetError, ReloadReport};
use livegate_signals::descriptor::{
    DescriptorList, DescriptorListError, DescriptorListLimits, DescriptorModel, QuantizedDescriptor,
};
use livegate_signals::hash256::Hash256;
use livegate_signals::hashlist::parse_line;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    Ready,
    Metrics,
    OpenApi,
    ListStreams,
    CutStream,
    ListHashlists,
    ReloadHashlist,
    AddHashes,
    ListDescriptorlists,
    ReloadDescriptorlist,
    AddDescriptors,
    Events,
    CutKey,
    ListBans,
    LiftKeyBan,
    LiftClientBan,
    Cluster,
    Evidence,
    EvidenceInfo,
    Review,
    ConfirmEvidence,
    DismissEvidence,
    ListAllowlist,
    RemoveAllowlist,
    StreamThumbnail,
}

/// A method and a path pattern; `{name}` matches one path segment.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub endpoint: Endpoint,
}

/// Paths under this prefix need the bearer token.
pub const AUTHENTICATED_PREFIX: &str = "/v1/";

/// Every route the admin server answers (and `docs/openapi.json` must describe).
pub static ROUTES: &[Route] = &[
    route(Method::GET, "/healthz", Endpoint::Health),
    route(Method::GET, "/readyz", Endpoint::Ready),
    route(Method::GET, "/metrics", Endpoint::Metrics),
    route(Method::GET, "/openapi.json", Endpoint::OpenApi),
    route(Method::GET, "/v1/streams", Endpoint::ListStreams),
    route(Method::POST, "/v1/streams/{id}/cut", Endpoint::CutStream),
    route(Method::GET, "/v1/hashlists", Endpoint::ListHashlists),
    route(
        Method::POST,
        "/v1/hashlists/{name}/reload",
        Endpoint::ReloadHashlist,
    ),
    route(
        Method::POST,
        "/v1/hashlists/{name}/hashes",
        Endpoint::AddHashes,
    ),
    route(
        Method::GET,
        "/v1/descriptorlists",
        Endpoint::ListDescriptorlists,
    ),
    route(
        Method::POST,
        "/v1/descriptorlists/{name}/reload",
        Endpoint::ReloadDescriptorlist,
    ),
    route(
        Method::POST,
        "/v1/descriptorlists/{name}/descriptors",
        Endpoint::AddDescriptors,
    ),
    route(Method::GET, "/v1/events", Endpoint::Events),
    route(Method::POST, "/v1/keys/{fingerprint}/cut", Endpoint::CutKey),
    route(Method::GET, "/v1/bans", Endpoint::ListBans),
    route(
        Method::POST,
        "/v1/bans/keys/{fingerprint}/lift",
        Endpoint::LiftKeyBan,
    ),
    route(
        Method::POST,
        "/v1/bans/clients/{address}/lift",
        Endpoint::LiftClientBan,
    ),
    route(Method::GET, "/v1/cluster", Endpoint::Cluster),
    route(Method::GET, "/v1/evidence/{id}", Endpoint::Evidence),
    route(
        Method::GET,
        "/v1/evidence/{id}/info",
        Endpoint::EvidenceInfo,
    ),
    route(Method::GET, "/v1/review", Endpoint::Review),
    route(
        Method::POST,
        "/v1/evidence/{id}/confirm",
        Endpoint::ConfirmEvidence,
    ),
    route(
        Method::POST,
        "/v1/evidence/{id}/dismiss",
        Endpoint::DismissEvidence,
    ),
    route(Method::GET, "/v1/allowlist", Endpoint::ListAllowlist),
    route(
        Method::POST,
        "/v1/allowlist/{fingerprint}/remove",
        Endpoint::RemoveAllowlist,
    ),
    route(
        Method::GET,
        "/v1/streams/{id}/thumbnail",
        Endpoint::StreamThumbnail,
    ),
];

const fn route(method: Method, path: &'static str, endpoint: Endpoint) -> Route {
    Route {
        method,
        path,
        endpoint,
    }
}

/// The OpenAPI description, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// A request body must arrive within this once the head has.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// `GET /v1/events` returns at most this many records unless `?limit=` says otherwise.
const DEFAULT_EVENTS_LIMIT: usize = 100;
/// Longest accepted cut reason or hash label.
const MAX_TEXT_CHARS: usize = 1000;

type Body = Full<Bytes>;

/// An error answer: `{"error": message}` with `status`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
    allow: Option<String>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 405 naming the `allow`ed methods.
    pub(super) fn method_not_allowed(method: &Method, allow: &str) -> ApiError {
        ApiError {
            allow: Some(allow.to_string()),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed here (allowed: {allow})"),
            )
        }
    }

    pub(super) fn into_response(self) -> Response<Body> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
        }
        let mut response = json(
            self.status,
            &ErrorBody {
                error: &self.message,
            },
        );
        if let Some(allow) = self
            .allow
            .and_then(|allow| HeaderValue::from_str(&allow).ok())
        {
            response.headers_mut().insert(ALLOW, allow);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"livegate\""),
            );
        }
        response
    }
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, "application/json", body),
        Err(error) => with_type(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            format!("{{\"error\":\"cannot serialise the response: {error}\"}}").into_bytes(),
        ),
    }
}

fn with_type(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Answers one request.
pub async fn handle(context: &AdminContext, request: Request<Incoming>) -> Response<Body> {
    match respond(context, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn respond(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = request.uri().path().to_string();
    if super::console::is_console_path(&path) {
        return Ok(super::console::handle(context, request).await);
    }
    let caller = match path.starts_with(AUTHENTICATED_PREFIX) {
        true => Some(authorize(context, &request)?),
        false => None,
    };
    let (endpoint, params) = find_route(request.method(), &path)?;
    let param = |index: usize| params.get(index).copied().unwrap_or_default();
    // Every route that acts is under the authenticated prefix, so it has a caller.
    let acting = || {
        caller
            .as_ref()
            .ok_or_else(|| ApiError::internal("an acting route outside /v1/ has no caller"))
    };
    match endpoint {
        Endpoint::Health => Ok(json(StatusCode::OK, &Status { status: "alive" })),
        Endpoint::Ready => Ok(readiness(context)),
        Endpoint::Metrics => {
            let text = context
                .metrics
                .render()
                .map_err(|error| ApiError::internal(format!("cannot render metrics: {error}")))?;
            Ok(with_type(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text.into_bytes(),
            ))
        }
        Endpoint::OpenApi => Ok(with_type(
            StatusCode::OK,
            "application/json",
            OPENAPI_JSON.as_bytes().to_vec(),
        )),
        Endpoint::ListStreams => list_streams(context, request.uri().query()).await,
        Endpoint::CutStream => {
            let id = param(0).to_string();
            cut_stream(context, &id, acting()?, request).await
        }
        Endpoint::ListHashlists => Ok(list_hashlists(context)),
        Endpoint::ReloadHashlist => reload_hashlist(context, param(0), acting()?).await,
        Endpoint::AddHashes => {
            let name = param(0).to_string();
            add_hashes(context, &name, acting()?, request).await
        }
        Endpoint::ListDescriptorlists => Ok(list_descriptorlists(context)),
        Endpoint::ReloadDescriptorlist => reload_descriptorlist(context, param(0), acting()?).await,
        Endpoint::AddDescriptors => {
            let name = param(0).to_string();
            add_descriptors(context, &name, acting()?, request).await
        }
        Endpoint::Events => events(context, request.uri().query()),
        Endpoint::CutKey => {
            let fingerprint = param(0).to_string();
            cut_key(context, &fingerprint, acting()?, request).await
        }
        Endpoint::ListBans => Ok(list_bans(context)),
        Endpoint::LiftKeyBan => {
            let fingerprint = param(0);
            if !is_fingerprint(fingerprint) {
                return Err(ApiError::bad_request(format!(
                    "{fingerprint:?} is not a key fingerprint (16 lowercase hex digits, as /v1/bans shows)"
                )));
            }
            lift_ban(context, BanTarget::key(fingerprint), acting()?, request).await
        }
        Endpoint::LiftClientBan => {
            let address: std::net::IpAddr = param(0).parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "{:?} is not an IP address (as /v1/bans shows)",
                    param(0)
                ))
            })?;
            lift_ban(context, BanTarget::client(address), acting()?, request).await
        }
        Endpoint::Cluster => Ok(cluster_status(context)),
        Endpoint::Evidence => review::evidence_jpeg(context, param(0)),
        Endpoint::EvidenceInfo => review::evidence_info(context, param(0)),
        Endpoint::Review => review::queue(context, request.uri().query()),
        Endpoint::ConfirmEvidence => {
            let id = param(0).to_string();
            review::confirm(context, &id, acting()?, request).await
        }
        Endpoint::DismissEvidence => {
            let id = param(0).to_string();
            review::dismiss(context, &id, acting()?, request).await
        }
        Endpoint::ListAllowlist => Ok(review::allowlist(context)),
        Endpoint::RemoveAllowlist => {
            let fingerprint = param(0).to_string();
            review::remove_from_allowlist(context, &fingerprint, acting()?, request).await
        }
        Endpoint::StreamThumbnail => review::thumbnail(context, param(0)),
    }
}

/// Who is calling: from the bearer token, or, without an `Authorization` header, from a
/// console session cookie (a state change then needs its CSRF token); 401 without
/// either, with a wrong token, or when no token is configured.
fn authorize(context: &AdminContext, request: &Request<Incoming>) -> Result<Caller, ApiError> {
    if !request.headers().contains_key(AUTHORIZATION)
        && let Some(caller) = super::console::session_caller(context, request)?
    {
        return Ok(caller);
    }
    if context.tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "the admin API is locked: no token is configured (set admin.token, admin.token_file, [[admin.tokens]] or {})",
                super::TOKEN_ENV
            ),
        ));
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .and_then(|value| {
            let (scheme, credentials) = value.split_at_checked(7)?;
            scheme
                .eq_ignore_ascii_case(b"bearer ")
                .then(|| credentials.trim_ascii())
        });
    match presented {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer TOKEN (or log in at /console)",
        )),
        Some(candidate) => context
            .tokens
            .identify(candidate)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token")),
    }
}

/// The route for `method` and `path` with its `{…}` segments, or 404 / 405.
fn find_route<'p>(method: &Method, path: &'p str) -> Result<(Endpoint, Vec<&'p str>), ApiError> {
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, path) else {
            continue;
        };
        if route.method == *method {
            return Ok((route.endpoint, params));
        }
        allowed.push(route.method.as_str());
    }
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!("no route {path}")));
    }
    let allow = allowed.join(", ");
    Err(ApiError {
        allow: Some(allow.clone()),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path} (allowed: {allow})"),
        )
    })
}

fn match_path<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut params = Vec::new();
    let mut segments = path.split('/');
    for expected in pattern.split('/') {
        let segment = segments.next()?;
        if expected.starts_with('{') && expected.ends_with('}') {
            if segment.is_empty() {
                return None;
            }
            params.push(segment);
        } else if expected != segment {
            return None;
        }
    }
    segments.next().is_none().then_some(params)
}

/// Reads a JSON body through the size limit.
async fn read_json<T: DeserializeOwned>(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let body = read_body(context, request).await?;
    serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid JSON body: {error}")))
}

/// Reads a body through the size limit (413 beyond it) and the body timeout.
pub(super) async fn read_body(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<Bytes, ApiError> {
    let limit = context.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {limit} bytes (admin.max_body_bytes)"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(request.into_body(), limit).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
    })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {error}"
        ))),
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

fn readiness(context: &AdminContext) -> Response<Body> {
    #[derive(Serialize)]
    struct Readiness {
        status: &'static str,
        ingest_listeners: usize,
        hashlists: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        cluster_connected: Option<bool>,
    }
    let fleet = context.services.analysis.actions().backend().fleet();
    let cluster_connected = fleet.map(|fleet| fleet.status().connected());
    let (status, code) = match context.readiness.phase() {
        // Only when configured: by default a node without NATS still serves.
        Phase::Serving
            if fleet.is_some_and(|fleet| fleet.ready_requires_cluster())
                && cluster_connected == Some(false) =>
        {
            ("cluster_unreachable", StatusCode::SERVICE_UNAVAILABLE)
        }
        Phase::Serving => ("ready", StatusCode::OK),
        Phase::Starting => ("starting", StatusCode::SERVICE_UNAVAILABLE),
        Phase::Draining => ("draining", StatusCode::SERVICE_UNAVAILABLE),
    };
    json(
        code,
        &Readiness {
            status,
            ingest_listeners: context.ingest_listeners,
            hashlists: context.lists.names().count(),
            cluster_connected,
        },
    )
}

async fn list_streams(
    context: &AdminContext,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let mut fleet_wide = false;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        match pair {
            "scope=local" => fleet_wide = false,
            "scope=fleet" => fleet_wide = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query {other:?}: expected scope=local or scope=fleet"
                )));
            }
        }
    }
    let mut streams: Vec<serde_json::Value> = streams::list(&context.services)
        .into_iter()
        .filter_map(|view| serde_json::to_value(view).ok())
        .collect();
    if !fleet_wide {
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "streams": streams }),
        ));
    }
    let fleet = fleet(context)?;
    let gathered = fleet
        .gather(FleetCommand::Streams, &serde_json::json!({}))
        .await
        .map_err(fleet_error)?;
    let mut nodes = vec![serde_json::json!({ "node": fleet.node(), "node_id": fleet.node_id() })];
    for reply in gathered.replies {
        nodes.push(serde_json::json!({ "node": reply.node, "node_id": reply.node_id }));
        if let Some(serde_json::Value::Array(remote)) = reply.body.get("streams") {
            streams.extend(remote.iter().cloned());
        }
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "streams": streams,
            "nodes": nodes,
            "unanswered": gathered.unanswered,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CutBody {
    reason: String,
}

/// The checked reason of a cut request.
async fn read_reason(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<String, ApiError> {
    let body: CutBody = read_json(context, request).await?;
    let reason = body.reason.trim();
    check_text("reason", reason)?;
    if reason.is_empty() {
        return Err(ApiError::bad_request("reason: must not be empty"));
    }
    Ok(reason.to_string())
}

/// The fleet, or 409 on a node without `[cluster]`.
fn fleet(context: &AdminContext) -> Result<&Fleet, ApiError> {
    context
        .services
        .analysis
        .actions()
        .backend()
        .fleet()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "this node is not part of a cluster (no [cluster] section)",
            )
        })
}

fn fleet_error(error: FleetError) -> ApiError {
    let status = match error {
        FleetError::NoSuchNode(_) => StatusCode::NOT_FOUND,
        FleetError::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        FleetError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        FleetError::Request(_) | FleetError::BadReply { .. } => StatusCode::BAD_GATEWAY,
    };
    ApiError::new(status, error.to_string())
}

async fn cut_stream(
    context: &AdminContext,
    id: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let fleet = context.services.analysis.actions().backend().fleet();
    // An unknown id is answered before the body is read, as every lookup is.
    if fleet.is_none() && !streams::is_live_here(&context.services, id) {
        return Err(ApiError::not_found(format!(
            "no live stream with id {id:?}"
        )));
    }
    let reason = read_reason(context, request).await?;
    match (
        streams::cut(&context.services, id, &reason, &caller.name),
        fleet,
    ) {
        (Ok(accepted), _) => Ok(json(StatusCode::ACCEPTED, &accepted)),
        // Another node's id: ask it (this node's own ended streams are not asked for).
        (Err(CutRefused::NotFound(_)), Some(fleet))
            if id
                .rsplit_once('-')
                .is_some_and(|(node, _)| node != fleet.node_id()) =>
        {
            // Not here: the node named in the id may serve it.
            let reply = fleet
                .cut_stream(id, &reason, &caller.name)
                .await
                .map_err(fleet_error)?;
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            info!(stream = %id, node = %reply.node, status = reply.status, "manual cut sent to the node serving the stream");
            Ok(json(status, &reply.body))
        }
        (Err(refused), _) => Err(ApiError::new(
            StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::NOT_FOUND),
            refused.to_string(),
        )),
    }
}

/// Cuts every stream of a key, on every node of the fleet, and bans the key.
async fn cut_key(
    context: &AdminContext,
    fingerprint: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if !is_fingerprint(fingerprint) {
        return Err(ApiError::bad_request(format!(
            "{fingerprint:?} is not a key fingerprint (16 lowercase hex digits, as /v1/streams shows)"
        )));
    }
    let reason = read_reason(context, request).await?;
    let actions = context.services.analysis.actions();
    // Banned first, here and (through the backend) on every node: a publisher cut now
    // cannot come back through another node while the others are being asked.
    actions.ban(&BanTarget::key(fingerprint));
    let mut cut: Vec<serde_json::Value> =
        streams::cut_key(&context.services, fingerprint, &reason, &caller.name)
            .iter()
            .map(|id| serde_json::json!(id.to_string()))
            .collect();
    let mut unanswered = Vec::new();
    let mut fleet_error = None;
    if let Some(fleet) = actions.backend().fleet() {
        let request = CutKeyRequest {
            fingerprint: fingerprint.to_string(),
            reason: reason.clone(),
            from: fleet.node().to_string(),
            actor: Some(caller.name.clone()),
        };
        match fleet.gather(FleetCommand::CutKey, &request).await {
            Ok(gathered) => {
                for reply in gathered.replies {
                    if let Some(serde_json::Value::Array(ids)) = reply.body.get("cut") {
                        cut.extend(ids.iter().cloned());
                    }
                }
                unanswered = gathered.unanswered;
            }
            // The ban is made and reaches the fleet through the outbox; streams of
            // this key on other nodes could not be cut now: say so.
            Err(error) => fleet_error = Some(error.to_string()),
        }
    }
    info!(key_fingerprint = %fingerprint, streams = cut.len(), %reason, actor = %caller.name, "key cut requested");
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({
            "fingerprint": fingerprint,
            "cut": cut,
            "banned": true,
            "unanswered": unanswered,
            "fleet_error": fleet_error,
        }),
    ))
}

/// The bans in force on this node (a fleet's nodes hold the same ones, up to
/// propagation), soonest to expire first.
fn list_bans(context: &AdminContext) -> Response<Body> {
    #[derive(Serialize)]
    struct BanView {
        #[serde(skip_serializing_if = "Option::is_none")]
        key_fingerprint: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        remaining_seconds: u64,
    }
    let mut bans = context.services.analysis.actions().bans();
    bans.sort_by_key(|(_, remaining)| *remaining);
    let bans: Vec<BanView> = bans
        .into_iter()
        .map(|(target, remaining)| {
            let (key_fingerprint, client) = match target {
                BanTarget::Key(fingerprint) => (Some(fingerprint), None),
                BanTarget::Client(address) => (None, Some(address.to_string())),
            };
            BanView {
                key_fingerprint,
                client,
                // Rounded up: a ban with 0.4 s left is still a ban.
                remaining_seconds: remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0),
            }
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "bans": bans }))
}

/// Lifts a ban here and, through the backend, on every node; audited with the reason.
async fn lift_ban(
    context: &AdminContext,
    target: BanTarget,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let reason = read_reason(context, request).await?;
    let was_banned = context
        .services
        .analysis
        .actions()
        .lift_ban(&target, &reason, &caller.name);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "lifted": target.to_string(), "was_banned_here": was_banned }),
    ))
}

fn cluster_status(context: &AdminContext) -> Response<Body> {
    match context.services.analysis.actions().backend().fleet() {
        Some(fleet) => json(StatusCode::OK, &fleet.view()),
        None => json(
            StatusCode::OK,
            &serde_json::json!({ "enabled": false, "node_id": crate::stream::node_id() }),
        ),
    }
}

fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(format!(
            "{field}: longer than {MAX_TEXT_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(())
}

fn list_hashlists(context: &AdminContext) -> Response<Body> {
    #[derive(Serialize)]
    struct ListView {
        name: String,
        path: String,
        action: crate::signals::lists::ListAction,
        max_distance: u32,
        min_quality: u32,
        dihedral: bool,
        version: u64,
        loaded_at: String,
        build_ms: f64,
        hashes: usize,
        duplicates_merged: usize,
        added_at_runtime: usize,
        memory_bytes: usize,
    }
    #[derive(Serialize)]
    struct Lists {
        hashlists: Vec<ListView>,
    }
    let hashlists = context
        .lists
        .status()
        .into_iter()
        .map(|status| ListView {
            name: status.name,
            path: status.path.display().to_string(),
            action: status.action,
            max_distance: status.max_distance,
            min_quality: status.min_quality,
            dihedral: status.dihedral,
            version: status.version,
            loaded_at: rfc3339(status.loaded_at),
            build_ms: status.build_time.as_secs_f64() * 1000.0,
            hashes: status.hashes,
            duplicates_merged: status.duplicates_merged,
            added_at_runtime: status.added_at_runtime,
            memory_bytes: status.memory_bytes,
        })
        .collect();
    json(StatusCode::OK, &Lists { hashlists })
}

/// A list's new state after a reload or an addition (hash lists count `hashes`,
/// descriptor lists `descriptors`; additions also say what was new).
#[derive(Serialize)]
struct ListUpdated {
    name: String,
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    descriptors: Option<usize>,
    build_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    added: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    already_present: Option<usize>,
}

impl ListUpdated {
    /// `counts`: hashes or descriptors (by the name of its field); `additions`: added and
    /// already present, for an addition.
    fn new(
        name: String,
        version: u64,
        counts: (Option<usize>, Option<usize>),
        build_time: Duration,
        additions: Option<(usize, usize)>,
    ) -> ListUpdated {
        ListUpdated {
            name,
            version,
            hashes: counts.0,
            descriptors: counts.1,
            build_ms: build_time.as_secs_f64() * 1000.0,
            added: additions.map(|(added, _)| added),
            already_present: additions.map(|(_, already_present)| already_present),
        }
    }
}

impl ListUpdated {
    /// The update in words, for its audit record.
    fn describe(&self) -> String {
        let (kind, entries) = match (self.hashes, self.descriptors) {
            (Some(hashes), _) => ("hash", hashes),
            (None, descriptors) => ("descriptor", descriptors.unwrap_or_default()),
        };
        let change = match (self.added, self.already_present) {
            (Some(added), Some(present)) => format!("{added} added ({present} already present)"),
            _ => "reloaded from its file".to_string(),
        };
        format!(
            "{kind} list {:?}: {change}; version {} holds {entries}",
            self.name, self.version
        )
    }
}

impl From<ReloadReport> for ListUpdated {
    fn from(r: ReloadReport) -> Self {
        let counts = (Some(r.hashes), None);
        ListUpdated::new(r.name, r.version, counts, r.build_time, None)
    }
}

impl From<AddReport> for ListUpdated {
    fn from(r: AddReport) -> Self {
        let (counts, additions) = ((Some(r.hashes), None), (r.added, r.already_present));
        ListUpdated::new(r.name, r.version, counts, r.build_time, Some(additions))
    }
}

impl From<DescriptorReloadReport> for ListUpdated {
    fn from(r: DescriptorReloadReport) -> Self {
        let counts = (None, Some(r.descriptors));
        ListUpdated::new(r.name, r.version, counts, r.build_time, None)
    }
}

impl From<DescriptorAddReport> for ListUpdated {
    fn from(r: DescriptorAddReport) -> Self {
        let (counts, additions) = ((None, Some(r.descriptors)), (r.added, r.already_present));
        ListUpdated::new(r.name, r.version, counts, r.build_time, Some(additions))
    }
}

/// A list update's error, as [`update_list`] answers it.
trait ListUpdateError: std::fmt::Display + Send + 'static {
    /// No list has the name (404); any other error is the list's (422).
    fn is_unknown_list(&self) -> bool;
}

impl ListUpdateError for ListSetError {
    fn is_unknown_list(&self) -> bool {
        matches!(self, ListSetError::UnknownList(_))
    }
}

impl ListUpdateError for DescriptorListSetError {
    fn is_unknown_list(&self) -> bool {
        matches!(self, DescriptorListSetError::UnknownList(_))
    }
}

/// Runs a list update on a blocking thread and maps its outcome: 404 for an unknown
/// list, 422 for a bad or empty file or a full list (the version `active` names stays in
/// use).
async fn update_list<R: Into<ListUpdated> + Send + 'static, E: ListUpdateError>(
    context: &AdminContext,
    caller: &Caller,
    update: impl FnOnce() -> Result<R, E> + Send + 'static,
    active: impl FnOnce() -> u64,
) -> Result<Response<Body>, ApiError> {
    let updated = run_list_update(context, caller, update, active).await?;
    Ok(json(StatusCode::OK, &updated))
}

/// [`update_list`]'s work, audited: the list's new state, or the error to answer.
async fn run_list_update<R: Into<ListUpdated> + Send + 'static, E: ListUpdateError>(
    context: &AdminContext,
    caller: &Caller,
    update: impl FnOnce() -> Result<R, E> + Send + 'static,
    active: impl FnOnce() -> u64,
) -> Result<ListUpdated, ApiError> {
    let outcome = tokio::task::spawn_blocking(update)
        .await
        .map_err(|error| ApiError::internal(format!("list update task failed: {error}")))?;
    match outcome {
        Ok(report) => {
            let updated: ListUpdated = report.into();
            info!(
                list = %updated.name,
                version = updated.version,
                hashes = updated.hashes,
                descriptors = updated.descriptors,
                added = updated.added,
                already_present = updated.already_present,
                actor = %caller.name,
                "list updated through the admin API"
            );
            let mut record =
                AuditRecord::about_no_stream(AuditEvent::ListUpdated, updated.describe());
            record.actor = Some(caller.name.clone());
            context.services.analysis.actions().audit(record);
            Ok(updated)
        }
        Err(error) if error.is_unknown_list() => Err(ApiError::not_found(error.to_string())),
        Err(error) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{error}; version {} stays active", active()),
        )),
    }
}

/// The active version of hash list `name` (0: none).
fn hashlist_version(context: &AdminContext, name: &str) -> u64 {
    context
        .lists
        .current(name)
        .map_or(0, |current| current.version)
}

async fn reload_hashlist(
    context: &AdminContext,
    name: &str,
    caller: &Caller,
) -> Result<Response<Body>, ApiError> {
    let lists = Arc::clone(&context.lists);
    let owned = name.to_string();
    update_list(
        context,
        caller,
        move || lists.reload(&owned),
        || hashlist_version(context, name),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddHashesBody {
    hashes: Vec<HashEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashEntry {
    hash: String,
    #[serde(default)]
    quality: Option<u8>,
    #[serde(default)]
    label: Option<String>,
}

async fn add_hashes(
    context: &AdminContext,
    name: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if context.lists.current(name).is_none() {
        return Err(ApiError::not_found(format!("no hash list named {name:?}")));
    }
    let is_text = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"));
    let added = if is_text {
        read_hash_file(&read_body(context, request).await?)?
    } else {
        read_hash_entries(read_json(context, request).await?)?
    };
    let updated = add_hashes_to(context, caller, name, added).await?;
    Ok(json(StatusCode::OK, &updated))
}

/// The hashes of a hash list file posted as `text/plain` (the console's upload), read
/// line by line as a list file is; each line's other fields become the entry's label.
fn read_hash_file(body: &[u8]) -> Result<Vec<AddedHash>, ApiError> {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let mut added = Vec::new();
    for (index, line) in body.split(|&byte| byte == b'\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let parsed = parse_line(line)
            .map_err(|problem| ApiError::bad_request(format!("line {number}: {problem}")))?;
        let Some(parsed) = parsed else {
            continue;
        };
        let label = parsed.metadata_fields().collect::<Vec<_>>().join(",");
        check_text(&format!("line {number}: label"), &label)?;
        added.push(AddedHash {
            hash: parsed.hash,
            quality: parsed.quality,
            label,
        });
    }
    if added.is_empty() {
        return Err(ApiError::bad_request(
            "the body holds no hash: send a hash list file (one hash a line, as `livegate hash` writes it)",
        ));
    }
    Ok(added)
}

fn read_hash_entries(body: AddHashesBody) -> Result<Vec<AddedHash>, ApiError> {
    if body.hashes.is_empty() {
        return Err(ApiError::bad_request("hashes: must not be empty"));
    }
    let mut added = Vec::with_capacity(body.hashes.len());
    for (index, entry) in body.hashes.into_iter().enumerate() {
        let hash = Hash256::from_hex(&entry.hash)
            .map_err(|error| ApiError::bad_request(format!("hashes[{index}].hash: {error}")))?;
        if entry.quality.is_some_and(|quality| quality > 100) {
            return Err(ApiError::bad_request(format!(
                "hashes[{index}].quality: must be 0..=100"
            )));
        }
        let label = entry.label.unwrap_or_default();
        check_text(&format!("hashes[{index}].label"), &label)?;
        added.push(AddedHash {
            hash,
            quality: entry.quality,
            label,
        });
    }
    Ok(added)
}

/// Adds hashes to hash list `name` through the backend (so a fleet's nodes all learn
/// them): what `POST /v1/hashlists/{name}/hashes` and a confirmed evidence frame do.
async fn add_hashes_to(
    context: &AdminContext,
    caller: &Caller,
    name: &str,
    added: Vec<AddedHash>,
) -> Result<ListUpdated, ApiError> {
    let backend = Arc::clone(context.services.analysis.actions().backend());
    let owned = name.to_string();
    run_list_update(
        context,
        caller,
        move || backend.add_hashes(&owned, &added),
        || hashlist_version(context, name),
    )
    .await
}

/// The descriptor lists, or 404 when livegate runs without `[descriptor]`.
fn descriptor_lists(context: &AdminContext) -> Result<&Arc<DescriptorListSet>, ApiError> {
    context.descriptor_lists.as_ref().ok_or_else(|| {
        ApiError::not_found("no descriptor lists: livegate runs without a [descriptor] section")
    })
}

/// A descriptor list `name` of `lists`, or 404.
fn check_descriptorlist(lists: &DescriptorListSet, name: &str) -> Result<(), ApiError> {
    if lists.contains(name) {
        return Ok(());
    }
    Err(ApiError::not_found(format!(
        "no [[descriptorlist]] named {name:?}"
    )))
}

fn list_descriptorlists(context: &AdminContext) -> Response<Body> {
    #[derive(Serialize)]
    struct ListView {
        name: String,
        path: String,
        action: crate::signals::lists::ListAction,
        min_cosine: f32,
        cut_immediately_above: f32,
        version: u64,
        loaded_at: String,
        build_ms: f64,
        descriptors: usize,
        added_at_runtime: usize,
        memory_bytes: usize,
    }
    #[derive(Serialize)]
    struct Model {
        tag: String,
        dim: usize,
    }
    /// `model` is null and the array empty without `[descriptor]`.
    #[derive(Serialize)]
    struct Lists {
        model: Option<Model>,
        descriptorlists: Vec<ListView>,
    }
    let Some(lists) = &context.descriptor_lists else {
        return json(
            StatusCode::OK,
            &Lists {
                model: None,
                descriptorlists: Vec::new(),
            },
        );
    };
    let descriptorlists = lists
        .status()
        .into_iter()
        .map(|status| ListView {
            name: status.name,
            path: status.path.display().to_string(),
            action: status.action,
            min_cosine: status.min_cosine,
            cut_immediately_above: status.cut_immediately_above,
            version: status.version,
            loaded_at: rfc3339(status.loaded_at),
            build_ms: status.build_time.as_secs_f64() * 1000.0,
            descriptors: status.descriptors,
            added_at_runtime: status.added_at_runtime,
            memory_bytes: status.memory_bytes,
        })
        .collect();
    let model = lists.model();
    json(
        StatusCode::OK,
        &Lists {
            model: Some(Model {
                tag: model.tag().to_string(),
                dim: model.dim(),
            }),
            descriptorlists,
        },
    )
}

/// The active version of descriptor list `name` (0: none).
fn descriptorlist_version(lists: &DescriptorListSet, name: &str) -> u64 {
    lists.current(name).map_or(0, |current| current.version)
}

async fn reload_descriptorlist(
    context: &AdminContext,
    name: &str,
    caller: &Caller,
) -> Result<Response<Body>, ApiError> {
    let lists = Arc::clone(descriptor_lists(context)?);
    check_descriptorlist(&lists, name)?;
    let reloading = Arc::clone(&lists);
    let owned = name.to_string();
    update_list(
        context,
        caller,
        move || reloading.reload(&owned),
        || descriptorlist_version(&lists, name),
    )
    .await
}

async fn add_descriptors(
    context: &AdminContext,
    name: &str,
    caller: &Caller,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let lists = Arc::clone(descriptor_lists(context)?);
    check_descriptorlist(&lists, name)?;
    let body = read_body(context, request).await?;
    let added = read_descriptors(lists.model(), &body)?;
    let updated = add_descriptors_to(context, caller, &lists, name, added).await?;
    Ok(json(StatusCode::OK, &updated))
}

/// Adds descriptors to descriptor list `name` of `lists` through the backend: what
/// `POST /v1/descriptorlists/{name}/descriptors` and a confirmed evidence frame do.
async fn add_descriptors_to(
    context: &AdminContext,
    caller: &Caller,
    lists: &DescriptorListSet,
    name: &str,
    added: Vec<AddedDescriptor>,
) -> Result<ListUpdated, ApiError> {
    let backend = Arc::clone(context.services.analysis.actions().backend());
    let owned = name.to_string();
    run_list_update(
        context,
        caller,
        move || backend.add_descriptors(&owned, &added),
        || descriptorlist_version(lists, name),
    )
    .await
}

/// The descriptors of a body in the descriptor list format, for `model`; 400 naming
/// `line N: problem` for a bad line.
fn read_descriptors(
    model: &DescriptorModel,
    body: &[u8],
) -> Result<Vec<AddedDescriptor>, ApiError> {
    let mut list = DescriptorList::new(model.clone());
    // The body is already in memory, within admin.max_body_bytes.
    let limits = DescriptorListLimits {
        max_file_bytes: body.len() as u64,
        ..DescriptorListLimits::default()
    };
    list.read(Path::new("request body"), body, &limits)
        .map_err(|error| {
            ApiError::bad_request(match error {
                DescriptorListError::Line { line, problem, .. } => {
                    format!("line {line}: {problem}")
                }
                DescriptorListError::TooManyDescriptors { line, max, .. } => {
                    format!("line {line}: more than {max} descriptors")
                }
                other => other.to_string(),
            })
        })?;
    if list.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the body holds no descriptor: send a descriptor list as `livegate describe` writes it \
             (the header `livegate-descriptors 1 {model}`, then one record a line)"
        )));
    }
    let mut added = Vec::with_capacity(list.len());
    for id in 0..list.len() {
        let (Some(components), Some(entry)) = (list.index().vector(id), list.metadata().get(id))
        else {
            return Err(ApiError::internal(format!(
                "descriptor {id} of the body is missing"
            )));
        };
        let line = entry.line.unwrap_or_default();
        let descriptor = QuantizedDescriptor::new(components)
            .map_err(|error| ApiError::bad_request(format!("line {line}: {error}")))?
            .to_descriptor();
        let fields = entry.fields;
        check_text(&format!("line {line}: source"), fields.source)?;
        check_text(&format!("line {line}: label"), fields.label)?;
        added.push(AddedDescriptor {
            descriptor,
            source: fields.source.to_string(),
            pts: fields.pts,
            label: fields.label.to_string(),
        });
    }
    Ok(added)
}

fn events(context: &AdminContext, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let mut limit = DEFAULT_EVENTS_LIMIT;
    for pair in query.unwrap_or_default().split('&') {
        if let Some(value) = pair.strip_prefix("limit=") {
            limit = value.parse().map_err(|_| {
                ApiError::bad_request(format!("limit: {value:?} is not a non-negative integer"))
            })?;
        }
    }
    let mut records = context.services.analysis.actions().recent_records();
    let skip = records.len().saturating_sub(limit);
    records.drain(..skip);
    #[derive(Serialize)]
    struct Events {
        events: Vec<AuditRecord>,
    }
    Ok(json(StatusCode::OK, &Events { events: records }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_patterns_only() {
        assert_eq!(
            match_path("/v1/streams/{id}/cut", "/v1/streams/12/cut"),
            Some(vec!["12"])
        );
        assert_eq!(match_path("/v1/streams/{id}/cut", "/v1/streams//cut"), None);
        assert_eq!(match_path("/v1/streams/{id}/cut", "/v1/streams/1"), None);
        assert_eq!(
            match_path("/v1/streams/{id}/cut", "/v1/streams/1/cut/x"),
            None
        );
        assert_eq!(match_path("/healthz", "/healthz"), Some(vec![]));
        assert_eq!(match_path("/healthz", "/healthz/"), None);
    }

    #[test]
    fn wrong_methods_get_405_with_allow() {
        let error = find_route(&Method::DELETE, "/v1/streams").expect_err("405");
        assert_eq!(error.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(error.allow.as_deref(), Some("GET"));
        let error = find_route(&Method::GET, "/v1/nothing").expect_err("404");
        assert_eq!(error.status, StatusCode::NOT_FOUND);
        let (endpoint, params) =
            find_route(&Method::POST, "/v1/hashlists/known/reload").expect("route");
        assert_eq!(endpoint, Endpoint::ReloadHashlist);
        assert_eq!(params, vec!["known"]);
    }

    #[test]
    fn a_posted_hash_file_is_read_as_a_list_file() {
        let hash = "f".repeat(64);
        let file = format!("\u{feff}# comment\r\n\n{hash},90,photo.jpg\r\n");
        let added = read_hash_file(file.as_bytes()).expect("one hash");
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].hash.to_hex(), hash);
        assert_eq!(added[0].quality, Some(90));
        assert_eq!(added[0].label, "90,photo.jpg");
        let error =
            read_hash_file(format!("{hash}\nnot-a-hash,1\n").as_bytes()).expect_err("a bad line");
        assert!(error.message.starts_with("line 2: "), "{}", error.message);
        let error = read_hash_file(b"# only a comment\n").expect_err("no hash");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn every_endpoint_has_one_route() {
        for (index, route) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[..index]
                    .iter()
                    .all(|other| other.endpoint != route.endpoint
                        && (other.path, &other.method) != (route.path, &route.method)),
                "{route:?} is listed twice"
            );
        }
    }
}
