//! The admin API over real HTTP against the livegate binary: probes, metrics, auth,
//! errors, list reloads and additions, live streams, manual cuts, bans listed and
//! lifted, and a hash added
//! through the API cutting a stream that is already running; and the binary giving freed
//! memory back after connection floods (what an operator sees of it).

use crate::support;

use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use support::http::{HttpResponse, Request, events_of, metric, scrape, wait_for_stream};
use support::{Livegate, NginxOrigin, UNRELATED_HASH, free_port, local};

const TOKEN: &str = "test-admin-token-0123456789";
/// The named token `alice` uses.
const ALICE: &str = "alice-admin-token-9876543210";

/// A config with one ingest on `listen` to `origin`, the list `known` at `list` (with
/// `list_keys` appended to its table), and an admin server on a free port with `admin`
/// (e.g. the token) appended.
fn config(
    listen: SocketAddr,
    origin: SocketAddr,
    list: &Path,
    list_keys: &str,
    admin: &str,
) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         [[hashlist]]\nname = \"known\"\npath = {list:?}\n{list_keys}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 2048\n{admin}\n",
        list = list.display().to_string(),
    )
}

/// livegate running [`config`] with no extra list keys.
fn start(origin: SocketAddr, list: &Path, admin: &str) -> (Livegate, SocketAddr, SocketAddr) {
    let listen = local(free_port());
    let livegate = Livegate::start(&config(listen, origin, list, "", admin), 1);
    let admin = livegate.admin_addr();
    (livegate, listen, admin)
}

fn token_config() -> String {
    format!("token = \"{TOKEN}\"")
}

fn assert_status(response: &HttpResponse, status: u16) {
    assert_eq!(response.status, status, "{response:?}");
    if status >= 400 {
        assert!(!response.error().is_empty(), "{response:?}");
    }
}

/// livegate with the token config and a one-hash list no test frame is near, its origin
/// a plain TCP sink; returns what must live as long as the test, and the admin address.
fn start_with_unrelated_list() -> (tempfile::TempDir, Livegate, SocketAddr) {
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH},100,first\n")).expect("list");
    let (livegate, _listen, admin) = start(
        support::start_closing_origin(usize::MAX),
        &list,
        &token_config(),
    );
    (dir, livegate, admin)
}

#[test]
fn routes_answer_with_auth_and_json_errors() {
    let (dir, _livegate, admin) = start_with_unrelated_list();
    let list = dir.path().join("known.csv");

    let health = Request::get("/healthz").send(admin);
    assert_status(&health, 200);
    let ready = Request::get("/readyz").send(admin);
    assert_status(&ready, 200);
    assert_eq!(ready.json()["status"], "ready");
    let metrics = scrape(admin);
    assert_eq!(metric(&metrics, "livegate_streams_active"), 0.0);
    assert_eq!(
        metric(&metrics, "livegate_hashlist_hashes{list=\"known\"}"),
        1.0
    );
    assert!(
        metric(
            &metrics,
            "livegate_hashlist_last_reload_timestamp_seconds{list=\"known\"}"
        ) > 1e9
    );
    let openapi = Request::get("/openapi.json").send(admin);
    assert_status(&openapi, 200);
    assert!(openapi.json()["paths"]["/v1/streams"].is_object());

    // Auth comes first: without the right token nothing under /v1/ is revealed.
    for request in [
        Request::get("/v1/streams"),
        Request::get("/v1/streams").token("wrong-token"),
        Request::get("/v1/no-such-route"),
        Request::post("/v1/streams/1/cut", b"{}"),
    ] {
        let response = request.send(admin);
        assert_status(&response, 401);
        assert!(
            response.header("www-authenticate").is_some(),
            "{response:?}"
        );
    }
    assert!(
        Request::get("/v1/streams")
            .token("wrong-token")
            .send(admin)
            .error()
            .contains("wrong bearer token")
    );

    let streams = Request::get("/v1/streams").token(TOKEN).send(admin);
    assert_status(&streams, 200);
    assert_eq!(streams.json()["streams"], Value::Array(vec![]));
    // Without [descriptor]: no descriptor list, and saying why.
    let descriptorlists = Request::get("/v1/descriptorlists").token(TOKEN).send(admin);
    assert_status(&descriptorlists, 200);
    assert_eq!(descriptorlists.json()["model"], Value::Null);
    let reload = Request::post("/v1/descriptorlists/known/reload", b"")
        .token(TOKEN)
        .send(admin);
    assert_status(&reload, 404);
    assert!(
        reload.error().contains("without a [descriptor] section"),
        "{reload:?}"
    );
    assert_status(
        &Request::get("/v1/no-such-route").token(TOKEN).send(admin),
        404,
    );
    assert_status(&Request::get("/nothing").send(admin), 404);
    let wrong_method = Request::post("/v1/streams", b"{}").token(TOKEN).send(admin);
    assert_status(&wrong_method, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET"));
    assert_status(&Request::post("/healthz", b"").send(admin), 405);
    assert_status(
        &Request::post("/v1/streams/999/cut", br#"{"reason":"test"}"#)
            .token(TOKEN)
            .send(admin),
        404,
    );
    assert_status(
        &Request::post("/v1/streams/abc/cut", br#"{"reason":"test"}"#)
            .token(TOKEN)
            .send(admin),
        404,
    );

    // Lists: status, additions (with their errors), reloads (with a bad file).
    let lists = Request::get("/v1/hashlists")
        .token(TOKEN)
        .send(admin)
        .json();
    assert_eq!(lists["hashlists"][0]["name"], "known");
    assert_eq!(lists["hashlists"][0]["version"], 1);
    assert_eq!(lists["hashlists"][0]["hashes"], 1);
    let add = |body: &[u8]| {
        Request::post("/v1/hashlists/known/hashes", body)
            .token(TOKEN)
            .send(admin)
    };
    assert!(add(b"{not json").error().contains("invalid JSON"));
    assert_status(&add(b"{not json"), 400);
    let bad_hash = add(br#"{"hashes":[{"hash":"abc"}]}"#);
    assert_status(&bad_hash, 400);
    assert!(bad_hash.error().contains("hashes[0].hash"), "{bad_hash:?}");
    assert_status(&add(br#"{"hashes":[]}"#), 400);
    assert_status(&add(br#"{"hashes":[{"hash":"00","extra":1}]}"#), 400);
    let oversized = format!(
        "{{\"hashes\":[{}]}}",
        vec![format!("{{\"hash\":\"{UNRELATED_HASH}\"}}"); 40].join(",")
    );
    assert_status(&add(oversized.as_bytes()), 413);
    let mut chunked =
        Request::post("/v1/hashlists/known/hashes", oversized.as_bytes()).token(TOKEN);
    chunked.chunked = true;
    assert_status(&chunked.send(admin), 413);
    assert_status(
        &Request::post("/v1/hashlists/unknown/hashes", b"{}")
            .token(TOKEN)
            .send(admin),
        404,
    );
    let added_hash = "f".repeat(64);
    let added = add(format!(
        "{{\"hashes\":[{{\"hash\":\"{added_hash}\",\"quality\":90,\"label\":\"from the api\"}}]}}"
    )
    .as_bytes());
    assert_status(&added, 200);
    assert_eq!(added.json()["version"], 2);
    assert_eq!(added.json()["hashes"], 2);
    assert_eq!(added.json()["added"], 1);
    // The same batch posted twice (one hash already added, one repeated within it)
    // grows the list once; the answers count what was already present.
    let batch = format!(
        "{{\"hashes\":[{{\"hash\":\"{added_hash}\"}},{{\"hash\":\"{new}\"}},{{\"hash\":\"{new}\"}}]}}",
        new = "e".repeat(64)
    );
    for (version, added, already_present) in [(3, 1, 2), (3, 0, 3)] {
        let answer = add(batch.as_bytes());
        assert_status(&answer, 200);
        let answer = answer.json();
        assert_eq!(answer["version"], version, "{answer}");
        assert_eq!(answer["hashes"], 3, "{answer}");
        assert_eq!(answer["added"], added, "{answer}");
        assert_eq!(answer["already_present"], already_present, "{answer}");
    }

    let reload = || {
        Request::post("/v1/hashlists/known/reload", b"")
            .token(TOKEN)
            .send(admin)
    };
    let reloaded = reload();
    assert_status(&reloaded, 200);
    assert_eq!(reloaded.json()["version"], 4);
    assert_eq!(
        reloaded.json()["hashes"],
        3,
        "run-time additions survive reloads"
    );
    assert_status(
        &Request::post("/v1/hashlists/unknown/reload", b"")
            .token(TOKEN)
            .send(admin),
        404,
    );
    std::fs::write(&list, format!("{UNRELATED_HASH}\nnot a hash\n")).expect("break list");
    let refused = reload();
    assert_status(&refused, 422);
    let message = refused.error();
    assert!(
        message.contains(&format!("{}:2", list.display())),
        "{message}"
    );
    assert!(message.contains("version 4 stays active"), "{message}");
    let lists = Request::get("/v1/hashlists")
        .token(TOKEN)
        .send(admin)
        .json();
    assert_eq!(lists["hashlists"][0]["version"], 4);
    assert_eq!(lists["hashlists"][0]["hashes"], 3);
    assert_eq!(lists["hashlists"][0]["added_at_runtime"], 2);

    let events = Request::get("/v1/events?limit=5").token(TOKEN).send(admin);
    assert_status(&events, 200);
    assert!(events.json()["events"].is_array());
    assert_status(
        &Request::get("/v1/events?limit=many")
            .token(TOKEN)
            .send(admin),
        400,
    );
}

#[test]
fn without_a_token_the_api_is_locked() {
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH}\n")).expect("list");
    let (_livegate, _listen, admin) = start(support::start_closing_origin(usize::MAX), &list, "");
    assert_status(&Request::get("/healthz").send(admin), 200);
    for token in [None, Some("anything")] {
        let mut request = Request::get("/v1/streams");
        request.token = token;
        let response = request.send(admin);
        assert_status(&response, 401);
        assert!(
            response.error().contains("LIVEGATE_ADMIN_TOKEN"),
            "{response:?}"
        );
    }
}

#[test]
fn probes_and_the_api_answer_while_idle_sockets_fill_every_connection_slot() {
    let (_dir, _livegate, admin) = start_with_unrelated_list();
    // Well over the server's 64 connections, twice: half never send a byte, half send
    // an unfinished request head (slowloris).
    for round in 0..2 {
        let flood: Vec<TcpStream> = (0..100)
            .map(|i| {
                let mut socket = TcpStream::connect(admin).expect("connect to admin");
                if i % 2 == 1 {
                    socket
                        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                        .expect("half a request head");
                }
                socket
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        for request in [
            Request::get("/healthz"),
            Request::get("/readyz"),
            Request::get("/metrics"),
            Request::post("/v1/streams/999999/cut", b"{}").token(TOKEN),
        ] {
            let started = Instant::now();
            let response = request.send(admin);
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "round {round}: {} {} took {took:?} under an idle-socket flood",
                request.method,
                request.path
            );
            let expected = if request.method == "POST" { 404 } else { 200 };
            assert_status(&response, expected);
        }
        drop(flood);
    }
}

#[test]
fn a_live_stream_is_listed_and_a_manual_cut_closes_it() {
    let origin = NginxOrigin::start();
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH}\n")).expect("list");
    // A second, named token: the audit says which of the two acted.
    let tokens = format!(
        "{}\n[[admin.tokens]]\nname = \"alice\"\ntoken = \"{ALICE}\"",
        token_config()
    );
    let (livegate, listen, admin) = start(origin.addr, &list, &tokens);
    let key = "manual-cut-secret-key-42";
    let publisher = support::Publisher::start(&format!("rtmp://{listen}/live/{key}"), 30, 1);

    let stream = wait_for_stream(
        admin,
        TOKEN,
        |stream| stream["keyframes_analysed"].as_u64() >= Some(1) && stream["width"] != Value::Null,
        "a publishing stream with an analysed keyframe",
    );
    assert!(!stream.to_string().contains("cut-secret"), "{stream}");
    assert_eq!(stream["state"], "publishing");
    assert_eq!(stream["app"], "live");
    assert_eq!(stream["codec"], "avc");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(
        stream["bytes_from_publisher"].as_u64() > Some(0),
        "{stream}"
    );
    assert!(stream["bytes_from_origin"].as_u64() > Some(0), "{stream}");
    assert!(stream["keyframes_seen"].as_u64() >= Some(1), "{stream}");
    assert_eq!(stream["last_match_distance"], Value::Null);
    assert_eq!(metric(&scrape(admin), "livegate_streams_active"), 1.0);

    let id = stream["id"].as_str().expect("id").to_string();
    let path = format!("/v1/streams/{id}/cut");
    assert_status(&Request::post(&path, b"{}").token(TOKEN).send(admin), 400);
    let cut = Request::post(&path, br#"{"reason":"reported by a viewer"}"#)
        .token(ALICE)
        .send(admin);
    assert_status(&cut, 202);
    assert_eq!(
        cut.json()["banned_key_fingerprint"],
        stream["key_fingerprint"]
    );

    let (_, _) = publisher.finish(Duration::from_secs(15));
    let closed = livegate.wait_for_closed_session(Duration::from_secs(10));
    assert_eq!(closed["closer"], "operator", "{closed}");
    assert_eq!(closed["kind"], "operator_cut", "{closed}");
    let manual = events_of(admin, TOKEN, "manual_cut");
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert!(
        manual[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("reported by a viewer")
    );
    assert_eq!(manual[0]["key_fingerprint"], stream["key_fingerprint"]);
    assert_eq!(manual[0]["actor"], "alice", "{manual:?}");
    assert!(
        !livegate.raw_log().contains(key),
        "the stream key reached the log"
    );

    let metrics = scrape(admin);
    assert_eq!(
        metric(&metrics, "livegate_cuts_total{reason=\"manual\"}"),
        1.0
    );
    assert_eq!(metric(&metrics, "livegate_streams_active"), 0.0);
    assert!(
        metric(
            &metrics,
            "livegate_bytes_relayed_total{direction=\"publisher_to_origin\"}"
        ) >= stream["bytes_from_publisher"].as_f64().unwrap_or_default()
    );
    assert!(metric(&metrics, "livegate_keyframes_analysed_total") >= 1.0);
    assert!(metric(&metrics, "livegate_analysis_latency_seconds_count") >= 1.0);

    // The cut banned the key: listed, refused, then lifted by the operator and admitted.
    let fingerprint = stream["key_fingerprint"].as_str().expect("fingerprint");
    let bans = Request::get("/v1/bans").token(TOKEN).send(admin).json();
    assert_eq!(bans["bans"][0]["key_fingerprint"], fingerprint, "{bans}");
    assert!(
        bans["bans"][0]["remaining_seconds"].as_u64() > Some(0),
        "{bans}"
    );
    let url = format!("rtmp://{listen}/live/{key}");
    let (refused, _) = support::Publisher::start(&url, 5, 1).finish(Duration::from_secs(15));
    assert!(!refused, "the banned key was admitted");
    for (path, body) in [
        (
            "/v1/bans/keys/NOT-A-FINGERPRINT/lift",
            &br#"{"reason":"x"}"#[..],
        ),
        ("/v1/bans/clients/not-an-address/lift", br#"{"reason":"x"}"#),
        (&format!("/v1/bans/keys/{fingerprint}/lift"), b"{}"),
    ] {
        assert_status(&Request::post(path, body).token(TOKEN).send(admin), 400);
    }
    let lifted = Request::post(
        &format!("/v1/bans/keys/{fingerprint}/lift"),
        br#"{"reason":"cut by mistake"}"#,
    )
    .token(TOKEN)
    .send(admin);
    assert_status(&lifted, 200);
    assert_eq!(lifted.json()["was_banned_here"], true, "{lifted:?}");
    let bans = Request::get("/v1/bans").token(TOKEN).send(admin).json();
    assert_eq!(bans["bans"], serde_json::json!([]), "{bans}");
    let records = events_of(admin, TOKEN, "ban_lifted");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["key_fingerprint"], fingerprint);
    assert_eq!(records[0]["reason"], "cut by mistake");
    assert_eq!(records[0]["actor"], "admin", "{records:?}");
    assert!(records[0].get("stream_id").is_none(), "{records:?}");
    let back = support::Publisher::start(&url, 30, 1);
    wait_for_stream(
        admin,
        TOKEN,
        |stream| stream["key_fingerprint"] == fingerprint && stream["state"] == "publishing",
        "the key publishing again once its ban is lifted",
    );
    drop(back);
}

#[test]
fn a_hash_added_through_the_api_cuts_a_running_stream() {
    let origin = NginxOrigin::start();
    let dir = support::scratch_dir();
    let clip = dir.path().join("mandelbrot.flv");
    support::encode_clip(&clip, support::MANDELBROT, 6);
    let hashes = support::keyframe_hashes(&clip);
    assert!(hashes.len() >= 5, "{hashes:?}");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH}\n")).expect("list");
    let (livegate, listen, admin) = start(origin.addr, &list, &token_config());

    let mut publisher =
        support::publish_looping(&clip, &format!("rtmp://{listen}/live/looping-clip-key"));
    // Analysed, not matched: the list does not know the clip yet.
    wait_for_stream(
        admin,
        TOKEN,
        |stream| stream["keyframes_analysed"].as_u64() >= Some(2),
        "two analysed keyframes",
    );
    assert!(events_of(admin, TOKEN, "cut").is_empty());

    let entries: Vec<String> = hashes
        .iter()
        .map(|hash| format!("{{\"hash\":\"{hash}\",\"label\":\"mandelbrot\"}}"))
        .collect();
    let added = Request::post(
        "/v1/hashlists/known/hashes",
        format!("{{\"hashes\":[{}]}}", entries.join(",")).as_bytes(),
    )
    .token(TOKEN)
    .send(admin);
    assert_status(&added, 200);
    let updates = events_of(admin, TOKEN, "list_updated");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["actor"], "admin", "{updates:?}");
    let reason = updates[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("hash list \"known\": ") && reason.contains(" added "),
        "{reason}"
    );

    let closed = livegate.wait_for_closed_session(Duration::from_secs(15));
    assert_eq!(closed["closer"], "policy", "{closed}");
    assert!(
        publisher.wait_for(Duration::from_secs(10)).is_some(),
        "the publisher was not disconnected"
    );
    let cuts = events_of(admin, TOKEN, "cut");
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(cuts[0]["signal"]["list"], "known");
    assert!(
        hashes.contains(
            &cuts[0]["signal"]["matched_hash"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        )
    );
    assert!(cuts[0]["time_to_cut_ms"].as_f64().is_some(), "{}", cuts[0]);

    let metrics = scrape(admin);
    assert_eq!(
        metric(&metrics, "livegate_cuts_total{reason=\"policy\"}"),
        1.0
    );
    assert_eq!(metric(&metrics, "livegate_time_to_cut_seconds_count"), 1.0);
    assert!(metric(&metrics, "livegate_matches_total{list=\"known\"}") >= 1.0);
}

/// What livegate says when the list file holds no hash and `allow_empty` is off.
fn no_hash_refusal(list: &Path) -> String {
    format!(
        "{} holds no hash (empty or only comments); set allow_empty = true on [[hashlist]] \"known\" if that is intended",
        list.display()
    )
}

/// `livegate check-config FILE`: whether it passed, and its stderr.
fn check_config(config_path: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("check-config")
        .arg(config_path)
        .output()
        .expect("run livegate check-config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_config_loads_the_lists_run_loads_and_fails_as_run_does() {
    let dir = support::scratch_dir();
    let list = dir.path().join("known.csv");
    let config_path = dir.path().join("livegate.toml");
    let (listen, origin) = (local(free_port()), local(free_port()));
    std::fs::write(&config_path, config(listen, origin, &list, "", "")).expect("config");
    for (content, expected) in [
        (None, format!("{}", list.display())),
        (Some("# nothing\n".to_string()), no_hash_refusal(&list)),
        (
            Some("not-a-hash\n".to_string()),
            format!("{}:1: no field is a 64-hex-digit hash", list.display()),
        ),
    ] {
        match &content {
            Some(content) => std::fs::write(&list, content).expect("list"),
            None => {
                let _ = std::fs::remove_file(&list);
            }
        }
        let (passed, stderr) = check_config(&config_path);
        assert!(!passed, "check-config accepted the list {content:?}");
        assert!(stderr.contains(&expected), "{content:?}: {stderr}");
        assert_eq!(stderr.matches(&expected).count(), 1, "said twice: {stderr}");
    }
    std::fs::write(&list, format!("{UNRELATED_HASH}\n")).expect("list");
    let (passed, stderr) = check_config(&config_path);
    assert!(passed, "{stderr}");
    assert!(stderr.contains("hash list known: 1 hashes"), "{stderr}");

    // Token files are read as `run` reads them.
    let missing = dir.path().join("alice.token");
    let admin = format!(
        "[[admin.tokens]]\nname = \"alice\"\ntoken_file = {:?}",
        missing.display().to_string()
    );
    std::fs::write(&config_path, config(listen, origin, &list, "", &admin)).expect("config");
    let (passed, stderr) = check_config(&config_path);
    assert!(!passed, "check-config accepted a missing token file");
    assert!(stderr.contains("admin.tokens[0].token_file"), "{stderr}");
    std::fs::write(&missing, "alice-secret\n").expect("token");
    let (passed, stderr) = check_config(&config_path);
    assert!(passed, "{stderr}");
    assert!(stderr.contains("admin tokens: alice"), "{stderr}");
    assert!(!stderr.contains("alice-secret"), "{stderr}");
}

#[test]
fn a_list_file_holding_no_hash_fails_startup_unless_the_list_allows_it() {
    let dir = support::scratch_dir();
    let list = dir.path().join("known.csv");
    std::fs::write(&list, "# hash,quality,file\n\n").expect("list");
    let origin = support::start_closing_origin(usize::MAX);
    let config_path = dir.path().join("livegate.toml");
    let listen = local(free_port());
    std::fs::write(&config_path, config(listen, origin, &list, "", "")).expect("config");
    let stderr = dir.path().join("stderr.log");
    let mut refused = support::ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_livegate"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file")),
        "livegate",
    );
    let status = refused.wait_for(Duration::from_secs(10));
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        status.is_some_and(|status| !status.success()),
        "{status:?}\n{log}"
    );
    assert!(log.contains(&no_hash_refusal(&list)), "{log}");

    let allowed = Livegate::start(
        &config(listen, origin, &list, "allow_empty = true", &token_config()),
        1,
    );
    let lists = Request::get("/v1/hashlists")
        .token(TOKEN)
        .send(allowed.admin_addr())
        .json();
    assert_eq!(lists["hashlists"][0]["hashes"], 0, "{lists}");
}

#[test]
fn an_emptied_list_is_refused_on_reload_and_keeps_cutting() {
    let origin = NginxOrigin::start();
    let dir = support::scratch_dir();
    let clip = dir.path().join("mandelbrot.flv");
    support::encode_clip(&clip, support::MANDELBROT, 4);
    let hashes = support::keyframe_hashes(&clip);
    assert!(hashes.len() >= 3, "{hashes:?}");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{}\n{UNRELATED_HASH}\n", hashes.join("\n"))).expect("list");
    let listed = hashes.len() + 1;
    let (livegate, listen, admin) = start(origin.addr, &list, &token_config());
    let list_status = || {
        Request::get("/v1/hashlists")
            .token(TOKEN)
            .send(admin)
            .json()["hashlists"][0]
            .clone()
    };

    // A truncated deploy: through the API, then on SIGHUP.
    std::fs::write(&list, "# hash,quality,file\n").expect("truncate list");
    let refused = Request::post("/v1/hashlists/known/reload", b"")
        .token(TOKEN)
        .send(admin);
    assert_status(&refused, 422);
    assert!(
        refused.error().contains(&no_hash_refusal(&list)),
        "{refused:?}"
    );
    assert!(
        refused.error().contains("version 1 stays active"),
        "{refused:?}"
    );
    livegate.signal("HUP");
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"] == "hash list update failed; the previous version stays active"
                    && line["error"]
                        .as_str()
                        .is_some_and(|error| error.contains(&no_hash_refusal(&list)))
            })
        },
        Duration::from_secs(10),
        "the SIGHUP reload refused",
    );
    let status = list_status();
    assert_eq!(
        (status["version"].as_u64(), status["hashes"].as_u64()),
        (Some(1), Some(listed as u64)),
        "{status}"
    );

    // The previous version still matches: the listed clip is cut.
    let publisher =
        support::publish_looping(&clip, &format!("rtmp://{listen}/live/listed-clip-key"));
    let closed = livegate.wait_for_closed_session(Duration::from_secs(15));
    assert_eq!(closed["closer"], "policy", "{closed}");
    drop(publisher);

    // A file that shrank sharply is accepted, with a warning naming both counts.
    std::fs::write(&list, format!("{UNRELATED_HASH}\n")).expect("shrink list");
    let reloaded = Request::post("/v1/hashlists/known/reload", b"")
        .token(TOKEN)
        .send(admin);
    assert_status(&reloaded, 200);
    assert_eq!(reloaded.json()["hashes"], 1);
    let shrank = livegate
        .logs()
        .into_iter()
        .find(|line| line["level"] == "WARN" && line["previous_entries"] == listed)
        .unwrap_or_else(|| panic!("no shrink warning in:\n{}", livegate.raw_log()));
    assert_eq!(shrank["entries"], 1, "{shrank}");
    let message = shrank["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("shrank from {listed} to 1 hashes")),
        "{message}"
    );
}

/// A process's resident set in MiB, from `/proc`.
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    kib / 1024.0
}

#[test]
fn memory_freed_after_connection_floods_goes_back_to_the_kernel() {
    let origin = NginxOrigin::start();
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH}\n")).expect("list");
    let (livegate, listen, _admin) = start(origin.addr, &list, "");
    let pid = livegate.process.child.id();
    thread::sleep(Duration::from_secs(2));
    let before = resident_mib(pid);
    // Each flooding connection starts a session (C0 + C1) and makes livegate dial the
    // origin; glibc kept what they freed, ~10 MiB more per round of 600.
    for _ in 0..4 {
        let flood: Vec<std::net::TcpStream> = (0..600)
            .map(|_| {
                let mut socket = std::net::TcpStream::connect(listen).expect("connect");
                socket.write_all(&[3; 1537]).expect("C0 + C1");
                socket
            })
            .collect();
        thread::sleep(Duration::from_secs(1));
        drop(flood);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = resident_mib(pid);
    while after > before + 8.0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(250));
        after = resident_mib(pid);
    }
    assert!(
        after <= before + 8.0,
        "RSS {before:.1} MiB before the floods, still {after:.1} MiB 10 s after"
    );
}

#[test]
fn readiness_turns_to_draining_on_sigterm_and_the_admin_server_stops_last() {
    let dir = tempfile::tempdir().expect("dir");
    let list = dir.path().join("known.csv");
    std::fs::write(&list, "").expect("list");
    let listen = local(free_port());
    let config = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
         [server]\nshutdown_grace_ms = 1500\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        support::start_closing_origin(usize::MAX)
    );
    let mut livegate = Livegate::start(&config, 1);
    let admin = livegate.admin_addr();
    assert_eq!(
        Request::get("/readyz").send(admin).json()["status"],
        "ready"
    );
    // A session that stays open keeps livegate draining for the grace period.
    let mut client = support::RawClient::connect(listen);
    client.send(&livegate_rtmp::encode::client_handshake());
    livegate.wait_for_logs(
        |lines| lines.iter().any(|line| line["message"] == "session opened"),
        Duration::from_secs(5),
        "the session",
    );
    livegate.signal("TERM");
    livegate.wait_for_logs(
        |lines| {
            lines
                .iter()
                .any(|line| line["message"] == "shutting down: draining sessions")
        },
        Duration::from_secs(5),
        "the drain",
    );
    let draining = Request::get("/readyz").send(admin);
    assert_eq!(draining.status, 503, "{draining:?}");
    assert_eq!(draining.json()["status"], "draining");
    assert_status(&Request::get("/healthz").send(admin), 200);
    let exit = livegate
        .process
        .wait_for(Duration::from_secs(10))
        .expect("livegate exits after the grace period");
    assert!(exit.success(), "{exit:?}");
    let messages: Vec<String> = livegate
        .logs()
        .iter()
        .filter_map(|line| line["message"].as_str().map(str::to_string))
        .collect();
    let position = |message: &str| {
        messages
            .iter()
            .position(|logged| logged == message)
            .unwrap_or_else(|| panic!("no {message:?} in {messages:?}"))
    };
    assert!(
        position("grace period over: closing remaining sessions")
            < position("admin server stopped"),
        "{messages:?}"
    );
}
