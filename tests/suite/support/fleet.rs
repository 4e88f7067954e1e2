//! A fleet of livegate nodes sharing state through NATS (`[cluster]`): one nginx-rtmp
//! origin and one [`NatsServer`] behind every node, each node a real livegate process
//! with its own listener, admin API (one token for all), audit log and `known` hash list,
//! and the same `learned` list — empty at start, `actuator.learn_into`'s target — so
//! everything a node learns beyond its own files comes through the fleet.

use super::http::{HttpResponse, Request, wait_for_stream};
use super::nats::NatsServer;
use super::{
    AttackPublisher, Livegate, NginxOrigin, UNRELATED_HASH, audit_records, free_port,
    key_fingerprint, local, publish_file, scratch_dir, wait_for_audit_record,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Every node's admin token.
pub const TOKEN: &str = "fleet-admin-token-0123456789";

/// How long a ban made on one node may take to be enforced on another (the goal is
/// 100 ms; the bound is for a loaded 2-core machine).
const REFUSAL: Duration = Duration::from_secs(10);

/// The list every node learns into (`actuator.learn_into`).
pub const LEARNED: &str = "learned";

/// One node's part of the fleet's config.
pub struct NodeConfig<'a> {
    /// `cluster.node`.
    pub name: &'a str,
    /// The node's `known` list file (action cut): footage it cuts on its own. `None`: a
    /// list matching nothing.
    pub known: Option<&'a Path>,
    pub ban_seconds: u64,
    /// `cluster.servers`; `None`: the fleet's NATS server.
    pub servers: Option<Vec<String>>,
    /// More `[cluster]` lines (credentials, timeouts, …).
    pub cluster_keys: &'a str,
}

impl<'a> NodeConfig<'a> {
    pub fn named(name: &'a str) -> NodeConfig<'a> {
        NodeConfig {
            name,
            known: None,
            ban_seconds: 60,
            servers: None,
            cluster_keys: "",
        }
    }
}

/// What the nodes of one fleet share.
pub struct Fleet {
    origin: NginxOrigin,
    pub nats: NatsServer,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// A fresh origin and the shared lists, with `nats` (running or not); nodes start
    /// with [`Fleet::start_node`].
    pub fn new(nats: NatsServer) -> Fleet {
        let dir = scratch_dir();
        std::fs::write(
            dir.path().join("learned.csv"),
            "# learned through the fleet\n",
        )
        .expect("write the learned list");
        std::fs::write(
            dir.path().join("nothing.csv"),
            format!("{UNRELATED_HASH}\n"),
        )
        .expect("write the list matching nothing");
        Fleet {
            origin: NginxOrigin::start(),
            nats,
            dir,
        }
    }

    /// The config of `node` listening for publishers on `listen` (without `[log]`).
    pub fn config(&self, node: &NodeConfig, listen: SocketAddr, audit: &Path) -> String {
        let known = node
            .known
            .map_or_else(|| self.dir.path().join("nothing.csv"), Path::to_path_buf);
        let servers = node
            .servers
            .clone()
            .unwrap_or_else(|| vec![self.nats.url()]);
        format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
             [[hashlist]]\nname = \"known\"\npath = {known:?}\nallow_empty = true\n\
             [[hashlist]]\nname = \"{LEARNED}\"\npath = {learned:?}\nallow_empty = true\n\
             [actuator]\naudit_log = {audit:?}\nban_seconds = {ban}\nlearn_into = \"{LEARNED}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [cluster]\nservers = {servers:?}\nnode = \"{name}\"\n{keys}\n",
            origin = self.origin.addr,
            known = known.display().to_string(),
            learned = self.dir.path().join("learned.csv").display().to_string(),
            audit = audit.display().to_string(),
            ban = node.ban_seconds,
            name = node.name,
            keys = node.cluster_keys,
        )
    }

    /// Starts a node and waits until it listens; it need not reach NATS.
    pub fn start_node(&self, node: NodeConfig) -> FleetNode {
        let dir = scratch_dir();
        let audit = dir.path().join("audit.jsonl");
        let listen = local(free_port());
        let livegate = Livegate::start(&self.config(&node, listen, &audit), 1);
        let admin = livegate.admin_addr();
        FleetNode {
            name: node.name.to_string(),
            livegate,
            listen,
            admin,
            audit,
            _dir: dir,
        }
    }
}

/// One livegate process of a [`Fleet`].
pub struct FleetNode {
    pub name: String,
    pub livegate: Livegate,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl FleetNode {
    /// The RTMP URL publishing `key` through this node.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.listen)
    }

    /// `GET path` with the token, which must answer 200.
    pub fn get(&self, path: &str) -> Value {
        let response = Request::get(path).token(TOKEN).send(self.admin);
        assert_eq!(
            response.status, 200,
            "{} GET {path}: {response:?}",
            self.name
        );
        response.json()
    }

    /// `POST path` with the token and a JSON `body`.
    pub fn post(&self, path: &str, body: &str) -> HttpResponse {
        Request::post(path, body.as_bytes())
            .token(TOKEN)
            .send(self.admin)
    }

    /// `GET /v1/cluster`.
    pub fn cluster(&self) -> Value {
        self.get("/v1/cluster")
    }

    /// The node's fleet-wide id (the prefix of its stream ids).
    pub fn node_id(&self) -> String {
        self.cluster()["node_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no node_id in /v1/cluster", self.name))
            .to_string()
    }

    /// Polls `/v1/cluster` until `done` holds, returning it; fails after `limit`.
    pub fn wait_for_cluster(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let cluster = self.cluster();
            if done(&cluster) {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what}: {cluster:#}\nlivegate log:\n{}",
                self.name,
                self.livegate.raw_log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many hashes the hash list `list` holds (file and additions).
    pub fn hashes_in(&self, list: &str) -> u64 {
        let lists = self.get("/v1/hashlists");
        lists["hashlists"]
            .as_array()
            .and_then(|lists| lists.iter().find(|entry| entry["name"] == list))
            .and_then(|entry| entry["hashes"].as_u64())
            .unwrap_or_else(|| panic!("{}: no list {list} in {lists}", self.name))
    }

    /// Polls until the list `list` holds at least `count` hashes; fails after `limit`.
    pub fn wait_for_hashes(&self, list: &str, count: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.hashes_in(list) < count {
            assert!(
                Instant::now() < deadline,
                "{}: list {list} still holds {} hashes, not {count}; /v1/cluster: {:#}",
                self.name,
                self.hashes_in(list),
                self.cluster()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The audit record of `event` for `key`, waiting up to `limit` for it.
    pub fn wait_for_record(&self, key: &str, event: &str, limit: Duration) -> Value {
        wait_for_audit_record(&self.audit, key, event, limit).unwrap_or_else(|| {
            panic!(
                "{}: no {event} record for key {key} within {limit:?}; audit:\n{:#?}\nlivegate log:\n{}",
                self.name,
                audit_records(&self.audit),
                self.livegate.raw_log()
            )
        })
    }

    /// How many audit records of `event` this node wrote for `key`.
    pub fn records(&self, key: &str, event: &str) -> usize {
        super::records_for(&audit_records(&self.audit), key, event).len()
    }

    /// `key`'s entry in `/v1/streams` once a keyframe of it was analysed.
    pub fn live_stream(&self, key: &str) -> Value {
        let fingerprint = key_fingerprint(key);
        wait_for_stream(
            self.admin,
            TOKEN,
            |stream| {
                stream["key_fingerprint"] == fingerprint.as_str()
                    && stream["keyframes_analysed"].as_u64() >= Some(1)
            },
            &format!("{}: key {key} publishing", self.name),
        )
    }

    /// Asserts the node refuses `key` at `publish` — a `rejected` record, the publisher
    /// disconnected — once a ban made elsewhere has reached it: crafted publishers
    /// (handshake, `connect`, `publish`, no media) probe until one is refused, then
    /// ffmpeg publishing `clip` is refused too.
    pub fn assert_refuses(&self, key: &str, clip: &Path) {
        let deadline = Instant::now() + REFUSAL;
        while !self.refuses_probe(key) {
            assert!(
                Instant::now() < deadline,
                "{}: key {key} still admitted after {REFUSAL:?}; audit:\n{:#?}",
                self.name,
                audit_records(&self.audit)
            );
            thread::sleep(Duration::from_millis(100));
        }
        let before = self.records(key, "rejected");
        let mut publisher = publish_file(clip, &self.url(key));
        let status = publisher.wait_for(Duration::from_secs(20));
        assert!(
            status.is_some_and(|status| !status.success()),
            "{}: ffmpeg publishing key {key} was not refused ({status:?})",
            self.name
        );
        assert!(
            self.new_record(key, "rejected", before),
            "{}: no rejected record for ffmpeg's publish of {key}",
            self.name
        );
    }

    /// Waits until the node admits `key` again (its ban lifted, here or on another node).
    pub fn wait_admits(&self, key: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.refuses_probe(key) {
            assert!(
                Instant::now() < deadline,
                "{}: key {key} still refused after {limit:?}",
                self.name
            );
        }
    }

    /// One crafted publisher of `key`: true when the node closes it with a new
    /// `rejected` record. An admitted probe (no ban yet) just leaves again.
    fn refuses_probe(&self, key: &str) -> bool {
        let before = self.records(key, "rejected");
        let probe = AttackPublisher::connect(self.listen, "live", key);
        let closed = probe.closed_within(Duration::from_secs(1));
        probe.close();
        closed && self.new_record(key, "rejected", before)
    }

    /// Whether a record of `event` for `key` beyond the first `before` appears within 2 s.
    fn new_record(&self, key: &str, event: &str, before: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.records(key, event) == before {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(25));
        }
        true
    }
}

/// Waits until every node is connected to NATS and sees every other as a peer.
pub fn wait_until_joined(nodes: &[&FleetNode], limit: Duration) {
    for node in nodes {
        let others: Vec<&str> = nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(|other| other.name.as_str())
            .collect();
        node.wait_for_cluster("the fleet to join", limit, |cluster| {
            cluster["connected"] == true
                && others.iter().all(|other| {
                    cluster["peers"]
                        .as_array()
                        .is_some_and(|peers| peers.iter().any(|peer| peer["node"] == *other))
                })
        });
    }
}

impl Drop for FleetNode {
    /// A failing test shows how each node ended: whether it still ran, and the end of
    /// its log (a panic message names one node; the cause may be on another).
    fn drop(&mut self) {
        if !thread::panicking() {
            return;
        }
        let status = self.livegate.process.child.try_wait();
        let log = self.livegate.raw_log();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!(
            "--- node {} ({status:?}), last lines of its log:\n{}",
            self.name,
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
}
