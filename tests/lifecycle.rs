//! Session lifecycle at the edges: the connection cap, the publish deadline,
//! `on_parse_error = "pass"`, and graceful shutdown on SIGTERM.

mod support;

use livegate::ingest::rtmp::encode::{self, ChunkWriter};
use std::time::{Duration, Instant};
use support::{Livegate, RawClient, free_port, local};

/// An origin that reads everything and never answers.
fn silent_origin() -> std::net::SocketAddr {
    support::start_closing_origin(usize::MAX)
}

fn config(listen: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n{extra}\n",
        silent_origin()
    )
}

#[test]
fn connections_over_the_cap_are_refused_and_the_first_keeps_flowing() {
    let listen = local(free_port());
    let livegate = Livegate::start(&config(listen, "max_connections = 1"), 1);
    let mut first = RawClient::connect(listen);
    first.send(&encode::client_handshake());
    livegate.wait_for_logs(
        |lines| lines.iter().any(|line| line["message"] == "session opened"),
        Duration::from_secs(5),
        "the first session",
    );
    let mut second = RawClient::connect(listen);
    assert!(
        second.closed_within(Duration::from_secs(5)),
        "second connection was not refused"
    );
    livegate.wait_for_logs(
        |lines| {
            lines
                .iter()
                .any(|line| line["message"] == "connection refused: at max_connections")
        },
        Duration::from_secs(5),
        "the refusal log line",
    );
    assert!(
        !first.closed_within(Duration::from_millis(300)),
        "the first connection was closed"
    );
}

#[test]
fn a_client_that_never_publishes_is_closed_at_the_deadline() {
    let listen = local(free_port());
    let livegate = Livegate::start(&config(listen, "publish_timeout_ms = 400"), 1);
    let mut client = RawClient::connect(listen);
    client.send(&encode::client_handshake());
    let started = Instant::now();
    assert!(client.closed_within(Duration::from_secs(5)));
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "closed too early: {:?}",
        started.elapsed()
    );
    let closed = livegate.session_closed_for(client.local, Duration::from_secs(5));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no RTMP publish command within 400 ms"),
        "{closed}"
    );
}

#[test]
fn pass_mode_relays_a_stream_it_cannot_parse() {
    let listen = local(free_port());
    let livegate = Livegate::start(&config(listen, "on_parse_error = \"pass\""), 1);
    let mut client = RawClient::connect(listen);
    client.send(&encode::client_handshake()).send(&[0xFF; 2048]);
    livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                line["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("relaying it uninspected"))
            })
        },
        Duration::from_secs(5),
        "the pass-mode warning",
    );
    // Still relayed: more bytes go through, and the session stays open.
    client.send(&[0x42; 4096]);
    assert!(
        !client.closed_within(Duration::from_millis(500)),
        "pass mode closed the connection"
    );
    drop(client);
}

#[test]
fn sigterm_drains_then_closes_remaining_sessions_and_exits_cleanly() {
    let listen = local(free_port());
    let mut livegate = Livegate::start(
        &format!("{}[server]\nshutdown_grace_ms = 500\n", config(listen, "")),
        1,
    );
    let mut client = RawClient::connect(listen);
    let writer = ChunkWriter::default();
    client.send(&encode::publish_preamble(&writer, "live", "draining-key"));
    livegate.wait_for_logs(
        |lines| lines.iter().any(|line| line["message"] == "publish"),
        Duration::from_secs(5),
        "the publish",
    );
    let status = livegate.process.terminate(Duration::from_secs(5));
    assert!(status.success(), "livegate exited with {status}");
    assert!(
        client.closed_within(Duration::from_secs(1)),
        "session left open after shutdown"
    );
    let closed = livegate.session_closed_for(client.local, Duration::from_secs(1));
    assert_eq!(closed["closer"], "shutdown", "{closed}");
    // New connections are no longer accepted.
    assert!(
        std::net::TcpStream::connect(listen).is_err(),
        "still accepting after shutdown"
    );
}
