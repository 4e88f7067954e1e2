//! PROXY protocol on ingest, end to end: a raw client plays a load balancer, sending a
//! v1 or v2 header and then a captured ffmpeg publish; livegate names the header's client
//! in its logs, relays everything after the header untouched to a real nginx-rtmp origin
//! (optionally behind a v1 header of its own, which nginx's `proxy_protocol` listener
//! takes), and refuses untrusted, missing, truncated and oversized headers with a reason.

use crate::support::http::{Request, events_of, wait_for_stream};
use crate::support::{self, Livegate, NginxOrigin, RawClient, Tee};
use livegate_proxy_header::{V2_SIGNATURE, Version, encode};
use serde_json::Value;
use std::net::{Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

const FIXTURE: &[u8] = include_bytes!("../fixtures/ffmpeg-publish-avc.rtmp");
/// The stream key the fixture publishes.
const FIXTURE_KEY: &str = "testkey123";
const WAIT: Duration = Duration::from_secs(15);
/// Refusal warnings are throttled to one a second per listener: tests that read them
/// wait this long between refusals.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_millis(1100);

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

/// livegate with one ingest to `origin` and `proxy` keys added to it.
fn livegate(origin: SocketAddr, proxy: &str) -> (Livegate, SocketAddr) {
    let listen = support::local(support::free_port());
    let config = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         handshake_timeout_ms = 2000\n{proxy}\n"
    );
    (Livegate::start(&config, 1), listen)
}

/// Sends `header` and the captured publish, then hangs up after a while, as a load
/// balancer would once its publisher left.
fn publish_behind(listen: SocketAddr, header: &[u8]) {
    let mut client = RawClient::connect(listen);
    client.send(header).send(FIXTURE);
    thread::sleep(Duration::from_secs(1));
}

/// The refusal warning for `client` whose reason contains `reason`, waited for.
fn refusal(livegate: &Livegate, client: SocketAddr, reason: &str) -> Value {
    let of_reason = |line: &Value| {
        line["message"] == "connection refused: PROXY protocol header"
            && line["client"] == client.to_string().as_str()
            && line["reason"]
                .as_str()
                .is_some_and(|text| text.contains(reason))
    };
    livegate.wait_for_logs(
        |lines| lines.iter().any(of_reason),
        WAIT,
        &format!("refusal \"{reason}\""),
    );
    livegate
        .logs()
        .into_iter()
        .find(of_reason)
        .unwrap_or_default()
}

#[test]
fn a_v2_header_names_the_client_and_the_origin_gets_a_v1_header_then_the_stream_untouched() {
    let origin = NginxOrigin::start_with_proxy_protocol();
    let tee = Tee::start(origin.addr);
    let (livegate, listen) = livegate(
        tee.addr,
        "proxy_protocol = \"required\"\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\n\
         origin_proxy_protocol = \"v1\"",
    );
    let client = addr("203.0.113.7:40000");
    publish_behind(listen, &encode(Version::V2, client, listen));

    let closed = livegate.session_closed_for(client, WAIT);
    assert_eq!(closed["keyframes"], 3, "{closed}");
    // The origin got livegate's v1 header naming the client, then exactly the publish:
    // nothing of the client's v2 header.
    let (sent, _) = tee.digests(WAIT);
    let expected = format!(
        "PROXY TCP4 203.0.113.7 127.0.0.1 40000 {}\r\n",
        tee.addr.port()
    );
    assert!(
        sent.content.starts_with(expected.as_bytes()),
        "origin got {:?}",
        String::from_utf8_lossy(&sent.content[..sent.content.len().min(80)])
    );
    assert!(
        sent.content[expected.len()..] == *FIXTURE,
        "the publish after the header reached the origin changed"
    );
    // nginx took the header (it recorded the stream) and saw the client's address.
    assert!(
        !support::finished_recording(&origin, FIXTURE_KEY).is_empty(),
        "nginx recorded nothing"
    );
    let access = std::fs::read_to_string(&origin.access_log).unwrap_or_default();
    assert!(
        access.starts_with("203.0.113.7 "),
        "nginx access log: {access:?}"
    );
}

#[test]
fn a_v1_header_names_an_ipv6_client_and_optional_mode_takes_a_stream_without_one() {
    let origin = NginxOrigin::start();
    let (livegate, listen) = livegate(
        origin.addr,
        "proxy_protocol = \"optional\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    let client = addr("[2001:db8::7]:40001");
    publish_behind(
        listen,
        format!(
            "PROXY TCP6 2001:db8::7 2001:db8::1 40001 {}\r\n",
            listen.port()
        )
        .as_bytes(),
    );
    let closed = livegate.session_closed_for(client, WAIT);
    assert_eq!(closed["keyframes"], 3, "{closed}");
    assert!(
        !support::finished_recording(&origin, FIXTURE_KEY).is_empty(),
        "nginx recorded nothing behind the header"
    );

    // A trusted peer without a header: the session's client is the socket's peer.
    let mut direct = RawClient::connect(listen);
    direct.send(FIXTURE);
    let peer = direct.local;
    thread::sleep(Duration::from_secs(1));
    drop(direct);
    let closed = livegate.session_closed_for(peer, WAIT);
    assert_eq!(closed["keyframes"], 3, "{closed}");
}

#[test]
fn missing_truncated_oversized_and_garbage_headers_are_refused_with_a_reason() {
    // Nothing here reaches an origin: refused connections are never dialled out.
    let (livegate, listen) = livegate(
        addr("127.0.0.1:9"),
        "proxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.0/8\"]",
    );
    let refused = |bytes: &[u8], half_close: bool, reason: &str| {
        let mut client = RawClient::connect(listen);
        client.send(bytes);
        if half_close {
            let _ = client.stream.shutdown(Shutdown::Write);
        }
        assert!(
            client.closed_within(Duration::from_secs(5)),
            "still open after {reason:?}"
        );
        let line = refusal(&livegate, client.local, reason);
        assert_eq!(line["suppressed"], 0, "{line}");
        thread::sleep(REFUSAL_LOG_INTERVAL);
    };
    refused(FIXTURE, false, "no PROXY header");
    refused(b"PROXY TCP4 192.0.2.1 19", true, "closed after 23 bytes");
    let mut oversized = V2_SIGNATURE.to_vec();
    oversized.extend_from_slice(&[0x21, 0x11, 0x10, 0x00]);
    refused(&oversized, false, "4112 bytes, over the 536-byte cap");
    refused(&[b'1'; 200], false, "no PROXY header");
    let mut endless = b"PROXY TCP4 ".to_vec();
    endless.resize(200, b'1');
    refused(&endless, false, "longer than 107 bytes");
    refused(
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\x03",
        false,
        "carriage return without line feed",
    );
    // Half a header, then silence: refused at the handshake timeout.
    refused(
        b"PROXY TCP4 192",
        false,
        "within 2000 ms (14 bytes received)",
    );
    assert!(
        livegate
            .logs()
            .iter()
            .all(|line| line["message"] != "session opened"),
        "a refused connection opened a session"
    );
}

#[test]
fn a_header_from_a_peer_not_in_trusted_proxies_is_refused() {
    let header = encode(
        Version::V1,
        addr("203.0.113.7:40000"),
        addr("127.0.0.1:1935"),
    );
    for (mode, reason) in [
        (
            "optional",
            "PROXY header from a peer not in trusted_proxies",
        ),
        ("required", "peer is not in trusted_proxies"),
    ] {
        let (livegate, listen) = livegate(
            addr("127.0.0.1:9"),
            &format!("proxy_protocol = \"{mode}\"\ntrusted_proxies = [\"10.0.0.0/8\"]"),
        );
        let mut client = RawClient::connect(listen);
        client.send(&header).send(FIXTURE);
        assert!(client.closed_within(Duration::from_secs(5)), "{mode}");
        refusal(&livegate, client.local, reason);
    }
}

#[test]
fn trusted_proxies_must_be_cidrs_and_are_needed_once_proxy_protocol_is_on() {
    let dir = support::scratch_dir();
    let check = |proxy: &str| -> String {
        let path = dir.path().join("livegate.toml");
        let config = format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:0\"\n\
             origin = \"127.0.0.1:1935\"\n{proxy}\n"
        );
        std::fs::write(&path, config).expect("write config");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_livegate"))
            .arg("check-config")
            .arg(&path)
            .output()
            .expect("run livegate check-config");
        assert!(!output.status.success(), "{proxy} was accepted");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let error =
        check("proxy_protocol = \"optional\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]");
    assert!(error.contains("ingest[0].trusted_proxies[1]"), "{error}");
    assert!(error.contains("past its /8 prefix"), "{error}");
    let error = check("proxy_protocol = \"required\"");
    assert!(error.contains("ingest[0].trusted_proxies"), "{error}");
}

#[test]
fn the_per_client_cap_counts_the_client_a_header_names_not_the_proxy() {
    let (livegate, listen) = livegate(
        addr("127.0.0.1:9"),
        "max_connections_per_client = 1\nproxy_protocol = \"required\"\n\
         trusted_proxies = [\"127.0.0.0/8\"]",
    );
    let (first, second) = (addr("203.0.113.7:40000"), addr("203.0.113.8:40000"));
    let connect_as = |client: SocketAddr| {
        let mut connection = RawClient::connect(listen);
        connection.send(&encode(Version::V1, client, listen));
        connection
    };
    let opened = |client: SocketAddr| {
        livegate.wait_for_logs(
            |lines| {
                lines.iter().any(|line| {
                    line["message"] == "session opened"
                        && line["client"] == client.to_string().as_str()
                })
            },
            WAIT,
            &format!("a session of {client}"),
        );
    };
    // Two clients behind one proxy address each get their session (the sessions wait
    // for a handshake for handshake_timeout_ms)…
    let _first = connect_as(first);
    opened(first);
    let _second = connect_as(second);
    opened(second);
    // …and the first client's second connection is over its own cap.
    let mut again = connect_as(addr("203.0.113.7:40001"));
    assert!(again.closed_within(Duration::from_secs(5)));
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"] == "connection refused: at max_connections_per_client"
                    && line["client"] == "203.0.113.7:40001"
            })
        },
        WAIT,
        "the per-client refusal of the real client",
    );
}

#[test]
fn streams_audit_and_an_address_ban_name_the_client_of_the_header() {
    const TOKEN: &str = "proxy-protocol-admin-token-0123";
    let origin = NginxOrigin::start();
    let (livegate, listen) = livegate(
        origin.addr,
        &format!(
            "proxy_protocol = \"required\"\ntrusted_proxies = [\"127.0.0.0/8\"]\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [actuator]\nban_client_address = true\nban_seconds = 60"
        ),
    );
    let admin = livegate.admin_addr();
    let client = addr("203.0.113.7:40000");
    let mut publisher = RawClient::connect(listen);
    publisher
        .send(&encode(Version::V2, client, listen))
        .send(FIXTURE);
    let stream = wait_for_stream(
        admin,
        TOKEN,
        |stream| stream["client"] == client.to_string().as_str(),
        "the proxied stream in /v1/streams",
    );
    let id = stream["id"].as_str().expect("stream id").to_string();
    let cut = Request::post(
        &format!("/v1/streams/{id}/cut"),
        br#"{"reason":"proxied client"}"#,
    )
    .token(TOKEN)
    .send(admin);
    assert_eq!(cut.status, 202, "{cut:?}");
    assert!(publisher.closed_within(WAIT));
    let closed = livegate.session_closed_for(client, WAIT);
    assert_eq!(closed["kind"], "operator_cut", "{closed}");
    let cuts = events_of(admin, TOKEN, "manual_cut");
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    assert_eq!(cuts[0]["client"], client.to_string(), "{cuts:?}");
    // The ban is on the client's address, not the proxy's: the banned client comes back
    // through the same proxy with another key and is refused at `publish`, while another
    // client behind that proxy publishes.
    // The same publish under another key of the same length (chunk lengths unchanged).
    let with_key = |key: &[u8; 10]| -> Vec<u8> {
        let mut publish = FIXTURE.to_vec();
        let mut replaced = 0;
        while let Some(at) = publish
            .windows(key.len())
            .position(|window| window == FIXTURE_KEY.as_bytes())
        {
            publish[at..at + key.len()].copy_from_slice(key);
            replaced += 1;
        }
        assert!(replaced > 0, "the fixture's key");
        publish
    };
    let back = addr("203.0.113.7:40002");
    let mut again = RawClient::connect(listen);
    again
        .send(&encode(Version::V1, back, listen))
        .send(&with_key(b"otherkey01"));
    assert!(again.closed_within(WAIT), "the banned client was relayed");
    let refused = livegate.session_closed_for(back, WAIT);
    assert_eq!(refused["kind"], "banned", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("203.0.113.7")),
        "{refused}"
    );
    let other = addr("203.0.113.8:40003");
    publish_behind(
        listen,
        &[encode(Version::V1, other, listen), with_key(b"otherkey02")].concat(),
    );
    let closed = livegate.session_closed_for(other, WAIT);
    assert_eq!(closed["keyframes"], 3, "{closed}");
}
