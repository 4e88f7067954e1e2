//! libsrt's errors as values: what was attempted, libsrt's error code and message, and
//! for a refused connection the reject reason the peer (or libsrt) gave.

use std::ffi::CStr;
use std::fmt;

use crate::sys;

/// A failed libsrt call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message}{}", reject_suffix(.reject))]
pub struct Error {
    /// What was attempted (`"connect"`, `"bind 127.0.0.1:9000"`).
    pub operation: String,
    /// libsrt's error code (`SRT_E…`), 0 when the error is this crate's own.
    pub code: i32,
    pub message: String,
    /// Why the handshake was refused, when it was.
    pub reject: Option<RejectReason>,
}

fn reject_suffix(reject: &Option<RejectReason>) -> String {
    reject
        .map(|reason| format!(" (rejected: {reason})"))
        .unwrap_or_default()
}

impl Error {
    /// The calling thread's last libsrt error.
    pub(crate) fn last(operation: impl Into<String>) -> Self {
        let mut errno = 0;
        // SAFETY: both calls only read libsrt's thread-local error state; the string is
        // copied before any other libsrt call can replace it.
        let (code, message) = unsafe {
            let code = sys::srt_getlasterror(&mut errno);
            let message = CStr::from_ptr(sys::srt_getlasterror_str())
                .to_string_lossy()
                .into_owned();
            (code, message)
        };
        Error {
            operation: operation.into(),
            code,
            message,
            reject: None,
        }
    }

    pub(crate) fn own(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            operation: operation.into(),
            code: 0,
            message: message.into(),
            reject: None,
        }
    }

    /// True for "try again later" (a non-blocking call that would block).
    pub fn would_block(&self) -> bool {
        let code = self.code;
        code == sys::SRT_ERRNO_SRT_EASYNCRCV
            || code == sys::SRT_ERRNO_SRT_EASYNCSND
            || code == sys::SRT_ERRNO_SRT_EASYNCFAIL
    }

    /// True when the connection is gone (closed by the peer, broken, or not connected).
    pub fn connection_lost(&self) -> bool {
        let code = self.code;
        code == sys::SRT_ERRNO_SRT_ECONNLOST
            || code == sys::SRT_ERRNO_SRT_ENOCONN
            || code == sys::SRT_ERRNO_SRT_EINVSOCK
    }
}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        let kind = if error.connection_lost() {
            std::io::ErrorKind::BrokenPipe
        } else {
            std::io::ErrorKind::Other
        };
        std::io::Error::new(kind, error)
    }
}

/// Why a connection was refused at the handshake: libsrt's own reasons (below 1000:
/// wrong passphrase, timeout, peer refused…) or an application's (1000 and above: the
/// access-control codes of `srt/access_control.h`, 1400 + an HTTP-like status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectReason(pub i32);

impl RejectReason {
    pub const BAD_REQUEST: RejectReason = RejectReason(sys::SRT_REJX_BAD_REQUEST as i32);
    pub const UNAUTHORIZED: RejectReason = RejectReason(sys::SRT_REJX_UNAUTHORIZED as i32);
    pub const OVERLOAD: RejectReason = RejectReason(sys::SRT_REJX_OVERLOAD as i32);
    pub const FORBIDDEN: RejectReason = RejectReason(sys::SRT_REJX_FORBIDDEN as i32);
    pub const BAD_MODE: RejectReason = RejectReason(sys::SRT_REJX_BAD_MODE as i32);
    pub const KEY_NOTSUP: RejectReason = RejectReason(sys::SRT_REJX_KEY_NOTSUP as i32);
    pub const NOTSUP_MEDIA: RejectReason = RejectReason(sys::SRT_REJX_NOTSUP_MEDIA as i32);
    /// libsrt's "wrong password".
    pub const BAD_SECRET: RejectReason =
        RejectReason(sys::SRT_REJECT_REASON_SRT_REJ_BADSECRET as i32);

    /// The name of an access-control code, or libsrt's text for its own reasons.
    fn describe(self) -> String {
        let name = match self.0 as u32 {
            sys::SRT_REJX_BAD_REQUEST => "bad request (streamid)",
            sys::SRT_REJX_UNAUTHORIZED => "unauthorized",
            sys::SRT_REJX_OVERLOAD => "overload",
            sys::SRT_REJX_FORBIDDEN => "forbidden",
            sys::SRT_REJX_NOTFOUND => "not found",
            sys::SRT_REJX_BAD_MODE => "bad mode",
            sys::SRT_REJX_UNACCEPTABLE => "unacceptable",
            sys::SRT_REJX_KEY_NOTSUP => "streamid key not supported",
            sys::SRT_REJX_NOTSUP_MEDIA => "media type not supported",
            sys::SRT_REJX_ISE => "internal server error",
            code if code >= 1000 => "application reason",
            _ => {
                // SAFETY: srt_rejectreason_str returns a static string for any value.
                return unsafe { CStr::from_ptr(sys::srt_rejectreason_str(self.0)) }
                    .to_string_lossy()
                    .into_owned();
            }
        };
        name.to_string()
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.describe(), self.0)
    }
}
