//! Real components for integration tests: an nginx-rtmp origin (and its recordings, read
//! as FLV), ffmpeg publishers, the livegate binary (alone or as a [`GateStack`] in front
//! of a recording origin, with its audit log), a recording TCP tee, and an attack
//! publisher whose chunks the test crafts; [`nats`] runs nats-server with JetStream and
//! [`fleet`] livegate nodes sharing it. Every process is started on free 127.0.0.1
//! ports and killed by a Drop guard, so a failing test leaves nothing behind.
#![allow(dead_code)] // each test binary uses its own subset of these helpers

pub mod browser;
pub mod fleet;
pub mod http;
pub mod nats;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Python that writes a tiny ONNX model with exactly known outputs to `argv[1]`.
pub const TINY_ONNX_MODEL: &str = include_str!("tiny_onnx_model.py");

/// Python that writes real photographs and re-streamers' edits of them as 1280x720 PNGs
/// into `argv[1]` (see the script).
pub const DESCRIPTOR_EDITS: &str = include_str!("../../../scripts/descriptor-edits.py");

/// The project's `.venv` Python (made by scripts/install-deps.sh with Meta's pdqhash and
/// vpdq, onnxruntime and NudeNet): missing means the install step was skipped, a failure.
pub fn venv_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (pdqhash, vpdq, onnxruntime, nudenet)",
        python.display()
    );
    python
}

/// Runs `script` with `.venv`'s Python and `args`; its stdout.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let output = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run .venv/bin/python");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// The ONNX Runtime library of the wheel in .venv (as livegate finds it by default).
pub fn onnx_runtime_library() -> PathBuf {
    run_python(
        "import glob, os, onnxruntime; print(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi', 'libonnxruntime.so*'))[0])",
        &[],
    )
    .trim()
    .into()
}

/// The fingerprint livegate logs for a stream key (first 16 hex digits of its SHA-256).
pub fn key_fingerprint(key: &str) -> String {
    Sha256::digest(key.as_bytes())[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A port that was free a moment ago on 127.0.0.1, for a server a test starts.
///
/// Not an ephemeral port: between this call and the server's bind, an outgoing connection
/// made by another test in this process could be given the same ephemeral port by the
/// kernel (Linux draws both from `ip_local_port_range`, 32768–60999 by default). Ports
/// come instead from 20000–32767, each handed out once per process, starting at an offset
/// drawn from the process id so that two suites running at once rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % COUNT,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port left in {FIRST}..{}", FIRST + COUNT);
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {addr}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn spawn(command: &mut Command, name: &str) -> ChildGuard {
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start {name}: {error} (run scripts/install-deps.sh)")
        });
        ChildGuard {
            child,
            name: name.to_string(),
        }
    }

    /// Sends SIGTERM and waits for the exit status, killing after `limit`.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_for(limit)
            .unwrap_or_else(|| panic!("{} did not exit within {limit:?} of SIGTERM", self.name))
    }

    /// Waits for the process to exit by itself; `None` after `limit`.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A scratch directory readable by nginx's `nobody` workers, removed on drop.
/// Held by tests that use the embedded default config's fixed ports (1935, 1936, 8935):
/// the demo and the README's examples run one at a time.
pub fn default_ports_lock() -> std::sync::MutexGuard<'static, ()> {
    static PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    PORTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn scratch_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    set_mode(dir.path(), 0o755);
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// nginx with `libnginx-mod-rtmp`: application `live` relays and records every stream.
pub struct NginxOrigin {
    pub addr: SocketAddr,
    pub record_dir: PathBuf,
    /// nginx-rtmp's access log (`combined`: the client's address first on each line).
    pub access_log: PathBuf,
    process: ChildGuard,
    _dir: tempfile::TempDir,
}

impl NginxOrigin {
    pub fn start() -> NginxOrigin {
        NginxOrigin::start_listening("")
    }

    /// An origin whose listener expects a PROXY protocol v1 header on every connection.
    pub fn start_with_proxy_protocol() -> NginxOrigin {
        NginxOrigin::start_listening(" proxy_protocol")
    }

    /// `listen_options` follow the address on nginx's `listen` line.
    fn start_listening(listen_options: &str) -> NginxOrigin {
        let dir = scratch_dir();
        let record_dir = dir.path().join("records");
        std::fs::create_dir(&record_dir).expect("record dir");
        // Single-process nginx (so killing it leaves no orphaned workers) runs as the
        // test user; the mode matters only when the tests run as root with workers.
        set_mode(&record_dir, 0o777);
        let port = free_port();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\n\
             pid {dir}/nginx.pid;\nerror_log {dir}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}{listen_options}; chunk_size 4096;\n\
               access_log {dir}/access.log;\n\
               application live {{ live on; record all; record_path {records}; }} }} }}\n",
            dir = dir.path().display(),
            records = record_dir.display(),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let process = ChildGuard::spawn(
            Command::new("nginx")
                .arg("-c")
                .arg(&conf_path)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("startup.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "nginx",
        );
        let addr = local(port);
        wait_for_port(addr, "nginx");
        NginxOrigin {
            addr,
            record_dir,
            access_log: dir.path().join("access.log"),
            process,
            _dir: dir,
        }
    }

    pub fn process_id(&self) -> u32 {
        self.process.child.id()
    }

    /// The recording of a stream; present once the publisher has gone.
    pub fn recording(&self, stream_key: &str) -> PathBuf {
        self.record_dir.join(format!("{stream_key}.flv"))
    }

    /// Whether nginx holds the recording of `stream_key` open: the stream is being
    /// published to the origin (nginx closes the file when its publisher goes).
    pub fn recording_open(&self, stream_key: &str) -> bool {
        let path = self.recording(stream_key);
        std::fs::read_dir(format!("/proc/{}/fd", self.process_id())).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|entry| std::fs::read_link(entry.path()).is_ok_and(|target| target == path))
        })
    }
}

/// Runs Debian's ffmpeg to completion (quiet, overwriting), failing the test with its
/// error output.
pub fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg (scripts/install-deps.sh installs it)");
    assert!(
        output.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// ffmpeg pushing a pre-encoded file to `url` at real-time rate, without re-encoding.
pub fn publish_file(file: &Path, url: &str) -> ChildGuard {
    publish_copy(&[], file, url)
}

/// GStreamer publishing `file`'s H.264 to `url` (`rtmp://` or `rtmps://`) with
/// `rtmp2sink`, at its real rate, without re-encoding. The certificate is not validated:
/// the test's CA is not in GIO's trust store (livegate's side of TLS is what is tested).
pub fn gst_publish_file(file: &Path, url: &str) -> ChildGuard {
    ChildGuard::spawn(
        Command::new("gst-launch-1.0")
            .args(["-q", "-e", "filesrc"])
            .arg(format!("location={}", file.display()))
            .args([
                "!",
                "qtdemux",
                "!",
                "h264parse",
                "!",
                "flvmux",
                "streamable=true",
            ])
            .args(["!", "rtmp2sink", "tls-validation-flags=0"])
            .arg(format!("location={url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "gst-launch publisher",
    )
}

/// ffmpeg publishing `clip` to `url` at its real rate, over and over.
pub fn publish_looping(clip: &Path, url: &str) -> ChildGuard {
    publish_copy(&["-stream_loop", "-1"], clip, url)
}

/// ffmpeg reading `file` with `input_options` at real-time rate and pushing it to `url`
/// without re-encoding.
fn publish_copy(input_options: &[&str], file: &Path, url: &str) -> ChildGuard {
    ChildGuard::spawn(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(input_options)
            .arg("-i")
            .arg(file)
            .args(["-c", "copy", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "ffmpeg publisher",
    )
}

/// The Hamming distance of two 64-hex-digit PDQ hashes (as `livegate hash` prints them).
pub fn pdq_distance(a: &str, b: &str) -> u32 {
    let bytes = |hex: &str| -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("a hex hash"))
            .collect()
    };
    bytes(a)
        .iter()
        .zip(bytes(b))
        .map(|(x, y)| (x ^ y).count_ones())
        .sum()
}

/// A PDQ hash no test frame is near.
pub const UNRELATED_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// lavfi sources of 640x360 footage whose keyframes (one a second) PDQ tells apart: rich
/// large-scale structure that survives re-encoding. Measured with `livegate hash
/// --keyframes` on 6 s clips (a match is 31 bits or less): keyframes of two sources are
/// at least 106 bits apart, two keyframes of one Mandelbrot or cellular-automaton clip
/// at least 98, of the test pattern 56.
pub const MANDELBROT: &str = "mandelbrot=s=640x360:r=30";
pub const CELLULAR_AUTOMATON: &str = "cellauto=s=640x360:r=30:rule=110:full=1";
pub const TEST_PATTERN: &str = "testsrc2=s=640x360:r=30";

/// Encodes `seconds` of the lavfi `source` (e.g. [`MANDELBROT`]) into `path` with a
/// keyframe every second.
pub fn encode_clip(path: &Path, source: &str, seconds: u32) {
    let seconds = seconds.to_string();
    let mut args: Vec<String> = ["-f", "lavfi", "-i", source, "-t", &seconds]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
    args.extend(x264_args(30));
    args.push(path.display().to_string());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// The PDQ hashes of every keyframe of `clip`, from `livegate hash`.
pub fn keyframe_hashes(clip: &Path) -> Vec<String> {
    livegate_hash(&["--keyframes"], clip)
        .lines()
        .filter_map(|line| line.split(',').next())
        .map(str::to_string)
        .collect()
}

/// `livegate hash ARGS FILE`: its output (a valid hash list), failing the test with
/// livegate's error output.
pub fn livegate_hash(args: &[&str], file: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("hash")
        .args(args)
        .arg(file)
        .output()
        .expect("run livegate hash");
    assert!(
        output.status.success(),
        "livegate hash: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// H.264 encoder options of the tests' streams: fast, 4:2:0, B-frames, and a keyframe
/// exactly every `gop_frames` frames.
pub fn x264_args(gop_frames: u32) -> Vec<String> {
    let gop = gop_frames.to_string();
    [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-bf",
        "2",
        "-g",
        &gop,
        "-keyint_min",
        &gop,
        "-sc_threshold",
        "0",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect()
}

/// Overwrites the middle half of the largest NAL unit of a length-prefixed (avcC) packet
/// — the keyframe's slice data — with a byte pattern no encoder wrote.
pub fn corrupt_largest_nal_unit(packet: &mut [u8]) {
    let mut units = Vec::new();
    let mut offset = 0;
    while offset + 4 <= packet.len() {
        let length = u32::from_be_bytes(packet[offset..offset + 4].try_into().unwrap()) as usize;
        units.push((offset + 4, length));
        offset += 4 + length;
    }
    let (start, length) = units.into_iter().max_by_key(|(_, length)| *length).unwrap();
    for (index, byte) in packet[start + length / 4..start + 3 * length / 4]
        .iter_mut()
        .enumerate()
    {
        *byte = [0x5a, 0xc3, 0x00, 0xff][index % 4];
    }
}

/// What ffprobe reports of a file's first video stream.
#[derive(Debug)]
pub struct VideoProbe {
    pub codec: String,
    pub width: u64,
    pub height: u64,
    pub frames: u64,
}

pub fn probe_video(path: &Path) -> VideoProbe {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("ffprobe json");
    let stream = &json["streams"][0];
    VideoProbe {
        codec: stream["codec_name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        width: stream["width"].as_u64().unwrap_or_default(),
        height: stream["height"].as_u64().unwrap_or_default(),
        frames: stream["nb_read_frames"]
            .as_str()
            .and_then(|frames| frames.parse().ok())
            .unwrap_or_default(),
    }
}

/// Debian's ffmpeg publishing a synthetic H.264 + AAC stream at real-time rate.
pub struct Publisher {
    pub process: ChildGuard,
}

impl Publisher {
    /// `seconds` of 640×360 30 fps test pattern with a `gop_seconds` keyframe interval.
    pub fn start(url: &str, seconds: u32, gop_seconds: u32) -> Publisher {
        let process = ChildGuard::spawn(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
                .args(["-t", &seconds.to_string()])
                .args(x264_args(30 * gop_seconds))
                .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url])
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
            "ffmpeg",
        );
        Publisher { process }
    }

    /// Waits for ffmpeg to finish; returns whether it succeeded and what it printed.
    pub fn finish(mut self, limit: Duration) -> (bool, String) {
        let status = self.process.wait_for(limit);
        let mut stderr = String::new();
        if let Some(mut pipe) = self.process.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status.is_some_and(|status| status.success()), stderr)
    }
}

/// The livegate binary on a config of the test's, logging JSON lines to a file.
pub struct Livegate {
    pub process: ChildGuard,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Livegate {
    /// Starts livegate and waits until each of its `listens` accepts.
    pub fn start(config: &str, listens: usize) -> Livegate {
        let dir = scratch_dir();
        let config_path = dir.path().join("livegate.toml");
        let config = format!("{config}\n[log]\nformat = \"json\"\nlevel = \"debug\"\n");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = dir.path().join("livegate.log");
        let log_file = std::fs::File::create(&log_path).expect("log file");
        let process = ChildGuard::spawn(
            Command::new(env!("CARGO_BIN_EXE_livegate"))
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .env_remove("RUST_LOG")
                .env_remove("LIVEGATE_ADMIN_TOKEN")
                .stdout(Stdio::null())
                .stderr(log_file),
            "livegate",
        );
        let livegate = Livegate {
            process,
            log_path,
            _dir: dir,
        };
        livegate.wait_for_logs(
            |lines| {
                lines
                    .iter()
                    .filter(|line| line["message"] == "ingest listening")
                    .count()
                    >= listens
            },
            Duration::from_secs(10),
            "livegate listening",
        );
        livegate
    }

    /// Every JSON log line so far (a torn last line is skipped).
    pub fn logs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn raw_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls the log until `done` holds, panicking with the log after `limit`.
    pub fn wait_for_logs(&self, done: impl Fn(&[Value]) -> bool, limit: Duration, what: &str) {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.logs()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; livegate log:\n{}",
                    self.raw_log()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends the signal `name` (`"HUP"`: reload the lists, `"TERM"`: drain and stop).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.process.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    /// The admin server's address, from its "admin listening" log line.
    pub fn admin_addr(&self) -> SocketAddr {
        self.wait_for_logs(
            |lines| {
                lines
                    .iter()
                    .any(|line| line["message"] == "admin listening")
            },
            Duration::from_secs(10),
            "the admin server",
        );
        self.logs()
            .iter()
            .find(|line| line["message"] == "admin listening")
            .and_then(|line| line["listen"].as_str()?.parse().ok())
            .expect("admin listening line with its address")
    }

    /// The "session closed" lines.
    pub fn closed_sessions(&self) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|line| line["message"] == "session closed")
            .collect()
    }

    /// Waits for the first "session closed" line.
    pub fn wait_for_closed_session(&self, limit: Duration) -> Value {
        self.wait_for_logs(
            |lines| lines.iter().any(|line| line["message"] == "session closed"),
            limit,
            "a session to close",
        );
        self.closed_sessions().remove(0)
    }

    /// Waits for the "session closed" line of the session that published `key`.
    pub fn session_closed_for_key(&self, key: &str, limit: Duration) -> Value {
        let fingerprint = format!("#{}", key_fingerprint(key));
        let of_key = |line: &Value| {
            line["message"] == "session closed"
                && line["key"]
                    .as_str()
                    .is_some_and(|logged| logged.ends_with(&fingerprint))
        };
        self.wait_for_logs(
            |lines| lines.iter().any(of_key),
            limit,
            &format!("the session of key {fingerprint} to close"),
        );
        self.logs().into_iter().find(of_key).unwrap_or_default()
    }

    /// Waits for the "session closed" line of the session from `client`.
    pub fn session_closed_for(&self, client: SocketAddr, limit: Duration) -> Value {
        let client = client.to_string();
        self.wait_for_logs(
            |lines| {
                lines.iter().any(|line| {
                    line["message"] == "session closed" && line["client"] == client.as_str()
                })
            },
            limit,
            &format!("session of {client} to close"),
        );
        self.closed_sessions()
            .into_iter()
            .find(|line| line["client"] == client.as_str())
            .unwrap_or_default()
    }
}

/// One direction of a tee'd connection: its length, SHA-256 and the bytes themselves.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StreamDigest {
    pub bytes: u64,
    pub sha256: String,
    pub content: Vec<u8>,
}

impl std::fmt::Debug for StreamDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, sha256 {}", self.bytes, self.sha256)
    }
}

impl StreamDigest {
    pub fn starts_with(&self, prefix: &StreamDigest) -> bool {
        self.content.starts_with(&prefix.content)
    }
}

#[derive(Default)]
struct DigestState {
    content: Vec<u8>,
}

/// A TCP forwarder for one connection that fingerprints what each side sent.
pub struct Tee {
    pub addr: SocketAddr,
    upstream: Arc<Mutex<DigestState>>,
    downstream: Arc<Mutex<DigestState>>,
    done: Arc<Mutex<bool>>,
}

impl Tee {
    /// Accepts one connection and forwards it to `target`.
    pub fn start(target: SocketAddr) -> Tee {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tee");
        let addr = listener.local_addr().expect("tee addr");
        let upstream = Arc::new(Mutex::new(DigestState::default()));
        let downstream = Arc::new(Mutex::new(DigestState::default()));
        let done = Arc::new(Mutex::new(false));
        let (up, down, finished) = (upstream.clone(), downstream.clone(), done.clone());
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(target) else {
                return;
            };
            let (client2, server2) = match (client.try_clone(), server.try_clone()) {
                (Ok(c), Ok(s)) => (c, s),
                _ => return,
            };
            let forward = thread::spawn(move || copy_digest(client, server, up));
            copy_digest(server2, client2, down);
            let _ = forward.join();
            *finished.lock().expect("tee state") = true;
        });
        Tee {
            addr,
            upstream,
            downstream,
            done,
        }
    }

    /// Digests of (client→server, server→client) once both directions have ended.
    pub fn digests(&self, limit: Duration) -> (StreamDigest, StreamDigest) {
        let deadline = Instant::now() + limit;
        while !*self.done.lock().expect("tee state") {
            assert!(Instant::now() < deadline, "tee connection did not end");
            thread::sleep(Duration::from_millis(20));
        }
        let finish = |state: &Arc<Mutex<DigestState>>| {
            let state = state.lock().expect("tee state");
            StreamDigest {
                bytes: state.content.len() as u64,
                sha256: Sha256::digest(&state.content)
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect(),
                content: state.content.clone(),
            }
        };
        (finish(&self.upstream), finish(&self.downstream))
    }
}

fn copy_digest(mut from: TcpStream, mut to: TcpStream, state: Arc<Mutex<DigestState>>) {
    let mut buffer = [0u8; 65536];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut state = state.lock().expect("tee state");
            state.content.extend_from_slice(&buffer[..n]);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// A raw client: sends bytes, then reports whether the server closed the connection.
pub struct RawClient {
    pub stream: TcpStream,
    pub local: SocketAddr,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect to livegate");
        let local = stream.local_addr().expect("local addr");
        RawClient { stream, local }
    }

    /// Sends bytes; a write error (the server already closed) is not a test failure.
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let _ = self.stream.write_all(bytes);
        self
    }

    /// True when the server closes the connection within `limit` (whatever it sent first).
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buffer = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut buffer) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

/// A fake origin that accepts connections, reads `read_before_close` bytes, then closes.
pub fn start_closing_origin(read_before_close: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake origin");
    let addr = listener.local_addr().expect("fake origin addr");
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut seen = 0;
                let mut buffer = [0u8; 4096];
                while seen < read_before_close {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen += n,
                    }
                }
            });
        }
    });
    addr
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub type_id: u8,
    /// 32-bit timestamp (24 bits + the extension byte).
    pub timestamp: u32,
    pub body: Vec<u8>,
}

/// The tags of an FLV file (what `ffmpeg -f flv` and nginx-rtmp's `record` write). A
/// file cut short ends with its last whole tag.
pub fn flv_tags(file: &[u8]) -> Vec<FlvTag> {
    assert!(file.starts_with(b"FLV"), "not an FLV file");
    let header_len = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    // The header, then PreviousTagSize0.
    let mut position = header_len + 4;
    let mut tags = Vec::new();
    while let Some(header) = file.get(position..position + 11) {
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let Some(body) = file.get(position + 11..position + 11 + size) else {
            break;
        };
        tags.push(FlvTag {
            type_id: header[0] & 0x1F,
            timestamp,
            body: body.to_vec(),
        });
        position += 11 + size + 4;
    }
    tags
}

/// The recording nginx wrote of `stream_key`, once nginx has closed it (it writes every
/// message as it arrives and closes the file when the publisher is gone); empty when
/// nginx recorded nothing (no keyframe ever reached it). Call it once the session ended.
pub fn finished_recording(origin: &NginxOrigin, stream_key: &str) -> Vec<u8> {
    let path = origin.recording(stream_key);
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        thread::sleep(Duration::from_millis(200));
        // Closed and no longer growing: a loaded machine may delay nginx's reads.
        let size = std::fs::metadata(&path).map(|meta| meta.len()).ok();
        if (size == last && !origin.recording_open(stream_key)) || Instant::now() >= deadline {
            return std::fs::read(&path).unwrap_or_default();
        }
        last = size;
    }
}

/// The audit records livegate wrote to `path` (JSON lines).
pub fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The audit records of one stream key with the given `event`.
pub fn records_for<'a>(records: &'a [Value], key: &str, event: &str) -> Vec<&'a Value> {
    let fingerprint = key_fingerprint(key);
    records
        .iter()
        .filter(|record| {
            record["key_fingerprint"] == fingerprint.as_str() && record["event"] == event
        })
        .collect()
}

/// Waits for an audit record of `event` for `key` in the audit log at `path`; `None`
/// after `limit`.
pub fn wait_for_audit_record(
    path: &Path,
    key: &str,
    event: &str,
    limit: Duration,
) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let records = audit_records(path);
        if let Some(record) = records_for(&records, key, event).first() {
            return Some((*record).clone());
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// An RTMP publisher whose chunks the test crafts: it does a real handshake (sends C0+C1,
/// reads S0/S1/S2, answers C2 with S1), sends connect, createStream and publish without
/// waiting for replies, then whatever bytes the test writes with
/// [`livegate_rtmp::encode::ChunkCrafter`]. A thread drains the server's replies
/// and notices when the server closes. Every byte sent is kept, for the test's own
/// demuxer.
pub struct AttackPublisher {
    stream: TcpStream,
    pub local: SocketAddr,
    /// Every byte sent so far, handshake included.
    pub sent: Vec<u8>,
    closed: Arc<Mutex<bool>>,
}

impl AttackPublisher {
    pub fn connect(addr: SocketAddr, app: &str, stream_key: &str) -> AttackPublisher {
        use livegate_rtmp::encode::{self, ChunkWriter, HANDSHAKE_PACKET_BYTES};
        let mut stream = TcpStream::connect(addr).expect("connect to livegate");
        let local = stream.local_addr().expect("local addr");
        let c0_c1 = encode::client_handshake()[..1 + HANDSHAKE_PACKET_BYTES].to_vec();
        stream.write_all(&c0_c1).expect("send C0+C1");
        let mut s0_s1_s2 = vec![0u8; 1 + 2 * HANDSHAKE_PACKET_BYTES];
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
            .read_exact(&mut s0_s1_s2)
            .expect("S0/S1/S2 from the origin through livegate");
        assert_eq!(s0_s1_s2[0], 3, "S0 is not RTMP version 3");
        let c2 = &s0_s1_s2[1..1 + HANDSHAKE_PACKET_BYTES];
        let commands = encode::publish_commands(&ChunkWriter::default(), app, stream_key);
        let mut publisher = AttackPublisher {
            stream,
            local,
            sent: c0_c1,
            closed: Arc::new(Mutex::new(false)),
        };
        publisher.send(c2);
        publisher.send(&commands);
        let mut replies = publisher.stream.try_clone().expect("clone socket");
        let _ = replies.set_read_timeout(None);
        let closed = publisher.closed.clone();
        thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while matches!(replies.read(&mut buffer), Ok(n) if n > 0) {}
            *closed.lock().expect("publisher state") = true;
        });
        publisher
    }

    /// Sends bytes; a write error (the server already closed) is not a test failure,
    /// the test checks what got through.
    pub fn send(&mut self, bytes: &[u8]) {
        self.sent.extend_from_slice(bytes);
        let _ = self.stream.write_all(bytes);
    }

    /// True when the server closes the connection within `limit`.
    pub fn closed_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !*self.closed.lock().expect("publisher state") {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops sending (a FIN after the last byte) while still draining the server's
    /// replies, so the close is not a reset that would discard bytes in flight; returns
    /// every byte it sent.
    pub fn finish_sending(self) -> Vec<u8> {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.sent
    }

    /// Closes the connection (the publisher leaves); returns every byte it sent.
    pub fn close(self) -> Vec<u8> {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.sent
    }
}

/// A recording nginx-rtmp origin behind livegate, with one cut list and an audit log.
pub struct GateStack {
    pub origin: NginxOrigin,
    pub livegate: Livegate,
    pub listen: SocketAddr,
    pub audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl GateStack {
    /// `list` is the hash list `known` (action cut); `policy` the `[policy]` lines.
    pub fn start(list: &Path, policy: &str) -> GateStack {
        let hashlist = format!(
            "[[hashlist]]\nname = \"known\"\npath = \"{}\"\naction = \"cut\"\n",
            list.display()
        );
        GateStack::start_with(&hashlist, policy)
    }

    /// `tables`: the config's signal tables (`[[hashlist]]`, `[descriptor]`, …);
    /// `policy` the `[policy]` lines.
    pub fn start_with(tables: &str, policy: &str) -> GateStack {
        let origin = NginxOrigin::start();
        let dir = scratch_dir();
        let audit = dir.path().join("audit.jsonl");
        let listen = local(free_port());
        let config = format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
             {tables}\n\
             [policy]\n{policy}\n\
             [actuator]\naudit_log = \"{}\"\nban_seconds = 60\n",
            origin.addr,
            audit.display()
        );
        let livegate = Livegate::start(&config, 1);
        GateStack {
            origin,
            livegate,
            listen,
            audit,
            _dir: dir,
        }
    }

    /// Waits for an audit record of `event` for `key`; `None` after `limit`.
    pub fn wait_for_record(&self, key: &str, event: &str, limit: Duration) -> Option<Value> {
        wait_for_audit_record(&self.audit, key, event, limit)
    }
}

/// A fake origin that accepts and counts connections and never reads or answers: an
/// origin that has stopped reading (its connections stay open until the test ends).
pub struct StalledOrigin {
    pub addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl StalledOrigin {
    pub fn start() -> StalledOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stalled origin");
        let addr = listener.local_addr().expect("stalled origin addr");
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        StalledOrigin { addr, accepted }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}
