//! `livegate-bench relay`: the relay's cost against a direct connection, in one run.
//!
//! Many publishers push a synthetic H.264 session (a GOP of chunked FLV video messages,
//! looped) at full speed to a sink that reads and discards — first straight to the sink,
//! then through an in-process livegate (relay + demuxer). Meanwhile a probe publisher
//! sends a small RTMP message every few milliseconds to its own sink, which timestamps
//! each message's last byte: the one-way latency, direct vs through livegate.

use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use livegate::config::Config;
use livegate::ingest::tls::OriginTls;
use livegate::server::Server;
use livegate_rtmp::encode::{self, ChunkWriter};

#[derive(Args)]
pub struct RelayBenchArgs {
    /// Concurrent publishers pushing at full speed (the throughput phases).
    #[arg(long, default_value_t = 50)]
    pub publishers: usize,
    /// Concurrent publishers pushing at real-time rate, 30 frames/s (the latency phases).
    #[arg(long, default_value_t = 200)]
    pub paced_publishers: usize,
    /// Seconds each phase (direct, through livegate) runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Interval between latency probes, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub probe_interval_ms: u64,
}

/// Video frames of the synthetic GOP: 2 s at 30 fps, sizes of a ~2.2 Mbit/s 720p stream.
const GOP_FRAMES: u32 = 60;
const KEYFRAME_BYTES: usize = 60_000;
const INTER_FRAME_BYTES: usize = 8_000;
const CHUNK_SIZE: u32 = 4096;
const FRAME_INTERVAL: Duration = Duration::from_micros(33_333);
/// Payload of one latency probe message (an audio message, ignored by the demuxer).
const PROBE_PAYLOAD_BYTES: usize = 100;

pub fn run(args: RelayBenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(bench(args))
}

pub(super) struct PhaseResult {
    bytes: u64,
    pub(super) seconds: f64,
    pub(super) cpu_seconds: f64,
    pub(super) latencies_us: Vec<f64>,
}

impl PhaseResult {
    pub(super) fn gbits(&self) -> f64 {
        self.bytes as f64 * 8.0 / 1e9
    }

    pub(super) fn gbit_per_second(&self) -> f64 {
        self.gbits() / self.seconds
    }
}

async fn bench(args: RelayBenchArgs) -> anyhow::Result<ExitCode> {
    let load_sink = Sink::start(false).await?;
    let probe_sink = Sink::start(true).await?;
    let session = SyntheticSession::new();
    println!(
        "relay bench: {} s per phase; throughput: {} publishers at full speed; \
         latency: {} publishers at 30 frames/s (~{:.1} Mbit/s each), probe every {} ms",
        args.seconds,
        args.publishers,
        args.paced_publishers,
        session.gop.len() as f64 * 8.0 / (GOP_FRAMES as f64 / 30.0) / 1e6,
        args.probe_interval_ms
    );
    let direct_probe = || probe_sink.clone_for_phase();
    let direct_full = run_phase(
        &args,
        Pace::FullSpeed,
        &session,
        load_sink.addr,
        &load_sink.bytes,
        direct_probe(),
        None,
    )
    .await?;
    let direct_paced = run_phase(
        &args,
        Pace::RealTime,
        &session,
        load_sink.addr,
        &load_sink.bytes,
        direct_probe(),
        None,
    )
    .await?;

    let config = Config::parse(
        &proxy_ingest_toml(
            load_sink.addr,
            probe_sink.addr,
            args.publishers.max(args.paced_publishers),
        ),
        "(bench)",
    )?;
    let server = Server::bind(config).await?;
    let (load_proxy, probe_proxy) = (server.local_addrs()[0], server.local_addrs()[1]);
    let registry = server.registry();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(server.run_until(async {
        let _ = stop_rx.await;
    }));
    let proxied_probe = || {
        let mut probe = probe_sink.clone_for_phase();
        probe.target = probe_proxy;
        probe
    };
    let through_full = run_phase(
        &args,
        Pace::FullSpeed,
        &session,
        load_proxy,
        &load_sink.bytes,
        proxied_probe(),
        None,
    )
    .await?;
    let through_paced = run_phase(
        &args,
        Pace::RealTime,
        &session,
        load_proxy,
        &load_sink.bytes,
        proxied_probe(),
        None,
    )
    .await?;
    let _ = stop_tx.send(());
    let _ = proxy.await;
    anyhow::ensure!(
        registry.refused() == 0,
        "livegate refused {} connections",
        registry.refused()
    );

    println!("-- full speed ({} publishers)", args.publishers);
    report(&direct_full, &through_full);
    println!("-- real-time rate ({} publishers)", args.paced_publishers);
    report(&direct_paced, &through_paced);
    Ok(ExitCode::SUCCESS)
}

/// The config of an in-process livegate with two ingests: the load's (first) and the
/// probe's (second), for `publishers` connections from 127.0.0.1.
pub(super) fn proxy_ingest_toml(load: SocketAddr, probe: SocketAddr, publishers: usize) -> String {
    // Every publisher connects from 127.0.0.1: no per-client cap.
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:0\"\norigin = \"{load}\"\n\
         max_connections = {}\nmax_connections_per_client = 0\n\
         [[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:0\"\norigin = \"{probe}\"\n",
        publishers + 8,
    )
}

/// Prints one phase's throughput, CPU and probe latency; returns the latency's p50 and
/// p99 in µs.
pub(super) fn print_phase(name: &str, phase: &PhaseResult) -> (f64, f64) {
    let (p50, p99) = (
        percentile(&phase.latencies_us, 0.50),
        percentile(&phase.latencies_us, 0.99),
    );
    println!(
        "{name:<16} {:>8.3} Gbit/s  cpu {:>5.2} s ({:>6.3} cpu-s per Gbit)  latency p50 {:>8.1} µs  p99 {:>8.1} µs  ({} probes)",
        phase.gbit_per_second(),
        phase.cpu_seconds,
        phase.cpu_seconds / phase.gbits(),
        p50,
        p99,
        phase.latencies_us.len()
    );
    (p50, p99)
}

fn report(direct: &PhaseResult, through: &PhaseResult) {
    let (direct_p50, direct_p99) = print_phase("direct", direct);
    let (through_p50, through_p99) = print_phase("through livegate", through);
    // CPU the proxy added per Gbit relayed: the phase's CPU minus what the load generator
    // and sink spent for the same bytes in the direct phase.
    let added_cpu_per_gbit =
        through.cpu_seconds / through.gbits() - direct.cpu_seconds / direct.gbits();
    println!(
        "throughput ratio (through / direct): {:.3}; livegate CPU: {added_cpu_per_gbit:.3} cpu-s per Gbit relayed; \
         added latency: p50 {:.1} µs, p99 {:.1} µs",
        through.gbit_per_second() / direct.gbit_per_second(),
        through_p50 - direct_p50,
        through_p99 - direct_p99
    );
}

pub(super) fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Process CPU time (user + system) so far.
pub(super) fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a complete `rusage` into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The bytes one load publisher sends: a preamble once, then one GOP looped.
pub(super) struct SyntheticSession {
    preamble: Arc<Vec<u8>>,
    gop: Arc<Vec<u8>>,
    /// Where each frame's chunks end in `gop`, for publishers paced at 30 frames/s.
    frame_ends: Arc<Vec<usize>>,
}

impl SyntheticSession {
    pub(super) fn new() -> Self {
        let mut writer = ChunkWriter::default();
        let mut preamble = encode::publish_preamble(&writer, "live", "bench-load-key");
        writer.set_chunk_size(&mut preamble, CHUNK_SIZE);
        let mut gop = Vec::new();
        let mut frame_ends = Vec::with_capacity(GOP_FRAMES as usize);
        for frame in 0..GOP_FRAMES {
            let keyframe = frame == 0;
            let size = if keyframe {
                KEYFRAME_BYTES
            } else {
                INTER_FRAME_BYTES
            };
            let nalu: Vec<u8> = (0..size).map(|i| (i as u32 ^ frame) as u8).collect();
            let tag = encode::avc_video_tag(keyframe, &nalu);
            writer.write_message(
                &mut gop,
                encode::CSID_VIDEO,
                frame * 33,
                encode::TYPE_VIDEO,
                1,
                &tag,
            );
            frame_ends.push(gop.len());
        }
        SyntheticSession {
            preamble: Arc::new(preamble),
            gop: Arc::new(gop),
            frame_ends: Arc::new(frame_ends),
        }
    }
}

/// A sink that discards what it reads, counting bytes; on probe connections it
/// timestamps the end of every probe message.
#[derive(Clone)]
pub(super) struct Sink {
    pub(super) addr: SocketAddr,
    /// Only the probe's sink timestamps messages; the load sink just counts.
    timestamps_probes: bool,
    pub(super) bytes: Arc<AtomicU64>,
    probe: Arc<Mutex<ProbeLog>>,
}

#[derive(Default)]
struct ProbeLog {
    sent: Vec<Instant>,
    arrived: Vec<Instant>,
}

/// The probe side of one phase: where to send probes, and the shared log.
pub(super) struct ProbeTarget {
    pub(super) target: SocketAddr,
    probe: Arc<Mutex<ProbeLog>>,
}

impl Sink {
    pub(super) async fn start(timestamps_probes: bool) -> anyhow::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the sink")?;
        let sink = Sink {
            addr: listener.local_addr()?,
            timestamps_probes,
            bytes: Arc::new(AtomicU64::new(0)),
            probe: Arc::new(Mutex::new(ProbeLog::default())),
        };
        let accepting = sink.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(accepting.clone().drain(socket));
            }
        });
        Ok(sink)
    }

    pub(super) fn clone_for_phase(&self) -> ProbeTarget {
        if let Ok(mut log) = self.probe.lock() {
            *log = ProbeLog::default();
        }
        ProbeTarget {
            target: self.addr,
            probe: Arc::clone(&self.probe),
        }
    }

    /// Reads until EOF. Probe messages have a fixed size after a known preamble, so the
    /// byte count alone tells when each one has fully arrived.
    async fn drain(self, mut socket: TcpStream) {
        let preamble = probe_preamble().len() as u64;
        let message = probe_message_len() as u64;
        let mut buffer = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n as u64,
            };
            let now = Instant::now();
            let before = total;
            total += n;
            self.bytes.fetch_add(n, Ordering::Relaxed);
            if self.timestamps_probes && total > preamble {
                let completed = |bytes: u64| bytes.saturating_sub(preamble) / message;
                let newly = completed(total) - completed(before.max(preamble));
                if newly > 0
                    && let Ok(mut log) = self.probe.lock()
                {
                    log.arrived.extend(std::iter::repeat_n(now, newly as usize));
                }
            }
        }
    }
}

fn probe_preamble() -> Vec<u8> {
    encode::publish_preamble(&ChunkWriter::default(), "live", "bench-probe-key")
}

fn probe_message(sequence: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let payload = [0xAFu8; PROBE_PAYLOAD_BYTES];
    ChunkWriter::default().write_message(&mut out, 4, sequence, encode::TYPE_AUDIO, 1, &payload);
    out
}

fn probe_message_len() -> usize {
    probe_message(0).len()
}

/// How publishers push their session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    FullSpeed,
    RealTime,
}

/// Connects a publisher to `target`: plain TCP, or RTMPS when `tls` is given.
async fn dial(
    target: SocketAddr,
    tls: Option<&OriginTls>,
) -> anyhow::Result<Box<dyn AsyncWrite + Send + Unpin>> {
    let socket = TcpStream::connect(target)
        .await
        .with_context(|| format!("connecting a publisher to {target}"))?;
    socket.set_nodelay(true)?;
    Ok(match tls {
        None => Box::new(socket),
        Some(tls) => Box::new(
            tls.secure(socket, &target.to_string(), Duration::from_secs(10))
                .await?,
        ),
    })
}

/// Runs one phase: the load's publishers (and the probe) connect to their targets, over
/// TLS when `tls` is given, and push for `args.seconds`.
pub(super) async fn run_phase(
    args: &RelayBenchArgs,
    pace: Pace,
    session: &SyntheticSession,
    load_target: SocketAddr,
    delivered: &AtomicU64,
    probe: ProbeTarget,
    tls: Option<&Arc<OriginTls>>,
) -> anyhow::Result<PhaseResult> {
    let running = Arc::new(AtomicBool::new(true));
    let count = match pace {
        Pace::FullSpeed => args.publishers,
        Pace::RealTime => args.paced_publishers,
    };
    let mut publishers = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = dial(load_target, tls.map(Arc::as_ref)).await?;
        let (preamble, gop) = (Arc::clone(&session.preamble), Arc::clone(&session.gop));
        let frame_ends = Arc::clone(&session.frame_ends);
        let running = Arc::clone(&running);
        publishers.push(tokio::spawn(async move {
            socket.write_all(&preamble).await?;
            let mut next_frame = tokio::time::Instant::now();
            while running.load(Ordering::Relaxed) {
                if pace == Pace::FullSpeed {
                    socket.write_all(&gop).await?;
                    continue;
                }
                let mut start = 0;
                for &end in frame_ends.iter() {
                    tokio::time::sleep_until(next_frame).await;
                    socket.write_all(&gop[start..end]).await?;
                    start = end;
                    next_frame += FRAME_INTERVAL;
                }
            }
            anyhow::Ok(())
        }));
    }
    let mut probe_socket = dial(probe.target, tls.map(Arc::as_ref)).await?;
    probe_socket.write_all(&probe_preamble()).await?;

    let cpu_before = process_cpu_seconds();
    let delivered_before = delivered.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(args.probe_interval_ms));
    let mut sequence = 0u32;
    while started.elapsed() < Duration::from_secs(args.seconds) {
        interval.tick().await;
        let message = probe_message(sequence);
        if let Ok(mut log) = probe.probe.lock() {
            log.sent.push(Instant::now());
        }
        probe_socket.write_all(&message).await?;
        sequence += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    let bytes = delivered.load(Ordering::Relaxed) - delivered_before;
    running.store(false, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await??;
    }
    // Let the last probes arrive before reading the log.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(probe_socket);
    let latencies_us = match probe.probe.lock() {
        Ok(log) => log
            .sent
            .iter()
            .zip(&log.arrived)
            .map(|(sent, arrived)| arrived.duration_since(*sent).as_secs_f64() * 1e6)
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(PhaseResult {
        bytes,
        seconds,
        cpu_seconds,
        latencies_us,
    })
}
