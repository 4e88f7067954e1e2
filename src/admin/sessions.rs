//! The review console's server-side sessions and its login rate limit, without any
//! HTTP: a session is a random 32-byte id (the `livegate_session` cookie) naming who
//! logged in and the CSRF token the page must echo on every state change; it ends at
//! logout or `admin.session_ttl_seconds` after login (not extended by use, so a stolen
//! cookie is worth a bounded time). Ids are kept as their SHA-256, as the admin token
//! is, so memory holds no usable cookie. At most [`MAX_SESSIONS`] live at once: beyond,
//! the one closest to its end gives way. Failed logins are counted per client address
//! and refused for a while past [`MAX_LOGIN_FAILURES`] in [`FAILURE_WINDOW`].

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions held at once (a reviewer logging in from several browsers holds several).
pub const MAX_SESSIONS: usize = 1024;
/// Failed logins a client address may make within [`FAILURE_WINDOW`].
pub const MAX_LOGIN_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered: bounded, so a spread of addresses
/// cannot grow the map without end.
const MAX_TRACKED_CLIENTS: usize = 4096;

/// What a request's session cookie stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The admin token's name it logged in with (audited as the actor).
    pub caller: String,
    /// The token the page echoes in `X-CSRF-Token` (or the `csrf` form field).
    pub csrf: String,
    expires: Instant,
}

/// A session just opened: the cookie value (shown once, never stored) and its CSRF token.
#[derive(Debug)]
pub struct Opened {
    pub id: String,
    pub csrf: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot draw random bytes from the kernel (getrandom): {0}")]
pub struct NoRandomness(#[from] std::io::Error);

/// `bytes` random bytes from the kernel's CSPRNG, as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, NoRandomness> {
    let mut buf = vec![0u8; bytes];
    crate::stream::os_random(&mut buf)?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Constant-time equality of two secrets of any length (their digests are compared).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    super::Token::new(a).matches(b)
}

#[derive(Default)]
struct Inner {
    /// By the SHA-256 of the session id.
    live: HashMap<[u8; 32], Session>,
    failures: HashMap<IpAddr, Failures>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

pub struct Sessions {
    ttl: Duration,
    inner: Mutex<Inner>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Poisoning only means a panic mid-update of plain maps; they stay usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens a session for `caller`.
    pub fn open(&self, caller: &str, now: Instant) -> Result<Opened, NoRandomness> {
        let opened = Opened {
            id: random_hex(32)?,
            csrf: random_hex(32)?,
        };
        let mut inner = self.lock();
        if inner.live.len() >= MAX_SESSIONS {
            inner.live.retain(|_, session| session.expires > now);
        }
        if inner.live.len() >= MAX_SESSIONS
            && let Some(soonest) = inner
                .live
                .iter()
                .min_by_key(|(_, session)| session.expires)
                .map(|(key, _)| *key)
        {
            inner.live.remove(&soonest);
        }
        inner.live.insert(
            digest(&opened.id),
            Session {
                caller: caller.to_string(),
                csrf: opened.csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Ok(opened)
    }

    /// The live session with cookie value `id`; an expired one is forgotten.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let key = digest(id);
        let mut inner = self.lock();
        let session = inner.live.get(&key)?;
        if session.expires > now {
            return Some(session.clone());
        }
        inner.live.remove(&key);
        None
    }

    /// Ends the session `id` (logout); whether it was live.
    pub fn close(&self, id: &str) -> bool {
        self.lock().live.remove(&digest(id)).is_some()
    }

    /// `Err(wait)` while `client` has used up its failed logins.
    pub fn login_allowed(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.lock().failures.get(&client) {
            Some(failures)
                if failures.count >= MAX_LOGIN_FAILURES
                    && now < failures.since + FAILURE_WINDOW =>
            {
                Err(failures.since + FAILURE_WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login of `client`.
    pub fn login_failed(&self, client: IpAddr, now: Instant) {
        let mut inner = self.lock();
        if inner.failures.len() >= MAX_TRACKED_CLIENTS && !inner.failures.contains_key(&client) {
            inner
                .failures
                .retain(|_, failures| now < failures.since + FAILURE_WINDOW);
            if inner.failures.len() >= MAX_TRACKED_CLIENTS
                && let Some(oldest) = inner
                    .failures
                    .iter()
                    .min_by_key(|(_, failures)| failures.since)
                    .map(|(address, _)| *address)
            {
                inner.failures.remove(&oldest);
            }
        }
        let entry = inner.failures.entry(client).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= entry.since + FAILURE_WINDOW {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_its_ttl_or_logout() {
        let sessions = Sessions::new(Duration::from_secs(10));
        let start = Instant::now();
        let opened = sessions.open("alice", start).expect("randomness");
        assert_eq!(opened.id.len(), 64, "32 random bytes in hex");
        assert_ne!(opened.id, opened.csrf);
        let session = sessions.get(&opened.id, start).expect("live");
        assert_eq!(session.caller, "alice");
        assert_eq!(session.csrf, opened.csrf);
        assert!(sessions.get("0".repeat(64).as_str(), start).is_none());
        assert!(
            sessions
                .get(&opened.id, start + Duration::from_secs(10))
                .is_none(),
            "expired at its ttl"
        );
        assert!(
            sessions.get(&opened.id, start).is_none(),
            "an expired session is forgotten"
        );
        let other = sessions.open("bob", start).expect("randomness");
        assert!(sessions.close(&other.id));
        assert!(sessions.get(&other.id, start).is_none());
        assert!(!sessions.close(&other.id));
    }

    #[test]
    fn at_the_cap_the_session_closest_to_its_end_gives_way() {
        let sessions = Sessions::new(Duration::from_secs(100));
        let start = Instant::now();
        let first = sessions.open("first", start).expect("randomness");
        let ids: Vec<Opened> = (1..MAX_SESSIONS)
            .map(|n| {
                let at = start + Duration::from_millis(n as u64);
                sessions.open("later", at).expect("randomness")
            })
            .collect();
        assert!(sessions.get(&first.id, start).is_some(), "under the cap");
        let newest = sessions
            .open("newest", start + Duration::from_secs(1))
            .expect("randomness");
        assert!(sessions.get(&first.id, start).is_none(), "the oldest went");
        assert!(sessions.get(&ids[0].id, start).is_some());
        assert!(sessions.get(&newest.id, start).is_some());
    }

    #[test]
    fn failed_logins_are_limited_per_client_for_a_window() {
        let sessions = Sessions::new(Duration::from_secs(100));
        let start = Instant::now();
        let client: IpAddr = "192.0.2.1".parse().expect("address");
        let other: IpAddr = "192.0.2.2".parse().expect("address");
        for _ in 0..MAX_LOGIN_FAILURES {
            assert!(sessions.login_allowed(client, start).is_ok());
            sessions.login_failed(client, start);
        }
        let wait = sessions
            .login_allowed(client, start + Duration::from_secs(1))
            .expect_err("limited");
        assert_eq!(wait, FAILURE_WINDOW - Duration::from_secs(1));
        assert!(sessions.login_allowed(other, start).is_ok());
        assert!(
            sessions
                .login_allowed(client, start + FAILURE_WINDOW)
                .is_ok()
        );
        sessions.login_failed(client, start + FAILURE_WINDOW);
        assert!(
            sessions
                .login_allowed(client, start + FAILURE_WINDOW)
                .is_ok(),
            "a new window starts from one failure"
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
