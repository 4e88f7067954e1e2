//! The review console in a real browser (headless Chromium through chromedriver) against
//! a real livegate, nginx-rtmp origin and ffmpeg publishers.

use crate::support;

use support::browser::Browser;
use support::{Livegate, UNRELATED_HASH, free_port, local};

const TOKEN: &str = "console-test-token-0123456789";

#[test]
fn the_browser_reads_the_admin_servers_pages() {
    let dir = support::scratch_dir();
    let list = dir.path().join("known.csv");
    std::fs::write(&list, format!("{UNRELATED_HASH},100,first\n")).expect("list");
    let config = format!(
        "[[ingest]]\nprotocol = \"rtmp\"\nlisten = \"{}\"\norigin = \"{}\"\n\
         [[hashlist]]\nname = \"known\"\npath = {:?}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
        local(free_port()),
        support::start_closing_origin(usize::MAX),
        list.display().to_string()
    );
    let livegate = Livegate::start(&config, 1);
    let admin = livegate.admin_addr();
    let browser = Browser::start(&dir.path().join("screenshots"));
    browser.goto(&format!("http://{admin}/openapi.json"));
    let text = browser.text("body");
    assert!(text.contains("/v1/streams"), "{text}");
    let size = browser.execute("return [window.outerWidth, window.outerHeight]", &[]);
    assert_eq!(size, serde_json::json!([1366, 768]));
    let shot = browser.screenshot("harness-openapi");
    assert!(std::fs::metadata(shot).expect("screenshot").len() > 1000);
}
