//! The review console in a real browser (headless Chromium driven through chromedriver)
//! against a real livegate, nginx-rtmp origin and ffmpeg publishers: a wrong token is
//! refused and the right one opens the console; a live stream shows with its thumbnail
//! and its alert with the evidence frame; a click on cut takes the publisher off the
//! origin and the audit names who cut; confirming an alert's frame into a cut list cuts
//! the next stream showing that footage; a dismissal is recorded; a list label holding
//! markup shows as text. Every page is photographed into the test's directory and
//! `target/console-screenshots/`.

use crate::support;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use support::browser::Browser;
use support::{ChildGuard, GateStack, MANDELBROT, UNRELATED_HASH};

/// A reviewer's named token: the console shows the name, the audit records it as the actor.
const CALLER: &str = "alice";
const TOKEN: &str = "alice-browser-token-0123456789";
/// The listed footage: one keyframe a second, each far from the others.
const CLIP_SECONDS: u32 = 4;

/// A reviewer's setup: livegate in front of a recording origin with the alert list
/// `watch` (every keyframe of the footage, labelled as the test says), the cut list
/// `known` (one unrelated hash), the admin API with a token, thumbnails on; and a browser.
struct Console {
    stack: GateStack,
    admin: SocketAddr,
    browser: Browser,
    footage: PathBuf,
    /// Entries of `watch`.
    listed: usize,
    _dir: tempfile::TempDir,
}

impl Console {
    fn start(label: &str) -> Console {
        let dir = support::scratch_dir();
        let footage = dir.path().join("footage.mp4");
        support::encode_clip(&footage, MANDELBROT, CLIP_SECONDS);
        let hashes = support::keyframe_hashes(&footage);
        let watch = dir.path().join("watch.csv");
        let lines: String = hashes
            .iter()
            .enumerate()
            .map(|(second, hash)| format!("{hash},100,{label},{second}.000\n"))
            .collect();
        std::fs::write(&watch, lines).expect("write watch list");
        let known = dir.path().join("known.csv");
        std::fs::write(&known, format!("{UNRELATED_HASH},100,unrelated.png\n"))
            .expect("write known list");
        let tables = format!(
            "[[hashlist]]\nname = \"watch\"\npath = {watch:?}\naction = \"alert\"\n\
             [[hashlist]]\nname = \"known\"\npath = {known:?}\naction = \"cut\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [[admin.tokens]]\nname = \"{CALLER}\"\ntoken = \"{TOKEN}\"\n\
             [evidence]\nthumbnails = true\nthumbnail_interval_ms = 500\n",
            watch = watch.display().to_string(),
            known = known.display().to_string(),
        );
        let stack = GateStack::start_with(&tables, "mode = \"enforce\"");
        let admin = stack.livegate.admin_addr();
        let browser = Browser::start(&dir.path().join("screenshots"));
        Console {
            stack,
            admin,
            browser,
            footage,
            listed: hashes.len(),
            _dir: dir,
        }
    }

    fn console_url(&self) -> String {
        format!("http://{}/console", self.admin)
    }

    /// Publishes the footage once under `key`.
    fn publish(&self, key: &str) -> ChildGuard {
        support::publish_file(&self.footage, &self.rtmp_url(key))
    }

    fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.stack.listen)
    }

    fn log_in(&self) {
        self.browser.goto(&self.console_url());
        self.browser.type_into("input#token", TOKEN);
        self.browser.click("button#login-submit");
        let signed_in = self.browser.text("#signed-in");
        assert!(signed_in.contains(CALLER), "{signed_in}");
    }

    /// The audit record of `event` for `key`, failing the test after 10 s.
    fn record(&self, key: &str, event: &str) -> Value {
        self.stack
            .wait_for_record(key, event, Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "no {event} record for {key}: {:#?}\nlivegate log:\n{}",
                    support::audit_records(&self.stack.audit),
                    self.stack.livegate.raw_log()
                )
            })
    }

    /// The session cookie the browser holds, if any.
    fn session_cookie(&self) -> Option<Value> {
        self.browser
            .cookies()
            .into_iter()
            .find(|cookie| cookie["name"] == "livegate_session")
    }

    /// The audit records of `event` (any stream).
    fn records(&self, event: &str) -> Vec<Value> {
        support::audit_records(&self.stack.audit)
            .into_iter()
            .filter(|record| record["event"] == event)
            .collect()
    }
}

const STREAM_ROW: &str = "#streams-table tbody tr[data-stream-id]";
const REVIEW_ITEM: &str = "#review-queue > li[data-evidence-id]";

#[test]
fn a_reviewer_logs_in_sees_the_stream_and_its_alert_and_cuts_it() {
    let console = Console::start("listed-clip.mp4");
    let browser = &console.browser;

    // A wrong token: the form says so and no session is opened.
    browser.goto(&console.console_url());
    browser.wait_for("form#login");
    browser.screenshot("login");
    browser.type_into("input#token", "not-the-token");
    browser.click("button#login-submit");
    browser.wait_for_text("#login-error", "Wrong token");
    assert!(browser.find_displayed("#signed-in").is_none());
    assert_eq!(console.session_cookie(), None, "{:?}", browser.cookies());

    console.log_in();
    let cookie = console
        .session_cookie()
        .expect("a session cookie once logged in");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");

    // The live stream, with the thumbnail of its latest analysed keyframe.
    let key = "console-live-stream-key";
    let mut publisher = support::publish_looping(&console.footage, &console.rtmp_url(key));
    browser.wait_for(STREAM_ROW);
    let (width, _) = browser.wait_for_image(&format!("{STREAM_ROW} img.thumbnail"));
    assert!(width > 0);
    let row = browser.wait_for_text(STREAM_ROW, "640x360");
    assert!(row.contains("live"), "{row}");
    let html = browser.execute("return document.documentElement.outerHTML", &[]);
    assert!(
        !html.as_str().unwrap_or_default().contains(key),
        "the stream key is in the page"
    );
    browser.screenshot("streams");

    // Its alert, with the evidence frame beside the matched entry.
    browser.click("a#nav-review");
    browser.wait_for(REVIEW_ITEM);
    let (width, _) = browser.wait_for_image(&format!("{REVIEW_ITEM} img.evidence"));
    assert!(width > 0);
    let item = browser.text(REVIEW_ITEM);
    for expected in ["alert", "open", "listed-clip.mp4", "watch"] {
        assert!(item.contains(expected), "{expected:?} not in {item}");
    }
    browser.screenshot("review");

    // Cut, with a reason: the origin loses the publisher, the audit names the reviewer.
    browser.click("a#nav-streams");
    browser.click(&format!("{STREAM_ROW} button.cut"));
    browser.wait_for("dialog#cut-dialog");
    let reason = "the listed clip, seen in the review queue";
    browser.type_into("textarea#cut-reason", reason);
    browser.screenshot("cut-dialog");
    browser.click("button#cut-submit");
    // A looping publisher stops only when its connection is cut.
    let status = publisher.wait_for(Duration::from_secs(10));
    assert!(
        status.is_some(),
        "ffmpeg still publishing after the cut\n{}",
        console.stack.livegate.raw_log()
    );
    browser.wait_until("the origin to close the stream's recording", || {
        (!console.stack.origin.recording_open(key)).then_some(())
    });
    assert!(
        std::fs::metadata(console.stack.origin.recording(key)).is_ok_and(|meta| meta.len() > 0),
        "the origin never recorded the stream"
    );
    let cut = console.record(key, "manual_cut");
    assert_eq!(cut["actor"], CALLER, "{cut}");
    assert!(
        cut["reason"]
            .as_str()
            .is_some_and(|text| text.contains(reason)),
        "{cut}"
    );
    browser.wait_for_none(STREAM_ROW);

    browser.click("a#nav-history");
    let history = browser.text("#history-table tbody tr[data-event=\"manual_cut\"]");
    assert!(history.contains(CALLER), "{history}");
    browser.screenshot("history");

    browser.click("a#nav-lists");
    let count = browser.text("#hashlists-table tbody tr[data-list=\"watch\"] .count");
    assert_eq!(count, console.listed.to_string());
    browser.screenshot("lists");
}

#[test]
fn confirming_an_alert_cuts_the_next_stream_with_that_footage_and_a_dismissal_is_recorded() {
    // The label is markup: it must show as text and never run.
    let label = "<img src=x onerror=\"window.__xss=1\">";
    let console = Console::start(label);
    let browser = &console.browser;
    console.log_in();

    let first = "console-first-stream-key";
    let mut publisher = console.publish(first);
    browser.click("a#nav-review");
    // Every keyframe of the footage is alerted; two items are enough.
    browser.wait_until("two review items", || {
        (browser.find_all(REVIEW_ITEM).len() >= 2).then_some(())
    });
    let item = browser.text(REVIEW_ITEM);
    assert!(
        item.contains(label),
        "the label is not shown as text: {item}"
    );
    assert_eq!(
        browser.execute(
            "return [typeof window.__xss, document.querySelectorAll('#review-queue img:not(.evidence)').length]",
            &[]
        ),
        serde_json::json!(["undefined", 0])
    );
    let status = publisher.wait_for(Duration::from_secs(CLIP_SECONDS as u64 + 10));
    assert!(
        status.is_some_and(|status| status.success()),
        "an alert list must not cut: {status:?}"
    );

    // Confirm the newest item into the cut list `known`.
    let ids: Vec<String> = browser
        .find_all(REVIEW_ITEM)
        .iter()
        .filter_map(|item| item.attribute("data-evidence-id").ok().flatten())
        .collect();
    let confirmed = &ids[0];
    let dismissed = &ids[1];
    let confirmed_item = format!("{REVIEW_ITEM}[data-evidence-id=\"{confirmed}\"]");
    browser.wait_for_image(&format!("{confirmed_item} img.evidence"));
    browser.click(&format!("{confirmed_item} button.confirm"));
    browser.wait_for("dialog#confirm-dialog");
    browser.click("select#confirm-list option[value=\"known\"]");
    browser.type_into("textarea#confirm-reason", "confirmed: the listed clip");
    browser.screenshot("confirm-dialog");
    browser.click("button#confirm-submit");
    browser.wait_for_text("#status", "Confirmed");
    let confirmation = console.records("evidence_confirmed");
    assert!(
        confirmation
            .iter()
            .any(|record| record["evidence"] == confirmed.as_str() && record["actor"] == CALLER),
        "{confirmation:#?}"
    );

    // The next stream showing that frame is cut by the list `known`.
    let second = "console-second-stream-key";
    let mut publisher = console.publish(second);
    let cut = console.record(second, "cut");
    assert_eq!(cut["signal"]["list"], "known", "{cut}");
    let status = publisher.wait_for(Duration::from_secs(10));
    assert!(
        status.is_some_and(|status| !status.success()),
        "the second stream was not cut: {status:?}"
    );

    // Dismiss another item: recorded with the reason and the reviewer.
    let dismissed_item = format!("{REVIEW_ITEM}[data-evidence-id=\"{dismissed}\"]");
    browser.click(&format!("{dismissed_item} button.dismiss"));
    browser.wait_for("dialog#dismiss-dialog");
    let reason = "a look-alike, not the listed clip";
    browser.type_into("textarea#dismiss-reason", reason);
    browser.click("button#dismiss-submit");
    browser.wait_for_text("#status", "Dismissed");
    let dismissal = console.records("evidence_dismissed");
    assert!(
        dismissal
            .iter()
            .any(|record| record["evidence"] == dismissed.as_str()
                && record["actor"] == CALLER
                && record["reason"]
                    .as_str()
                    .is_some_and(|text| text.contains(reason))),
        "{dismissal:#?}"
    );
    // Reviewed items leave the open queue; with reviewed ones shown, each says its state.
    browser.wait_for_none(&dismissed_item);
    browser.click("input#review-all");
    browser.wait_for_text(&format!("{dismissed_item} .review-state"), "dismissed");
    browser.wait_for_text(&format!("{confirmed_item} .review-state"), "confirmed");
    assert_eq!(
        browser.execute("return typeof window.__xss", &[]),
        "undefined"
    );
    browser.screenshot("review-reviewed");
}
