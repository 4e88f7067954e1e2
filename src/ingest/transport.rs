//! Byte transports a session relays over: an accepted publisher connection and the
//! connection dialled to the origin. TCP, TLS ([`super::tls`]) and SRT ([`super::srt`])
//! implement the same traits, so the session's pumps, timeouts and closers stay one piece of code.
//! An accepted connection is an [`Incoming`] first: the session establishes it (TCP: as
//! is; TLS: its handshake) inside its own timeouts, so a failure ends as a session.

use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How often a stalled write re-checks whether the side it forwards from has gone: that
/// side usually holds unread bytes, so it stays readable and cannot simply be awaited.
pub(crate) const PEER_CLOSE_POLL: Duration = Duration::from_millis(100);

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

/// An accepted connection, before the layers under the protocol (TLS) are set up.
pub trait Incoming: Send + 'static {
    type Stream: Transport;

    /// Sets the connection up within `limit`.
    fn establish(
        self,
        limit: Duration,
    ) -> impl Future<Output = Result<Self::Stream, IncomingError>> + Send;
}

/// Why an accepted connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("client closed the connection before its TLS ClientHello")]
    Closed,
    #[error(
        "not TLS: first byte {first:#04x} is not a TLS handshake record (0x16){}",
        if *.first == 3 { "; a plain RTMP client on an RTMPS listener" } else { "" }
    )]
    NotTls { first: u8 },
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake not completed within {} ms", .limit.as_millis())]
    TimedOut { limit: Duration },
    #[error("reading from client: {0}")]
    Reset(std::io::Error),
}

impl Incoming for TcpStream {
    type Stream = TcpStream;

    async fn establish(self, _limit: Duration) -> Result<TcpStream, IncomingError> {
        Ok(self)
    }
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
    #[error("origin {origin}: TLS handshake failed: {source}")]
    Tls {
        origin: String,
        source: std::io::Error,
    },
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
