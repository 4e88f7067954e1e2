//! The streamid a caller sends at the handshake, parsed (sans-IO, over a `&str` of at
//! most [`MAX_STREAMID_BYTES`]) into what it asks for: a resource `APP/KEY` and a mode.
//!
//! Three forms are read:
//! - the SRT access-control form (SRT's `AccessControl.md`): `#!::` then `key=value`
//!   pairs separated by commas, in any order. `r` is the resource, `m` the mode
//!   (`request` — the spec's default —, `publish`, `bidirectional`), `u` the user,
//!   `t` the type (`stream` only: livegate relays live streams). `h` and `s` are
//!   accepted and unused, as an origin would; any other key is ignored (the spec lets
//!   applications add their own). A key given twice, a pair without `=`, an empty
//!   resource, or the nested `#!::{…}` form is a bad request.
//! - MediaMTX's `publish:PATH` (and `read:PATH`, a reader).
//! - a plain `APP/KEY` (what most encoders' "stream ID" field holds): a publish.
//!
//! The resource must be `APP/KEY`: the application, a `/`, and a non-empty key (the
//! key may contain further `/`).

use std::fmt;

pub use crate::socket::MAX_STREAMID_BYTES;

const ACCESS_CONTROL_PREFIX: &str = "#!::";

/// What the caller wants to do with the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send a stream (`m=publish`).
    Publish,
    /// Receive a stream (`m=request`, the access-control default).
    Request,
    /// Both (`m=bidirectional`).
    Bidirectional,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Publish => "publish",
            Mode::Request => "request",
            Mode::Bidirectional => "bidirectional",
        }
    }
}

/// A parsed streamid. `Debug` leaves the key out: it is a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StreamId {
    pub app: String,
    /// The stream key: a secret.
    pub key: String,
    pub mode: Mode,
    /// The `u=` user, if given.
    pub user: Option<String>,
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamId")
            .field("app", &self.app)
            .field("key", &"(redacted)")
            .field("mode", &self.mode)
            .field("user", &self.user)
            .finish()
    }
}

/// Why a streamid is refused. The messages never quote the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("no streamid (expected #!::r=APP/KEY,m=publish or APP/KEY)")]
    Missing,
    #[error("streamid longer than {MAX_STREAMID_BYTES} bytes")]
    TooLong,
    #[error("malformed streamid: {0}")]
    Malformed(&'static str),
    #[error("malformed streamid: key `{0}` given twice")]
    Duplicate(String),
    #[error("streamid mode `m={0}` is not one of request, publish, bidirectional")]
    UnknownMode(String),
    #[error("streamid type `t={0}` is not supported (only t=stream)")]
    UnsupportedType(String),
}

/// Parses a streamid in any of the three forms.
pub fn parse(text: &str) -> Result<StreamId, StreamIdError> {
    if text.is_empty() {
        return Err(StreamIdError::Missing);
    }
    if text.len() > MAX_STREAMID_BYTES {
        return Err(StreamIdError::TooLong);
    }
    if let Some(pairs) = text.strip_prefix(ACCESS_CONTROL_PREFIX) {
        return parse_access_control(pairs);
    }
    if let Some(path) = text.strip_prefix("publish:") {
        return resource(path, Mode::Publish, None);
    }
    if let Some(path) = text.strip_prefix("read:") {
        return resource(path, Mode::Request, None);
    }
    resource(text, Mode::Publish, None)
}

fn parse_access_control(pairs: &str) -> Result<StreamId, StreamIdError> {
    if pairs.starts_with('{') {
        return Err(StreamIdError::Malformed(
            "the nested #!::{...} form is not supported",
        ));
    }
    let mut resource_path = None;
    let mut mode = None;
    let mut user = None;
    let mut media = None;
    for pair in pairs.split(',') {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(StreamIdError::Malformed("a key without `=value`"));
        };
        let slot = match key {
            "r" => &mut resource_path,
            "m" => &mut mode,
            "u" => &mut user,
            "t" => &mut media,
            // Host and session id: meaningful to the origin, not to the relay.
            "h" | "s" => continue,
            "" => return Err(StreamIdError::Malformed("an empty key")),
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(StreamIdError::Duplicate(key.to_string()));
        }
    }
    if let Some(media) = media
        && media != "stream"
    {
        return Err(StreamIdError::UnsupportedType(media.to_string()));
    }
    let mode = match mode.unwrap_or("request") {
        "publish" => Mode::Publish,
        "request" => Mode::Request,
        "bidirectional" => Mode::Bidirectional,
        other => return Err(StreamIdError::UnknownMode(other.to_string())),
    };
    let Some(path) = resource_path else {
        return Err(StreamIdError::Malformed("no resource (r=APP/KEY)"));
    };
    resource(path, mode, user.map(str::to_string))
}

fn resource(path: &str, mode: Mode, user: Option<String>) -> Result<StreamId, StreamIdError> {
    let Some((app, key)) = path.split_once('/') else {
        return Err(StreamIdError::Malformed(
            "the resource is not APP/KEY (no `/`)",
        ));
    };
    if app.is_empty() {
        return Err(StreamIdError::Malformed("the resource's APP is empty"));
    }
    if key.is_empty() {
        return Err(StreamIdError::Malformed("the resource's KEY is empty"));
    }
    if path.chars().any(char::is_control) {
        return Err(StreamIdError::Malformed(
            "the resource holds control characters",
        ));
    }
    Ok(StreamId {
        app: app.to_string(),
        key: key.to_string(),
        mode,
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> StreamId {
        parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    #[test]
    fn the_access_control_form_in_any_order() {
        let id = ok("#!::r=live/abc123,m=publish");
        assert_eq!((id.app.as_str(), id.key.as_str()), ("live", "abc123"));
        assert_eq!(id.mode, Mode::Publish);
        let id = ok("#!::m=publish,u=alice,h=example.com,r=live/k/with/slashes,t=stream,x=1");
        assert_eq!(id.key, "k/with/slashes");
        assert_eq!(id.user.as_deref(), Some("alice"));
        assert_eq!(ok("#!::r=live/k").mode, Mode::Request, "the spec's default");
        assert_eq!(ok("#!::r=live/k,m=request").mode, Mode::Request);
        assert_eq!(ok("#!::r=live/k,m=bidirectional").mode, Mode::Bidirectional);
    }

    #[test]
    fn plain_and_mediamtx_forms() {
        let id = ok("live/key1");
        assert_eq!(
            (id.app.as_str(), id.key.as_str(), id.mode),
            ("live", "key1", Mode::Publish)
        );
        assert_eq!(ok("publish:live/key1").mode, Mode::Publish);
        assert_eq!(ok("read:live/key1").mode, Mode::Request);
    }

    #[test]
    fn malformed_streamids_say_what_is_wrong() {
        let cases = [
            ("", "no streamid"),
            ("#!::r=live/k,m=publish,r=live/j", "`r` given twice"),
            ("#!::r=live/k,m", "without `=value`"),
            ("#!::m=publish", "no resource"),
            ("#!::r=live/k,m=write", "m=write"),
            ("#!::r=live/k,m=publish,t=file", "t=file"),
            ("#!::{r=live/k}", "nested"),
            ("#!::r=live,m=publish", "no `/`"),
            ("#!::r=/k,m=publish", "APP is empty"),
            ("live/", "KEY is empty"),
            ("nokey", "no `/`"),
            ("live/k\u{1}", "control"),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        assert_eq!(parse(&"a/".repeat(300)), Err(StreamIdError::TooLong));
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", ok("#!::r=live/supersecret,m=publish"));
        assert!(!shown.contains("supersecret"), "{shown}");
    }
}
