//! `livegate-bench srt`: SRT streams at a real rate through livegate against the same
//! streams sent straight to the SRT sink, in one run.
//!
//! An ffmpeg-encoded MPEG-TS clip (H.264 at `--kbps`) is cut into 1316-byte messages
//! (7 TS packets, what SRT encoders send) and looped by `--streams` callers, each paced
//! at the clip's bit rate. A sink (an SRT listener of livegate's binding) stamps each
//! message's arrival. Phase one sends straight to the sink (the yardstick), phase two
//! through an in-process livegate whose SRT ingest has the sink as its origin; both
//! phases carry the same publishers and sink, so the process CPU that phase two adds is
//! livegate's (relay, MPEG-TS inspection, analysis of sampled keyframes). Latency is
//! per message (messages arrive unchanged and in order, so the n-th received is the n-th
//! sent); through livegate it includes a second SRT link, whose receiver buffers
//! `--latency-ms` like the first. Last, `--cuts` streams publish a listed clip (its list
//! made by `livegate hash --every 1`) one after the other, and the audit's time to cut
//! (the matching keyframe's first byte arriving → both SRT links closed) is reported for
//! two kinds of publisher: one pacing the TS at a constant bit rate (a CBR mux, as
//! broadcast encoders send: a 75 KB keyframe takes ~200 ms to arrive at 3 Mbit/s), and
//! `ffmpeg -re`, which writes each frame's packets when the frame is due (a keyframe
//! arrives in one burst, as an RTMP publisher sends it).

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livegate::config::Config;
use livegate::server::Server;
use livegate_srt::{Listener, SocketOptions, SrtStream};

use super::relay::{percentile, process_cpu_seconds};

/// Seven TS packets: the payload SRT encoders (and ffmpeg) send per message.
const MESSAGE_BYTES: usize = 1316;

#[derive(clap::Args)]
pub struct SrtBenchArgs {
    /// Concurrent streams in each phase.
    #[arg(long, default_value_t = 20)]
    streams: usize,
    /// Seconds each phase sends.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Each stream's video bit rate.
    #[arg(long, default_value_t = 3000)]
    kbps: u64,
    /// SRT latency (receiver buffer) of every link.
    #[arg(long, default_value_t = 40)]
    latency_ms: u64,
    /// Streams of listed footage cut one after the other, for the time to cut.
    #[arg(long, default_value_t = 10)]
    cuts: usize,
}

/// Arrival times of each stream's messages, by streamid.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

pub fn run(args: SrtBenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(bench(&args))
}

fn options(args: &SrtBenchArgs, streamid: Option<String>) -> SocketOptions {
    SocketOptions {
        latency: Duration::from_millis(args.latency_ms),
        streamid,
        ..SocketOptions::default()
    }
}

async fn bench(args: &SrtBenchArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir().context("scratch directory")?;
    let messages = Arc::new(encode_clip(
        dir.path(),
        "load",
        "testsrc2=size=1280x720:rate=30",
        args.kbps,
    )?);
    let known = encode_clip(
        dir.path(),
        "known",
        "mandelbrot=s=1280x720:r=30:start_scale=2:end_scale=0.05",
        args.kbps,
    )?;
    let list = dir.path().join("known.csv");
    super::cut::livegate_list(
        &["hash", "--every", "1"],
        &dir.path().join("known.ts"),
        &list,
    )?;
    let arrivals: Arrivals = Arc::default();
    let sink = start_sink(args, Arc::clone(&arrivals))?;
    println!(
        "srt: {} streams × {} kbit/s for {} s per phase, latency_ms = {}, {}-byte messages",
        args.streams, args.kbps, args.seconds, args.latency_ms, MESSAGE_BYTES
    );
    let direct = phase(args, "direct", sink.local_addr(), &messages, &arrivals).await?;
    let config = format!(
        "[[ingest]]\nprotocol = \"srt\"\nlisten = \"127.0.0.1:0\"\norigin = \"{}\"\n\
         max_connections_per_client = 0\n[ingest.srt]\nlatency_ms = {}\n\
         [[hashlist]]\nname = \"known\"\npath = {:?}\naction = \"cut\"\n",
        sink.local_addr(),
        args.latency_ms,
        list.display().to_string()
    );
    let config = Config::parse(&config, "srt bench").context("bench config")?;
    let server = Server::bind(config).await.context("starting livegate")?;
    let listen = server.local_addrs()[0];
    let services = server.services();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    let through = phase(args, "livegate", listen, &messages, &arrivals).await?;
    time_to_cut_paced(args, listen, &known).await?;
    time_to_cut_ffmpeg(args, listen, &dir.path().join("known.ts")).await?;
    // Let the last cut's audit record be written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    let _ = serving.await;
    for result in [&direct, &through] {
        result.print(args);
    }
    let core_per_stream =
        |result: &Phase| result.cpu_seconds / result.seconds / args.streams as f64 * 100.0;
    println!(
        "added by livegate: latency p50 {:+.1} ms, p99 {:+.1} ms; CPU {:+.2} % of a core per stream ({:.1} streams per core at this rate)",
        through.p50_ms - direct.p50_ms,
        through.p99_ms - direct.p99_ms,
        core_per_stream(&through) - core_per_stream(&direct),
        100.0 / (core_per_stream(&through) - core_per_stream(&direct)).max(f64::EPSILON),
    );
    for (app, publisher) in [
        (PACED_APP, "paced at a constant bit rate"),
        (FFMPEG_APP, "ffmpeg -re (a burst per frame)"),
    ] {
        let cut_ms = cut_times(&services, app);
        println!(
            "time to cut over SRT, {publisher}: {} of {} listed streams cut; p50 {:.1} ms, p99 {:.1} ms",
            cut_ms.len(),
            args.cuts,
            percentile(&cut_ms, 0.5),
            percentile(&cut_ms, 0.99)
        );
    }
    if through.delivered < 0.99 || direct.delivered < 0.99 {
        bail!("messages were lost: the machine is overloaded at this load");
    }
    Ok(ExitCode::SUCCESS)
}

/// Six seconds of `source` (a lavfi graph) as H.264 MPEG-TS at `kbps` in `NAME.ts`, cut
/// into SRT messages.
fn encode_clip(dir: &Path, name: &str, source: &str, kbps: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let clip = dir.join(format!("{name}.ts"));
    let rate = format!("{kbps}k");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", source, "-t", "6"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60"])
        .args(["-b:v", &rate, "-maxrate", &rate, "-bufsize", &rate])
        .args(["-f", "mpegts"])
        .arg(&clip)
        .status()
        .context("running ffmpeg (scripts/install-deps.sh)")?;
    if !status.success() {
        bail!("ffmpeg could not encode the clip");
    }
    let bytes = std::fs::read(&clip).context("reading the clip")?;
    Ok(bytes.chunks(MESSAGE_BYTES).map(<[u8]>::to_vec).collect())
}

/// The app (first streamid segment) of the listed streams each kind of publisher sends;
/// their keys differ too, since a cut bans its key.
const PACED_APP: &str = "paced";
const FFMPEG_APP: &str = "burst";

/// Publishes the listed clip `args.cuts` times at a constant bit rate, one stream after
/// the other, each until livegate cuts it.
async fn time_to_cut_paced(
    args: &SrtBenchArgs,
    listen: SocketAddr,
    known: &[Vec<u8>],
) -> anyhow::Result<()> {
    let interval =
        Duration::from_secs_f64(MESSAGE_BYTES as f64 * 8.0 / (args.kbps as f64 * 1000.0));
    for index in 0..args.cuts {
        let streamid = format!("{PACED_APP}/listed-{index}");
        let stream = SrtStream::connect(listen, options(args, Some(streamid)))
            .await
            .with_context(|| format!("connecting listed stream {index}"))?;
        let mut ticker = tokio::time::interval(interval);
        for message in known {
            ticker.tick().await;
            if stream.is_gone() || stream.send(message).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// Publishes the listed clip `args.cuts` times with `ffmpeg -re`, one stream after the
/// other, each until livegate cuts it (ffmpeg then exits).
async fn time_to_cut_ffmpeg(
    args: &SrtBenchArgs,
    listen: SocketAddr,
    clip: &Path,
) -> anyhow::Result<()> {
    for index in 0..args.cuts {
        let url = format!(
            "srt://{listen}?streamid={FFMPEG_APP}/burst-listed-{index}&latency={}",
            args.latency_ms * 1000
        );
        let mut ffmpeg = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "quiet", "-re", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "mpegts", &url])
            .kill_on_drop(true)
            .spawn()
            .context("running ffmpeg (scripts/install-deps.sh)")?;
        // The clip lasts 6 s; a stream still running after 10 s was not cut.
        let _ = tokio::time::timeout(Duration::from_secs(10), ffmpeg.wait()).await;
    }
    Ok(())
}

/// The time to cut of every policy cut of streams of `app`, from the audit.
fn cut_times(services: &livegate::session::Services, app: &str) -> Vec<f64> {
    services
        .analysis
        .actions()
        .recent_records()
        .iter()
        .filter(|record| record.event == livegate::actions::AuditEvent::Cut && record.app == app)
        .filter_map(|record| record.time_to_cut_ms)
        .collect()
}

fn start_sink(args: &SrtBenchArgs, arrivals: Arrivals) -> anyhow::Result<Arc<Listener>> {
    let listener = Arc::new(
        Listener::bind(
            "127.0.0.1:0".parse().context("address")?,
            &options(args, None),
            1024,
            |_| Ok(()),
        )
        .context("binding the SRT sink")?,
    );
    let accepting = Arc::clone(&listener);
    tokio::spawn(async move {
        while let Ok((stream, _)) = accepting.accept().await {
            let arrivals = Arc::clone(&arrivals);
            tokio::spawn(async move {
                let streamid = stream.streamid().unwrap_or_default();
                let mut buffer = vec![0u8; livegate_srt::MAX_PAYLOAD];
                let mut times = Vec::new();
                while let Ok(len) = stream.recv(&mut buffer).await {
                    if len == 0 {
                        break;
                    }
                    times.push(Instant::now());
                }
                arrivals
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(streamid, times);
            });
        }
    });
    Ok(listener)
}

struct Phase {
    name: &'static str,
    seconds: f64,
    cpu_seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Share of the messages sent that arrived.
    delivered: f64,
}

impl Phase {
    fn print(&self, args: &SrtBenchArgs) {
        println!(
            "{:>9}: latency p50 {:.1} ms, p99 {:.1} ms; delivered {:.2} %; process CPU {:.1} % of a core ({:.2} % per stream)",
            self.name,
            self.p50_ms,
            self.p99_ms,
            self.delivered * 100.0,
            self.cpu_seconds / self.seconds * 100.0,
            self.cpu_seconds / self.seconds / args.streams as f64 * 100.0,
        );
    }
}

async fn phase(
    args: &SrtBenchArgs,
    name: &'static str,
    target: SocketAddr,
    messages: &Arc<Vec<Vec<u8>>>,
    arrivals: &Arrivals,
) -> anyhow::Result<Phase> {
    // One message every this long carries the clip at its bit rate.
    let interval =
        Duration::from_secs_f64(MESSAGE_BYTES as f64 * 8.0 / (args.kbps as f64 * 1000.0));
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut senders = Vec::new();
    for index in 0..args.streams {
        let streamid = format!("live/{name}-{index}");
        let stream = SrtStream::connect(target, options(args, Some(streamid.clone())))
            .await
            .with_context(|| format!("{name}: connecting stream {index}"))?;
        let messages = Arc::clone(messages);
        let seconds = args.seconds;
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let end = Instant::now() + Duration::from_secs(seconds);
            for message in messages.iter().cycle() {
                ticker.tick().await;
                if Instant::now() >= end {
                    break;
                }
                sent.push(Instant::now());
                if stream.send(message).await.is_err() {
                    break;
                }
            }
            // Let the last messages play out before the close drops them.
            tokio::time::sleep(Duration::from_millis(500)).await;
            (streamid, sent)
        }));
    }
    let mut sent_by_stream = Vec::new();
    for sender in senders {
        sent_by_stream.push(sender.await.context("a sender failed")?);
    }
    // The sink records a stream once its connection closes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = process_cpu_seconds() - cpu_before;
    let received = arrivals
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    let (mut latencies, mut total_sent, mut total_received) = (Vec::new(), 0usize, 0usize);
    for (streamid, sent) in &sent_by_stream {
        let arrived = received
            .get(streamid)
            .map(Vec::as_slice)
            .unwrap_or_default();
        total_sent += sent.len();
        total_received += arrived.len().min(sent.len());
        latencies.extend(
            sent.iter().zip(arrived).map(|(sent, arrived)| {
                arrived.saturating_duration_since(*sent).as_secs_f64() * 1e3
            }),
        );
    }
    Ok(Phase {
        name,
        seconds,
        cpu_seconds,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        delivered: total_received as f64 / total_sent.max(1) as f64,
    })
}
