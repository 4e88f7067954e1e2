//! `livegate-bench gate`: the latency gate mode adds per keyframe (issue 16), against
//! pass mode in the same run.
//!
//! One in-process livegate with two ingests to the same origin, one `mode = "pass"` and
//! one `mode = "gate"` (`--gate keyframe|gop`). For each `--streams` count, that many
//! in-process publishers push the benign 720p30 footage of `livegate-bench cut` (2 s GOPs,
//! looped at real-time rate, each from a random phase) through the pass ingest for
//! `--seconds`, then as many through the gate ingest. Each publisher notes when the last
//! byte of each keyframe message left it (its stream offset and the time `write_all`
//! returned); the origin, a sink that reads and discards, notes when each read arrived
//! and how many bytes of that connection it has had. A connection is told apart by its
//! C1 (the publisher's index is in it: livegate forwards the handshake unchanged). A
//! keyframe's latency is the time from leaving the publisher to its last byte reaching
//! the origin; gate mode's added latency is the difference of the two modes' percentiles.
//!
//! livegate runs on a runtime of its own (threads `livegate-proxy`) beside its analysis
//! workers (`livegate-analysis-N`), so each mode's CPU per stream is livegate's alone,
//! read from those threads (`/proc/self/task`); the publishers and the sink run on the
//! `bench-load` runtime. Memory per stream is the process's resident memory near the end
//! of a mode, less what it was before the mode began, over the streams; the mode that
//! runs second reuses heap the first one freed, so that column understates it. Gate
//! mode's own addition, the bytes it holds, is read from `livegate_gate_held_bytes`
//! (sampled every 10 ms): its mean and peak per stream.
//!
//! Goals (issue 16): p99 added ≤ 50 ms for `keyframe`, ≤ one GOP + 50 ms for `gop`.
//! Missed goals are reported, not failed on; the exit status is non-zero only when a
//! stream was cut or no keyframe arrived.

use anyhow::{Context, ensure};
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::cut::{APP, CHUNK_SIZE, GOP_SECONDS, Media, VideoTrack, is_keyframe};
use super::index::SplitMix;
use super::index::resident_bytes;
use super::relay::percentile;
use super::tls::{PROXY_THREAD, load_and_proxy_runtimes, threads_cpu_seconds};
use livegate::config::Config;
use livegate::server::Server;
use livegate_rtmp::encode::{self, ChunkWriter, HANDSHAKE_PACKET_BYTES};

#[derive(Clone, Copy, ValueEnum)]
pub enum GateUnit {
    Keyframe,
    Gop,
}

#[derive(Args)]
pub struct GateBenchArgs {
    /// Streams per phase (each phase runs pass mode, then gate mode).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 50, 200])]
    pub streams: Vec<usize>,
    /// Seconds each mode of a phase is measured.
    #[arg(long, default_value_t = 12)]
    pub seconds: u64,
    /// `[analysis] workers` (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// `gate` of the gated ingest.
    #[arg(long, value_enum, default_value_t = GateUnit::Keyframe)]
    pub gate: GateUnit,
    /// Seconds of benign footage encoded (looped by the publishers).
    #[arg(long, default_value_t = 10)]
    pub benign_seconds: u32,
}

/// Where C1's publisher index sits (after C0 and C1's time and zero fields).
const INDEX_AT: usize = 1 + 8;
// The index lies within C1.
const _: () = assert!(INDEX_AT + 8 <= 1 + HANDSHAKE_PACKET_BYTES);

pub fn run(args: GateBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    ensure!(args.seconds > 0, "--seconds must be at least 1");
    let dir = tempfile::tempdir().context("creating a directory for the media")?;
    let media = Media::without_model(dir.path(), args.benign_seconds)?;
    let (load, proxy) = load_and_proxy_runtimes()?;
    let failed = load.block_on(phases(&args, &media, &proxy))?;
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

/// The threads whose CPU is livegate's: its runtime and its analysis workers.
const LIVEGATE_THREADS: &str = "livegate-";
const _: () = assert!(PROXY_THREAD.len() > LIVEGATE_THREADS.len());

async fn phases(
    args: &GateBenchArgs,
    media: &Media,
    proxy: &tokio::runtime::Runtime,
) -> anyhow::Result<bool> {
    let arrivals = Arc::new(Mutex::new(HashMap::new()));
    let origin = start_timing_sink(Arc::clone(&arrivals)).await?;
    let unit = match args.gate {
        GateUnit::Keyframe => "keyframe",
        GateUnit::Gop => "gop",
    };
    let most = args.streams.iter().copied().max().unwrap_or(1);
    let ingest = |mode: &str| {
        format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"127.0.0.1:0\"\norigin = \"{origin}\"\n\
             max_connections = {}\nmax_connections_per_client = 0\nmode = \"{mode}\"\n\
             gate = \"{unit}\"\nmax_hold_ms = 5000\n",
            most + 16
        )
    };
    let config = Config::parse(
        &format!(
            "{}{}[[hashlist]]\nname = \"known\"\npath = \"{}\"\naction = \"cut\"\n\
             [analysis]\nworkers = {}\n[server]\nshutdown_grace_ms = 200\n",
            ingest("pass"),
            ingest("gate"),
            media.list_path.display(),
            args.workers
        ),
        "(bench)",
    )?;
    let server = proxy.spawn(Server::bind(config)).await??;
    let (pass, gate) = (server.local_addrs()[0], server.local_addrs()[1]);
    let telemetry = Arc::clone(server.services().analysis.actions().telemetry());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = proxy.spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    println!(
        "gate = \"{unit}\", {} s per mode, {} keyframes per {:.0} s loop; latency = keyframe's last byte written by the publisher → read by the origin",
        args.seconds,
        media
            .benign
            .frames
            .iter()
            .filter(|tag| is_keyframe(tag))
            .count(),
        f64::from(media.benign.duration_ms) / 1000.0
    );
    println!(
        "{:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} | {:>6} | goal (n: gated keyframes measured)",
        "streams", "pass p50", "pass p99", "gate p50", "gate p99", "added p50", "added p99", "n"
    );
    let mut costs = Vec::new();
    let mut failed = false;
    let mut next_id = 0u64;
    for &streams in &args.streams {
        let mut results = Vec::new();
        for target in [pass, gate] {
            let phase = Phase {
                target,
                streams,
                first_id: next_id,
                duration: Duration::from_secs(args.seconds),
                telemetry: Arc::clone(&telemetry),
            };
            next_id += streams as u64;
            let measured = phase.run(&media.benign, &arrivals).await?;
            failed |= measured.cut > 0 || measured.latencies_ms.is_empty();
            if measured.cut > 0 {
                println!("  {} streams were cut", measured.cut);
            }
            results.push(measured);
        }
        costs.push((streams, results[0].cost, results[1].cost));
        let p = |index: usize, quantile: f64| percentile(&results[index].latencies_ms, quantile);
        let (added_50, added_99) = (p(1, 0.5) - p(0, 0.5), p(1, 0.99) - p(0, 0.99));
        let goal_ms = match args.gate {
            GateUnit::Keyframe => 50.0,
            GateUnit::Gop => GOP_SECONDS * 1000.0 + 50.0,
        };
        println!(
            "{streams:>7} | {:>7.1}ms {:>7.1}ms | {:>7.1}ms {:>7.1}ms | {:>7.1}ms {:>7.1}ms | {:>6} | p99 added ≤ {goal_ms:.0} ms: {}",
            p(0, 0.5),
            p(0, 0.99),
            p(1, 0.5),
            p(1, 0.99),
            added_50,
            added_99,
            results[1].latencies_ms.len(),
            if added_99 <= goal_ms { "met" } else { "MISSED" }
        );
    }
    println!(
        "livegate's own CPU (its runtime and analysis threads) and resident memory per stream, each mode:"
    );
    println!(
        "{:>7} | {:>14} {:>14} | {:>15} {:>15} | {:>12} {:>12} | {:>14} {:>14}",
        "streams",
        "pass %core/str",
        "gate %core/str",
        "pass streams/c",
        "gate streams/c",
        "pass KiB/str",
        "gate KiB/str",
        "held KiB/str",
        "held peak KiB/str"
    );
    for (streams, pass_cost, gate_cost) in costs {
        println!(
            "{streams:>7} | {:>14.2} {:>14.2} | {:>15.0} {:>15.0} | {:>12.0} {:>12.0} | {:>14.1} {:>14.1}",
            pass_cost.core_percent_per_stream,
            gate_cost.core_percent_per_stream,
            100.0 / pass_cost.core_percent_per_stream.max(f64::EPSILON),
            100.0 / gate_cost.core_percent_per_stream.max(f64::EPSILON),
            pass_cost.resident_kib_per_stream,
            gate_cost.resident_kib_per_stream,
            gate_cost.held_kib_per_stream,
            gate_cost.held_peak_kib_per_stream,
        );
    }
    let _ = stop.send(());
    let _ = task.await;
    Ok(failed)
}

/// Per connection (publisher index): (bytes received so far, when) after each read.
type Arrivals = Arc<Mutex<HashMap<u64, Vec<(u64, Instant)>>>>;

/// The origin: reads and discards, noting each read's arrival per publisher.
async fn start_timing_sink(arrivals: Arrivals) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the sink")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(record_arrivals(socket, Arc::clone(&arrivals)));
        }
    });
    Ok(addr)
}

async fn record_arrivals(mut socket: TcpStream, arrivals: Arrivals) {
    let mut start = vec![0u8; INDEX_AT + 8];
    if socket.read_exact(&mut start).await.is_err() {
        return;
    }
    let mut index = [0u8; 8];
    index.copy_from_slice(&start[INDEX_AT..]);
    let id = u64::from_be_bytes(index);
    let mut total = start.len() as u64;
    let mut seen = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = socket.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        total += n as u64;
        seen.push((total, Instant::now()));
    }
    if let Ok(mut arrivals) = arrivals.lock() {
        arrivals.insert(id, seen);
    }
}

/// One mode of one phase: `streams` publishers to `target`.
struct Phase {
    target: SocketAddr,
    streams: usize,
    first_id: u64,
    duration: Duration,
    /// livegate's metrics, for the bytes gate mode holds.
    telemetry: Arc<livegate::telemetry::Telemetry>,
}

struct Measured {
    latencies_ms: Vec<f64>,
    cut: usize,
    cost: Cost,
}

/// What one mode cost livegate per stream.
#[derive(Clone, Copy)]
struct Cost {
    /// livegate's threads' CPU, in % of a core per stream.
    core_percent_per_stream: f64,
    /// Resident memory grown since the mode began, per stream.
    resident_kib_per_stream: f64,
    /// Bytes held by gate mode (`livegate_gate_held_bytes`), mean and peak, per stream.
    held_kib_per_stream: f64,
    held_peak_kib_per_stream: f64,
}

impl Phase {
    async fn run(&self, track: &Arc<VideoTrack>, arrivals: &Arrivals) -> anyhow::Result<Measured> {
        let running = Arc::new(AtomicBool::new(true));
        let (cpu_before, resident_before, started) = (
            threads_cpu_seconds(LIVEGATE_THREADS)?,
            resident_bytes(),
            Instant::now(),
        );
        let mut phases = SplitMix(self.first_id + 1);
        let tasks: Vec<_> = (0..self.streams)
            .map(|index| {
                let id = self.first_id + index as u64;
                let delay = Duration::from_secs_f64(phases.next_fraction() * GOP_SECONDS);
                let (track, running, target) =
                    (Arc::clone(track), Arc::clone(&running), self.target);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    publish(target, id, &track, &running).await
                })
            })
            .collect();
        let (mut held_sum, mut held_peak, mut samples) = (0i64, 0i64, 0u32);
        let end = tokio::time::Instant::now() + self.duration;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let held = self.telemetry.gate().held_bytes.get();
            held_sum += held;
            held_peak = held_peak.max(held);
            samples += 1;
        }
        let streams = self.streams.max(1) as f64;
        let per_stream_kib = |bytes: f64| bytes / 1024.0 / streams;
        let cost = Cost {
            core_percent_per_stream: (threads_cpu_seconds(LIVEGATE_THREADS)? - cpu_before)
                / started.elapsed().as_secs_f64()
                / streams
                * 100.0,
            resident_kib_per_stream: per_stream_kib(
                resident_bytes().saturating_sub(resident_before) as f64,
            ),
            held_kib_per_stream: per_stream_kib(held_sum as f64 / f64::from(samples.max(1))),
            held_peak_kib_per_stream: per_stream_kib(held_peak as f64),
        };
        running.store(false, Ordering::Relaxed);
        let mut sent = Vec::new();
        let mut cut = 0;
        for task in tasks {
            let (id, keyframes, was_cut) = task.await.context("a publisher panicked")??;
            cut += usize::from(was_cut);
            sent.push((id, keyframes));
        }
        // The sink files a connection's arrivals once livegate has closed it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let filed = arrivals
                .lock()
                .map(|arrivals| sent.iter().all(|(id, _)| arrivals.contains_key(id)))
                .unwrap_or(true);
            if filed || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let arrivals = arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("the sink's arrivals are poisoned"))?;
        let mut latencies_ms = Vec::new();
        for (id, keyframes) in &sent {
            let Some(seen) = arrivals.get(id) else {
                continue;
            };
            for &(end, written) in keyframes {
                let at = seen.partition_point(|(total, _)| *total < end);
                if let Some((_, arrived)) = seen.get(at) {
                    latencies_ms
                        .push(arrived.saturating_duration_since(written).as_secs_f64() * 1000.0);
                }
            }
        }
        Ok(Measured {
            latencies_ms,
            cut,
            cost,
        })
    }
}

/// Pushes `track` at real-time rate until `running` turns false; returns the publisher's
/// id, each keyframe's (stream offset past its last byte, when it was written), and
/// whether livegate closed the connection under it.
async fn publish(
    target: SocketAddr,
    id: u64,
    track: &VideoTrack,
    running: &AtomicBool,
) -> anyhow::Result<(u64, Vec<(u64, Instant)>, bool)> {
    let socket = TcpStream::connect(target)
        .await
        .context("connecting a publisher")?;
    socket.set_nodelay(true)?;
    let (mut reader, mut writer) = socket.into_split();
    let mut chunks = ChunkWriter::default();
    let mut out = encode::client_handshake();
    out[INDEX_AT..INDEX_AT + 8].copy_from_slice(&id.to_be_bytes());
    out.extend(encode::publish_commands(
        &chunks,
        APP,
        &format!("gate-bench-{id}"),
    ));
    chunks.set_chunk_size(&mut out, CHUNK_SIZE);
    let video = |out: &mut Vec<u8>, timestamp: u32, data: &[u8]| {
        chunks.write_message(
            out,
            encode::CSID_VIDEO,
            timestamp,
            encode::TYPE_VIDEO,
            1,
            data,
        );
    };
    video(&mut out, 0, &track.sequence_header.data);
    let mut offset = 0u64;
    let mut keyframes = Vec::new();
    let push = async {
        writer.write_all(&out).await?;
        offset += out.len() as u64;
        let start = tokio::time::Instant::now();
        let mut loop_start_ms = 0u32;
        while running.load(Ordering::Relaxed) {
            for tag in &track.frames {
                let timestamp = loop_start_ms + tag.timestamp_ms;
                tokio::time::sleep_until(start + Duration::from_millis(u64::from(timestamp))).await;
                if !running.load(Ordering::Relaxed) {
                    break;
                }
                out.clear();
                video(&mut out, timestamp, &tag.data);
                writer.write_all(&out).await?;
                offset += out.len() as u64;
                if is_keyframe(tag) {
                    keyframes.push((offset, Instant::now()));
                }
            }
            loop_start_ms += track.duration_ms;
        }
        std::io::Result::Ok(())
    };
    // The sink never answers, so anything read here is the close.
    let mut byte = [0u8; 1];
    let closed = reader.read(&mut byte);
    let cut = tokio::select! {
        pushed = push => pushed.is_err(),
        _ = closed => true,
    };
    Ok((id, keyframes, cut))
}
