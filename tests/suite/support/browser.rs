//! A real browser for the console tests: Debian's `chromedriver` driving headless
//! `chromium` over WebDriver (W3C JSON over HTTP), with helpers that find elements by CSS
//! selector, click, type, read text, run a script, wait for a condition (naming the
//! selector when it times out) and save screenshots.
//!
//! The client is the suite's own blocking HTTP client ([`super::http::Request`]) speaking
//! the dozen WebDriver commands the tests need, not `fantoccini`: the tests are blocking
//! like the rest of the suite (no runtime to start and block on), and the workspace gains
//! no dependency tree (fantoccini brings `webdriver`, `cookie`, `url` and an HTTP client
//! stack) for what is a few JSON requests.
//!
//! chromedriver runs in a process group of its own with every Chromium process it starts
//! (Chromium's crash handlers leave the group but exit when Chromium goes): dropping the
//! [`Browser`], also while a failed test unwinds, quits the session, kills the group and
//! removes the temporary profile.

use super::ChildGuard;
use super::http::Request;
use base64::Engine;
use serde_json::{Value, json};
use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the helpers wait for a selector or a condition: the console polls every
/// 2 s, and a loaded CI machine runs the other tests beside this one.
pub const WAIT: Duration = Duration::from_secs(15);

/// The window the console must be usable in (the smallest desktop screen);
/// Chromium's own bars leave the page 1366×625, the size of the screenshots.
pub const WINDOW: (u32, u32) = (1366, 768);

/// W3C WebDriver's key of an element reference in JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags on this closed network: headless as root; no background
/// connections (updates, sync, field trials, QUIC probes) that the network refuses.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// An error chromedriver answered (`no such element`, `stale element reference`…).
#[derive(Debug)]
pub struct WebDriverError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message)
    }
}

/// One headless Chromium session; everything it started dies with it.
pub struct Browser {
    driver: SocketAddr,
    session: String,
    screenshots: PathBuf,
    /// Dropped after the quit in [`Browser`]'s `drop`, before the profile is removed.
    _process: DriverProcess,
    /// The profile (`--user-data-dir`) and chromedriver's log, removed after the kill.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a Chromium session with a fresh profile and
    /// a 1366×768 window; screenshots go to `screenshots` (and `target/console-screenshots`).
    pub fn start(screenshots: &Path) -> Browser {
        let dir = tempfile::tempdir().expect("browser temp dir");
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("chromedriver.log"))
            .expect("chromedriver log file");
        let process = DriverProcess(ChildGuard::spawn(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(log)
                // Chromium joins chromedriver's group: one kill ends both.
                .process_group(0),
            "chromedriver",
        ));
        let driver = super::local(port);
        super::wait_for_port(driver, "chromedriver");
        let profile = dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let answer =
            send(driver, "POST", "/session", Some(&capabilities)).unwrap_or_else(|error| {
                panic!(
                    "chromedriver could not start chromium: {error}\nchromedriver log:\n{}",
                    std::fs::read_to_string(dir.path().join("chromedriver.log"))
                        .unwrap_or_default()
                )
            });
        let session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in chromedriver's answer: {answer}"))
            .to_string();
        std::fs::create_dir_all(screenshots).expect("screenshot dir");
        let browser = Browser {
            driver,
            session,
            screenshots: screenshots.to_path_buf(),
            _process: process,
            _dir: dir,
        };
        browser.command(
            "POST",
            "/window/rect",
            Some(&json!({"width": WINDOW.0, "height": WINDOW.1})),
        );
        browser
    }

    /// A command of this session (`path` after `/session/ID`); its `value`.
    pub fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        send(
            self.driver,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
    }

    /// [`Browser::try_command`], failing the test on an error.
    pub fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|error| panic!("WebDriver {method} {path}: {error}"))
    }

    /// Loads `url` and waits for the page's load event.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// The elements matching `css` now (none is not an error).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.try_command(
            "POST",
            "/elements",
            Some(&json!({"using": "css selector", "value": css})),
        );
        found
            .ok()
            .and_then(|value| value.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|reference| reference[ELEMENT_KEY].as_str())
            .map(|id| Element {
                browser: self,
                id: id.to_string(),
            })
            .collect()
    }

    /// The first element matching `css` that is displayed, if any now.
    pub fn find_displayed(&self, css: &str) -> Option<Element<'_>> {
        self.find_all(css)
            .into_iter()
            .find(|element| element.displayed().unwrap_or(false))
    }

    /// Polls `condition` until it gives a value; after [`WAIT`] the test fails with
    /// `what`, the page's URL and its visible text.
    pub fn wait_until<T>(&self, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = condition() {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting for {what}\npage {}\nvisible text:\n{}",
                    self.try_command("GET", "/url", None).unwrap_or_default(),
                    self.page_text()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until an element matching `css` is displayed.
    pub fn wait_for(&self, css: &str) -> Element<'_> {
        self.wait_until(&format!("`{css}` to be displayed"), || {
            self.find_displayed(css)
        })
    }

    /// Waits until no element matching `css` is displayed.
    pub fn wait_for_none(&self, css: &str) {
        self.wait_until(&format!("no `{css}` displayed"), || {
            self.find_displayed(css).is_none().then_some(())
        })
    }

    /// Clicks the displayed element matching `css`, finding it again while the page
    /// re-renders it under the click (a stale or covered element is retried).
    pub fn click(&self, css: &str) {
        self.wait_until(&format!("a click on `{css}`"), || {
            self.find_displayed(css)?.click().ok()
        })
    }

    /// Replaces the content of the field matching `css` with `text`.
    pub fn type_into(&self, css: &str, text: &str) {
        self.wait_until(&format!("typing into `{css}`"), || {
            let field = self.find_displayed(css)?;
            field.clear().ok()?;
            field.send_keys(text).ok()
        })
    }

    /// The visible text of the element matching `css`, once displayed.
    pub fn text(&self, css: &str) -> String {
        self.wait_until(&format!("the text of `{css}`"), || {
            self.find_displayed(css)?.text().ok()
        })
    }

    /// Waits until the text of `css` contains `expected`; that text.
    pub fn wait_for_text(&self, css: &str, expected: &str) -> String {
        self.wait_until(&format!("`{css}` to show {expected:?}"), || {
            let text = self.find_displayed(css)?.text().ok()?;
            text.contains(expected).then_some(text)
        })
    }

    /// Waits until the image matching `css` has loaded a picture (`naturalWidth > 0`:
    /// the browser fetched and decoded it); its natural size.
    pub fn wait_for_image(&self, css: &str) -> (u64, u64) {
        self.wait_until(&format!("the image `{css}` to load"), || {
            let size = self.execute(
                "const image = document.querySelector(arguments[0]);\
                 return image && image.complete && image.naturalWidth > 0\
                 ? [image.naturalWidth, image.naturalHeight] : null;",
                &[json!(css)],
            );
            Some((size[0].as_u64()?, size[1].as_u64()?))
        })
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page; its return
    /// value.
    pub fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// The page's visible text, for failure messages (empty when the page cannot say).
    pub fn page_text(&self) -> String {
        self.try_command(
            "POST",
            "/execute/sync",
            Some(&json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
        )
        .ok()
        .and_then(|text| text.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// The cookies the page's origin holds (WebDriver cookie objects).
    pub fn cookies(&self) -> Vec<Value> {
        self.command("GET", "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Saves the window as `NAME.png` in the test's screenshot directory and copies it to
    /// `target/console-screenshots/` for people to look at; the test's copy.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("chromedriver's screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let file = format!("{name}.png");
        let path = self.screenshots.join(&file);
        std::fs::write(&path, &png).expect("write screenshot");
        let shared = target_dir().join("console-screenshots");
        std::fs::create_dir_all(&shared).expect("target/console-screenshots");
        std::fs::write(shared.join(&file), &png).expect("copy screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // This runs while a failed test unwinds too, where a hung or dead chromedriver
        // must neither block nor panic (a second panic aborts the suite): a quit with
        // short timeouts and no error checked (chromedriver ends Chromium and reaps it);
        // then the `DriverProcess` field kills the group for whatever did not go.
        let quit = || -> std::io::Result<()> {
            let mut stream = TcpStream::connect_timeout(&self.driver, Duration::from_secs(1))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.session, self.driver
            )?;
            // chromedriver answers once Chromium has quit, and keeps the connection open.
            stream.read(&mut [0u8; 1024]).map(drop)
        };
        let _ = quit();
    }
}

/// chromedriver, leading the process group its Chromium joins; dropping it kills the
/// group (also when the session never started) and reaps chromedriver.
struct DriverProcess(ChildGuard);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a negative pid signals the process group chromedriver
        // leads (made with process_group(0)); it touches no memory.
        unsafe {
            libc::kill(-(self.0.child.id() as i32), libc::SIGKILL);
        }
    }
}

/// An element of the page (a WebDriver reference; stale once the page re-renders it).
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn command(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WebDriverError> {
        self.browser
            .try_command(method, &format!("/element/{}{path}", self.id), body)
    }

    pub fn click(&self) -> Result<(), WebDriverError> {
        self.command("POST", "/click", Some(&json!({}))).map(drop)
    }

    pub fn clear(&self) -> Result<(), WebDriverError> {
        self.command("POST", "/clear", Some(&json!({}))).map(drop)
    }

    pub fn send_keys(&self, text: &str) -> Result<(), WebDriverError> {
        self.command("POST", "/value", Some(&json!({ "text": text })))
            .map(drop)
    }

    /// The rendered text (what a person reads, `innerText`).
    pub fn text(&self) -> Result<String, WebDriverError> {
        self.command("GET", "/text", None)
            .map(|text| text.as_str().unwrap_or_default().to_string())
    }

    pub fn displayed(&self) -> Result<bool, WebDriverError> {
        self.command("GET", "/displayed", None)
            .map(|shown| shown.as_bool().unwrap_or(false))
    }

    /// An HTML attribute as written in the page.
    pub fn attribute(&self, name: &str) -> Result<Option<String>, WebDriverError> {
        self.command("GET", &format!("/attribute/{name}"), None)
            .map(|value| value.as_str().map(str::to_string))
    }
}

/// One WebDriver request to chromedriver at `driver`; the answer's `value`, or the error
/// it names.
fn send(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, WebDriverError> {
    let bytes = body.map(|body| body.to_string().into_bytes());
    let response = Request {
        method,
        body: bytes.as_deref(),
        ..Request::get(path)
    }
    .send(driver);
    let answer: Value = serde_json::from_str(&response.body).map_err(|error| WebDriverError {
        status: response.status,
        error: "not JSON".into(),
        message: format!("{error}: {}", response.body),
    })?;
    let value = answer["value"].clone();
    if response.status == 200 {
        return Ok(value);
    }
    Err(WebDriverError {
        status: response.status,
        error: value["error"].as_str().unwrap_or("unknown").to_string(),
        message: value["message"].as_str().unwrap_or_default().to_string(),
    })
}

/// Cargo's target directory (the livegate binary is in its `debug/`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_livegate"))
        .ancestors()
        .nth(2)
        .expect("the livegate binary is in target/PROFILE/")
        .to_path_buf()
}
