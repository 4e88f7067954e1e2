//! Byte transports a session relays over: an accepted publisher connection and the
//! connection dialled to the origin. TCP today; TLS and SRT implement the same traits,
//! so the session's pumps, timeouts and closers stay one piece of code.

use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How often a stalled write re-checks whether the side it forwards from has gone: that
/// side usually holds unread bytes, so it stays readable and cannot simply be awaited.
const PEER_CLOSE_POLL: Duration = Duration::from_millis(100);

/// A connected byte stream that splits into halves the two pumps own.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type ReadHalf: PeerClose + AsyncRead + Unpin + Send + 'static;
    type WriteHalf: AsyncWrite + Unpin + Send + 'static;

    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf);

    /// Sends small writes at once: both directions carry small, latency-sensitive control
    /// messages (handshake, commands, acks), which Nagle's delay would hold back.
    fn send_without_delay(&self) -> std::io::Result<()>;
}

/// The read half's view of its peer going away, for a write stalled on the other side.
pub trait PeerClose {
    /// Resolves once the peer has closed or reset the connection. A FIN or RST queued
    /// behind unread bytes that fill the receive window cannot be seen: the session's
    /// `write_timeout_ms` bounds that case.
    fn closed_by_peer(&self) -> impl Future<Output = ()> + Send;
}

impl Transport for TcpStream {
    type ReadHalf = OwnedReadHalf;
    type WriteHalf = OwnedWriteHalf;

    fn into_halves(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }

    fn send_without_delay(&self) -> std::io::Result<()> {
        self.set_nodelay(true)
    }
}

impl PeerClose for OwnedReadHalf {
    async fn closed_by_peer(&self) {
        loop {
            match self.ready(Interest::READABLE).await {
                Ok(ready) if !ready.is_read_closed() => tokio::time::sleep(PEER_CLOSE_POLL).await,
                _ => return,
            }
        }
    }
}

/// Why the origin could not be dialled.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("origin {origin} unreachable: {source}")]
    Unreachable {
        origin: String,
        source: std::io::Error,
    },
    #[error("origin {origin} did not accept within {} ms", .limit.as_millis())]
    TimedOut { origin: String, limit: Duration },
}

/// Dials the origin over TCP within `limit`; a host name is resolved at each dial.
pub async fn dial_tcp(origin: &str, limit: Duration) -> Result<TcpStream, DialError> {
    match tokio::time::timeout(limit, TcpStream::connect(origin)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(DialError::Unreachable {
            origin: origin.to_string(),
            source,
        }),
        Err(_) => Err(DialError::TimedOut {
            origin: origin.to_string(),
            limit,
        }),
    }
}
