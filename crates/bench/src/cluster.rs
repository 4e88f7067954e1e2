//! `livegate-bench cluster`: issue 13's benchmark — how fast a fleet's decisions reach the
//! other nodes, and what `[cluster]` costs a node's relay and analysis path, in one run.
//!
//! The bench starts its own `nats-server -js` on a free 127.0.0.1 port with a temporary
//! store, and kills it at the end (also on error).
//!
//! - **Propagation**: three load nodes, each a process of its own (this binary's hidden
//!   `cluster-node` subcommand: one `ClusterBackend` with its own NATS connection, lists
//!   and bans — a process each, since a node's id is its process's), share a schedule:
//!   ban *k* and learned hash *k* are made by node *k* mod 3 at a fixed rate, through
//!   `Backend::ban` and `Backend::add_hashes` as the actuator calls them. One ban in
//!   `--probe-every`, and every hash, is a probe: its node notes when the call returned,
//!   and the two other nodes poll their own memory every ~100 µs once it is due
//!   (`ban_remaining` is `Some`; a lookup in their lists finds the hash) and note when they
//!   see it. The times are `CLOCK_MONOTONIC`, one clock for every process of the machine.
//! - **Cost**: while the nodes' load keeps flowing, an in-process livegate relays paced
//!   publishers (the relay bench's real-time regime and latency probe), twice without
//!   `[cluster]` (the second run is the noise), then with `[cluster]` joined to the fleet
//!   — so it applies every ban and learned hash of the load — while a thread times
//!   hash-list lookups on its lists (the analysis worker's call, 8 variants) and on a copy
//!   of the list never added to. Same load in every phase: only `[cluster]` differs; the
//!   process CPU is this process's, the load nodes' and NATS's are not in it.
//!
//! Exits non-zero when a probe is missed or the propagation p99 exceeds 100 ms.

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cut::thread_cpu_seconds;
use super::index::SplitMix;
use super::relay::{
    Pace, PhaseResult, RelayBenchArgs, Sink, SyntheticSession, percentile, print_phase,
    proxy_ingest_toml, run_phase,
};
use livegate::actions::{ActuatorConfig, AuditTrail};
use livegate::backend::cluster::{Applied, ClusterBackend, ClusterConfig};
use livegate::backend::{Backend, BanTarget, LocalBackend};
use livegate::config::Config;
use livegate::server::Server;
use livegate::signals::lists::{AddedHash, HashListConfig, ListSet, LookupScratch};
use livegate_signals::hash256::Hash256;

/// The load both the bench and its node processes follow.
#[derive(Args, Clone)]
pub struct LoadArgs {
    /// Seconds of probed load (the propagation measurement).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Bans per second, over all the nodes.
    #[arg(long, default_value_t = 1000)]
    pub bans_per_second: u64,
    /// Learned hashes per second (one `add_hashes` call each), over all the nodes.
    #[arg(long, default_value_t = 100)]
    pub hashes_per_second: u64,
    /// Learned hashes per `add_hashes` call (a cut learns `actuator.learn_keyframes`
    /// at once, 10 by default); 1 is the worst case: a message per hash.
    #[arg(long, default_value_t = 1)]
    pub hashes_per_call: u64,
    /// One ban in this many is probed (every learned hash is).
    #[arg(long, default_value_t = 10)]
    pub probe_every: u64,
}

#[derive(Args)]
pub struct ClusterBenchArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Publishers at real-time rate (30 frames/s) in the cost phases; 0 skips them.
    #[arg(long, default_value_t = 200)]
    pub paced_publishers: usize,
    /// Seconds each cost phase (without, then with `[cluster]`) is measured.
    #[arg(long, default_value_t = 10)]
    pub cost_seconds: u64,
    /// Hashes in the relaying livegate's list file (learned hashes are added on top).
    #[arg(long, default_value_t = 100_000)]
    pub list_hashes: usize,
    /// Lookups per second timed during each cost phase.
    #[arg(long, default_value_t = 200)]
    pub lookups_per_second: u64,
    /// The NATS server binary (2.9 or later; run with JetStream).
    #[arg(long, default_value = "/usr/sbin/nats-server")]
    pub nats_server: PathBuf,
}

/// One load node (`livegate-bench cluster-node`, started by `livegate-bench cluster`).
#[derive(Args)]
pub struct ClusterNodeArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// The NATS server's URL.
    #[arg(long)]
    pub nats: String,
    /// This node's place in the schedule, 0..3.
    #[arg(long)]
    pub index: usize,
}

const NODES: usize = 3;
const PREFIX: &str = "bench";
/// The list every node learns into.
const LIST: &str = "learned";
/// Bans of the load: long enough to outlast the run.
const BAN: Duration = Duration::from_secs(600);
/// A probe not seen on a node within this is counted as missed there.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between a node's sweeps over the probes due.
const POLL_PAUSE: Duration = Duration::from_micros(100);
/// A keyframe's lookup: the frame and its 7 dihedral variants.
const VARIANTS: usize = 8;
const GOAL_P99_MS: f64 = 100.0;

pub fn run(args: ClusterBenchArgs) -> anyhow::Result<ExitCode> {
    // Declared first, dropped last: NATS outlives everything connected to it.
    let nats = NatsServer::start(&args.nats_server)?;
    println!(
        "cluster bench: {} (-js, 127.0.0.1, temporary store); {NODES} load nodes, a process each",
        nats.version
    );
    let mut nodes = NodeProcesses::start(&nats.url, &args.load)?;
    let formed = nodes.wait_ready()?;
    println!("fleet formed in {} ms", formed.as_millis());
    let start_ns = monotonic_ns() + 200_000_000;
    let pids: Vec<u32> = std::iter::once(nats.child.id())
        .chain(nodes.nodes.iter().map(|(child, _, _)| child.id()))
        .collect();
    let cpu_before: Vec<f64> = pids.iter().map(|pid| process_cpu(*pid)).collect();
    let started = Instant::now();
    nodes.send(&format!("start {start_ns}"))?;
    let results = nodes.results()?;
    let met = report_propagation(&args.load, &results)?;
    let seconds = started.elapsed().as_secs_f64();
    let share = |index: usize| (process_cpu(pids[index]) - cpu_before[index]) / seconds * 100.0;
    println!(
        "CPU from start to results ({seconds:.1} s): nats-server {:.1} % of a core; load nodes {} % \
         (each: its share of the load, applying everyone's, and polling for probes)",
        share(0),
        (1..pids.len())
            .map(|index| format!("{:.1}", share(index)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.paced_publishers > 0 {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let measured = runtime.block_on(cost(&args, &nats, start_ns));
        // The joined livegate's link runs for ever: stop it without waiting on a blocking
        // apply.
        runtime.shutdown_timeout(Duration::from_secs(1));
        measured?;
    }
    nodes.stop()?;
    Ok(if met {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `CLOCK_MONOTONIC` in ns: the same clock in every process of the machine.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// CPU seconds (user + system) process `pid` has used; NaN when unreadable.
fn process_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) close with ')': utime and
    // stime are the 14th and 15th fields, the 12th and 13th after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

/// `nats-server -js` on a free loopback port with a temporary store; killed on drop.
struct NatsServer {
    child: Child,
    url: String,
    version: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    fn start(binary: &Path) -> anyhow::Result<NatsServer> {
        let version = Command::new(binary)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", binary.display()))?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let store = tempfile::tempdir().context("creating the JetStream store")?;
        // A port the kernel just handed out and released: free unless something races
        // for it, which the wait below would report.
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            version,
            _store: store,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while StdStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("nats-server exited at startup ({status})");
            }
            ensure!(
                Instant::now() < deadline,
                "nats-server did not listen on port {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The load node processes; killed on drop (an early return included).
struct NodeProcesses {
    nodes: Vec<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

impl NodeProcesses {
    fn start(url: &str, load: &LoadArgs) -> anyhow::Result<NodeProcesses> {
        let binary = std::env::current_exe().context("finding this binary")?;
        let mut processes = NodeProcesses { nodes: Vec::new() };
        for index in 0..NODES {
            let mut child = Command::new(&binary)
                .args(["cluster-node", "--nats", url, "--index", &index.to_string()])
                .args(["--seconds", &load.seconds.to_string()])
                .args(["--bans-per-second", &load.bans_per_second.to_string()])
                .args(["--hashes-per-second", &load.hashes_per_second.to_string()])
                .args(["--hashes-per-call", &load.hashes_per_call.to_string()])
                .args(["--probe-every", &load.probe_every.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("starting a load node")?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                bail!("a load node has no pipes");
            };
            processes.nodes.push((child, stdin, BufReader::new(stdout)));
        }
        Ok(processes)
    }

    /// The next line of node `index`'s output.
    fn line(&mut self, index: usize) -> anyhow::Result<String> {
        let mut line = String::new();
        self.nodes[index].2.read_line(&mut line)?;
        ensure!(
            !line.is_empty(),
            "load node {index} exited (its error is above)"
        );
        Ok(line.trim_end().to_string())
    }

    /// Waits for every node to say it is connected and hears the two others.
    fn wait_ready(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for index in 0..NODES {
            let line = self.line(index)?;
            ensure!(line == "ready", "load node {index}: {line}");
        }
        Ok(started.elapsed())
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        for (_, stdin, _) in &mut self.nodes {
            writeln!(stdin, "{line}")?;
            stdin.flush()?;
        }
        Ok(())
    }

    /// Each node's result of the probed load, by index.
    fn results(&mut self) -> anyhow::Result<Vec<Value>> {
        (0..NODES)
            .map(|index| {
                let line = self.line(index)?;
                serde_json::from_str(&line)
                    .with_context(|| format!("load node {index}'s result: {line}"))
            })
            .collect()
    }

    /// Stops the load and waits for the nodes to exit.
    fn stop(mut self) -> anyhow::Result<()> {
        self.send("stop")?;
        for (child, _, _) in &mut self.nodes {
            let status = child.wait()?;
            ensure!(status.success(), "a load node exited with {status}");
        }
        Ok(())
    }
}

impl Drop for NodeProcesses {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.nodes {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The `[cluster]` keys of a node of the bench's fleet.
fn cluster_keys(url: &str, node: &str) -> String {
    format!("servers = [\"{url}\"]\nnode = \"{node}\"\nprefix = \"{PREFIX}\"\n")
}

/// Ban `k`: a key whose fingerprint is distinct for every `k` (SplitMix's output is a
/// bijection of its seed).
fn ban_key(k: u64) -> BanTarget {
    BanTarget::Key(format!("{:016x}", SplitMix(k).next()))
}

/// Learned hash `k`: random, so no other hash of the run is within matching distance.
fn learned_hash(k: u64) -> Hash256 {
    let mut rng = SplitMix(k ^ 0x5eed_0000_0000_0000);
    Hash256::from_words([rng.next(), rng.next(), rng.next(), rng.next()])
}

/// The node that makes item `k` of a stream made `per_call` items at a time.
fn origin(k: u64, per_call: u64) -> usize {
    (k / per_call.max(1) % NODES as u64) as usize
}

/// The shared schedule: when item `k` of a stream at `rate` per second is due.
struct Schedule {
    start_ns: u64,
    bans_per_second: u64,
    hashes_per_second: u64,
    hashes_per_call: u64,
    probe_every: u64,
    /// Items scheduled before this are the probed load's.
    probed_ns: u64,
}

impl Schedule {
    fn new(start_ns: u64, load: &LoadArgs) -> Schedule {
        Schedule {
            start_ns,
            bans_per_second: load.bans_per_second,
            hashes_per_second: load.hashes_per_second,
            hashes_per_call: load.hashes_per_call.max(1),
            probe_every: load.probe_every.max(1),
            probed_ns: start_ns + load.seconds * 1_000_000_000,
        }
    }

    fn due_ns(&self, k: u64, rate: u64) -> u64 {
        self.start_ns + k * 1_000_000_000 / rate.max(1)
    }

    /// Items of a stream at `rate` due by `now_ns`.
    fn due_count(&self, now_ns: u64, rate: u64) -> u64 {
        if now_ns < self.start_ns || rate == 0 {
            return 0;
        }
        (now_ns - self.start_ns) * rate / 1_000_000_000 + 1
    }

    /// Items of the probed load, per stream.
    fn probed_count(&self, rate: u64) -> u64 {
        self.due_count(self.probed_ns - 1, rate)
    }

    /// Hash `k` is made with the others of its call, when the call's first is due.
    fn hash_due_ns(&self, k: u64) -> u64 {
        self.due_ns(k - k % self.hashes_per_call, self.hashes_per_second)
    }

    /// `add_hashes` calls due by `now_ns`: those whose first hash is.
    fn hash_calls_due(&self, now_ns: u64) -> u64 {
        self.due_count(now_ns, self.hashes_per_second)
            .div_ceil(self.hashes_per_call)
    }
}

/// `livegate-bench cluster-node`: one node of the load. Says `ready` once it hears the
/// other nodes, waits for `start NS`, makes its share of the load, watches for the
/// others' probes, prints its result as one JSON line, and keeps making load (unprobed)
/// until `stop`.
pub fn run_node(args: ClusterNodeArgs) -> anyhow::Result<ExitCode> {
    ensure!(args.index < NODES, "--index must be below {NODES}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let name = format!("node-{}", args.index);
    let node = Arc::new(runtime.block_on(Node::start(&name, &args.nats, dir.path()))?);
    runtime.block_on(node.wait_for_peers())?;
    // To the bench through a pipe: written with errors returned, not `println!`'s panic
    // when the bench is gone.
    let mut out = std::io::stdout();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    let Some(start_ns) = line
        .trim()
        .strip_prefix("start ")
        .and_then(|ns| ns.parse().ok())
    else {
        bail!("expected `start NS`, got {line:?}");
    };
    let schedule = Arc::new(Schedule::new(start_ns, &args.load));
    let running = Arc::new(AtomicBool::new(true));
    let load = std::thread::spawn({
        let (node, schedule, running) = (
            Arc::clone(&node),
            Arc::clone(&schedule),
            Arc::clone(&running),
        );
        move || generate(&node, args.index, &schedule, &running)
    });
    let seen = watch(&node, args.index, &schedule);
    // Every probed item of this node is normally made long before the watch ends (a
    // probe timeout after the last one is due); wait for it when the load lags.
    let made = loop {
        ensure!(!load.is_finished(), "the load thread stopped early");
        if let Some(made) = node
            .made
            .lock()
            .ok()
            .and_then(|made| made.complete.then(|| made.clone()))
        {
            break made;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let fleet = node.backend.fleet();
    let result = json!({
        "made_bans": made.bans,
        "made_hashes": made.hashes,
        "failed": made.failed,
        "seen_bans": seen.bans,
        "seen_hashes": seen.hashes,
        "missed_bans": seen.missed_bans,
        "missed_hashes": seen.missed_hashes,
        "cluster": fleet.map(|fleet| fleet.view()),
    });
    writeln!(out, "{result}")?;
    out.flush()?;
    line.clear();
    // `stop`, or the bench gone: either way the load ends.
    let _ = stdin.read_line(&mut line);
    running.store(false, Ordering::Relaxed);
    load.join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(ExitCode::SUCCESS)
}

/// A load node: its backend and lists, and what it made of the probed load.
struct Node {
    backend: ClusterBackend,
    lists: Arc<ListSet>,
    made: std::sync::Mutex<Made>,
    /// Requests from other nodes (none are sent): kept so the link can queue them.
    _commands: tokio::sync::mpsc::Receiver<livegate::backend::cluster::Command>,
}

/// The probes a node made: `[k, ns]` (its call returned at `ns`).
#[derive(Clone, Default)]
struct Made {
    bans: Vec<[u64; 2]>,
    hashes: Vec<[u64; 2]>,
    /// `add_hashes` calls that failed (none expected).
    failed: u64,
    /// Every probed item of this node is made.
    complete: bool,
}

impl Node {
    async fn start(name: &str, url: &str, dir: &Path) -> anyhow::Result<Node> {
        let path = dir.join(format!("{name}.csv"));
        std::fs::write(&path, "# learned hashes\n").context("writing a node's list")?;
        let list = HashListConfig {
            allow_empty: true,
            ..HashListConfig::new(LIST, &path)
        };
        let lists = Arc::new(ListSet::load(&[list])?);
        let config: ClusterConfig = toml::from_str(&cluster_keys(url, name))?;
        let local = LocalBackend::new(
            Arc::clone(&lists),
            None,
            AuditTrail::open(&ActuatorConfig::default())?,
        );
        let (backend, commands) = ClusterBackend::start(config, local).await?;
        Ok(Node {
            backend,
            lists,
            made: std::sync::Mutex::new(Made::default()),
            _commands: commands,
        })
    }

    /// Waits until the streams exist and the heartbeats of the other nodes arrive, then a
    /// moment for every node's consumers to start.
    async fn wait_for_peers(&self) -> anyhow::Result<()> {
        let Some(fleet) = self.backend.fleet() else {
            bail!("a ClusterBackend without a fleet");
        };
        let started = Instant::now();
        loop {
            let view = fleet.view();
            if view.synced && view.peers.len() >= NODES - 1 {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "no fleet within 30 s: {}",
                    serde_json::to_string(&view).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    }

    /// Whether ban `k` or hash `k` is enforced here.
    fn enforces(
        &self,
        probe: &ProbeKey,
        scratch: &mut LookupScratch,
        found: &mut Vec<livegate::signals::lists::ListMatch>,
    ) -> bool {
        match probe {
            ProbeKey::Ban(k) => self.backend.ban_remaining(&ban_key(*k)).is_some(),
            ProbeKey::Hash(k) => {
                let hash = learned_hash(*k);
                self.lists
                    .lookup_into(std::slice::from_ref(&hash), 100, scratch, found);
                found.iter().any(|matched| matched.hash == hash)
            }
        }
    }
}

#[derive(Clone, Copy)]
enum ProbeKey {
    Ban(u64),
    Hash(u64),
}

/// Makes node `index`'s share of the schedule (bans `k` and `add_hashes` calls `c` that
/// are `index` modulo 3) until `running` is false, noting when each probed call returned.
fn generate(node: &Node, index: usize, schedule: &Schedule, running: &AtomicBool) {
    let mine = |k: u64| origin(k, 1) == index;
    let per_call = schedule.hashes_per_call;
    let (mut bans, mut calls) = (0u64, 0u64);
    let probed_bans = schedule.probed_count(schedule.bans_per_second);
    let probed_hashes = schedule.probed_count(schedule.hashes_per_second);
    while running.load(Ordering::Relaxed) {
        let now = monotonic_ns();
        let mut made = Made::default();
        let due_bans = schedule.due_count(now, schedule.bans_per_second);
        for k in bans..due_bans {
            if mine(k) {
                node.backend.ban(&ban_key(k), BAN);
                if k < probed_bans && k % schedule.probe_every == 0 {
                    made.bans.push([k, monotonic_ns()]);
                }
            }
        }
        bans = bans.max(due_bans);
        let due_calls = schedule.hash_calls_due(now);
        for call in calls..due_calls {
            if mine(call) {
                let ks = call * per_call..(call + 1) * per_call;
                let added: Vec<AddedHash> = ks
                    .clone()
                    .map(|k| AddedHash {
                        hash: learned_hash(k),
                        quality: Some(100),
                        label: "bench".into(),
                    })
                    .collect();
                match node.backend.add_hashes(LIST, &added) {
                    Ok(_) => {
                        let at = monotonic_ns();
                        made.hashes
                            .extend(ks.filter(|k| *k < probed_hashes).map(|k| [k, at]));
                    }
                    Err(_) => made.failed += 1,
                }
            }
        }
        calls = calls.max(due_calls);
        if let Ok(mut total) = node.made.lock() {
            total.bans.append(&mut made.bans);
            total.hashes.append(&mut made.hashes);
            total.failed += made.failed;
            total.complete = bans >= probed_bans && calls * per_call >= probed_hashes;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What a node saw of the others' probes: `[k, ns]`.
#[derive(Default)]
struct Seen {
    bans: Vec<[u64; 2]>,
    hashes: Vec<[u64; 2]>,
    missed_bans: Vec<u64>,
    missed_hashes: Vec<u64>,
}

/// Polls this node's memory for the other nodes' probes, each from when it is due,
/// until every probe is seen or has timed out.
fn watch(node: &Node, index: usize, schedule: &Schedule) -> Seen {
    let bans: Vec<u64> = (0..schedule.probed_count(schedule.bans_per_second))
        .filter(|k| origin(*k, 1) != index && k % schedule.probe_every == 0)
        .collect();
    let hashes: Vec<u64> = (0..schedule.probed_count(schedule.hashes_per_second))
        .filter(|k| origin(*k, schedule.hashes_per_call) != index)
        .collect();
    // (probe, due at): in due order, so a sweep stops at the first not yet due.
    let mut upcoming: std::collections::VecDeque<(ProbeKey, u64)> = {
        let mut all: Vec<(ProbeKey, u64)> = bans
            .into_iter()
            .map(|k| {
                (
                    ProbeKey::Ban(k),
                    schedule.due_ns(k, schedule.bans_per_second),
                )
            })
            .chain(
                hashes
                    .into_iter()
                    .map(|k| (ProbeKey::Hash(k), schedule.hash_due_ns(k))),
            )
            .collect();
        all.sort_by_key(|(_, due)| *due);
        all.into()
    };
    let mut pending: Vec<(ProbeKey, u64)> = Vec::new();
    let mut seen = Seen::default();
    let (mut scratch, mut found) = (LookupScratch::default(), Vec::new());
    let timeout = PROBE_TIMEOUT.as_nanos() as u64;
    while !upcoming.is_empty() || !pending.is_empty() {
        let now = monotonic_ns();
        while upcoming.front().is_some_and(|(_, due)| *due <= now) {
            pending.extend(upcoming.pop_front());
        }
        pending.retain(|(probe, due)| {
            if node.enforces(probe, &mut scratch, &mut found) {
                let at = monotonic_ns();
                match probe {
                    ProbeKey::Ban(k) => seen.bans.push([*k, at]),
                    ProbeKey::Hash(k) => seen.hashes.push([*k, at]),
                }
                return false;
            }
            if now > due + timeout {
                match probe {
                    ProbeKey::Ban(k) => seen.missed_bans.push(*k),
                    ProbeKey::Hash(k) => seen.missed_hashes.push(*k),
                }
                return false;
            }
            true
        });
        std::thread::sleep(POLL_PAUSE);
    }
    seen
}

/// `[[k, ns], …]` of a node's result, by `k`.
fn by_k(result: &Value, key: &str) -> std::collections::HashMap<u64, u64> {
    result[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair[0].as_u64()?, pair[1].as_u64()?)))
        .collect()
}

/// Prints the propagation times over every (probe, other node) pair; returns whether the
/// goal is met with nothing missed.
fn report_propagation(load: &LoadArgs, results: &[Value]) -> anyhow::Result<bool> {
    let made_bans: Vec<_> = results
        .iter()
        .map(|result| by_k(result, "made_bans"))
        .collect();
    let made_hashes: Vec<_> = results
        .iter()
        .map(|result| by_k(result, "made_hashes"))
        .collect();
    let latencies = |seen_key: &str, made: &[std::collections::HashMap<u64, u64>], per_call| {
        let mut ms = Vec::new();
        let mut unmatched = 0;
        for result in results {
            for (k, seen_ns) in by_k(result, seen_key) {
                match made[origin(k, per_call)].get(&k) {
                    // Seen before the origin noted its call's return (the thread was
                    // descheduled in between): propagation took no time.
                    Some(made_ns) => ms.push(seen_ns.saturating_sub(*made_ns) as f64 / 1e6),
                    None => unmatched += 1,
                }
            }
        }
        (ms, unmatched)
    };
    let (bans_ms, unmatched_bans) = latencies("seen_bans", &made_bans, 1);
    let (hashes_ms, unmatched_hashes) =
        latencies("seen_hashes", &made_hashes, load.hashes_per_call);
    let count = |key: &str| -> usize {
        results
            .iter()
            .map(|result| result[key].as_array().map_or(0, Vec::len))
            .sum()
    };
    let failed: u64 = results
        .iter()
        .filter_map(|result| result["failed"].as_u64())
        .sum();
    ensure!(failed == 0, "{failed} add_hashes calls failed");
    ensure!(
        unmatched_bans + unmatched_hashes == 0,
        "{unmatched_bans} bans and {unmatched_hashes} hashes seen that their node did not note"
    );
    let (missed_bans, missed_hashes) = (count("missed_bans"), count("missed_hashes"));
    println!(
        "== propagation: {} s of {} bans/s and {} learned hashes/s ({} per add_hashes call), \
         round-robin over the {NODES} nodes; 1 ban in {} and every hash probed on the {} other nodes \
         (Backend call returned → enforced there; polled every ~{} µs)",
        load.seconds,
        load.bans_per_second,
        load.hashes_per_second,
        load.hashes_per_call.max(1),
        load.probe_every.max(1),
        NODES - 1,
        POLL_PAUSE.as_micros()
    );
    println!(
        " {:<6} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "kind", "observed", "missed", "p50_ms", "p99_ms", "max_ms"
    );
    let row = |kind: &str, ms: &[f64], missed: usize| {
        println!(
            " {kind:<6} {:>8} {missed:>8} {:>9.2} {:>9.2} {:>9.2}",
            ms.len(),
            percentile(ms, 0.50),
            percentile(ms, 0.99),
            ms.iter().copied().fold(f64::NAN, f64::max),
        );
    };
    let all: Vec<f64> = bans_ms.iter().chain(&hashes_ms).copied().collect();
    row("ban", &bans_ms, missed_bans);
    row("hash", &hashes_ms, missed_hashes);
    let missed = missed_bans + missed_hashes;
    row("all", &all, missed);
    let p99 = percentile(&all, 0.99);
    let met = missed == 0 && p99 <= GOAL_P99_MS;
    println!(
        "goal p99 <= {GOAL_P99_MS} ms: {} (p99 {p99:.2} ms, {missed} missed)",
        if met { "met" } else { "NOT met" }
    );
    for result in results {
        let view = &result["cluster"];
        // A node applies its own bans and hashes too, when JetStream delivers them back.
        println!(
            "  {}: published bans {} hashes {}; applied bans {} hashes {}; outbox {} (oldest {} ms), dropped {}",
            view["node"].as_str().unwrap_or("?"),
            view["published"]["bans"],
            view["published"]["hashes"],
            view["applied"]["bans"],
            view["applied"]["hashes"],
            view["outbox"]["messages"],
            view["outbox"]["oldest_age_ms"],
            view["outbox"]["dropped"],
        );
    }
    Ok(met)
}

/// Waits for a thread without blocking the runtime.
async fn join<T: Send + 'static>(thread: std::thread::JoinHandle<T>) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .context("waiting for a bench thread")?
        .map_err(|_| anyhow::anyhow!("a bench thread panicked"))
}

/// One cost phase's figures.
struct CostPhase {
    name: &'static str,
    relay: PhaseResult,
    lookups_us: Vec<f64>,
    /// The same lookups in a copy of its list loaded from the same file and never added
    /// to: what the moment's load on the CPU and caches does to a lookup.
    fixed_lookups_us: Vec<f64>,
    /// Bans and hashes this livegate applied from the fleet during the phase, per second.
    applied_per_second: Option<(f64, f64)>,
    /// Learned hashes in its list at the end, and how many of them await indexing.
    learned: usize,
    unindexed: usize,
}

/// The relay and lookup cost of a livegate without `[cluster]` (twice: the second run
/// shows the noise), then with it, the load flowing in every phase. In this order since a
/// livegate that joined keeps its link running until the process ends.
async fn cost(args: &ClusterBenchArgs, nats: &NatsServer, start_ns: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let list_path = dir.path().join("relay-list.csv");
    let mut rng = SplitMix(3);
    let mut list = String::with_capacity(args.list_hashes * 65);
    for _ in 0..args.list_hashes {
        let hash = Hash256::from_words([rng.next(), rng.next(), rng.next(), rng.next()]);
        let _ = writeln!(list, "{}", hash.to_hex());
    }
    std::fs::write(&list_path, list).context("writing the relay's list")?;
    let fixed = Arc::new(ListSet::load(&[HashListConfig {
        allow_empty: true,
        ..HashListConfig::new(LIST, &list_path)
    }])?);
    let load_sink = Sink::start(false).await?;
    let probe_sink = Sink::start(true).await?;
    let session = SyntheticSession::new();
    let relay_args = RelayBenchArgs {
        publishers: 0,
        paced_publishers: args.paced_publishers,
        seconds: args.cost_seconds,
        probe_interval_ms: 5,
    };
    let mut phases = Vec::with_capacity(3);
    for (name, clustered) in [
        ("without [cluster]", false),
        ("without, again", false),
        ("with [cluster]", true),
    ] {
        let mut toml = proxy_ingest_toml(load_sink.addr, probe_sink.addr, args.paced_publishers);
        let _ = write!(
            toml,
            "[[hashlist]]\nname = \"{LIST}\"\npath = \"{}\"\naction = \"alert\"\nallow_empty = true\n",
            list_path.display()
        );
        if clustered {
            toml.push_str("[cluster]\n");
            toml.push_str(&cluster_keys(&nats.url, "relay"));
        }
        let server = Server::bind(Config::parse(&toml, "(bench)")?).await?;
        let (load_proxy, probe_proxy) = (server.local_addrs()[0], server.local_addrs()[1]);
        let (registry, lists, services) = (server.registry(), server.lists(), server.services());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let backend = Arc::clone(services.analysis.actions().backend());
        if clustered {
            let caught_up = catch_up(backend.as_ref(), args, start_ns).await?;
            println!(
                "livegate with [cluster] joined and replayed the bans and learned streams in {} ms",
                caught_up.as_millis()
            );
        }
        let applied = |backend: &dyn Backend| {
            backend.fleet().map(|fleet| {
                let status = fleet.status();
                (status.applied(Applied::Ban), status.applied(Applied::Hash))
            })
        };
        let applied_before = applied(backend.as_ref());
        let started = Instant::now();
        let timing = Arc::new(AtomicBool::new(true));
        let lookups = std::thread::spawn({
            let (lists, fixed) = (Arc::clone(&lists), Arc::clone(&fixed));
            let (timing, rate) = (Arc::clone(&timing), args.lookups_per_second);
            move || time_lookups(&lists, &fixed, rate, &timing)
        });
        let mut probe = probe_sink.clone_for_phase();
        probe.target = probe_proxy;
        let relayed = run_phase(
            &relay_args,
            Pace::RealTime,
            &session,
            load_proxy,
            &load_sink.bytes,
            probe,
            None,
        )
        .await;
        timing.store(false, Ordering::Relaxed);
        let (lookups_us, fixed_lookups_us) = join(lookups).await?;
        let seconds = started.elapsed().as_secs_f64();
        let applied_per_second = applied(backend.as_ref()).zip(applied_before).map(
            |((bans, hashes), (bans_before, hashes_before))| {
                (
                    (bans - bans_before) as f64 / seconds,
                    (hashes - hashes_before) as f64 / seconds,
                )
            },
        );
        let (learned, unindexed) = lists.current(LIST).map_or((0, 0), |list| {
            (
                list.len().saturating_sub(args.list_hashes),
                list.unindexed_additions(),
            )
        });
        let _ = stop.send(());
        let _ = proxy.await;
        let relay = relayed?;
        ensure!(
            registry.refused() == 0,
            "livegate refused {} connections",
            registry.refused()
        );
        phases.push(CostPhase {
            name,
            relay,
            lookups_us,
            fixed_lookups_us,
            applied_per_second,
            learned,
            unindexed,
        });
    }
    report_cost(args, &phases);
    Ok(())
}

/// Waits until a livegate that just joined has connected and replayed the bans and the
/// learned hashes the load made before it joined.
async fn catch_up(
    backend: &dyn Backend,
    args: &ClusterBenchArgs,
    start_ns: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let schedule = Schedule::new(start_ns, &args.load);
    // Those due in the last 50 ms may still be on their way (propagation takes ms).
    let by = monotonic_ns() - 50_000_000;
    let bans = schedule.due_count(by, schedule.bans_per_second);
    let hashes = schedule.hash_calls_due(by) * schedule.hashes_per_call;
    let Some(fleet) = backend.fleet() else {
        bail!("the livegate with [cluster] has no fleet");
    };
    let status = fleet.status();
    while !status.connected()
        || status.applied(Applied::Ban) < bans
        || status.applied(Applied::Hash) < hashes
    {
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the livegate with [cluster] applied {} of {bans} bans and {} of {hashes} learned hashes in 60 s",
            status.applied(Applied::Ban),
            status.applied(Applied::Hash)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

/// Times `rate` lookups a second of 8 random variants (a keyframe that matches nothing,
/// the common case) until `timing` is false, alternately in the livegate's lists and in
/// `fixed` (the same file, never added to): CPU µs per lookup in each.
fn time_lookups(
    lists: &ListSet,
    fixed: &ListSet,
    rate: u64,
    timing: &AtomicBool,
) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SplitMix(4);
    let (mut scratch, mut found) = (LookupScratch::default(), Vec::new());
    let (mut live, mut reference) = (Vec::new(), Vec::new());
    let pause = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut time = |lists: &ListSet, variants: &[Hash256], times: &mut Vec<f64>| {
        let before = thread_cpu_seconds();
        lists.lookup_into(variants, 100, &mut scratch, &mut found);
        times.push((thread_cpu_seconds() - before) * 1e6);
    };
    while timing.load(Ordering::Relaxed) {
        let variants: Vec<Hash256> = (0..VARIANTS)
            .map(|_| Hash256::from_words([rng.next(), rng.next(), rng.next(), rng.next()]))
            .collect();
        time(lists, &variants, &mut live);
        time(fixed, &variants, &mut reference);
        std::thread::sleep(pause);
    }
    (live, reference)
}

fn report_cost(args: &ClusterBenchArgs, phases: &[CostPhase]) {
    println!(
        "== cost on the relay and analysis path: {} publishers at 30 frames/s, {} s per phase, \
         the fleet's load flowing in every phase; only [cluster] differs (the repeated phase \
         without it is the run's noise)",
        args.paced_publishers, args.cost_seconds
    );
    let latencies: Vec<(f64, f64)> = phases
        .iter()
        .map(|phase| print_phase(phase.name, &phase.relay))
        .collect();
    let lookups: Vec<f64> = phases
        .iter()
        .map(|phase| {
            let (p50, p99) = (
                percentile(&phase.lookups_us, 0.50),
                percentile(&phase.lookups_us, 0.99),
            );
            println!(
                "{:<17} lookup ({VARIANTS} variants, {} listed + {} learned, {} unindexed): CPU p50 {p50:.1} µs, p99 {p99:.1} µs \
                 ({} lookups; in a copy of the list never added to, meanwhile: p50 {:.1} µs, p99 {:.1} µs)",
                phase.name,
                args.list_hashes,
                phase.learned,
                phase.unindexed,
                phase.lookups_us.len(),
                percentile(&phase.fixed_lookups_us, 0.50),
                percentile(&phase.fixed_lookups_us, 0.99),
            );
            p50
        })
        .collect();
    for phase in phases {
        if let Some((bans, hashes)) = phase.applied_per_second {
            println!(
                "{} applied from the fleet: {bans:.0} bans/s, {hashes:.0} learned hashes/s",
                phase.name
            );
        }
    }
    let per_gbit = |phase: &CostPhase| phase.relay.cpu_seconds / phase.relay.gbits();
    let cores = |phase: &CostPhase| phase.relay.cpu_seconds / phase.relay.seconds * 100.0;
    for (before, after) in (0..phases.len()).zip(1..phases.len()) {
        let (a, b) = (&phases[before], &phases[after]);
        println!(
            "{} / {}: throughput {:.3}, process CPU per Gbit {:.3} ({:.1} → {:.1} % of a core); \
             relay latency p50 {:+.1} µs, p99 {:+.1} µs; lookup CPU p50 {:.2}x",
            b.name,
            a.name,
            b.relay.gbit_per_second() / a.relay.gbit_per_second(),
            per_gbit(b) / per_gbit(a),
            cores(a),
            cores(b),
            latencies[after].0 - latencies[before].0,
            latencies[after].1 - latencies[before].1,
            lookups[after] / lookups[before]
        );
    }
}
