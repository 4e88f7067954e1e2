//! SRT ingest with real components: Debian's ffmpeg publishes MPEG-TS over SRT through
//! livegate to `srt-live-transmit` (the libsrt sample app) as the SRT origin, which
//! writes what it receives to a file. Callers whose refusal reason matters are made with
//! livegate's own SRT binding, which reports the reject reason the listener gave.

use serde_json::Value;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::http::{Request, events_of, metric, scrape, wait_for_stream};
use crate::support::{self, ChildGuard, Livegate, free_port, local, scratch_dir};
use livegate_srt::{RejectReason, SocketOptions, SrtStream};

const TOKEN: &str = "srt-test-token";
const PUBLISHER_PASSPHRASE: &str = "publisher-passphrase-1";
const ORIGIN_PASSPHRASE: &str = "origin-passphrase-22";

/// A port free for UDP too (`free_port` checks TCP).
fn free_udp_port() -> u16 {
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `srt-live-transmit` listening as the SRT origin, writing what it receives to a file;
/// it exits once its caller disconnects (`-a no`).
struct SrtOrigin {
    process: ChildGuard,
    output: PathBuf,
    port: u16,
}

impl SrtOrigin {
    fn start(dir: &Path, passphrase: &str) -> SrtOrigin {
        let port = free_udp_port();
        let output = dir.join(format!("origin-{port}.ts"));
        let file = std::fs::File::create(&output).expect("origin output file");
        let process = ChildGuard::spawn(
            Command::new("srt-live-transmit")
                .args(["-q", "-a", "no"])
                .arg(format!(
                    "srt://127.0.0.1:{port}?mode=listener&passphrase={passphrase}"
                ))
                .arg("file://con")
                .stdout(file)
                .stderr(Stdio::null()),
            "srt-live-transmit",
        );
        // It binds a UDP port: nothing to poll with a TCP connect.
        std::thread::sleep(Duration::from_millis(300));
        SrtOrigin {
            process,
            output,
            port,
        }
    }

    /// What the origin received, once it has exited (its caller gone).
    fn received(mut self, limit: Duration) -> Vec<u8> {
        assert!(
            self.process.wait_for(limit).is_some(),
            "the SRT origin did not see its caller leave within {limit:?}"
        );
        std::fs::read(&self.output).expect("origin output")
    }
}

/// A short H.264 MPEG-TS clip (1 s GOP), encoded once per test.
fn ts_clip(dir: &Path, seconds: u32) -> PathBuf {
    let clip = dir.join("clip.ts");
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-t",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.push(seconds.to_string());
    args.extend(support::x264_args(30));
    args.extend(["-f".into(), "mpegts".into(), clip.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::ffmpeg(&args);
    clip
}

/// ffmpeg publishing `clip` at its real rate over SRT.
fn publish(clip: &Path, port: u16, streamid: &str, passphrase: &str) -> ChildGuard {
    ChildGuard::spawn(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-i",
            ])
            .arg(clip)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!(
                "srt://127.0.0.1:{port}?streamid={streamid}&passphrase={passphrase}"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "ffmpeg",
    )
}

fn config(listen: u16, origin: u16, extra: &str) -> String {
    format!(
        "[[ingest]]\nprotocol = \"srt\"\nlisten = \"127.0.0.1:{listen}\"\norigin = \"127.0.0.1:{origin}\"\n\
         connect_timeout_ms = 1000\n{extra}\n\
         [ingest.srt]\npassphrase = \"{PUBLISHER_PASSPHRASE}\"\norigin_passphrase = \"{ORIGIN_PASSPHRASE}\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"
    )
}

/// A caller made with livegate's binding: its handshake result says why it was refused.
fn connect(
    port: u16,
    streamid: Option<&str>,
    passphrase: &str,
) -> Result<SrtStream, livegate_srt::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let options = SocketOptions {
        streamid: streamid.map(str::to_string),
        passphrase: Some(passphrase.to_string()),
        connect_timeout: Duration::from_secs(2),
        ..SocketOptions::default()
    };
    runtime.block_on(SrtStream::connect(local(port), options))
}

fn reject_of(result: Result<SrtStream, livegate_srt::Error>) -> Option<RejectReason> {
    match result {
        Ok(_) => panic!("the handshake should have been refused"),
        Err(error) => error.reject,
    }
}

/// The origin got a byte-for-byte prefix of what ffmpeg published, every byte livegate
/// forwarded, and most of the clip (ffmpeg itself drops its last messages at close).
fn assert_relayed_unchanged(received: &[u8], clip: &Path, closed: &Value) {
    let published = std::fs::read(clip).expect("clip");
    assert!(
        received.len() > published.len() * 9 / 10,
        "the origin received {} of {} bytes",
        received.len(),
        published.len()
    );
    assert!(
        published.starts_with(received),
        "the origin's bytes differ from the published ones"
    );
    assert_eq!(
        closed["bytes_from_publisher"].as_u64(),
        Some(received.len() as u64),
        "{closed}"
    );
}

/// One SRT stream relaying: ffmpeg publishes a `seconds` clip as `key` (access-control
/// streamid) through livegate to an SRT origin; returned once `/v1/streams` shows the
/// stream relaying.
struct Relaying {
    _dir: tempfile::TempDir,
    clip: PathBuf,
    origin: SrtOrigin,
    listen: u16,
    livegate: Livegate,
    admin: std::net::SocketAddr,
    publisher: ChildGuard,
    stream: Value,
}

fn relaying(seconds: u32, key: &str) -> Relaying {
    let dir = scratch_dir();
    let clip = ts_clip(dir.path(), seconds);
    let origin = SrtOrigin::start(dir.path(), ORIGIN_PASSPHRASE);
    let listen = free_udp_port();
    let livegate = Livegate::start(&config(listen, origin.port, ""), 1);
    let admin = livegate.admin_addr();
    let publisher = publish(
        &clip,
        listen,
        &format!("#!::r=live/{key},m=publish"),
        PUBLISHER_PASSPHRASE,
    );
    let stream = wait_for_stream(
        admin,
        TOKEN,
        |stream| stream["srt"]["origin"]["packets_sent"].as_u64() > Some(10),
        "an SRT stream relaying to its origin",
    );
    Relaying {
        _dir: dir,
        clip,
        origin,
        listen,
        livegate,
        admin,
        publisher,
        stream,
    }
}

#[test]
fn an_srt_publish_reaches_the_srt_origin_byte_for_byte() {
    let key = "srt-secret-stream-key-1";
    // Every field bound: a field left to `..` would be dropped here (the scratch folder
    // with it).
    let Relaying {
        _dir: _scratch,
        clip,
        origin,
        livegate,
        admin,
        mut publisher,
        stream,
        listen: _,
    } = relaying(3, key);
    assert_eq!(stream["protocol"], "srt", "{stream}");
    assert_eq!(stream["app"], "live", "{stream}");
    assert_eq!(stream["state"], "publishing", "{stream}");
    assert!(
        !stream.to_string().contains(key),
        "the key is redacted: {stream}"
    );
    assert_eq!(
        stream["key_fingerprint"].as_str(),
        Some(support::key_fingerprint(key).as_str())
    );
    assert!(
        stream["srt"]["publisher"]["rtt_ms"].as_f64().is_some(),
        "{stream}"
    );
    let metrics = scrape(admin);
    assert_eq!(
        metric(&metrics, "livegate_streams_by_protocol{protocol=\"srt\"}"),
        1.0
    );
    assert!(metrics.contains("livegate_srt_packets_lost{link=\"publisher\"}"));
    assert!(
        publisher
            .wait_for(Duration::from_secs(15))
            .is_some_and(|status| status.success()),
        "ffmpeg publishes through livegate"
    );
    let closed = livegate.session_closed_for_key(key, Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    assert_eq!(closed["kind"], "closed", "{closed}");
    let received = origin.received(Duration::from_secs(10));
    assert_relayed_unchanged(&received, &clip, &closed);
    assert!(!livegate.raw_log().contains(key), "keys are never logged");
    assert!(!livegate.raw_log().contains(PUBLISHER_PASSPHRASE));
}

#[test]
fn refused_callers_get_their_reason_and_other_streams_go_on() {
    let dir = scratch_dir();
    let clip = ts_clip(dir.path(), 4);
    let origin = SrtOrigin::start(dir.path(), ORIGIN_PASSPHRASE);
    let listen = free_udp_port();
    // One stream at a time: a second caller meets the cap at the handshake.
    let livegate = Livegate::start(&config(listen, origin.port, "max_connections = 1"), 1);
    let admin = livegate.admin_addr();
    let key = "srt-key-that-keeps-going";
    // Before the stream takes the one slot: libsrt itself refuses the passphrase.
    let good = Some("#!::r=live/another-key,m=publish");
    assert_eq!(
        reject_of(connect(listen, good, "not-the-passphrase")),
        Some(RejectReason::BAD_SECRET),
        "a wrong passphrase"
    );
    let mut publisher = publish(&clip, listen, &format!("live/{key}"), PUBLISHER_PASSPHRASE);
    wait_for_stream(
        admin,
        TOKEN,
        |stream| stream["srt"]["origin"]["packets_sent"].as_u64() > Some(10),
        "the good stream relaying",
    );
    assert_eq!(
        reject_of(connect(listen, None, PUBLISHER_PASSPHRASE)),
        Some(RejectReason::BAD_REQUEST),
        "no streamid"
    );
    assert_eq!(
        reject_of(connect(
            listen,
            Some("#!::m=publish,u=x"),
            PUBLISHER_PASSPHRASE
        )),
        Some(RejectReason::BAD_REQUEST),
        "a streamid without a resource"
    );
    assert_eq!(
        reject_of(connect(
            listen,
            Some("#!::r=live/k,m=request"),
            PUBLISHER_PASSPHRASE
        )),
        Some(RejectReason::BAD_MODE),
        "a reader"
    );
    assert_eq!(
        reject_of(connect(listen, good, PUBLISHER_PASSPHRASE)),
        Some(RejectReason::OVERLOAD),
        "a caller over max_connections"
    );
    let garbage = UdpSocket::bind("127.0.0.1:0").expect("udp");
    for i in 0..200u32 {
        let datagram: Vec<u8> = (0..(i % 1500)).map(|j| (i * 31 + j) as u8).collect();
        garbage
            .send_to(&datagram, local(listen))
            .expect("send garbage");
    }
    assert!(
        publisher
            .wait_for(Duration::from_secs(15))
            .is_some_and(|status| status.success()),
        "the good stream finishes"
    );
    let closed = livegate.session_closed_for_key(key, Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    let received = origin.received(Duration::from_secs(10));
    assert_relayed_unchanged(&received, &clip, &closed);
    assert_eq!(
        metric(
            &scrape(admin),
            "livegate_connections_refused_total{reason=\"streamid\"}"
        ),
        3.0
    );
    assert_eq!(
        metric(
            &scrape(admin),
            "livegate_connections_refused_total{reason=\"max_connections\"}"
        ),
        1.0
    );
    let refusal = livegate
        .logs()
        .into_iter()
        .find(|line| line["message"] == "SRT caller refused at the handshake: streamid")
        .expect("a refusal logged");
    assert!(
        refusal["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("streamid")),
        "{refusal}"
    );
    assert_eq!(
        livegate.closed_sessions().len(),
        1,
        "refused callers are no sessions"
    );
}

#[test]
fn an_origin_that_is_down_ends_the_session_blaming_the_origin() {
    let listen = free_udp_port();
    let nobody = free_udp_port();
    let livegate = Livegate::start(&config(listen, nobody, ""), 1);
    let caller = connect(listen, Some("live/origin-down-key"), PUBLISHER_PASSPHRASE)
        .expect("livegate accepts the caller, then dials the origin");
    let closed = livegate.wait_for_closed_session(Duration::from_secs(10));
    assert_eq!(closed["closer"], "origin", "{closed}");
    assert!(
        closed["kind"] == "timeout" || closed["kind"] == "unreachable",
        "{closed}"
    );
    let reason = closed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("127.0.0.1:{nobody}")), "{reason}");
    // The caller's connection is closed with the session.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while !caller.is_gone() {
        assert!(
            std::time::Instant::now() < deadline,
            "the caller is never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cut_closes_both_links_and_the_key_is_refused_at_the_next_handshake() {
    let key = "srt-key-to-be-cut-123";
    // Every field bound: a field left to `..` would be dropped here (the scratch folder
    // with it).
    let Relaying {
        _dir: _scratch,
        clip,
        origin,
        listen,
        livegate,
        admin,
        mut publisher,
        stream,
    } = relaying(8, key);
    let path = format!("/v1/streams/{}/cut", stream["id"].as_str().expect("id"));
    let cut = Request::post(&path, br#"{"reason":"srt test"}"#)
        .token(TOKEN)
        .send(admin);
    assert_eq!(cut.status, 202, "{cut:?}");
    let closed = livegate.session_closed_for_key(key, Duration::from_secs(5));
    assert_eq!(closed["kind"], "operator_cut", "{closed}");
    // Both links close: the origin sees its caller leave, ffmpeg its connection break.
    let received = origin.received(Duration::from_secs(8));
    assert!(std::fs::read(&clip).expect("clip").starts_with(&received));
    assert!(
        publisher.wait_for(Duration::from_secs(8)).is_some(),
        "ffmpeg sees its connection closed"
    );
    assert_eq!(
        reject_of(connect(
            listen,
            Some(&format!("live/{key}")),
            PUBLISHER_PASSPHRASE
        )),
        Some(RejectReason::FORBIDDEN),
        "the cut key is refused at the handshake"
    );
    let rejected = events_of(admin, TOKEN, "rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("banned")),
        "{rejected:?}"
    );
    assert_eq!(
        rejected[0]["key_fingerprint"].as_str(),
        Some(support::key_fingerprint(key).as_str())
    );
}

#[test]
fn listed_footage_over_srt_is_cut_at_its_first_matching_keyframe_and_benign_flows() {
    let dir = scratch_dir();
    let encode = |inputs: &[&str], out: &Path| {
        let mut args: Vec<String> = ["-hide_banner", "-loglevel", "error", "-y"]
            .iter()
            .chain(inputs)
            .map(ToString::to_string)
            .collect();
        args.extend(support::x264_args(30));
        args.extend(["-f".into(), "mpegts".into(), out.display().to_string()]);
        support::ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let known = dir.path().join("known.ts");
    encode(
        &[
            "-f",
            "lavfi",
            "-i",
            "mandelbrot=s=640x360:r=30:start_scale=2:end_scale=0.1,trim=duration=3",
        ],
        &known,
    );
    let list = dir.path().join("known.csv");
    let listed = support::livegate_hash(&["--every", "1"], &known);
    std::fs::write(&list, &listed).expect("list");
    // Two seconds of benign footage, then the listed clip.
    let stream = dir.path().join("stream.ts");
    encode(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=30:d=2",
            "-i",
            known.to_str().expect("utf-8"),
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1:a=0[v]",
            "-map",
            "[v]",
        ],
        &stream,
    );
    let benign = ts_clip(dir.path(), 4);
    // The stream's first keyframe within distance 31 of a listed hash, as `livegate
    // hash` sees the same file: where the cut must happen.
    let listed: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split(',').next())
        .collect();
    let first_match_pts: f64 = support::livegate_hash(&["--every", "1"], &stream)
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let matches = listed
                .iter()
                .any(|hash| support::pdq_distance(hash, fields[0]) <= 31);
            matches.then(|| fields[3].parse().expect("pts"))
        })
        .expect("the stream holds the listed footage");
    let (listed_origin, benign_origin) = (
        SrtOrigin::start(dir.path(), ORIGIN_PASSPHRASE),
        SrtOrigin::start(dir.path(), ORIGIN_PASSPHRASE),
    );
    let (listed_port, benign_port) = (free_udp_port(), free_udp_port());
    let tables = format!(
        "[[hashlist]]\nname = \"known\"\npath = {:?}\naction = \"cut\"\n[policy]\nmode = \"enforce\"\n",
        list.display().to_string()
    );
    let second = config(benign_port, benign_origin.port, "")
        .split("[admin]")
        .next()
        .expect("ingest part")
        .to_string();
    let livegate = Livegate::start(
        &format!(
            "{second}\n{}\n{tables}",
            config(listed_port, listed_origin.port, "")
        ),
        2,
    );
    let admin = livegate.admin_addr();
    let (key, benign_key) = ("srt-listed-footage-key", "srt-benign-footage-key");
    let mut publisher = publish(
        &stream,
        listed_port,
        &format!("#!::r=live/{key},m=publish"),
        PUBLISHER_PASSPHRASE,
    );
    let mut benign_publisher = publish(
        &benign,
        benign_port,
        &format!("#!::m=publish,r=live/{benign_key}"),
        PUBLISHER_PASSPHRASE,
    );

    let closed = livegate.session_closed_for_key(key, Duration::from_secs(15));
    assert_eq!(closed["kind"], "policy_cut", "{closed}");
    assert_eq!(closed["codec"], "Avc", "{closed}");
    let cuts = events_of(admin, TOKEN, "cut");
    assert_eq!(cuts.len(), 1, "{cuts:?}");
    // `livegate hash` counts from the file's start; the TS timestamps start later.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&stream)
        .output()
        .expect("ffprobe");
    let start: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .expect("start time");
    let cut_pts = cuts[0]["pts_seconds"]
        .as_f64()
        .expect("pts of the cut keyframe")
        - start;
    assert!(
        (cut_pts - first_match_pts).abs() < 0.05,
        "cut at {cut_pts} s, the first matching keyframe is at {first_match_pts} s"
    );
    assert!(
        cuts[0]["time_to_cut_ms"]
            .as_f64()
            .is_some_and(|ms| ms < 1_000.0),
        "{cuts:?}"
    );
    // The listed stream's origin saw the link close; ffmpeg's connection broke.
    let received = listed_origin.received(Duration::from_secs(8));
    assert!(
        std::fs::read(&stream)
            .expect("stream")
            .starts_with(&received)
    );
    assert!(publisher.wait_for(Duration::from_secs(8)).is_some());
    assert_eq!(
        reject_of(connect(
            listed_port,
            Some(&format!("live/{key}")),
            PUBLISHER_PASSPHRASE
        )),
        Some(RejectReason::FORBIDDEN),
        "the cut key is refused at the next handshake"
    );
    // The benign stream on the other listener flowed to its end, untouched.
    assert!(
        benign_publisher
            .wait_for(Duration::from_secs(15))
            .is_some_and(|status| status.success()),
        "the benign stream is not cut"
    );
    let closed = livegate.session_closed_for_key(benign_key, Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    assert!(
        closed["keyframes"].as_u64() >= Some(3),
        "inspected: {closed}"
    );
    assert_relayed_unchanged(
        &benign_origin.received(Duration::from_secs(10)),
        &benign,
        &closed,
    );
}
