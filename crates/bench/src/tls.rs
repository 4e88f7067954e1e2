//! `livegate-bench tls`: what RTMPS costs against plain RTMP, through the same livegate,
//! in one run.
//!
//! The relay bench's synthetic publishers (`relay.rs`) push to four ingests of one
//! in-process livegate — plain and `rtmps` for the load, plain and `rtmps` for the
//! latency probe — each relaying to a sink that discards. Phases: the probe straight to
//! its sink (the latency floor), then plain and TLS through livegate at real-time rate
//! (latency), then plain and TLS at full speed (CPU per Gbit). livegate runs on a runtime
//! of its own whose threads are named `livegate-proxy`, so its CPU is read from those
//! threads alone (`/proc/self/task`): the publishers' encryption and the sinks are not in
//! it. The certificate comes from a throwaway CA made with the `openssl` CLI.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use livegate::config::{Config, OriginTlsConfig};
use livegate::ingest::tls::OriginTls;
use livegate::server::Server;

use super::relay::{
    Pace, PhaseResult, RelayBenchArgs, Sink, SyntheticSession, percentile, run_phase,
};

/// livegate's runtime threads, whose CPU is livegate's (15 bytes at most: a Linux thread name).
pub(super) const PROXY_THREAD: &str = "livegate-proxy";

pub fn run(args: RelayBenchArgs) -> anyhow::Result<ExitCode> {
    let pki = tempfile::tempdir().context("making a scratch directory")?;
    make_certificate(pki.path())?;
    let (load, proxy) = load_and_proxy_runtimes()?;
    load.block_on(bench(&args, pki.path(), &proxy))
}

/// Two runtimes: `bench-load` for the publishers and sinks, and livegate's own, whose
/// threads are named [`PROXY_THREAD`] so that its CPU can be read apart.
pub(super) fn load_and_proxy_runtimes()
-> anyhow::Result<(tokio::runtime::Runtime, tokio::runtime::Runtime)> {
    let load = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-load")
        .build()
        .context("starting the load's runtime")?;
    let proxy = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(PROXY_THREAD)
        .build()
        .context("starting livegate's runtime")?;
    Ok((load, proxy))
}

/// A CA and a certificate it issues for 127.0.0.1: `ca.pem`, `server.pem`, `server.key`.
fn make_certificate(dir: &Path) -> anyhow::Result<()> {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
        [
            &["req"],
            &ec[..],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    ];
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")?;
    for (step, subject) in steps.iter().zip(["/CN=bench CA", "/CN=bench", ""]) {
        let mut command = Command::new("openssl");
        command.args(step).current_dir(dir);
        if !subject.is_empty() {
            command.args(["-subj", subject, "-days", "1"]);
        }
        let output = command
            .output()
            .context("running openssl (Debian's openssl package)")?;
        if !output.status.success() {
            bail!(
                "openssl {}: {}",
                step.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

/// The four ingests: plain load, plain probe, RTMPS load, RTMPS probe.
fn config_toml(load: SocketAddr, probe: SocketAddr, publishers: usize, pki: &Path) -> String {
    let ingest = |origin: SocketAddr, tls: bool| {
        let mut toml = format!(
            "[[ingest]]\nprotocol = \"{}\"\nlisten = \"127.0.0.1:0\"\norigin = \"{origin}\"\n\
             max_connections = {}\nmax_connections_per_client = 0\n",
            if tls { "rtmps" } else { "rtmp" },
            publishers + 8,
        );
        if tls {
            toml += &format!(
                "[ingest.tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
                pki.join("server.pem").display(),
                pki.join("server.key").display()
            );
        }
        toml
    };
    [
        ingest(load, false),
        ingest(probe, false),
        ingest(load, true),
        ingest(probe, true),
    ]
    .concat()
}

/// One phase's figures, with the CPU livegate's own threads spent in it.
struct Measured {
    name: &'static str,
    phase: PhaseResult,
    proxy_cpu_seconds: f64,
}

impl Measured {
    fn proxy_cpu_per_gbit(&self) -> f64 {
        self.proxy_cpu_seconds / self.phase.gbits()
    }

    fn p50(&self) -> f64 {
        percentile(&self.phase.latencies_us, 0.50)
    }

    fn p99(&self) -> f64 {
        percentile(&self.phase.latencies_us, 0.99)
    }

    fn print(&self) {
        println!(
            "{:<22} {:>7.3} Gbit/s  livegate cpu {:>5.2} s ({:>6.3} cpu-s per Gbit, {:>5.1} % of a core)  \
             latency p50 {:>7.1} µs  p99 {:>7.1} µs  ({} probes)",
            self.name,
            self.phase.gbit_per_second(),
            self.proxy_cpu_seconds,
            self.proxy_cpu_per_gbit(),
            self.proxy_cpu_seconds / self.phase.seconds * 100.0,
            self.p50(),
            self.p99(),
            self.phase.latencies_us.len()
        );
    }
}

async fn bench(
    args: &RelayBenchArgs,
    pki: &Path,
    proxy: &tokio::runtime::Runtime,
) -> anyhow::Result<ExitCode> {
    let load_sink = Sink::start(false).await?;
    let probe_sink = Sink::start(true).await?;
    let session = SyntheticSession::new();
    let config = Config::parse(
        &config_toml(
            load_sink.addr,
            probe_sink.addr,
            args.publishers.max(args.paced_publishers),
            pki,
        ),
        "(bench)",
    )?;
    let server = proxy.spawn(Server::bind(config)).await??;
    let addrs = server.local_addrs().to_vec();
    let registry = server.registry();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = proxy.spawn(server.run_until(async {
        let _ = stop_rx.await;
    }));
    let client = Arc::new(OriginTls::load(
        &OriginTlsConfig {
            server_name: None,
            ca: Some(pki.join("ca.pem")),
            verify: true,
        },
        &addrs[2].to_string(),
        "(bench publisher)",
    )?);
    println!(
        "tls bench: {} s per phase; latency: {} publishers at 30 frames/s, probe every {} ms; \
         CPU: {} publishers at full speed; livegate's CPU is its runtime threads'",
        args.seconds, args.paced_publishers, args.probe_interval_ms, args.publishers
    );

    let phases = [
        ("direct (no livegate)", Pace::RealTime, None),
        ("plain RTMP, real rate", Pace::RealTime, Some((0, false))),
        ("RTMPS, real rate", Pace::RealTime, Some((2, true))),
        ("plain RTMP, full speed", Pace::FullSpeed, Some((0, false))),
        ("RTMPS, full speed", Pace::FullSpeed, Some((2, true))),
    ];
    let mut measured = Vec::with_capacity(phases.len());
    for (name, pace, through) in phases {
        let (load_target, probe, tls) = match through {
            None => (load_sink.addr, probe_sink.clone_for_phase(), None),
            Some((first, tls)) => {
                let mut probe = probe_sink.clone_for_phase();
                probe.target = addrs[first + 1];
                (addrs[first], probe, tls.then_some(&client))
            }
        };
        let cpu_before = threads_cpu_seconds(PROXY_THREAD)?;
        let phase = run_phase(
            args,
            pace,
            &session,
            load_target,
            &load_sink.bytes,
            probe,
            tls,
        )
        .await?;
        let proxy_cpu_seconds = threads_cpu_seconds(PROXY_THREAD)? - cpu_before;
        let phase = Measured {
            name,
            phase,
            proxy_cpu_seconds,
        };
        phase.print();
        measured.push(phase);
    }
    let _ = stop_tx.send(());
    let _ = serving.await;
    anyhow::ensure!(
        registry.refused() == 0,
        "livegate refused {} connections",
        registry.refused()
    );

    let [direct, plain, tls, plain_full, tls_full] = &measured[..] else {
        bail!("a phase is missing");
    };
    println!(
        "real rate ({} streams): RTMPS adds p50 {:.1} µs, p99 {:.1} µs over plain RTMP \
         (over no livegate: plain p99 +{:.1} µs, RTMPS p99 +{:.1} µs); livegate CPU per Gbit RTMPS / plain: {:.2}",
        args.paced_publishers,
        tls.p50() - plain.p50(),
        tls.p99() - plain.p99(),
        plain.p99() - direct.p99(),
        tls.p99() - direct.p99(),
        tls.proxy_cpu_per_gbit() / plain.proxy_cpu_per_gbit()
    );
    println!(
        "full speed ({} streams): throughput RTMPS / plain {:.3}; livegate CPU per Gbit RTMPS / plain: {:.2} \
         ({:.3} vs {:.3} cpu-s per Gbit)",
        args.publishers,
        tls_full.phase.gbit_per_second() / plain_full.phase.gbit_per_second(),
        tls_full.proxy_cpu_per_gbit() / plain_full.proxy_cpu_per_gbit(),
        tls_full.proxy_cpu_per_gbit(),
        plain_full.proxy_cpu_per_gbit()
    );
    Ok(ExitCode::SUCCESS)
}

/// CPU seconds (user + system) spent so far by this process's threads whose name starts
/// with `prefix`, from `/proc/self/task/*/stat` (clock ticks).
pub(super) fn threads_cpu_seconds(prefix: &str) -> anyhow::Result<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
        let Ok(task) = task else { continue };
        // A thread may end between the listing and the read: it is skipped.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid …": the name may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map_or("", |(_, name)| name);
        if !name.starts_with(prefix) {
            continue;
        }
        // After the name: state is field 3, utime field 14, stime field 15.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    Ok(ticks as f64 / ticks_per_second)
}
