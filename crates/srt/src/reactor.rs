//! The bridge from libsrt to tokio.
//!
//! An SRT socket is not a file descriptor (libsrt multiplexes every connection over its
//! own UDP sockets and threads), so tokio's reactor cannot watch it. One thread per
//! process waits in libsrt's epoll (`srt_epoll_uwait`) on every registered socket,
//! edge-triggered, and wakes the task waiting to read or write the socket that became
//! ready. A task tries its non-blocking call first, and only when libsrt says "would
//! block" stores its waker and tries once more, so an edge that fires between the failed
//! call and the stored waker is never lost.
//!
//! Alternatives measured or weighed: a blocking thread per socket (two per session)
//! costs a thread stack per direction and cannot be cancelled by a cut without closing
//! the socket under it; polling non-blocking sockets on a timer adds its period to the
//! latency. One epoll thread adds a wake-up (a few µs) per message and nothing per idle
//! socket.
//!
//! The caller's connect is the exception: it runs blocking (within SRTO_CONNTIMEO) on
//! tokio's blocking pool, once per session, because libsrt reports a refused handshake's
//! reason most reliably to a blocking `srt_connect`.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, RejectReason};
use crate::socket::{self, LinkStats, Socket, SocketOptions};
use crate::sys;

/// Events the epoll thread reports at most per wait.
const EVENTS_PER_WAIT: usize = 256;
/// The epoll thread's wait: how soon it notices that the process is exiting.
const WAIT_MS: i64 = 100;

/// Set at process exit: the epoll thread leaves libsrt before libsrt's own static
/// destructors tear its epoll down (waiting inside it then would crash the exit).
static EXITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static THREAD: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);

/// Runs at exit, before libsrt's destructors (registered after them, so run first).
extern "C" fn stop_at_exit() {
    EXITING.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(thread) = lock(&THREAD).take() {
        let _ = thread.join();
    }
}

/// Poisoning only means a panic while a waker was swapped; the slot stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The wakers of the tasks waiting on one socket.
#[derive(Default)]
struct Readiness {
    read: Mutex<Option<Waker>>,
    write: Mutex<Option<Waker>>,
}

impl Readiness {
    fn wake(slot: &Mutex<Option<Waker>>) {
        if let Some(waker) = lock(slot).take() {
            waker.wake();
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

struct Reactor {
    eid: c_int,
    sockets: Mutex<HashMap<sys::SRTSOCKET, Arc<Readiness>>>,
}

fn reactor() -> Result<&'static Reactor, Error> {
    static REACTOR: OnceLock<Result<&'static Reactor, Error>> = OnceLock::new();
    REACTOR
        .get_or_init(|| {
            socket::startup()?;
            // SAFETY: plain constructor.
            let eid = unsafe { sys::srt_epoll_create() };
            if eid < 0 {
                return Err(Error::last("srt_epoll_create"));
            }
            // Waiting with no socket registered is normal (no session yet), not an error.
            // SAFETY: plain call on the epoll just created.
            unsafe { sys::srt_epoll_set(eid, sys::SRT_EPOLL_FLAGS_SRT_EPOLL_ENABLE_EMPTY as i32) };
            // Lives as long as the process: sockets come and go, the thread stays.
            let reactor: &'static Reactor = Box::leak(Box::new(Reactor {
                eid,
                sockets: Mutex::new(HashMap::new()),
            }));
            let thread = std::thread::Builder::new()
                .name("srt-epoll".into())
                .spawn(move || reactor.run())
                .map_err(|error| Error::own("starting the srt-epoll thread", error.to_string()))?;
            *lock(&THREAD) = Some(thread);
            // SAFETY: registers a plain function without arguments.
            unsafe { libc::atexit(stop_at_exit) };
            Ok(reactor)
        })
        .clone()
}

impl Reactor {
    fn run(&self) {
        let mut events = [sys::SRT_EPOLL_EVENT { fd: 0, events: 0 }; EVENTS_PER_WAIT];
        while !EXITING.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: libsrt writes at most EVENTS_PER_WAIT events into the array.
            let ready = unsafe {
                sys::srt_epoll_uwait(
                    self.eid,
                    events.as_mut_ptr(),
                    EVENTS_PER_WAIT as c_int,
                    WAIT_MS,
                )
            };
            let Ok(ready) = usize::try_from(ready) else {
                // Only a released epoll fails; never spin on it.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            for event in &events[..ready.min(EVENTS_PER_WAIT)] {
                let Some(readiness) = lock(&self.sockets).get(&event.fd).cloned() else {
                    continue;
                };
                let flags = event.events as u32;
                let error = flags & sys::SRT_EPOLL_OPT_SRT_EPOLL_ERR != 0;
                if error || flags & sys::SRT_EPOLL_OPT_SRT_EPOLL_IN != 0 {
                    Readiness::wake(&readiness.read);
                }
                if error || flags & sys::SRT_EPOLL_OPT_SRT_EPOLL_OUT != 0 {
                    Readiness::wake(&readiness.write);
                }
            }
        }
    }

    fn register(&'static self, socket: Socket) -> Result<Registered, Error> {
        let readiness = Arc::new(Readiness::default());
        lock(&self.sockets).insert(socket.id(), Arc::clone(&readiness));
        let events = (sys::SRT_EPOLL_OPT_SRT_EPOLL_IN
            | sys::SRT_EPOLL_OPT_SRT_EPOLL_OUT
            | sys::SRT_EPOLL_OPT_SRT_EPOLL_ERR
            | sys::SRT_EPOLL_OPT_SRT_EPOLL_ET) as c_int;
        // SAFETY: plain call; `events` outlives it.
        if unsafe { sys::srt_epoll_add_usock(self.eid, socket.id(), &events) } < 0 {
            lock(&self.sockets).remove(&socket.id());
            return Err(Error::last("srt_epoll_add_usock"));
        }
        Ok(Registered {
            socket,
            readiness,
            reactor: self,
        })
    }
}

/// A socket watched by the epoll thread; unwatched on drop, then closed.
struct Registered {
    socket: Socket,
    readiness: Arc<Readiness>,
    reactor: &'static Reactor,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let id = self.socket.id();
        // SAFETY: plain call; the socket is still open (closed when `socket` drops).
        unsafe { sys::srt_epoll_remove_usock(self.reactor.eid, id) };
        lock(&self.reactor.sockets).remove(&id);
    }
}

impl Registered {
    /// Runs a non-blocking libsrt call; on "would block", waits for the socket's next
    /// edge in `direction`.
    fn poll_io<T>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut call: impl FnMut() -> Result<T, Error>,
    ) -> Poll<Result<T, Error>> {
        match call() {
            Err(error) if error.would_block() => {}
            done => return Poll::Ready(done),
        }
        let slot = match direction {
            Direction::Read => &self.readiness.read,
            Direction::Write => &self.readiness.write,
        };
        *lock(slot) = Some(cx.waker().clone());
        match call() {
            Err(error) if error.would_block() => Poll::Pending,
            done => Poll::Ready(done),
        }
    }
}

/// What a listener's hook sees of a caller's handshake.
#[derive(Debug)]
pub struct Handshake<'a> {
    pub peer: SocketAddr,
    /// The streamid the caller sent (`None`: none).
    pub streamid: Option<&'a str>,
}

/// A hook's refusal: the reason the caller is told.
pub type Reject = RejectReason;

type Hook = dyn Fn(&Handshake<'_>) -> Result<(), Reject> + Send + Sync;

/// Called by libsrt on its receiver thread for each caller's handshake.
unsafe extern "C" fn on_handshake(
    opaque: *mut c_void,
    socket: sys::SRTSOCKET,
    _hs_version: c_int,
    peer: *const sys::sockaddr,
    streamid: *const c_char,
) -> c_int {
    let decide = || {
        // SAFETY: `opaque` is the listener's boxed hook, alive while its socket is.
        let hook = unsafe { &*opaque.cast::<Box<Hook>>() };
        // SAFETY: libsrt passes a valid address of its family and a NUL-terminated
        // streamid (or null).
        let peer = unsafe { socket::peer_of(peer) };
        let streamid = unsafe { socket::c_text(streamid) };
        let Some(peer) = peer else {
            return Err(RejectReason(sys::SRT_REJX_BAD_REQUEST as i32));
        };
        hook(&Handshake {
            peer,
            streamid: streamid.as_deref(),
        })
    };
    // A panic must not unwind into libsrt's C++ thread.
    let decision = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decide))
        .unwrap_or(Err(RejectReason(sys::SRT_REJX_ISE as i32)));
    match decision {
        Ok(()) => 0,
        Err(reason) => {
            // SAFETY: `socket` is the pending connection libsrt is asking about.
            unsafe { sys::srt_setrejectreason(socket, reason.0) };
            -1
        }
    }
}

/// A listening SRT socket whose hook accepts or refuses each caller at the handshake.
pub struct Listener {
    // Field order matters: the socket closes before the hook it calls is freed.
    inner: Registered,
    _hook: Box<Box<Hook>>,
    local_addr: SocketAddr,
}

impl Listener {
    /// Binds `addr` (port 0: any free port) with `options` (inherited by accepted
    /// sockets) and starts listening; `hook` decides each handshake.
    pub fn bind(
        addr: SocketAddr,
        options: &SocketOptions,
        backlog: i32,
        hook: impl Fn(&Handshake<'_>) -> Result<(), Reject> + Send + Sync + 'static,
    ) -> Result<Listener, Error> {
        let reactor = reactor()?;
        let socket = Socket::new()?;
        socket.apply(options)?;
        socket.set_blocking(false)?;
        socket.bind(addr)?;
        let local_addr = socket.local_addr()?;
        let hook: Box<Box<Hook>> = Box::new(Box::new(hook));
        let opaque = (&*hook as *const Box<Hook>).cast_mut().cast::<c_void>();
        // SAFETY: `opaque` stays valid until after the socket is closed (field order).
        if unsafe { sys::srt_listen_callback(socket.id(), Some(on_handshake), opaque) } < 0 {
            return Err(Error::last("srt_listen_callback"));
        }
        socket.listen(backlog)?;
        Ok(Listener {
            inner: reactor.register(socket)?,
            _hook: hook,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next caller whose handshake the hook accepted, and its address.
    pub async fn accept(&self) -> Result<(SrtStream, SocketAddr), Error> {
        let (socket, peer) = std::future::poll_fn(|cx| {
            self.inner
                .poll_io(Direction::Read, cx, || self.inner.socket.accept())
        })
        .await?;
        socket.set_blocking(false)?;
        let stream = SrtStream::register(socket)?;
        Ok((stream, peer))
    }
}

/// A connected SRT socket: each read returns one message, each write sends one.
/// Clones share the socket (one may read while another writes); the socket closes when
/// the last one drops.
#[derive(Clone)]
pub struct SrtStream {
    inner: Arc<Registered>,
}

impl std::fmt::Debug for SrtStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtStream")
            .field("socket", &self.inner.socket.id())
            .finish()
    }
}

impl SrtStream {
    fn register(socket: Socket) -> Result<SrtStream, Error> {
        Ok(SrtStream {
            inner: Arc::new(reactor()?.register(socket)?),
        })
    }

    /// Connects to a listener at `addr` as a caller with `options` (its streamid and
    /// passphrase among them), within `options.connect_timeout`.
    pub async fn connect(addr: SocketAddr, options: SocketOptions) -> Result<SrtStream, Error> {
        reactor()?;
        let connected = tokio::task::spawn_blocking(move || {
            let socket = Socket::new()?;
            socket.apply(&options)?;
            socket.set_blocking(true)?;
            socket.connect(addr)?;
            socket.set_blocking(false)?;
            Ok::<_, Error>(socket)
        })
        .await
        .map_err(|join| Error::own(format!("connecting to {addr}"), join.to_string()))??;
        SrtStream::register(connected)
    }

    /// The streamid of the connection (the caller's, on an accepted socket).
    pub fn streamid(&self) -> Result<String, Error> {
        self.inner.socket.streamid()
    }

    /// True once the connection is broken or closed.
    pub fn is_gone(&self) -> bool {
        self.inner.socket.is_gone()
    }

    pub fn stats(&self) -> Result<LinkStats, Error> {
        self.inner.socket.stats()
    }

    /// A handle that reads this connection's statistics without keeping it open.
    pub fn link(&self) -> Link {
        Link(Arc::downgrade(&self.inner))
    }

    /// Receives one message (waiting for it).
    pub async fn recv(&self, buffer: &mut [u8]) -> Result<usize, Error> {
        std::future::poll_fn(|cx| {
            self.inner.poll_io(Direction::Read, cx, || {
                // SAFETY: a `[u8]` is a valid `[MaybeUninit<u8>]` of the same length.
                let uninit = unsafe {
                    std::slice::from_raw_parts_mut(buffer.as_mut_ptr().cast(), buffer.len())
                };
                self.inner.socket.recv_message(uninit)
            })
        })
        .await
    }

    /// Sends one message (waiting for room in the send buffer).
    pub async fn send(&self, message: &[u8]) -> Result<usize, Error> {
        std::future::poll_fn(|cx| {
            self.inner.poll_io(Direction::Write, cx, || {
                self.inner.socket.send_message(message)
            })
        })
        .await
    }
}

/// A connection's statistics, readable while some [`SrtStream`] keeps it open.
#[derive(Clone)]
pub struct Link(std::sync::Weak<Registered>);

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Link")
    }
}

impl Link {
    /// The statistics, `None` once the connection is closed.
    pub fn stats(&self) -> Option<LinkStats> {
        self.0.upgrade()?.socket.stats().ok()
    }
}

impl AsyncRead for SrtStream {
    /// Reads one whole message. `buf` must have room for [`crate::MAX_PAYLOAD`] bytes:
    /// libsrt refuses to split a live message. A connection closed by the peer reads as
    /// end of stream.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if buf.remaining() < crate::MAX_PAYLOAD {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "an SRT read needs room for a whole message ({} bytes), got {}",
                    crate::MAX_PAYLOAD,
                    buf.remaining()
                ),
            )));
        }
        let inner = &self.inner;
        // SAFETY: libsrt only writes into the unfilled part; `assume_init` below covers
        // exactly the bytes it reports written.
        let unfilled = unsafe { buf.unfilled_mut() };
        let received = std::task::ready!(inner.poll_io(Direction::Read, cx, || {
            inner.socket.recv_message(unfilled)
        }));
        match received {
            Ok(len) => {
                // SAFETY: libsrt initialised `len` bytes of the unfilled part.
                unsafe { buf.assume_init(len) };
                buf.advance(len);
                Poll::Ready(Ok(()))
            }
            Err(error) if error.connection_lost() => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(error.into())),
        }
    }
}

impl AsyncWrite for SrtStream {
    /// Sends `buf` as one message, whole: a write never sends part of it, so each
    /// write the relay makes is one message on the wire.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if buf.len() > crate::MAX_PAYLOAD {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "an SRT live message holds at most {} bytes, not {}",
                    crate::MAX_PAYLOAD,
                    buf.len()
                ),
            )));
        }
        let inner = &self.inner;
        inner
            .poll_io(Direction::Write, cx, || inner.socket.send_message(buf))
            .map_err(std::io::Error::from)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // libsrt sends on its own threads; there is nothing to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // SRT has no half-close: the socket closes when the last handle drops.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SocketOptions {
        SocketOptions {
            latency: Duration::from_millis(20),
            connect_timeout: Duration::from_millis(1_500),
            ..SocketOptions::default()
        }
    }

    #[tokio::test]
    async fn messages_keep_their_boundaries_both_ways() {
        let listener = Listener::bind(
            "127.0.0.1:0".parse().expect("addr"),
            &options(),
            8,
            |handshake| match handshake.streamid {
                Some("live/ok") => Ok(()),
                _ => Err(RejectReason::FORBIDDEN),
            },
        )
        .expect("listener");
        let addr = listener.local_addr();
        let caller = SrtStream::connect(
            addr,
            SocketOptions {
                streamid: Some("live/ok".into()),
                ..options()
            },
        );
        let (caller, accepted) = tokio::join!(caller, listener.accept());
        let caller = caller.expect("caller connects");
        let (accepted, _peer) = accepted.expect("accepted");
        assert_eq!(accepted.streamid().expect("streamid"), "live/ok");
        for size in [1usize, 188, 1316, crate::MAX_PAYLOAD] {
            let message: Vec<u8> = (0..size).map(|i| i as u8).collect();
            assert_eq!(caller.send(&message).await.expect("sent"), size);
            let mut buffer = vec![0u8; 4096];
            let len = accepted.recv(&mut buffer).await.expect("received");
            assert_eq!(&buffer[..len], &message[..], "one message of {size} bytes");
        }
        accepted.send(b"back").await.expect("sent back");
        let mut buffer = vec![0u8; 4096];
        let len = caller.recv(&mut buffer).await.expect("received back");
        assert_eq!(&buffer[..len], b"back");
        let too_big = vec![0u8; crate::MAX_PAYLOAD + 1];
        let mut writer = caller.clone();
        let error = tokio::io::AsyncWriteExt::write(&mut writer, &too_big)
            .await
            .expect_err("larger than one message");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        drop((caller, writer));
        let mut reader = accepted.clone();
        let mut buffer = vec![0u8; 4096];
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut reader, &mut buffer),
        )
        .await
        .expect("the close is seen")
        .expect("end of stream, not an error");
        assert_eq!(read, 0);
    }

    #[tokio::test]
    async fn the_hook_rejects_with_its_reason_and_a_wrong_passphrase_is_refused() {
        let secret = SocketOptions {
            passphrase: Some("correct horse battery".into()),
            ..options()
        };
        let listener = Listener::bind(
            "127.0.0.1:0".parse().expect("addr"),
            &secret,
            8,
            |handshake| match handshake.streamid {
                Some("live/ok") => Ok(()),
                Some(_) => Err(RejectReason::BAD_MODE),
                None => Err(RejectReason::BAD_REQUEST),
            },
        )
        .expect("listener");
        let addr = listener.local_addr();
        let refused = SrtStream::connect(
            addr,
            SocketOptions {
                streamid: Some("live/other".into()),
                ..secret.clone()
            },
        )
        .await
        .expect_err("the hook refuses");
        assert_eq!(refused.reject, Some(RejectReason::BAD_MODE), "{refused}");
        assert!(refused.to_string().contains("bad mode (1405)"), "{refused}");
        let wrong = SrtStream::connect(
            addr,
            SocketOptions {
                streamid: Some("live/ok".into()),
                passphrase: Some("wrong passphrase!".into()),
                ..options()
            },
        )
        .await
        .expect_err("a wrong passphrase is refused");
        assert_eq!(wrong.reject, Some(RejectReason::BAD_SECRET), "{wrong}");
    }
}
