//! livegate's narrow binding to libsrt (the reference SRT implementation), live mode only.
//!
//! - [`sys`]: declarations generated from the installed `srt.h`, limited to what is used.
//! - [`Socket`] and [`SocketOptions`]: an owned SRT socket (closed on drop), the options
//!   a live relay needs, link statistics ([`LinkStats`]) and errors that carry libsrt's
//!   code, message and reject reason.
//! - [`Listener`] and [`SrtStream`]: the tokio side. libsrt's sockets are not file
//!   descriptors, so tokio cannot poll them; one thread per process waits in libsrt's own
//!   epoll (`srt_epoll_uwait`, edge-triggered) and wakes the tasks whose sockets became
//!   readable or writable ([`reactor`]). A listener decides at the handshake, on libsrt's
//!   thread, whether to accept a caller ([`Handshake`], [`Reject`]).
//! - [`streamid`]: the sans-IO parser of the streamid a caller sends (the SRT
//!   access-control form `#!::r=…,m=publish` and plain `APP/KEY`).
//!
//! Live mode is message-based: one `srt_recvmsg` returns one payload as the peer sent it
//! (typically 1316 bytes, 7 TS packets). [`SrtStream`]'s `AsyncRead` returns exactly one
//! message per read and its `AsyncWrite` sends each write as one message, whole or not
//! at all, so a relay that forwards each read as one write keeps message boundaries.

mod error;
pub mod reactor;
mod socket;
pub mod streamid;
pub mod sys;

pub use error::{Error, RejectReason};
pub use reactor::{Handshake, Link, Listener, Reject, SrtStream};
pub use socket::{LinkStats, Socket, SocketOptions};

/// The largest payload of one live-mode message (MTU 1500 − UDP/IP 28 − SRT header 16).
pub const MAX_PAYLOAD: usize = sys::SRT_LIVE_MAX_PLSIZE as usize;
