//! A minimal blocking HTTP/1.1 client for the admin API tests (and chromedriver's
//! WebDriver): one request per connection (`Connection: close`), the whole answer read.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as sent (a JPEG is not text).
    pub bytes: Vec<u8>,
}

impl HttpResponse {
    /// Every value of header `name` (e.g. each `Set-Cookie`).
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }

    /// The `error` message of a JSON error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {self:?}"))
            .to_string()
    }
}

/// A request to the admin server.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub token: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    /// Send the body with `Transfer-Encoding: chunked` (no length announced).
    pub chunked: bool,
    /// More header lines (a `Content-Type` here replaces the JSON default).
    pub headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Request<'a> {
    pub fn get(path: &'a str) -> Self {
        Request {
            method: "GET",
            path,
            token: None,
            body: None,
            chunked: false,
            headers: Vec::new(),
        }
    }

    pub fn post(path: &'a str, body: &'a [u8]) -> Self {
        Request {
            method: "POST",
            path,
            token: None,
            body: Some(body),
            chunked: false,
            headers: Vec::new(),
        }
    }

    pub fn token(mut self, token: &'a str) -> Self {
        self.token = Some(token);
        self
    }

    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn send(&self, addr: SocketAddr) -> HttpResponse {
        let mut stream = TcpStream::connect(addr).expect("connect to the admin server");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
            self.method, self.path
        );
        if let Some(token) = self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let typed = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let body = self.body.unwrap_or_default();
        let mut request = Vec::new();
        if self.body.is_some() {
            if !typed {
                head.push_str("Content-Type: application/json\r\n");
            }
            if self.chunked {
                head.push_str("Transfer-Encoding: chunked\r\n\r\n");
                request.extend_from_slice(head.as_bytes());
                request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                request.extend_from_slice(body);
                request.extend_from_slice(b"\r\n0\r\n\r\n");
            } else {
                head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                request.extend_from_slice(head.as_bytes());
                request.extend_from_slice(body);
            }
        } else {
            head.push_str("\r\n");
            request.extend_from_slice(head.as_bytes());
        }
        // The server may answer (413) and close before reading all of a large body.
        let _ = stream.write_all(&request);
        parse(&read_answer(&mut stream))
    }
}

/// The answer's bytes: up to its `Content-Length` when it announces one (chromedriver
/// says `Connection: close` but keeps the connection open), else up to the close.
fn read_answer(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 65536];
    while answer_length(&raw).is_none_or(|length| raw.len() < length) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
        }
    }
    raw
}

/// The whole answer's length, once its head is in and announces a `Content-Length`.
fn answer_length(raw: &[u8]) -> Option<usize> {
    let head_end = raw.windows(4).position(|window| window == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    })?;
    Some(head_end + length)
}

fn parse(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("incomplete HTTP answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
        bytes: raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .map(|end| raw[end + 4..].to_vec())
            .unwrap_or_default(),
    }
}

/// The value of one sample line (`name{labels} value`) of a metrics scrape.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

/// `/metrics` of the admin server at `admin` (no token needed).
pub fn scrape(admin: SocketAddr) -> String {
    let response = Request::get("/metrics").send(admin);
    assert_eq!(response.status, 200, "{response:?}");
    response.body
}

/// Polls `GET /v1/streams` of the admin server at `admin` until one stream satisfies
/// `done`, returning it; fails the test after 20 s.
pub fn wait_for_stream(
    admin: SocketAddr,
    token: &str,
    done: impl Fn(&Value) -> bool,
    what: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let streams = Request::get("/v1/streams").token(token).send(admin).json();
        if let Some(stream) = streams["streams"]
            .as_array()
            .and_then(|streams| streams.iter().find(|stream| done(stream)))
        {
            return stream.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {streams}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The audit records of `event` that `GET /v1/events` shows.
pub fn events_of(admin: SocketAddr, token: &str, event: &str) -> Vec<Value> {
    Request::get("/v1/events").token(token).send(admin).json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|record| record["event"] == event)
        .cloned()
        .collect()
}
