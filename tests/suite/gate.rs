//! Gate mode (`mode = "gate"`) end to end, against a recording nginx-rtmp origin with
//! ffmpeg publishers: listed footage after a benign lead-in is cut and not one frame of
//! it is in the origin's recording (decoded and hashed with `livegate hash`); benign
//! streams, gated per keyframe or per GOP, reach the origin byte for byte; starved
//! analysis and a GOP too large to hold follow `on_hold_timeout`, counted in the metrics;
//! the classifier, named in `gate_signals`, holds keyframes until it answered, and its cut
//! awaiting confirmation cuts a gated stream at once; a publisher leaving while its
//! keyframe is judged has it delivered once cleared, and never when listed.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::http::{metric, scrape, wait_for_stream};
use support::{Livegate, NginxOrigin, Tee, free_port, local, publish_file};

/// Footage shared by the tests of this file (encoded once).
struct Media {
    dir: tempfile::TempDir,
    /// `known` footage's every frame, as a hash list.
    list: PathBuf,
    /// 3 s of benign footage, then 3 s of the known footage (a keyframe a second).
    listed_after_lead_in: PathBuf,
    /// 4 s of benign footage (a keyframe a second).
    benign: PathBuf,
}

fn media() -> &'static Media {
    static MEDIA: OnceLock<Media> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("media dir");
        let path = |name: &str| dir.path().join(name);
        support::encode_clip(&path("known.mp4"), support::MANDELBROT, 3);
        support::encode_clip(&path("lead-in.mp4"), support::TEST_PATTERN, 3);
        support::encode_clip(&path("benign.mp4"), support::CELLULAR_AUTOMATON, 4);
        let gop = support::x264_args(30);
        let (lead_in, known) = (path("lead-in.mp4"), path("known.mp4"));
        let out = path("listed.mp4");
        let mut args = vec![
            "-i",
            lead_in.to_str().expect("utf-8 path"),
            "-i",
            known.to_str().expect("utf-8 path"),
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1:a=0[v]",
            "-map",
            "[v]",
        ];
        args.extend(gop.iter().map(String::as_str));
        args.push(out.to_str().expect("utf-8 path"));
        support::ffmpeg(&args);
        let list = path("known.csv");
        // Every frame (30 fps).
        let hashes = support::livegate_hash(&["--every", EVERY_FRAME], &known);
        std::fs::write(&list, hashes).expect("write list");
        Media {
            benign: path("benign.mp4"),
            listed_after_lead_in: out,
            list,
            dir,
        }
    })
}

/// An `[[ingest]]` in gate mode on `listen` to `origin`, with extra `keys`.
fn gated_ingest(listen: SocketAddr, origin: SocketAddr, keys: &str) -> String {
    format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{listen}\"\norigin = \"{origin}\"\n\
         mode = \"gate\"\npublish_timeout_ms = 8000\n{keys}\n"
    )
}

/// The list `known` (action cut), an admin server, and `extra` config.
fn tables(extra: &str) -> String {
    format!(
        "[[hashlist]]\nname = \"known\"\npath = {:?}\naction = \"cut\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n{extra}\n",
        media().list.display().to_string()
    )
}

/// `livegate hash --every` seconds that hash every frame of a 30 fps video.
const EVERY_FRAME: &str = "0.033";

/// Every frame's PDQ hash of a recording, from `livegate hash`.
fn frame_hashes(file: &Path) -> Vec<String> {
    support::livegate_hash(&["--every", EVERY_FRAME], file)
        .lines()
        .filter_map(|line| line.split(',').next())
        .filter(|hash| hash.len() == 64)
        .map(str::to_string)
        .collect()
}

#[test]
fn gate_mode_lets_no_listed_frame_reach_the_origin() {
    let media = media();
    let origin = NginxOrigin::start();
    let (gated, passing) = (local(free_port()), local(free_port()));
    // The same stream through a pass-mode ingest beside it shows what gating prevents.
    let pass = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{passing}\"\norigin = \"{}\"\n",
        origin.addr
    );
    let token = "gate-test-token-0123456789";
    let config =
        gated_ingest(gated, origin.addr, "") + &pass + &tables(&format!("token = \"{token}\""));
    let livegate = Livegate::start(&config, 2);
    let _publishers = [(gated, "gated-listed"), (passing, "passed-listed")].map(|(listen, key)| {
        publish_file(
            &media.listed_after_lead_in,
            &format!("rtmp://{listen}/live/{key}"),
        )
    });
    // `/v1/streams` shows each stream's mode.
    let admin = livegate.admin_addr();
    for (listen, mode) in [(gated, "gate"), (passing, "pass")] {
        let ingest = listen.to_string();
        let stream = wait_for_stream(
            admin,
            token,
            |stream| stream["ingest"] == ingest.as_str(),
            "a stream on each ingest",
        );
        assert_eq!(stream["mode"], mode, "{stream}");
    }
    let listed: Vec<String> = std::fs::read_to_string(&media.list)
        .expect("list")
        .lines()
        .filter_map(|line| line.split(',').next())
        .filter(|hash| hash.len() == 64)
        .map(str::to_string)
        .collect();
    assert!(listed.len() >= 80, "{} listed hashes", listed.len());
    // Recorded frames within matching distance of the list, of the frames recorded.
    let listed_frames_recorded = |key: &str| {
        let closed = livegate.session_closed_for_key(key, Duration::from_secs(20));
        assert_eq!(closed["kind"], "policy_cut", "{closed}");
        let recording = support::finished_recording(&origin, key);
        let path = media.dir.path().join(format!("{key}.flv"));
        std::fs::write(&path, &recording).expect("write recording");
        let recorded = frame_hashes(&path);
        let matching = recorded
            .iter()
            .filter(|hash| {
                listed
                    .iter()
                    .any(|known| support::pdq_distance(hash, known) <= 31)
            })
            .count();
        (matching, recorded.len())
    };
    let (leaked, recorded) = listed_frames_recorded("gated-listed");
    // The lead-in went through (its keyframes were cleared), nothing listed did.
    assert!(recorded >= 30, "{recorded} frames of the lead-in recorded");
    assert_eq!(leaked, 0, "gate mode let {leaked} listed frames through");
    let (passed, _) = listed_frames_recorded("passed-listed");
    eprintln!("pass mode let {passed} listed frames reach the origin; gate mode none");
}

/// Publishes the benign clip through a gated ingest with `keys`, tees on both sides of
/// livegate; returns (bytes the publisher sent, bytes the origin got) and the scrape.
fn relay_benign(keys: &str) -> (support::StreamDigest, support::StreamDigest, String) {
    let origin = NginxOrigin::start();
    let origin_side = Tee::start(origin.addr);
    let listen = local(free_port());
    let config = gated_ingest(listen, origin_side.addr, keys) + &tables("");
    let livegate = Livegate::start(&config, 1);
    let publisher_side = Tee::start(listen);
    let key = "gated-benign";
    let mut publisher = publish_file(
        &media().benign,
        &format!("rtmp://{}/live/{key}", publisher_side.addr),
    );
    let status = publisher.wait_for(Duration::from_secs(20));
    assert!(
        status.is_some_and(|status| status.success()),
        "ffmpeg publish failed: {status:?}\n{}",
        livegate.raw_log()
    );
    let closed = livegate.session_closed_for_key(key, Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    let (sent, _) = publisher_side.digests(Duration::from_secs(10));
    let (arrived, _) = origin_side.digests(Duration::from_secs(10));
    (sent, arrived, scrape(livegate.admin_addr()))
}

fn assert_relayed_whole(keys: &str, what: &str) {
    let (sent, arrived, metrics) = relay_benign(keys);
    assert!(sent.bytes > 50_000, "{what}: publisher sent {sent:?}");
    assert_eq!(sent, arrived, "{what}: publisher→origin bytes changed");
    let held = metric(&metrics, "livegate_gate_hold_seconds_count");
    let seconds = metric(&metrics, "livegate_gate_hold_seconds_sum");
    // 4 s at a keyframe a second.
    assert!(held >= 4.0, "{what}: {held} keyframes held\n{metrics}");
    eprintln!(
        "{what}: {held} keyframes held, {:.1} ms on average",
        seconds / held * 1000.0
    );
    assert_eq!(metric(&metrics, "livegate_gate_held_bytes"), 0.0, "{what}");
    let timeouts =
        r#"livegate_gate_hold_timeouts_total{cause="max_hold_ms",on_hold_timeout="release"}"#;
    assert_eq!(metric(&metrics, timeouts), 0.0, "{what}");
}

#[test]
fn a_benign_stream_reaches_the_origin_byte_for_byte_gated_per_keyframe() {
    assert_relayed_whole("max_hold_ms = 5000", "gate = \"keyframe\"");
}

#[test]
fn a_benign_stream_reaches_the_origin_byte_for_byte_gated_per_gop() {
    assert_relayed_whole("gate = \"gop\"\nmax_hold_ms = 5000", "gate = \"gop\"");
}

#[test]
fn starved_analysis_and_a_huge_gop_follow_on_hold_timeout() {
    let media = media();
    let origin = NginxOrigin::start();
    let (released, cut, capped) = (local(free_port()), local(free_port()), local(free_port()));
    // A 1 ms hold: analysis (decode and hash) never answers in time.
    let config = [
        gated_ingest(
            released,
            origin.addr,
            "max_hold_ms = 1\non_hold_timeout = \"release\"",
        ),
        gated_ingest(
            cut,
            origin.addr,
            "max_hold_ms = 1\non_hold_timeout = \"cut\"",
        ),
        // A GOP never ends (gop mode, a keyframe every 10 s) past 300 kB held.
        gated_ingest(
            capped,
            origin.addr,
            "gate = \"gop\"\nmax_held_bytes = 300000\non_hold_timeout = \"cut\"\n\
             [ingest.limits]\nmax_message_bytes = 200000",
        ),
        tables("[analysis]\nworkers = 1\n"),
    ]
    .concat();
    let livegate = Livegate::start(&config, 3);
    let huge_gop = media.dir.path().join("huge-gop.mp4");
    let mut args: Vec<String> = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=640x360:r=30:d=5",
        "-b:v",
        "2M",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    args.extend(support::x264_args(300));
    args.push(huge_gop.display().to_string());
    support::ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let _publishers = [
        (released, "starved-released", &media.benign),
        (cut, "starved-cut", &media.benign),
        (capped, "huge-gop", &huge_gop),
    ]
    .map(|(listen, key, file)| publish_file(file, &format!("rtmp://{listen}/live/{key}")));

    let closed = livegate.session_closed_for_key("starved-cut", Duration::from_secs(15));
    assert_eq!(closed["kind"], "overload_cut", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("max_hold_ms")),
        "{closed}"
    );
    let closed = livegate.session_closed_for_key("huge-gop", Duration::from_secs(15));
    assert_eq!(closed["kind"], "over_limit", "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("max_held_bytes")),
        "{closed}"
    );
    let closed = livegate.session_closed_for_key("starved-released", Duration::from_secs(15));
    assert_eq!(closed["closer"], "publisher", "released, not cut: {closed}");
    let metrics = scrape(livegate.admin_addr());
    let count = |cause: &str, action: &str| {
        metric(
            &metrics,
            &format!(
                r#"livegate_gate_hold_timeouts_total{{cause="{cause}",on_hold_timeout="{action}"}}"#
            ),
        )
    };
    assert!(count("max_hold_ms", "release") >= 3.0, "{metrics}");
    assert_eq!(count("max_hold_ms", "cut"), 1.0, "{metrics}");
    assert_eq!(count("max_held_bytes", "cut"), 1.0, "{metrics}");
    // Released keyframes still reached the origin: the stream played to its end.
    let tags = support::flv_tags(&support::finished_recording(&origin, "starved-released"));
    assert!(
        tags.iter().filter(|tag| tag.type_id == 9).count() >= 100,
        "starved stream not relayed"
    );
}

#[test]
fn the_classifier_gates_keyframes_when_named_and_cuts_without_confirmation() {
    let origin = NginxOrigin::start();
    let dir = support::scratch_dir();
    let (with_classifier, hashes_only) = (local(free_port()), local(free_port()));
    // The tiny model always scores `second_channel` over the rule's threshold; the rule
    // asks for 2 of 3 samples, which a gated stream cannot wait for.
    let classifier = format!(
        "[classifier]\nmodel = \"{}\"\ninput_size = [8, 8]\n\
         labels = [\"first_channel\", \"second_channel\"]\nevery_nth_sample = 1\n\
         [[classifier.rule]]\nlabel = \"second_channel\"\nthreshold = 0.25\naction = \"cut\"\n\
         confirm_matches = 2\nconfirm_window = 3\n",
        crate::classifier_stream::tiny_model(dir.path()).display()
    );
    let config = [
        gated_ingest(
            with_classifier,
            origin.addr,
            "gate_signals = [\"pdq\", \"classifier\"]",
        ),
        gated_ingest(hashes_only, origin.addr, ""),
        tables(""),
        classifier,
    ]
    .concat();
    let livegate = Livegate::start(&config, 2);
    let _publishers = [
        (with_classifier, "classifier-gated"),
        (hashes_only, "hashes-gated"),
    ]
    .map(|(listen, key)| publish_file(&media().benign, &format!("rtmp://{listen}/live/{key}")));
    let video_recorded = |key: &str| {
        let closed = livegate.session_closed_for_key(key, Duration::from_secs(15));
        assert_eq!(closed["kind"], "policy_cut", "{closed}");
        let reason = closed["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("gate mode cuts without confirmation"),
            "{key}: {reason}"
        );
        let recording = support::finished_recording(&origin, key);
        if recording.is_empty() {
            return 0;
        }
        support::flv_tags(&recording)
            .iter()
            // Keyframes (frame type 1), not the sequence header (AVC packet type 0).
            .filter(|tag| tag.type_id == 9 && tag.body.get(..2) == Some(&[0x17, 1]))
            .count()
    };
    // Waiting for the classifier, the first keyframe never reached the origin.
    let leaked = video_recorded("classifier-gated");
    assert_eq!(
        leaked,
        0,
        "{}",
        livegate
            .raw_log()
            .lines()
            .filter(|line| line.contains("gate") || line.contains("classif"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Gated by the hashes only, a keyframe goes once they cleared it: the classifier's
    // cut usually comes after (a race with the relay, so only shown).
    let released = video_recorded("hashes-gated");
    eprintln!("gated by the hashes only: {released} keyframes reached the origin before the cut");
}

#[test]
fn the_descriptor_gates_keyframes_when_named() {
    // Real photographs the descriptor list holds and the hash list does not: only the
    // descriptor can judge them, so a gate waiting for it lets none of them through.
    let photos = crate::descriptor_stream::media();
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    let descriptor = format!(
        "[descriptor]\nmodel = \"{}\"\nruntime_library = \"{}\"\n\
         [[descriptorlist]]\nname = \"photos\"\npath = \"{}\"\n",
        crate::descriptor_stream::sscd_distilled().display(),
        support::onnx_runtime_library().display(),
        photos.list.display()
    );
    let config = [
        gated_ingest(
            listen,
            origin.addr,
            "gate_signals = [\"pdq\", \"descriptor\"]",
        ),
        tables(&descriptor),
    ]
    .concat();
    let livegate = Livegate::start(&config, 1);
    let _publisher = publish_file(
        &photos.listed,
        &format!("rtmp://{listen}/live/photos-gated"),
    );
    let closed = livegate.session_closed_for_key("photos-gated", Duration::from_secs(30));
    assert_eq!(closed["kind"], "policy_cut", "{closed}");
    let recording = support::finished_recording(&origin, "photos-gated");
    let keyframes = support::flv_tags(&recording)
        .iter()
        .filter(|tag| tag.type_id == 9 && tag.body.get(..2) == Some(&[0x17, 1]))
        .count();
    assert_eq!(keyframes, 0, "a listed keyframe reached the origin");
}

/// The FLV video tags (sequence header first, then frames) of `clip`, remuxed by ffmpeg.
fn video_tags(clip: &Path, name: &str) -> Vec<support::FlvTag> {
    let flv = media().dir.path().join(format!("{name}.flv"));
    let (input, output) = (
        clip.to_str().expect("utf-8 path"),
        flv.to_str().expect("utf-8 path"),
    );
    support::ffmpeg(&["-i", input, "-c", "copy", "-an", "-f", "flv", output]);
    let bytes = std::fs::read(&flv).expect("read the remuxed clip");
    support::flv_tags(&bytes)
        .into_iter()
        .filter(|tag| tag.type_id == 9)
        .collect()
}

#[test]
fn a_publisher_leaving_while_held_gets_its_judged_bytes_delivered_and_nothing_listed() {
    use livegate_rtmp::encode::{self, ChunkWriter};
    let media = media();
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    let config = gated_ingest(listen, origin.addr, "max_hold_ms = 5000") + &tables("");
    let livegate = Livegate::start(&config, 1);
    // The sequence header and the first keyframe, sent at once, then the publisher leaves:
    // the keyframe is still being judged when its connection closes.
    let send_and_leave = |listen: SocketAddr, key: &str, tags: &[support::FlvTag]| {
        let mut publisher = support::AttackPublisher::connect(listen, "live", key);
        let writer = ChunkWriter::default();
        let mut bytes = Vec::new();
        for tag in tags {
            writer.write_message(
                &mut bytes,
                encode::CSID_VIDEO,
                tag.timestamp,
                encode::TYPE_VIDEO,
                1,
                &tag.body,
            );
        }
        publisher.send(&bytes);
        publisher.finish_sending()
    };
    let benign = video_tags(&media.benign, "benign-tags");
    let sent = send_and_leave(listen, "leaves-benign", &benign[..2]);
    let closed = livegate.session_closed_for_key("leaves-benign", Duration::from_secs(10));
    assert_eq!(closed["closer"], "publisher", "{closed}");
    // Every byte went to the origin once the keyframe was cleared. (What the origin
    // reads of it depends on the close: see the README's known limits.)
    assert_eq!(
        closed["bytes_from_publisher"].as_u64(),
        Some(sent.len() as u64),
        "{closed}"
    );

    let known = video_tags(&media.dir.path().join("known.mp4"), "known-tags");
    let listed_sent = send_and_leave(listen, "leaves-listed", &known[..2]);
    let closed = livegate.session_closed_for_key("leaves-listed", Duration::from_secs(10));
    assert_eq!(closed["kind"], "policy_cut", "{closed}");
    let held_back = closed["bytes_from_publisher"].as_u64().unwrap_or(u64::MAX);
    assert!(held_back < listed_sent.len() as u64, "{closed}");
    let recording = support::finished_recording(&origin, "leaves-listed");
    let keyframes = if recording.is_empty() {
        0
    } else {
        support::flv_tags(&recording)
            .iter()
            .filter(|tag| tag.type_id == 9 && tag.body.get(..2) == Some(&[0x17, 1]))
            .count()
    };
    assert_eq!(keyframes, 0, "the listed keyframe reached the origin");
}

#[test]
fn a_shutdown_while_a_gop_is_held_sends_the_origin_none_of_it() {
    use livegate_rtmp::encode::{self, ChunkWriter};
    let media = media();
    let origin = NginxOrigin::start();
    let listen = local(free_port());
    // A GOP waits for the next keyframe, which never comes: the first GOP stays held.
    let token = "gate-test-token-0123456789";
    let config = gated_ingest(listen, origin.addr, "gate = \"gop\"\nmax_hold_ms = 30000")
        + "[server]\nshutdown_grace_ms = 300\n"
        + &tables(&format!("token = \"{token}\""));
    let mut livegate = Livegate::start(&config, 1);
    let admin = livegate.admin_addr();
    let tags = video_tags(&media.benign, "shutdown-tags");
    let mut publisher = support::AttackPublisher::connect(listen, "live", "held-at-shutdown");
    let writer = ChunkWriter::default();
    let message = |bytes: &mut Vec<u8>, tag: &support::FlvTag| {
        writer.write_message(
            bytes,
            encode::CSID_VIDEO,
            tag.timestamp,
            encode::TYPE_VIDEO,
            1,
            &tag.body,
        );
    };
    let (mut header, mut gop) = (Vec::new(), Vec::new());
    message(&mut header, &tags[0]);
    // The keyframe and the frames after it, short of the next keyframe.
    for tag in &tags[1..12] {
        message(&mut gop, tag);
    }
    assert!(
        tags[2..12]
            .iter()
            .all(|tag| tag.body.first() != Some(&0x17)),
        "a second keyframe in the held GOP"
    );
    publisher.send(&header);
    publisher.send(&gop);
    wait_for_stream(
        admin,
        token,
        |stream| stream["keyframes_analysed"].as_u64() >= Some(1),
        "the held GOP's keyframe analysed",
    );
    livegate.signal("TERM");
    let closed = livegate.session_closed_for_key("held-at-shutdown", Duration::from_secs(10));
    assert_eq!(closed["closer"], "shutdown", "{closed}");
    // Everything before the keyframe went on; nothing of the held GOP did, not even part
    // of a message.
    let before_keyframe = (publisher.sent.len() - gop.len()) as u64;
    assert_eq!(
        closed["bytes_from_publisher"].as_u64(),
        Some(before_keyframe),
        "{closed}"
    );
    assert!(livegate.process.wait_for(Duration::from_secs(10)).is_some());
    let recording = support::finished_recording(&origin, "held-at-shutdown");
    let video_frames = support::flv_tags(&recording)
        .iter()
        .filter(|tag| tag.type_id == 9 && tag.body.get(1) == Some(&1))
        .count();
    assert_eq!(video_frames, 0, "a held frame reached the origin");
}
