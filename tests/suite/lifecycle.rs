//! Session lifecycle at the edges: the connection caps (total and per client), the
//! handshake start before the origin is dialled, the publish deadline and who is blamed
//! for it, write timeouts and a publisher leaving while the origin is stalled, the
//! bitrate cap, `on_parse_error = "pass"`, and graceful shutdown on SIGTERM.

use crate::support;

use livegate_rtmp::encode::{self, ChunkWriter};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use support::{Livegate, NginxOrigin, RawClient, StalledOrigin, free_port, local};

/// An origin that reads everything and never answers.
fn silent_origin() -> SocketAddr {
    support::start_closing_origin(usize::MAX)
}

fn config(listen: SocketAddr, extra: &str) -> String {
    ingest(listen, silent_origin(), extra)
}

fn ingest(listen: SocketAddr, origin: SocketAddr, extra: &str) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n{extra}\n"
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
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    let livegate = Livegate::start(&ingest(listen, origin.addr, "publish_timeout_ms = 400"), 1);
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
fn an_origin_that_never_answers_the_handshake_is_the_closer() {
    let listen = local(free_port());
    let livegate = Livegate::start(&config(listen, "publish_timeout_ms = 400"), 1);
    let mut client = RawClient::connect(listen);
    client.send(&encode::client_handshake());
    assert!(client.closed_within(Duration::from_secs(5)));
    let closed = livegate.session_closed_for(client.local, Duration::from_secs(5));
    assert_eq!(closed["closer"], "origin", "{closed}");
    assert_eq!(closed["kind"], "timeout", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the origin did not answer the RTMP handshake (sent 0 of 3073 bytes)"),
        "{closed}"
    );
}

/// Publishes from another thread: handshake, `connect`, `publish`, then 60 KB audio
/// messages for as long as the connection takes them. Writes that stall are retried
/// from where they stopped, so the stream stays parseable however the relay backs up.
struct Pusher {
    stream: TcpStream,
    local: SocketAddr,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Pusher {
    fn start(listen: SocketAddr, key: &str) -> Pusher {
        let stream = TcpStream::connect(listen).expect("connect to livegate");
        let local = stream.local_addr().expect("local addr");
        let writer = ChunkWriter::default();
        let preamble = encode::publish_preamble(&writer, "live", key);
        let mut message = Vec::new();
        let audio = [&[0xAF, 0x01][..], &[0x5A; 60_000]].concat();
        writer.write_message(&mut message, 4, 0, encode::TYPE_AUDIO, 1, &audio);
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut socket = stream.try_clone().expect("clone the publisher socket");
        socket
            .set_write_timeout(Some(Duration::from_millis(100)))
            .expect("write timeout");
        let (counter, stopping) = (Arc::clone(&written), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            let mut pending = &preamble[..];
            while !stopping.load(Ordering::SeqCst) {
                if pending.is_empty() {
                    pending = &message;
                }
                match socket.write(pending) {
                    Ok(n) => {
                        pending = &pending[n..];
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return,
                }
            }
        });
        Pusher {
            stream,
            local,
            written,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until nothing more is taken from the publisher for `quiet`: livegate no
    /// longer reads it because its write to the origin is stuck.
    fn wait_until_stalled(&self, quiet: Duration) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = (self.written.load(Ordering::SeqCst), Instant::now());
        while last.1.elapsed() < quiet {
            assert!(Instant::now() < deadline, "the relay never stalled");
            thread::sleep(Duration::from_millis(50));
            let now = self.written.load(Ordering::SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
    }

    /// Stops pushing and resets the connection (`SO_LINGER` 0): a publisher that aborts
    /// or is killed, whose going is visible even behind a full receive window.
    fn abort(mut self) {
        self.stop_thread();
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket fd and a correctly sized `linger` for SO_LINGER.
        let set = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                std::ptr::from_ref(&linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

#[test]
fn an_origin_that_stops_reading_is_closed_at_the_write_timeout() {
    let origin = StalledOrigin::start();
    let listen = local(free_port());
    let livegate = Livegate::start(&ingest(listen, origin.addr, "write_timeout_ms = 1000"), 1);
    let pusher = Pusher::start(listen, "stalled-origin-key");
    pusher.wait_until_stalled(Duration::from_millis(500));
    let stalled = Instant::now();
    let closed = livegate.session_closed_for(pusher.local, Duration::from_secs(10));
    assert!(
        stalled.elapsed() < Duration::from_secs(3),
        "closed {:?} after the stall",
        stalled.elapsed()
    );
    assert_eq!(closed["closer"], "origin", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("origin stopped reading: a write to it did not complete within 1000 ms"),
        "{closed}"
    );
    assert!(
        closed["bytes_from_publisher"].as_u64() > Some(1_000_000),
        "{closed}"
    );
}

#[test]
fn a_publisher_leaving_while_the_origin_is_stalled_ends_the_session_promptly() {
    let origin = StalledOrigin::start();
    let listen = local(free_port());
    // A write timeout far beyond the test: only noticing the publisher can end it.
    let livegate = Livegate::start(&ingest(listen, origin.addr, "write_timeout_ms = 600000"), 1);
    let pusher = Pusher::start(listen, "leaving-publisher-key");
    pusher.wait_until_stalled(Duration::from_millis(500));
    let client = pusher.local;
    pusher.abort();
    let left = Instant::now();
    let closed = livegate.session_closed_for(client, Duration::from_secs(10));
    assert!(
        left.elapsed() < Duration::from_secs(3),
        "closed {:?} after the publisher left",
        left.elapsed()
    );
    assert_eq!(closed["closer"], "publisher", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("publisher closed the connection while the origin was not reading"),
        "{closed}"
    );
}

#[test]
fn the_origin_is_dialled_only_after_a_valid_handshake_start() {
    let origin = StalledOrigin::start();
    let listen = local(free_port());
    let livegate = Livegate::start(
        &ingest(listen, origin.addr, "handshake_timeout_ms = 300"),
        1,
    );
    let mut idle = RawClient::connect(listen);
    let mut partial = RawClient::connect(listen);
    partial.send(&encode::client_handshake()[..1000]);
    let mut garbage = RawClient::connect(listen);
    garbage.send(b"GET / HTTP/1.1\r\n\r\n");
    for (client, kind, reason) in [
        (
            &mut idle,
            "timeout",
            "publisher sent 0 of the 1537 bytes of an RTMP handshake start (C0 + C1) within 300 ms",
        ),
        (
            &mut partial,
            "timeout",
            "publisher sent 1000 of the 1537 bytes",
        ),
        (
            &mut garbage,
            "not_protocol",
            "not RTMP: first byte 0x47 is not RTMP version 3 (C0)",
        ),
    ] {
        assert!(
            client.closed_within(Duration::from_secs(3)),
            "{reason}: left open"
        );
        let closed = livegate.session_closed_for(client.local, Duration::from_secs(3));
        assert_eq!(closed["closer"], "publisher", "{closed}");
        assert_eq!(closed["kind"], kind, "{closed}");
        assert!(
            closed["reason"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "{closed} should say {reason:?}"
        );
    }
    assert_eq!(
        origin.accepted(),
        0,
        "the origin was dialled for a bad client"
    );
    // A real handshake start is forwarded: the origin sees it.
    let mut good = RawClient::connect(listen);
    good.send(&encode::client_handshake());
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.accepted() == 0 {
        assert!(Instant::now() < deadline, "the origin was never dialled");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!good.closed_within(Duration::from_millis(200)));
}

#[test]
fn one_client_cannot_take_every_slot_and_refusals_are_counted_and_throttled() {
    let listen = local(free_port());
    let livegate = Livegate::start(
        &format!(
            "{}[admin]\nlisten = \"127.0.0.1:0\"\n",
            config(listen, "max_connections_per_client = 2")
        ),
        1,
    );
    let admin = livegate.admin_addr();
    let held: Vec<RawClient> = (0..2)
        .map(|_| {
            let mut client = RawClient::connect(listen);
            client.send(&encode::client_handshake());
            client
        })
        .collect();
    livegate.wait_for_logs(
        |lines| {
            lines
                .iter()
                .filter(|line| line["message"] == "session opened")
                .count()
                == 2
        },
        Duration::from_secs(5),
        "the two sessions",
    );
    let refused = 20;
    for _ in 0..refused {
        let mut client = RawClient::connect(listen);
        assert!(
            client.closed_within(Duration::from_secs(2)),
            "a connection over the per-client cap was kept"
        );
    }
    let warnings = |lines: &[serde_json::Value]| {
        lines
            .iter()
            .filter(|line| line["message"] == "connection refused: at max_connections_per_client")
            .count()
    };
    livegate.wait_for_logs(
        |lines| warnings(lines) >= 1,
        Duration::from_secs(5),
        "a refusal warning",
    );
    let logged = warnings(&livegate.logs());
    assert!(
        logged <= 3,
        "{logged} refusal warnings for {refused} refusals: not throttled"
    );
    let metrics = support::http::Request::get("/metrics").send(admin).body;
    assert!(
        metrics.contains(&format!(
            "livegate_connections_refused_total{{reason=\"per_client\"}} {refused}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("livegate_connections_refused_total{reason=\"max_connections\"} 0"),
        "{metrics}"
    );
    drop(held);
}

#[test]
fn a_publisher_over_max_publisher_kbps_is_closed() {
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    let livegate = Livegate::start(&ingest(listen, origin.addr, "max_publisher_kbps = 2000"), 1);
    // 60 KB messages as fast as the relay takes them: far beyond 2000 kbit/s.
    let pusher = Pusher::start(listen, "fast-publisher-key");
    let closed = livegate.session_closed_for(pusher.local, Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("publisher exceeded max_publisher_kbps = 2000"),
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
