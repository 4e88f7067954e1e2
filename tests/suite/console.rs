//! The review console over real HTTP against the livegate binary: no page or `/v1/`
//! route without a session or the token, the login (wrong token, login CSRF, a
//! cross-site post, the rate limit), the session cookie's attributes, the CSRF token on
//! every state change made with the cookie, the security headers on every console
//! answer, pages and scripts without inline code, logout and expiry. (The pages driven
//! in Chromium are the browser tests'.)

use crate::support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::http::{HttpResponse, Request};
use support::{Livegate, UNRELATED_HASH, free_port, local};

const TOKEN: &str = "console-test-token-0123456789";
/// A named token: the console says who is signed in, the audit who acted.
const ALICE_TOKEN: &str = "alice-console-token-0123456789";
const ALICE: &str =
    "[[admin.tokens]]\nname = \"alice\"\ntoken = \"alice-console-token-0123456789\"";
const FORM: &str = "application/x-www-form-urlencoded";
const EVIL: &str = "https://evil.example";

/// livegate with the list `known` (one hash), a sink origin and an admin server with
/// the token and `admin` appended to `[admin]`; the directory must outlive the test.
fn start(admin: &str) -> (tempfile::TempDir, Livegate, SocketAddr) {
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH},100,first\n")).expect("list");
    let config = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         [[hashlist]]\nname = \"known\"\npath = {list:?}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n{admin}\n",
        listen = local(free_port()),
        origin = support::start_closing_origin(usize::MAX),
        list = Path::new(&list).display().to_string(),
    );
    let livegate = Livegate::start(&config, 1);
    let admin = livegate.admin_addr();
    (dir, livegate, admin)
}

/// The value of cookie `name` set by `response` (its `Set-Cookie` line whole, too).
fn set_cookie<'r>(response: &'r HttpResponse, name: &str) -> Option<(&'r str, &'r str)> {
    response.headers_named("set-cookie").find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix('=')?;
        Some((value.split(';').next().unwrap_or_default(), line))
    })
}

/// The login form's pre-session token: its cookie and the form field agree.
fn login_form(admin: SocketAddr) -> String {
    let page = Request::get("/console").send(admin);
    assert_eq!(page.status, 200, "{page:?}");
    let (cookie, _) = set_cookie(&page, "livegate_login").expect("a login cookie");
    assert!(
        page.body
            .contains(&format!("name=\"csrf\" value=\"{cookie}\"")),
        "{page:?}"
    );
    cookie.to_string()
}

/// Posts the login form with `token`.
fn post_login(admin: SocketAddr, login: &str, token: &str) -> HttpResponse {
    let cookie = format!("livegate_login={login}");
    let body = format!("csrf={login}&token={token}");
    Request::post("/console/login", body.as_bytes())
        .header("Content-Type", FORM)
        .header("Cookie", &cookie)
        .send(admin)
}

/// A logged-in session: the `Cookie` header to send and the page's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn log_in(admin: SocketAddr) -> Session {
    log_in_with(admin, TOKEN)
}

fn log_in_with(admin: SocketAddr, token: &str) -> Session {
    let login = login_form(admin);
    let answer = post_login(admin, &login, token);
    assert_eq!(answer.status, 303, "{answer:?}");
    assert_eq!(answer.header("location"), Some("/console"));
    let (id, _) = set_cookie(&answer, "livegate_session").expect("a session cookie");
    let cookie = format!("livegate_session={id}");
    let app = Request::get("/console")
        .header("Cookie", &cookie)
        .send(admin);
    assert_eq!(app.status, 200, "{app:?}");
    let csrf = app
        .body
        .split_once("<meta name=\"csrf-token\" content=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(token, _)| token.to_string())
        .unwrap_or_else(|| panic!("no csrf-token meta: {}", app.body));
    assert_eq!(csrf.len(), 64, "{csrf}");
    Session { cookie, csrf }
}

fn assert_console_headers(response: &HttpResponse) {
    let csp = response
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("no CSP: {response:?}"));
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

#[test]
fn nothing_without_a_session_or_token_and_every_console_answer_is_locked_down() {
    let (_dir, _livegate, admin) = start("");

    // The API: no cookie, an unknown one, a wrong bearer token.
    for request in [
        Request::get("/v1/streams"),
        Request::get("/v1/hashlists").header("Cookie", "livegate_session=00ff"),
        Request::post("/v1/hashlists/known/reload", b"").header(
            "Cookie",
            "livegate_session=0000000000000000000000000000000000000000000000000000000000000000",
        ),
        Request::get("/v1/events").token("wrong"),
    ] {
        let answer = request.send(admin);
        assert_eq!(answer.status, 401, "{answer:?}");
    }

    // Without a session the console is the login form, and only that.
    let page = Request::get("/console").send(admin);
    assert_eq!(page.status, 200);
    assert_console_headers(&page);
    assert!(
        page.body
            .contains("<form id=\"login\" method=\"post\" action=\"/console/login\">")
    );
    assert!(page.body.contains("<label for=\"token\">"));
    assert!(
        page.body
            .contains("id=\"token\" name=\"token\" type=\"password\"")
    );
    assert!(
        !page.body.contains("csrf-token"),
        "no app without a session"
    );
    assert!(
        !page.body.contains("review-queue"),
        "no app without a session"
    );

    let js = Request::get("/console/app.js").send(admin);
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let css = Request::get("/console/app.css").send(admin);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let missing = Request::get("/console/secrets").send(admin);
    assert_eq!(missing.status, 404);
    let wrong_method = Request::post("/console/app.js", b"").send(admin);
    assert_eq!(wrong_method.status, 405);
    for answer in [&js, &css, &missing, &wrong_method] {
        assert_console_headers(answer);
    }

    // The scripts only touch the page as text; the pages carry no inline code (the CSP
    // would block it, breaking the page).
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!js.body.contains(sink), "app.js uses {sink}");
    }
    let session = log_in(admin);
    let app = Request::get("/console")
        .header("Cookie", &session.cookie)
        .send(admin);
    assert_console_headers(&app);
    for (name, html) in [("login", &page.body), ("app", &app.body)] {
        let lower = html.to_ascii_lowercase();
        assert_eq!(
            lower.matches("<script").count(),
            lower.matches("<script src=\"/console/app.js\"").count(),
            "{name}: an inline script"
        );
        assert!(
            !lower.contains("<style") && !lower.contains("style="),
            "{name}: inline style"
        );
        assert!(
            lower
                .split(|c: char| c.is_whitespace() || c == '<')
                .all(|word| !(word.starts_with("on") && word.contains('='))),
            "{name}: an inline event handler"
        );
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "{name}: loads from elsewhere"
        );
    }
    assert!(
        app.body.contains("signed in as <strong>admin</strong>"),
        "{}",
        app.body
    );
}

#[test]
fn login_refuses_wrong_tokens_and_cross_site_posts_and_sets_a_strict_cookie() {
    let (_dir, _livegate, admin) = start("");
    let login = login_form(admin);

    let wrong = post_login(admin, &login, "not-the-token");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_console_headers(&wrong);
    assert!(
        wrong
            .body
            .contains("<p id=\"login-error\" role=\"alert\">Wrong token.</p>")
    );
    assert!(set_cookie(&wrong, "livegate_session").is_none());

    // Login CSRF: another site's form arrives without the pre-session cookie, or with
    // its Origin.
    let without_cookie = Request::post(
        "/console/login",
        format!("csrf={login}&token={TOKEN}").as_bytes(),
    )
    .header("Content-Type", FORM)
    .send(admin);
    assert_eq!(without_cookie.status, 403, "{without_cookie:?}");
    let cookie = format!("livegate_login={login}");
    let body = format!("csrf={login}&token={TOKEN}");
    let cross_site = Request::post("/console/login", body.as_bytes())
        .header("Content-Type", FORM)
        .header("Cookie", &cookie)
        .header("Origin", EVIL)
        .send(admin);
    assert_eq!(cross_site.status, 403, "{cross_site:?}");
    assert!(
        cross_site.body.contains("evil.example"),
        "{}",
        cross_site.body
    );
    assert!(set_cookie(&cross_site, "livegate_session").is_none());

    // The right token from this origin: a strict session cookie (no Secure: plain HTTP).
    let origin = format!("http://{admin}");
    let right = Request::post("/console/login", body.as_bytes())
        .header("Content-Type", FORM)
        .header("Cookie", &cookie)
        .header("Origin", &origin)
        .header("Sec-Fetch-Site", "same-origin")
        .send(admin);
    assert_eq!(right.status, 303, "{right:?}");
    let (id, line) = set_cookie(&right, "livegate_session").expect("a session cookie");
    assert_eq!(id.len(), 64, "{line}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            line.split("; ").any(|part| part == attribute),
            "{attribute}: {line}"
        );
    }
    assert!(!line.contains("Secure"), "{line}");
    assert!(!right.body.contains(TOKEN));

    // Failed logins are limited per client address: past 5 a minute, even the right
    // token waits.
    for _ in 0..4 {
        assert_eq!(post_login(admin, &login, "still-wrong").status, 401);
    }
    let limited = post_login(admin, &login, TOKEN);
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(
        limited.body.contains("Too many failed logins"),
        "{}",
        limited.body
    );
    assert!(set_cookie(&limited, "livegate_session").is_none());
}

#[test]
fn state_changes_by_cookie_need_the_csrf_token_and_the_same_origin() {
    let (_dir, _livegate, admin) = start(ALICE);
    let session = log_in_with(admin, ALICE_TOKEN);
    let cookie = session.cookie.as_str();
    let app = Request::get("/console")
        .header("Cookie", cookie)
        .send(admin);
    assert!(
        app.body.contains("signed in as <strong>alice</strong>"),
        "{}",
        app.body
    );

    let read = Request::get("/v1/hashlists")
        .header("Cookie", cookie)
        .send(admin);
    assert_eq!(read.status, 200, "reads need no CSRF token: {read:?}");

    let reload = "/v1/hashlists/known/reload";
    let missing = Request::post(reload, b"")
        .header("Cookie", cookie)
        .send(admin);
    assert_eq!(missing.status, 403, "{missing:?}");
    assert!(missing.error().contains("X-CSRF-Token"), "{missing:?}");
    let wrong = Request::post(reload, b"")
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &"0".repeat(64))
        .send(admin);
    assert_eq!(wrong.status, 403, "{wrong:?}");
    let right = Request::post(reload, b"")
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &session.csrf)
        .send(admin);
    assert_eq!(right.status, 200, "{right:?}");
    assert_eq!(right.json()["name"], "known");
    let updates = support::http::events_of(admin, TOKEN, "list_updated");
    assert_eq!(updates.len(), 1, "only the accepted reload: {updates:?}");
    assert_eq!(
        updates[0]["actor"], "alice",
        "the session's caller acted: {updates:?}"
    );

    // A cross-site form post: the cookie would come along (were it not SameSite), a
    // header could not; refused even were the token known.
    let fingerprint = "0123456789abcdef";
    let ban = format!("/v1/keys/{fingerprint}/cut");
    let form = Request::post(&ban, b"reason=x")
        .header("Cookie", cookie)
        .header("Content-Type", FORM)
        .header("Origin", EVIL)
        .send(admin);
    assert_eq!(form.status, 403, "{form:?}");
    let with_token = Request::post(&ban, b"{\"reason\":\"x\"}")
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &session.csrf)
        .header("Origin", EVIL)
        .send(admin);
    assert_eq!(with_token.status, 403, "{with_token:?}");
    assert!(
        with_token.error().contains("evil.example"),
        "{with_token:?}"
    );
    let fetch_metadata = Request::post(&ban, b"{\"reason\":\"x\"}")
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &session.csrf)
        .header("Sec-Fetch-Site", "cross-site")
        .send(admin);
    assert_eq!(fetch_metadata.status, 403, "{fetch_metadata:?}");
    let bans = Request::get("/v1/bans").token(TOKEN).send(admin).json();
    assert_eq!(bans["bans"], serde_json::json!([]), "nothing was banned");

    // The console's own requests: same origin, the token; then a bearer client, which
    // needs no CSRF token.
    let origin = format!("http://{admin}");
    let banned = Request::post(&ban, b"{\"reason\":\"console test\"}")
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &session.csrf)
        .header("Origin", &origin)
        .header("Sec-Fetch-Site", "same-origin")
        .send(admin);
    assert_eq!(banned.status, 202, "{banned:?}");
    let lifted = Request::post(
        &format!("/v1/bans/keys/{fingerprint}/lift"),
        b"{\"reason\":\"console test over\"}",
    )
    .token(TOKEN)
    .send(admin);
    assert_eq!(lifted.status, 200, "{lifted:?}");

    // The console's upload: a hash list file as text.
    let file = format!("# uploaded\n{},77,photo.jpg\n", "a".repeat(64));
    let upload = Request::post("/v1/hashlists/known/hashes", file.as_bytes())
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &session.csrf)
        .header("Content-Type", "text/plain; charset=utf-8")
        .send(admin);
    assert_eq!(upload.status, 200, "{upload:?}");
    assert_eq!(upload.json()["added"], 1);
    assert_eq!(upload.json()["hashes"], 2);
    let bad = Request::post("/v1/hashlists/known/hashes", b"zz\n")
        .token(TOKEN)
        .header("Content-Type", "text/plain")
        .send(admin);
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.error().starts_with("line 1: "), "{bad:?}");
}

#[test]
fn logout_and_expiry_end_the_session() {
    let (_dir, _livegate, admin) = start("session_ttl_seconds = 2");
    let session = log_in(admin);
    let cookie = session.cookie.as_str();
    assert_eq!(
        Request::get("/v1/streams")
            .header("Cookie", cookie)
            .send(admin)
            .status,
        200
    );

    // Logout needs the session's CSRF token too.
    let refused = Request::post("/console/logout", b"")
        .header("Cookie", cookie)
        .header("Content-Type", FORM)
        .send(admin);
    assert_eq!(refused.status, 403, "{refused:?}");
    let body = format!("csrf={}", session.csrf);
    let logout = Request::post("/console/logout", body.as_bytes())
        .header("Cookie", cookie)
        .header("Content-Type", FORM)
        .send(admin);
    assert_eq!(logout.status, 303, "{logout:?}");
    let (cleared, line) = set_cookie(&logout, "livegate_session").expect("the cookie cleared");
    assert_eq!(cleared, "");
    assert!(line.contains("Max-Age=0"), "{line}");
    assert_eq!(
        Request::get("/v1/streams")
            .header("Cookie", cookie)
            .send(admin)
            .status,
        401
    );
    let page = Request::get("/console")
        .header("Cookie", cookie)
        .send(admin);
    assert!(
        page.body.contains("Your session has ended"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("csrf-token"));

    // A session lives admin.session_ttl_seconds, however much it is used.
    let session = log_in(admin);
    let cookie = session.cookie.as_str();
    assert_eq!(
        Request::get("/v1/streams")
            .header("Cookie", cookie)
            .send(admin)
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(2200));
    let expired = Request::get("/v1/streams")
        .header("Cookie", cookie)
        .send(admin);
    assert_eq!(expired.status, 401, "{expired:?}");
}
