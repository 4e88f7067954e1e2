//! Evidence frames and the review API against the livegate binary, nginx-rtmp and ffmpeg
//! publishers: an alert keeps its keyframe as a JPEG of the configured width that hashes
//! near the listed footage, benign streams keep none, thumbnails of live streams are
//! served (and only when on), confirming a frame makes the next stream of that footage
//! cut, dismissing it with the key allowlisted is audited and turns the key's cuts into
//! alerts, and unknown or malformed ids are 404.

use crate::support;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::http::{HttpResponse, Request, wait_for_stream};
use support::{Livegate, NginxOrigin, free_port, local};

const TOKEN: &str = "evidence-test-token-0123456789";
const CLIP_SECONDS: u32 = 5;
/// Generous: the first keyframe is analysed within a second of publishing.
const WAIT: Duration = Duration::from_secs(10);

/// Footage shared by the tests: two listed clips and a benign one, with the lists
/// `livegate hash` makes of the listed ones.
struct Media {
    dir: tempfile::TempDir,
}

impl Media {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let media = Media {
            dir: tempfile::tempdir().expect("media dir"),
        };
        for (name, source) in [
            ("watched", support::MANDELBROT),
            ("listed", support::CELLULAR_AUTOMATON),
            ("benign", support::TEST_PATTERN),
        ] {
            let clip = media.path(&format!("{name}.mp4"));
            support::encode_clip(&clip, source, CLIP_SECONDS);
            let list = support::livegate_hash(&["--keyframes"], &clip);
            std::fs::write(media.path(&format!("{name}.csv")), list).expect("write list");
        }
        std::fs::write(media.path("empty.csv"), "# confirmed footage\n").expect("write list");
        media
    })
}

/// livegate in front of nginx-rtmp with `lists` (`[[hashlist]]` tables), an admin token,
/// an audit log and `evidence` (the `[evidence]` lines).
struct Stack {
    _origin: NginxOrigin,
    livegate: Livegate,
    listen: SocketAddr,
    admin: SocketAddr,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(lists: &str, evidence: &str) -> Stack {
        let origin = NginxOrigin::start();
        let dir = support::scratch_dir();
        let audit = dir.path().join("audit.jsonl");
        let listen = local(free_port());
        let config = format!(
            "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{}\"\n\
             {lists}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [actuator]\naudit_log = \"{}\"\nban_seconds = 60\n\
             [evidence]\n{evidence}\n",
            origin.addr,
            audit.display()
        );
        let livegate = Livegate::start(&config, 1);
        let admin = livegate.admin_addr();
        Stack {
            _origin: origin,
            livegate,
            listen,
            admin,
            audit,
            _dir: dir,
        }
    }

    fn publish(&self, clip: &str, key: &str) -> support::ChildGuard {
        let url = format!("rtmp://{}/live/{key}", self.listen);
        support::publish_file(&media().path(&format!("{clip}.mp4")), &url)
    }

    fn record(&self, key: &str, event: &str) -> Value {
        support::wait_for_audit_record(&self.audit, key, event, WAIT)
            .unwrap_or_else(|| panic!("no {event} record for {key}: {:?}", self.livegate.raw_log()))
    }

    fn get(&self, path: &str) -> HttpResponse {
        Request::get(path).token(TOKEN).send(self.admin)
    }

    fn post(&self, path: &str, body: &Value) -> HttpResponse {
        let body = body.to_string();
        Request::post(path, body.as_bytes())
            .token(TOKEN)
            .send(self.admin)
    }
}

fn hashlist(name: &str, file: &str, action: &str) -> String {
    format!(
        "[[hashlist]]\nname = \"{name}\"\npath = {:?}\naction = \"{action}\"\nallow_empty = true\n",
        media().path(file).display().to_string()
    )
}

/// The nearest distance from `hash` to a hash of the list file `list`.
fn nearest(hash: &str, list: &Path) -> u32 {
    std::fs::read_to_string(list)
        .expect("list")
        .lines()
        .filter_map(|line| line.split(',').next())
        .filter(|hash| hash.len() == 64)
        .map(|listed| support::pdq_distance(hash, listed))
        .min()
        .expect("a listed hash")
}

fn assert_jpeg(response: &HttpResponse) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("content-type"), Some("image/jpeg"));
    assert_eq!(&response.bytes[..2], &[0xff, 0xd8], "a JPEG");
}

#[test]
fn an_alert_keeps_its_keyframe_and_confirming_it_cuts_the_next_stream_of_that_footage() {
    let lists = format!(
        "{}{}",
        hashlist("watch", "watched.csv", "alert"),
        hashlist("confirmed", "empty.csv", "cut")
    );
    let stack = Stack::start(
        &lists,
        "width = 320\nthumbnails = true\nthumbnail_interval_ms = 500",
    );
    let _alerted = stack.publish("watched", "alerted");
    let _benign = stack.publish("benign", "benign");

    let alert = stack.record("alerted", "alert");
    let id = alert["evidence"]
        .as_str()
        .expect("the alert names its evidence");
    let jpeg = stack.get(&format!("/v1/evidence/{id}"));
    assert_jpeg(&jpeg);
    let dir = support::scratch_dir();
    let file = dir.path().join("evidence.jpg");
    std::fs::write(&file, &jpeg.bytes).expect("write jpeg");
    let probe = support::probe_video(&file);
    assert_eq!(
        (probe.codec.as_str(), probe.width, probe.height),
        ("mjpeg", 320, 180)
    );
    // The frame is the listed footage: its PDQ is within a match of the list.
    let hash = support::livegate_hash(&[], &file);
    let hash = hash.split(',').next().expect("a hash line");
    let distance = nearest(hash, &media().path("watched.csv"));
    assert!(
        distance <= 31,
        "evidence hashes {distance} bits from the list"
    );

    let info = stack.get(&format!("/v1/evidence/{id}/info")).json();
    assert_eq!(info["event"], "alert");
    assert_eq!(info["key_fingerprint"], support::key_fingerprint("alerted"));
    assert_eq!(info["signal"]["list"], "watch");
    assert_eq!(info["review"]["state"], "open");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(320), Some(180))
    );
    let pdq = info["pdq"].as_str().expect("the analysed hash");
    assert!(support::pdq_distance(pdq, hash) <= 31, "{pdq} vs {hash}");
    let queue = stack.get("/v1/review").json();
    assert!(
        queue["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|item| item["id"] == id)),
        "{queue}"
    );

    // The benign stream has a thumbnail and no evidence.
    let benign = wait_for_stream(
        stack.admin,
        TOKEN,
        |stream| {
            stream["key_fingerprint"] == support::key_fingerprint("benign")
                && stream["thumbnail"] == true
        },
        "the benign stream's thumbnail",
    );
    assert_eq!(benign["resolution"], "640x360");
    let stream_id = benign["id"].as_str().expect("id");
    assert_jpeg(&stack.get(&format!("/v1/streams/{stream_id}/thumbnail")));
    let all = stack.get("/v1/review?state=all").json();
    assert!(
        all["items"].as_array().is_some_and(|items| items
            .iter()
            .all(|item| item["key_fingerprint"] != support::key_fingerprint("benign"))),
        "{all}"
    );

    // Unknown and malformed ids say nothing more than 404.
    for path in [
        "/v1/evidence/0123456789abcdef",
        "/v1/evidence/0123456789ABCDEF",
        "/v1/evidence/..%2f..%2fetc/info",
        "/v1/evidence/x/info",
        "/v1/streams/nope/thumbnail",
    ] {
        assert_eq!(stack.get(path).status, 404, "{path}");
    }
    let confirm_unknown = stack.post(
        "/v1/evidence/0123456789abcdef/confirm",
        &serde_json::json!({ "list": "confirmed" }),
    );
    assert_eq!(confirm_unknown.status, 404, "{confirm_unknown:?}");

    // Confirm: the frame's hash joins the cut list, once.
    let confirm = stack.post(
        &format!("/v1/evidence/{id}/confirm"),
        &serde_json::json!({ "list": "confirmed", "reason": "known footage, seen by a reviewer" }),
    );
    assert_eq!(confirm.status, 200, "{confirm:?}");
    assert_eq!(confirm.json()["added_hashes"], 1);
    assert_eq!(confirm.json()["review"]["state"], "confirmed");
    let again = stack.post(
        &format!("/v1/evidence/{id}/confirm"),
        &serde_json::json!({ "list": "confirmed" }),
    );
    assert_eq!(again.status, 409, "{again:?}");
    let confirmed = stack.record("alerted", "evidence_confirmed");
    assert_eq!(confirmed["evidence"], id);
    // The single token acts as "admin".
    assert_eq!(confirmed["actor"], "admin");
    assert_eq!(confirm.json()["review"]["actor"], "admin");
    let hashlists = stack.get("/v1/hashlists").json();
    assert!(
        hashlists["hashlists"].as_array().is_some_and(|lists| lists
            .iter()
            .any(|list| list["name"] == "confirmed" && list["added_at_runtime"] == 1)),
        "{hashlists}"
    );

    // The next stream of that footage is cut, with its own evidence.
    let _replay = stack.publish("watched", "replayed");
    let cut = stack.record("replayed", "cut");
    assert_eq!(cut["signal"]["list"], "confirmed", "{cut}");
    let cut_id = cut["evidence"]
        .as_str()
        .expect("the cut names its evidence");
    assert_eq!(
        stack.get(&format!("/v1/evidence/{cut_id}/info")).json()["event"],
        "cut"
    );
}

#[test]
fn dismissing_with_the_key_allowlisted_is_audited_and_turns_its_cuts_into_alerts() {
    let lists = format!(
        "{}{}",
        hashlist("watch", "watched.csv", "alert"),
        hashlist("known", "listed.csv", "cut")
    );
    let stack = Stack::start(&lists, "");
    let first = stack.publish("watched", "reviewed-key");
    let alert = stack.record("reviewed-key", "alert");
    let id = alert["evidence"].as_str().expect("evidence");

    // Thumbnails are off by default.
    let stream = wait_for_stream(
        stack.admin,
        TOKEN,
        |stream| stream["key_fingerprint"] == support::key_fingerprint("reviewed-key"),
        "the reviewed stream",
    );
    assert_eq!(stream["thumbnail"], false);
    let thumbnail = stack.get(&format!(
        "/v1/streams/{}/thumbnail",
        stream["id"].as_str().expect("id")
    ));
    assert_eq!(thumbnail.status, 404, "{thumbnail:?}");

    let dismissed = stack.post(
        &format!("/v1/evidence/{id}/dismiss"),
        &serde_json::json!({ "reason": "our own broadcast", "allowlist_key": true }),
    );
    assert_eq!(dismissed.status, 200, "{dismissed:?}");
    let fingerprint = support::key_fingerprint("reviewed-key");
    assert_eq!(dismissed.json()["allowlisted"], fingerprint.as_str());
    let record = stack.record("reviewed-key", "evidence_dismissed");
    assert_eq!(record["evidence"], id);
    assert_eq!(record["actor"], "admin");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("our own broadcast")),
        "{record}"
    );
    let allowlist = stack.get("/v1/allowlist").json();
    assert_eq!(
        allowlist["allowlist"][0]["key_fingerprint"],
        fingerprint.as_str()
    );
    assert_eq!(
        stack
            .post(
                &format!("/v1/evidence/{id}/dismiss"),
                &serde_json::json!({})
            )
            .status,
        409
    );
    drop(first);

    // The key's next stream shows cut-listed footage: alerted, not cut.
    let mut second = stack.publish("listed", "reviewed-key");
    let allowlisted = support::wait_for_audit_record(&stack.audit, "reviewed-key", "alert", WAIT);
    let deadline = std::time::Instant::now() + WAIT;
    let alerted = loop {
        let records = support::audit_records(&stack.audit);
        let found = support::records_for(&records, "reviewed-key", "alert")
            .into_iter()
            .find(|record| {
                record["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("allowlisted"))
            })
            .cloned();
        if found.is_some() || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(allowlisted.is_some());
    let alerted = alerted.expect("an allowlisted alert");
    assert_eq!(alerted["signal"]["list"], "known", "{alerted}");
    assert!(
        second.wait_for(Duration::from_millis(500)).is_none(),
        "the allowlisted publisher is still streaming"
    );
    let records = support::audit_records(&stack.audit);
    assert!(support::records_for(&records, "reviewed-key", "cut").is_empty());

    // Removing the key is audited; it is gone.
    let path = format!("/v1/allowlist/{fingerprint}/remove");
    let removed = stack.post(&path, &serde_json::json!({ "reason": "review over" }));
    assert_eq!(removed.status, 200, "{removed:?}");
    stack.record("reviewed-key", "allowlist_removed");
    assert_eq!(stack.post(&path, &serde_json::json!({})).status, 404);
}
