//! A fleet of livegate nodes sharing state through a real nats-server with JetStream
//! (`[cluster]`), with a real nginx-rtmp origin and ffmpeg publishers: a cut on one node
//! teaches and bans on the others, API additions and operator cuts reach the node that
//! needs them, the fleet is listed from any node; while NATS is down every node keeps
//! relaying and cutting on what it knows, and after it comes back (same store) the fleet
//! converges, a node joining later catches up, and expired bans apply nowhere; a bad
//! `[cluster]` names its key, and a node that cannot reach NATS at start runs locally.

use crate::support;

use serde_json::Value;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::fleet::Fleet;
use support::fleet::{FleetNode, LEARNED, NodeConfig, TOKEN, wait_until_joined};
use support::http::{Request, metric, scrape, wait_for_stream};
use support::nats::NatsServer;
use support::{key_fingerprint, publish_file, publish_looping};

/// A node joins (connects, hears every other's heartbeat) within this.
const JOIN: Duration = Duration::from_secs(20);
/// A decision made on one node is applied on the others within this (the goal is
/// 100 ms; the bound is for a loaded 2-core machine).
const PROPAGATION: Duration = Duration::from_secs(10);
/// A node reconnects to a NATS server that came back within this (client backoff).
const RECONNECT: Duration = Duration::from_secs(30);
/// A listed stream is cut within this of its publisher starting.
const CUT: Duration = Duration::from_secs(20);

/// Clips shared by the tests of this module (encoded once, 640x360, 1 s GOPs).
struct Media {
    _dir: tempfile::TempDir,
    /// The footage a node's own `known` list lists.
    listed: PathBuf,
    /// `listed`'s keyframe hashes, one a line (a `known` list file).
    listed_list: PathBuf,
    listed_hashes: Vec<String>,
    /// Other footage, listed by no file: its hashes arrive through the admin API.
    other: PathBuf,
    other_hashes: Vec<String>,
    /// Footage no list matches.
    benign: PathBuf,
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = support::scratch_dir();
        let clip = |name: &str, source: &str, seconds: u32| {
            let path = dir.path().join(name);
            support::encode_clip(&path, source, seconds);
            path
        };
        let listed = clip("listed.flv", support::MANDELBROT, 6);
        let other = clip("other.flv", support::CELLULAR_AUTOMATON, 4);
        let benign = clip("benign.flv", support::TEST_PATTERN, 4);
        let listed_hashes = support::keyframe_hashes(&listed);
        let other_hashes = support::keyframe_hashes(&other);
        assert!(listed_hashes.len() >= 5 && other_hashes.len() >= 3);
        let listed_list = dir.path().join("listed.csv");
        std::fs::write(&listed_list, listed_hashes.join("\n") + "\n").expect("write the list");
        Media {
            _dir: dir,
            listed,
            listed_list,
            listed_hashes,
            other,
            other_hashes,
            benign,
        }
    })
}

/// The body of `POST /v1/hashlists/{name}/hashes` adding `hashes`.
fn hashes_body(hashes: &[String]) -> String {
    let entries: Vec<String> = hashes
        .iter()
        .map(|hash| format!("{{\"hash\":\"{hash}\",\"label\":\"added through the api\"}}"))
        .collect();
    format!("{{\"hashes\":[{}]}}", entries.join(","))
}

/// A `/v1/cluster` counter (`published.bans`, `applied.hashes`, …).
fn counter(cluster: &Value, group: &str, name: &str) -> u64 {
    cluster[group][name].as_u64().unwrap_or_else(|| {
        panic!("no {group}.{name} in /v1/cluster: {cluster:#}");
    })
}

/// The cut record of a publisher of `clip` under `key` on `node`: waits for it, asserts
/// the list that decided and that the publisher was disconnected.
fn assert_cut(node: &FleetNode, key: &str, clip: &Path, list: &str) -> Value {
    let mut publisher = publish_file(clip, &node.url(key));
    let cut = node.wait_for_record(key, "cut", CUT);
    assert_eq!(cut["signal"]["list"], list, "{}: {cut:#}", node.name);
    let status = publisher.wait_for(Duration::from_secs(10));
    assert!(
        status.is_some_and(|status| !status.success()),
        "{}: the publisher of {key} was not cut off ({status:?})",
        node.name
    );
    cut
}

fn matched_hash(cut: &Value) -> String {
    cut["signal"]["matched_hash"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The last message JetStream stream `stream` holds on `subject`, as JSON.
fn last_message(nats: &NatsServer, stream: &str, subject: &str) -> Value {
    nats.jetstream(async |jetstream| {
        let stream = jetstream
            .get_stream(stream)
            .await
            .unwrap_or_else(|error| panic!("JetStream stream {stream}: {error}"));
        let message = stream
            .get_last_raw_message_by_subject(subject)
            .await
            .unwrap_or_else(|error| panic!("no message on {subject}: {error}"));
        serde_json::from_slice(&message.payload).expect("a JSON message")
    })
}

#[test]
fn the_nats_fixture_keeps_jetstream_data_across_a_restart() {
    let mut nats = NatsServer::start();
    nats.jetstream(async |jetstream| {
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: "probe".into(),
                subjects: vec!["probe.>".into()],
                ..Default::default()
            })
            .await
            .expect("create a stream");
        jetstream
            .publish("probe.kept", "{\"before\":\"the restart\"}".into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    });
    nats.stop();
    assert!(
        TcpStream::connect(nats.addr()).is_err(),
        "the port still accepts"
    );
    nats.start_again();
    assert_eq!(nats.stream_names(), ["probe"]);
    assert_eq!(
        last_message(&nats, "probe", "probe.kept")["before"],
        "the restart"
    );
}

#[test]
fn cuts_learned_footage_added_hashes_bans_and_operator_cuts_reach_every_node() {
    let media = media();
    let fleet = Fleet::new(NatsServer::start());
    let a = fleet.start_node(NodeConfig {
        known: Some(&media.listed_list),
        ..NodeConfig::named("node-a")
    });
    let b = fleet.start_node(NodeConfig::named("node-b"));
    let c = fleet.start_node(NodeConfig::named("node-c"));
    let nodes = [&a, &b, &c];
    wait_until_joined(&nodes, JOIN);

    // One stream on every node that no list matches: the operator's cuts end two of
    // them, the third flows to the end of the test.
    let mut flowing: Vec<(String, support::ChildGuard)> = nodes
        .iter()
        .map(|node| {
            let key = format!("flowing-on-{}", node.name);
            let publisher = publish_looping(&media.benign, &node.url(&key));
            (key, publisher)
        })
        .collect();
    let streams: Vec<Value> = nodes
        .iter()
        .zip(&flowing)
        .map(|(node, (key, _))| node.live_stream(key))
        .collect();

    // Any node lists the fleet's streams, each with the node holding it.
    let listing = b.get("/v1/streams?scope=fleet");
    for ((node, (key, _)), stream) in nodes.iter().zip(&flowing).zip(&streams) {
        let node_id = node.node_id();
        let id = stream["id"].as_str().expect("stream id");
        assert!(id.starts_with(&format!("{node_id}-")), "{id} on {node_id}");
        let listed = listing["streams"]
            .as_array()
            .and_then(|listed| listed.iter().find(|entry| entry["id"] == id))
            .unwrap_or_else(|| panic!("{id} of {} missing from {listing:#}", node.name));
        assert_eq!(listed["node"], node.name.as_str(), "{listed}");
        assert_eq!(listed["node_id"], node_id.as_str(), "{listed}");
        assert_eq!(listed["key_fingerprint"], key_fingerprint(key).as_str());
    }
    assert_eq!(
        listing["nodes"].as_array().map(Vec::len),
        Some(3),
        "{listing:#}"
    );
    assert_eq!(listing["unanswered"], Value::Array(vec![]), "{listing:#}");

    // A cuts the footage its own list knows, learns its keyframes into `learned` and
    // bans the key; its audit record goes to the events stream for ops.
    let cut_on_a = assert_cut(&a, "listed-on-a", &media.listed, "known");
    for node in [&b, &c] {
        node.wait_for_hashes(LEARNED, 1, PROPAGATION);
    }
    let event = last_message(
        &fleet.nats,
        "livegate_events",
        &format!("livegate.events.{}.cut", a.node_id()),
    );
    assert_eq!(event["stream_id"], cut_on_a["stream_id"], "{event:#}");
    assert_eq!(event["event"], "cut", "{event:#}");

    // The same footage re-streamed through B under another key is cut at its first
    // keyframe by what A learned.
    let cut_on_b = assert_cut(&b, "restream-on-b", &media.listed, LEARNED);
    let pts = cut_on_b["pts_seconds"].as_f64().unwrap_or(f64::MAX);
    assert!(pts < 0.5, "not cut at the first keyframe: {cut_on_b:#}");
    assert!(
        media.listed_hashes.contains(&matched_hash(&cut_on_b)),
        "{cut_on_b:#}"
    );

    // The key A banned is refused on C.
    c.assert_refuses("listed-on-a", &media.benign);

    // Hashes added through C's API cut a stream already running on A.
    let _other = publish_looping(&media.other, &a.url("other-on-a"));
    let fingerprint = key_fingerprint("other-on-a");
    wait_for_stream(
        a.admin,
        TOKEN,
        |stream| {
            stream["key_fingerprint"] == fingerprint.as_str()
                && stream["keyframes_analysed"].as_u64() >= Some(2)
        },
        "two analysed keyframes of other-on-a",
    );
    assert_eq!(a.records("other-on-a", "cut"), 0, "cut before the hashes");
    let added = c.post(
        "/v1/hashlists/known/hashes",
        &hashes_body(&media.other_hashes),
    );
    assert_eq!(added.status, 200, "{added:?}");
    let closed = a.livegate.session_closed_for_key("other-on-a", CUT);
    assert_eq!(closed["closer"], "policy", "{closed}");
    let cut = a.wait_for_record("other-on-a", "cut", Duration::from_secs(5));
    assert_eq!(cut["signal"]["list"], "known", "{cut:#}");
    assert!(media.other_hashes.contains(&matched_hash(&cut)), "{cut:#}");

    // An operator cut sent to B ends the stream C holds.
    let unknown = b.post("/v1/streams/zzzzzz-999999/cut", r#"{"reason":"nobody"}"#);
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let on_c = streams[2]["id"].as_str().expect("C's stream id");
    let operator = b.post(
        &format!("/v1/streams/{on_c}/cut"),
        r#"{"reason":"reported to node b"}"#,
    );
    assert_eq!(operator.status, 202, "{operator:?}");
    let closed = c.livegate.session_closed_for_key("flowing-on-node-c", CUT);
    assert_eq!(closed["closer"], "operator", "{closed}");
    let manual = c.wait_for_record("flowing-on-node-c", "manual_cut", Duration::from_secs(5));
    assert!(
        manual["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("reported to node b")),
        "{manual:#}"
    );
    assert_eq!(
        manual["actor"], "admin",
        "the operator travels with the request: {manual:#}"
    );

    // A cut by key fingerprint sent to C ends A's stream and bans the key on every node.
    let fingerprint = key_fingerprint("flowing-on-node-a");
    let by_key = c.post(
        &format!("/v1/keys/{fingerprint}/cut"),
        r#"{"reason":"stolen key"}"#,
    );
    assert_eq!(by_key.status, 202, "{by_key:?}");
    let answer = by_key.json();
    assert_eq!(answer["fingerprint"], fingerprint.as_str(), "{answer}");
    assert_eq!(answer["banned"], true, "{answer}");
    assert_eq!(
        answer["cut"],
        serde_json::json!([streams[0]["id"]]),
        "{answer}"
    );
    let closed = a.livegate.session_closed_for_key("flowing-on-node-a", CUT);
    assert_eq!(closed["closer"], "operator", "{closed}");
    b.assert_refuses("flowing-on-node-a", &media.benign);
    // Lifted on A (not the node that banned it): every node admits the key again.
    let lifted = a.post(
        &format!("/v1/bans/keys/{fingerprint}/lift"),
        r#"{"reason":"the owner proved the key was theirs"}"#,
    );
    assert_eq!(lifted.status, 200, "{lifted:?}");
    b.wait_admits("flowing-on-node-a", Duration::from_secs(10));
    c.wait_admits("flowing-on-node-a", Duration::from_secs(10));

    // B's own stream flowed through all of it.
    let (key, publisher) = &mut flowing[1];
    assert!(
        matches!(publisher.child.try_wait(), Ok(None)),
        "B's publisher stopped"
    );
    assert_eq!(b.live_stream(key)["state"], "publishing");
    assert!(b.livegate.closed_sessions().iter().all(|closed| {
        !closed["key"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&key_fingerprint(key))
    }));

    // What B's metrics say of it.
    let metrics = scrape(b.admin);
    assert_eq!(metric(&metrics, "livegate_cluster_connected"), 1.0);
    assert_eq!(metric(&metrics, "livegate_cluster_peers"), 2.0);
    assert!(metric(&metrics, "livegate_cluster_published_total{kind=\"ban\"}") >= 1.0);
    assert!(metric(&metrics, "livegate_cluster_published_total{kind=\"event\"}") >= 1.0);
    assert!(metric(&metrics, "livegate_cluster_applied_total{kind=\"hash\"}") >= 1.0);
    assert!(metric(&metrics, "livegate_cluster_applied_total{kind=\"ban\"}") >= 2.0);
    assert!(metric(&metrics, "livegate_cluster_apply_lag_seconds_count") >= 1.0);
}

#[test]
fn a_nats_outage_keeps_nodes_cutting_then_the_fleet_converges_and_a_late_node_catches_up() {
    let media = media();
    let mut fleet = Fleet::new(NatsServer::start());
    let a = fleet.start_node(NodeConfig {
        known: Some(&media.listed_list),
        ..NodeConfig::named("node-a")
    });
    let b = fleet.start_node(NodeConfig::named("node-b"));
    let c = fleet.start_node(NodeConfig::named("node-c"));
    wait_until_joined(&[&a, &b, &c], JOIN);
    let _flowing = publish_looping(&media.benign, &b.url("flowing-on-b"));
    let before = b.live_stream("flowing-on-b");

    fleet.nats.stop();
    for node in [&a, &b, &c] {
        node.wait_for_cluster("NATS to be gone", PROPAGATION, |cluster| {
            cluster["connected"] == false
        });
    }
    assert_eq!(metric(&scrape(a.admin), "livegate_cluster_connected"), 0.0);

    // Local decisions go on: A cuts what its own list knows, bans and learns; B takes
    // hashes through its API. They wait in the outboxes; no other node has them.
    assert_cut(&a, "cut-during-outage", &media.listed, "known");
    a.wait_for_hashes(LEARNED, 1, PROPAGATION);
    let added = b.post(
        "/v1/hashlists/known/hashes",
        &hashes_body(&media.other_hashes),
    );
    assert_eq!(added.status, 200, "{added:?}");
    for node in [&a, &b] {
        node.wait_for_cluster("decisions kept for NATS", PROPAGATION, |cluster| {
            counter(cluster, "outbox", "messages") >= 1
        });
    }
    assert_eq!(c.hashes_in(LEARNED), 0);
    assert_eq!(c.hashes_in("known"), 1);
    // B's stream flowed through the outage.
    let fingerprint = key_fingerprint("flowing-on-b");
    let sent_before = before["bytes_from_publisher"].as_u64().unwrap_or_default();
    wait_for_stream(
        b.admin,
        TOKEN,
        |stream| {
            stream["key_fingerprint"] == fingerprint.as_str()
                && stream["bytes_from_publisher"].as_u64() > Some(sent_before + 100_000)
        },
        "B's stream to keep flowing",
    );

    // NATS comes back with its store: every node reconnects, sends what it decided,
    // and applies what the others did.
    fleet.nats.start_again();
    wait_until_joined(&[&a, &b, &c], RECONNECT);
    for node in [&a, &b, &c] {
        let said = |start: &str| node.livegate.logs().iter().any(|line| logged(line, start));
        assert!(
            said("cluster unreachable"),
            "{}: the outage went unlogged",
            node.name
        );
        node.livegate.wait_for_logs(
            |lines| lines.iter().any(|line| logged(line, "cluster resynced")),
            RECONNECT,
            &format!("{}: the resync", node.name),
        );
    }
    for node in [&a, &b] {
        node.wait_for_cluster("its outbox sent", RECONNECT, |cluster| {
            counter(cluster, "outbox", "messages") == 0
        });
    }
    let known_on_a = (media.listed_hashes.len() + media.other_hashes.len()) as u64;
    a.wait_for_hashes("known", known_on_a, PROPAGATION);
    c.wait_for_hashes("known", 1 + media.other_hashes.len() as u64, PROPAGATION);
    for node in [&b, &c] {
        node.wait_for_hashes(LEARNED, 1, PROPAGATION);
        node.assert_refuses("cut-during-outage", &media.benign);
    }
    assert_cut(&c, "restream-on-c", &media.listed, LEARNED);
    let cut = assert_cut(&a, "other-on-a", &media.other, "known");
    assert!(media.other_hashes.contains(&matched_hash(&cut)), "{cut:#}");

    // A node started now gets the current state: the learned and added hashes, the bans.
    // Its own bans last 5 s.
    let d = fleet.start_node(NodeConfig {
        ban_seconds: 5,
        ..NodeConfig::named("node-d")
    });
    wait_until_joined(&[&a, &b, &c, &d], JOIN);
    d.wait_for_hashes(LEARNED, 1, PROPAGATION);
    d.wait_for_hashes("known", 1 + media.other_hashes.len() as u64, PROPAGATION);
    d.assert_refuses("cut-during-outage", &media.benign);
    assert_cut(&d, "restream-on-d", &media.listed, LEARNED);
    let banned_at = Instant::now();

    // D's short ban applies on the others while it lasts, and on no node after.
    a.assert_refuses("restream-on-d", &media.benign);
    assert!(
        banned_at.elapsed() < Duration::from_secs(5),
        "too slow to see the ban before it expired: {:?}",
        banned_at.elapsed()
    );
    thread::sleep((banned_at + Duration::from_secs(6)).saturating_duration_since(Instant::now()));
    for node in [&a, &b, &c, &d] {
        assert_admits(node, "restream-on-d", &media.benign);
    }
}

/// Publishes `clip` under `key` on `node` and asserts it is admitted (relayed and
/// analysed), then stops the publisher and waits for its session to end, so the origin
/// takes the same key from another node next.
fn assert_admits(node: &FleetNode, key: &str, clip: &Path) {
    let rejected = node.records(key, "rejected");
    let fingerprint = format!("#{}", key_fingerprint(key));
    let closed = || {
        node.livegate
            .closed_sessions()
            .iter()
            .filter(|line| {
                line["key"]
                    .as_str()
                    .is_some_and(|logged| logged.ends_with(&fingerprint))
            })
            .count()
    };
    let closed_before = closed();
    let publisher = publish_looping(clip, &node.url(key));
    let stream = node.live_stream(key);
    assert_eq!(stream["state"], "publishing", "{}: {stream}", node.name);
    assert_eq!(node.records(key, "rejected"), rejected, "{}", node.name);
    drop(publisher);
    node.livegate.wait_for_logs(
        |_| closed() > closed_before,
        Duration::from_secs(10),
        &format!("{}: the session of {key} to end", node.name),
    );
}

/// Whether the log line's message starts with `start` (the spec's words, then details).
fn logged(line: &Value, start: &str) -> bool {
    line["message"]
        .as_str()
        .is_some_and(|message| message.starts_with(start))
}

const NATS_TOKEN: &str = "nats-secret-token-0123456789";

/// `livegate check-config` on `node`'s config: whether it passed, and its output.
fn check_config(fleet: &Fleet, node: &NodeConfig, dir: &Path) -> (bool, String) {
    let path = dir.join("check.toml");
    let config = fleet.config(
        node,
        support::local(support::free_port()),
        &dir.join("audit"),
    );
    std::fs::write(&path, config).expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run livegate check-config");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn a_bad_cluster_config_names_its_key_and_a_node_without_nats_runs_locally() {
    let media = media();
    let mut fleet = Fleet::new(NatsServer::not_started(Some(NATS_TOKEN)));
    let dir = support::scratch_dir();

    let (ok, output) = check_config(&fleet, &NodeConfig::named("node-ok"), dir.path());
    assert!(ok && output.contains("[cluster]"), "{output}");
    let two_credentials = format!("token = \"{NATS_TOKEN}\"\ntoken_file = \"/etc/hostname\"");
    let bad = [
        (
            NodeConfig {
                servers: Some(vec![format!("nats://fleet:{NATS_TOKEN}@127.0.0.1:4222")]),
                ..NodeConfig::named("node-x")
            },
            &["cluster.servers[0]"][..],
        ),
        (
            NodeConfig {
                servers: Some(vec![]),
                ..NodeConfig::named("node-x")
            },
            &["cluster.servers"],
        ),
        (NodeConfig::named("not a node name"), &["cluster.node"]),
        (
            NodeConfig {
                cluster_keys: "prefix = \"live.gate\"",
                ..NodeConfig::named("node-x")
            },
            &["cluster.prefix"],
        ),
        (
            NodeConfig {
                cluster_keys: &two_credentials,
                ..NodeConfig::named("node-x")
            },
            &["cluster.token", "token_file"],
        ),
        (
            NodeConfig {
                ban_seconds: 700,
                cluster_keys: "ban_retention_seconds = 600",
                ..NodeConfig::named("node-x")
            },
            &["ban_retention_seconds", "ban_seconds"],
        ),
    ];
    for (node, keys) in &bad {
        let (ok, output) = check_config(&fleet, node, dir.path());
        assert!(!ok, "accepted: {output}");
        for key in *keys {
            assert!(output.contains(key), "{key} not named: {output}");
        }
        assert!(
            !output.contains(NATS_TOKEN),
            "the token was printed: {output}"
        );
    }
    // `run` refuses a bad config too, before listening, without printing its secret.
    let path = dir.path().join("bad.toml");
    let listen = support::local(support::free_port());
    std::fs::write(
        &path,
        fleet.config(&bad[0].0, listen, &dir.path().join("audit")),
    )
    .expect("write config");
    let output = Command::new(env!("CARGO_BIN_EXE_livegate"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .expect("run livegate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("cluster.servers[0]")
            && !stderr.contains(NATS_TOKEN),
        "{output:?}"
    );

    // NATS is down: a node starts anyway, relays and cuts on its own, and says so.
    let credentials = format!("token = \"{NATS_TOKEN}\"");
    let lone = fleet.start_node(NodeConfig {
        known: Some(&media.listed_list),
        cluster_keys: &credentials,
        ..NodeConfig::named("lone")
    });
    let strict_keys = format!("{credentials}\nready_requires_cluster = true");
    let strict = fleet.start_node(NodeConfig {
        cluster_keys: &strict_keys,
        ..NodeConfig::named("strict")
    });
    lone.livegate.wait_for_logs(
        |lines| {
            lines.iter().any(|line| {
                logged(line, "cluster unreachable")
                    && line["message"]
                        .as_str()
                        .is_some_and(|message| message.contains("running on local state"))
            })
        },
        PROPAGATION,
        "the unreachable warning",
    );
    let cluster = lone.cluster();
    assert_eq!(cluster["enabled"], true, "{cluster:#}");
    assert_eq!(cluster["connected"], false, "{cluster:#}");
    assert_eq!(cluster["node"], "lone", "{cluster:#}");
    assert_eq!(
        metric(&scrape(lone.admin), "livegate_cluster_connected"),
        0.0
    );
    assert_eq!(Request::get("/readyz").send(lone.admin).status, 200);
    assert_eq!(Request::get("/readyz").send(strict.admin).status, 503);

    let _flowing = publish_looping(&media.benign, &lone.url("flowing-without-nats"));
    let stream = lone.live_stream("flowing-without-nats");
    assert!(stream["bytes_from_origin"].as_u64() > Some(0), "{stream}");
    assert_cut(&lone, "listed-without-nats", &media.listed, "known");
    lone.assert_refuses("listed-without-nats", &media.benign);
    assert!(counter(&lone.cluster(), "outbox", "messages") >= 1);

    // NATS comes up: the node connects and publishes what it decided meanwhile.
    fleet.nats.start_again();
    lone.wait_for_cluster("connected with its outbox sent", RECONNECT, |cluster| {
        cluster["connected"] == true
            && counter(cluster, "outbox", "messages") == 0
            && counter(cluster, "published", "bans") >= 1
    });
    assert_eq!(
        metric(&scrape(lone.admin), "livegate_cluster_connected"),
        1.0
    );
    assert!(
        lone.livegate
            .logs()
            .iter()
            .any(|line| logged(line, "cluster connected"))
    );
    let fingerprint = key_fingerprint("listed-without-nats");
    let ban = last_message(
        &fleet.nats,
        "livegate_bans",
        &format!("livegate.bans.key.{fingerprint}"),
    );
    assert_eq!(ban["fingerprint"], fingerprint.as_str(), "{ban}");
    assert_eq!(ban["node"], "lone", "{ban}");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(ban["expires_at_ms"].as_u64() > Some(now_ms), "{ban}");
    let deadline = Instant::now() + RECONNECT;
    while Request::get("/readyz").send(strict.admin).status != 200 {
        assert!(Instant::now() < deadline, "strict node never got ready");
        thread::sleep(Duration::from_millis(100));
    }
    for node in [&lone, &strict] {
        assert!(
            !node.livegate.raw_log().contains(NATS_TOKEN),
            "{}: the NATS token reached the log",
            node.name
        );
        assert!(!node.cluster().to_string().contains(NATS_TOKEN));
    }
}
