//! The review console: `GET /console` (the login form without a session, the app with
//! one), its embedded assets, `POST /console/login` and `POST /console/logout`, and
//! the checks a request authenticated by the console's session cookie must pass
//! (used for `/v1/*` by [`super::routes`]).
//!
//! Security model, in one place:
//! - The cookie `livegate_session` is `HttpOnly; SameSite=Strict; Path=/` (and `Secure`
//!   on a TLS listener); the session behind it lives server-side ([`super::sessions`]).
//! - CSRF: a state change (any method but GET/HEAD) authenticated by the cookie needs
//!   the session's CSRF token in `X-CSRF-Token` (or the `csrf` field of a form post),
//!   and an `Origin` / `Sec-Fetch-Site` that is same-origin when the browser sends one.
//!   A bearer-token request needs none of this: browsers never attach that header on
//!   their own.
//! - Login CSRF: the login form carries a pre-session token that must equal the
//!   `livegate_login` cookie (SameSite=Strict: another site's form post arrives
//!   without it), and a cross-site `Origin` is refused; failed logins are rate-limited
//!   per client address.
//! - Every console answer carries a strict CSP (no inline script or style, nothing
//!   from elsewhere), `nosniff`, `no-referrer` and `no-store`; pages and scripts put
//!   data into the page only as text, never as markup.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, HOST, HeaderMap, HeaderValue,
    LOCATION, ORIGIN, REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{info, warn};

use super::routes::{ApiError, read_body};
use super::sessions::{Session, Sessions, random_hex, same_secret};
use super::{AdminContext, Caller};

/// The session cookie.
pub const SESSION_COOKIE: &str = "livegate_session";
/// The pre-session cookie the login form's `csrf` field must equal.
const LOGIN_COOKIE: &str = "livegate_login";
/// The header a cookie-authenticated state change carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a form post carries it in.
const CSRF_FIELD: &str = "csrf";

pub const CONTENT_SECURITY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

const APP_HTML: &str = include_str!("console/app.html");
const LOGIN_HTML: &str = include_str!("console/login.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");
const FAVICON_SVG: &str = include_str!("console/favicon.svg");

/// A login form's pre-session token lives this long.
const LOGIN_COOKIE_SECONDS: u64 = 3600;

type Body = Full<Bytes>;

/// The console's state: the sessions, and whether cookies get `Secure`.
pub struct Console {
    sessions: Sessions,
    secure: bool,
}

impl Console {
    /// `secure`: the admin listener serves TLS.
    pub fn new(session_ttl: Duration, secure: bool) -> Console {
        Console {
            sessions: Sessions::new(session_ttl),
            secure,
        }
    }
}

/// The client address of a request, attached by the server loop (for the login rate limit).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Whether `path` is the console's.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Answers a console request, with the console's security headers on every answer.
pub(super) async fn handle(context: &AdminContext, request: Request<Incoming>) -> Response<Body> {
    let mut response = match respond(context, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-store"),
        (X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn respond(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    match (request.uri().path(), &method) {
        ("/console", &Method::GET) => Ok(page(context, &request)),
        ("/console/app.js", &Method::GET) => Ok(asset("text/javascript; charset=utf-8", APP_JS)),
        ("/console/app.css", &Method::GET) => Ok(asset("text/css; charset=utf-8", APP_CSS)),
        ("/console/favicon.svg", &Method::GET) => Ok(asset("image/svg+xml", FAVICON_SVG)),
        ("/console/login", &Method::POST) => login(context, request).await,
        ("/console/logout", &Method::POST) => logout(context, request).await,
        ("/console" | "/console/app.js" | "/console/app.css" | "/console/favicon.svg", _) => {
            Err(ApiError::method_not_allowed(&method, "GET"))
        }
        ("/console/login" | "/console/logout", _) => {
            Err(ApiError::method_not_allowed(&method, "POST"))
        }
        (path, _) => Err(ApiError::not_found(format!("no route {path}"))),
    }
}

fn asset(content_type: &'static str, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn html(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// `GET /console`: the app for a live session, else the login form (saying so when a
/// session cookie came with a session that ended).
fn page(context: &AdminContext, request: &Request<Incoming>) -> Response<Body> {
    match session_of(context, request.headers()) {
        Some((_, session)) => {
            let page = APP_HTML
                .replace("{{csrf}}", &session.csrf)
                .replace("{{caller}}", &escape(&session.caller));
            html(StatusCode::OK, page)
        }
        None => {
            let ended = cookie(request.headers(), SESSION_COOKIE).is_some();
            let message = if ended {
                "Your session has ended: log in again."
            } else {
                ""
            };
            let mut response = login_page(context, request.headers(), StatusCode::OK, message);
            if ended {
                set_cookie(&mut response, &clear_cookie(context, SESSION_COOKIE, "/"));
            }
            response
        }
    }
}

/// The login form with `message` in `#login-error`, and its pre-session token (the
/// client's current one when it has a well-formed one, so two tabs do not race).
fn login_page(
    context: &AdminContext,
    headers: &HeaderMap,
    status: StatusCode,
    message: &str,
) -> Response<Body> {
    let current = cookie(headers, LOGIN_COOKIE)
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let token = match current.map_or_else(|| random_hex(32), Ok) {
        Ok(token) => token,
        Err(error) => {
            warn!(%error, "console login form not served");
            return ApiError::internal(error.to_string()).into_response();
        }
    };
    let page = LOGIN_HTML
        .replace("{{login_csrf}}", &token)
        .replace("{{error}}", &escape(message));
    let mut response = html(status, page);
    let attributes = cookie_attributes(context, "/console", LOGIN_COOKIE_SECONDS);
    set_cookie(
        &mut response,
        &format!("{LOGIN_COOKIE}={token}; {attributes}"),
    );
    response
}

/// `POST /console/login` with the form fields `token` and `csrf`.
async fn login(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let headers = request.headers().clone();
    let client = request.extensions().get::<Peer>().map(|peer| peer.0);
    let now = Instant::now();
    let refuse = |status, message: &str| Ok(login_page(context, &headers, status, message));
    if let Some(client) = client
        && let Err(wait) = context.console.sessions.login_allowed(client.ip(), now)
    {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed logins from this address: try again in {} s.",
                wait.as_secs() + 1
            ),
        );
    }
    if let Err(problem) = same_origin(context, &headers) {
        warn!(client = ?client, %problem, "console login refused: cross-site");
        return refuse(StatusCode::FORBIDDEN, &format!("Login refused: {problem}."));
    }
    let body = read_body(context, request).await?;
    let form = parse_form(&body);
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let form_token_matches = match (cookie(&headers, LOGIN_COOKIE), field(CSRF_FIELD)) {
        (Some(expected), Some(presented)) => same_secret(expected.as_bytes(), presented.as_bytes()),
        _ => false,
    };
    if !form_token_matches {
        return refuse(
            StatusCode::FORBIDDEN,
            "This login form has expired or was not sent by this console: reload the page and log in again.",
        );
    }
    if context.tokens.is_empty() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            &format!(
                "No admin token is configured (admin.token, admin.token_file or {}): the console stays locked.",
                super::TOKEN_ENV
            ),
        );
    }
    let presented = field("token").unwrap_or_default();
    let Some(caller) = context.tokens.identify(presented.as_bytes()) else {
        if let Some(client) = client {
            context.console.sessions.login_failed(client.ip(), now);
        }
        info!(client = ?client, "console login refused: wrong token");
        return refuse(StatusCode::UNAUTHORIZED, "Wrong token.");
    };
    let opened = context
        .console
        .sessions
        .open(&caller.name, now)
        .map_err(|error| ApiError::internal(error.to_string()))?;
    info!(client = ?client, caller = %caller.name, "console login");
    let mut response = html(StatusCode::SEE_OTHER, String::new());
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/console"));
    let attributes = cookie_attributes(context, "/", context.console.sessions.ttl().as_secs());
    set_cookie(
        &mut response,
        &format!("{SESSION_COOKIE}={}; {attributes}", opened.id),
    );
    set_cookie(
        &mut response,
        &clear_cookie(context, LOGIN_COOKIE, "/console"),
    );
    Ok(response)
}

/// `POST /console/logout`: ends the session (its CSRF token in the `csrf` field or the
/// header) and goes back to the login form.
async fn logout(
    context: &AdminContext,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let headers = request.headers().clone();
    if let Some((id, session)) = session_of(context, &headers) {
        let body = read_body(context, request).await?;
        let form = parse_form(&body);
        let field = form
            .iter()
            .find(|(key, _)| key == CSRF_FIELD)
            .map(|(_, value)| value.as_str());
        check_csrf(context, &headers, &session, field)?;
        context.console.sessions.close(&id);
        info!(caller = %session.caller, "console logout");
    }
    let mut response = html(StatusCode::SEE_OTHER, String::new());
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/console"));
    set_cookie(&mut response, &clear_cookie(context, SESSION_COOKIE, "/"));
    Ok(response)
}

/// The caller of a `/v1/*` request authenticated by a session cookie (`None` without a
/// live session); a state change must pass the CSRF checks (403 otherwise).
pub(super) fn session_caller(
    context: &AdminContext,
    request: &Request<Incoming>,
) -> Result<Option<Caller>, ApiError> {
    let Some((_, session)) = session_of(context, request.headers()) else {
        return Ok(None);
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        check_csrf(context, request.headers(), &session, None)?;
    }
    Ok(Some(Caller {
        name: session.caller,
    }))
}

/// The live session the request's cookie names, with the cookie value.
fn session_of(context: &AdminContext, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let session = context.console.sessions.get(id, Instant::now())?;
    Some((id.to_string(), session))
}

/// A cookie-authenticated state change: same origin when the browser says, and the
/// session's CSRF token in the header or `form_field`.
fn check_csrf(
    context: &AdminContext,
    headers: &HeaderMap,
    session: &Session,
    form_field: Option<&str>,
) -> Result<(), ApiError> {
    same_origin(context, headers).map_err(|problem| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("cross-site request refused: {problem}"),
        )
    })?;
    let presented = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .or(form_field.map(str::as_bytes));
    match presented {
        Some(token) if same_secret(token, session.csrf.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong X-CSRF-Token: send the token of this console session (the page's <meta name=\"csrf-token\">)",
        )),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing X-CSRF-Token: a state change authenticated by the console session cookie needs the session's CSRF token (the page's <meta name=\"csrf-token\">); API clients send Authorization: Bearer TOKEN instead",
        )),
    }
}

/// `Err(problem)` when the browser says the request comes from another site: an
/// `Origin` other than this server's (scheme and `Host`), or `Sec-Fetch-Site` other
/// than `same-origin`. Either header may be absent (older browsers, non-browser clients).
/// `Origin: null` passes only with `Sec-Fetch-Site: same-origin`: under the console's
/// `Referrer-Policy: no-referrer` a browser sends `null` for its own form posts.
fn same_origin(context: &AdminContext, headers: &HeaderMap) -> Result<(), String> {
    let site = headers.get("sec-fetch-site");
    if let Some(site) = site
        && site.as_bytes() != b"same-origin"
    {
        return Err(format!(
            "Sec-Fetch-Site is {:?}, not same-origin",
            String::from_utf8_lossy(site.as_bytes())
        ));
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    if origin.as_bytes() == b"null" && site.is_some() {
        return Ok(());
    }
    let scheme = if context.console.secure {
        "https"
    } else {
        "http"
    };
    let host = headers.get(HOST).map(HeaderValue::as_bytes);
    let expected = host.map(|host| [scheme.as_bytes(), b"://", host].concat());
    if expected.is_some_and(|expected| origin.as_bytes().eq_ignore_ascii_case(&expected)) {
        return Ok(());
    }
    Err(format!(
        "Origin {:?} is not this console's",
        String::from_utf8_lossy(origin.as_bytes())
    ))
}

fn cookie_attributes(context: &AdminContext, path: &str, max_age: u64) -> String {
    let secure = if context.console.secure {
        "; Secure"
    } else {
        ""
    };
    format!("HttpOnly; SameSite=Strict; Path={path}; Max-Age={max_age}{secure}")
}

fn clear_cookie(context: &AdminContext, name: &str, path: &str) -> String {
    format!("{name}=; {}", cookie_attributes(context, path, 0))
}

fn set_cookie(response: &mut Response<Body>, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// The value of cookie `name` (the first, if sent twice).
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The fields of an `application/x-www-form-urlencoded` body (`+` is a space, `%XX` a
/// byte; a malformed escape is kept as it is).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        let byte = text[index];
        let escaped = (byte == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (byte, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                index += 1;
            }
            (other, None) => {
                out.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` safe inside HTML text and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        let form = parse_form(b"token=a%2Bb+c%zz&csrf=00ff&&empty=&bare");
        assert_eq!(
            form,
            vec![
                ("token".to_string(), "a+b c%zz".to_string()),
                ("csrf".to_string(), "00ff".to_string()),
                ("empty".to_string(), String::new()),
                ("bare".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("xlivegate_session=no; livegate_session=abc; other=1"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<img src=x onerror='a'>&\""),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;"
        );
    }

    #[test]
    fn pages_hold_no_inline_script_or_style() {
        for (name, page) in [("app.html", APP_HTML), ("login.html", LOGIN_HTML)] {
            let lower = page.to_ascii_lowercase();
            assert!(!lower.contains("style="), "{name}: a style attribute");
            assert!(!lower.contains("<style"), "{name}: a style element");
            assert!(
                lower.matches("<script").count() == lower.matches("<script src=").count(),
                "{name}: an inline script"
            );
            assert!(no_handlers(&lower), "{name}: an inline event handler");
        }
    }

    /// No `onsomething=` attribute.
    fn no_handlers(page: &str) -> bool {
        page.split(|c: char| c.is_whitespace())
            .all(|word| !(word.starts_with("on") && word.contains('=')))
    }
}
