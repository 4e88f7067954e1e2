//! An owned libsrt socket: options, bind/listen/accept/connect, one message in or out,
//! state and statistics. Every call is a thin `unsafe` shell over libsrt returning
//! [`Error`] with libsrt's code; the socket is closed when dropped.

use std::ffi::{CStr, c_int, c_void};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, RejectReason};
use crate::sys;

/// libsrt's streamid limit (SRTO_STREAMID), in bytes.
pub const MAX_STREAMID_BYTES: usize = 512;

/// Starts libsrt once per process (its garbage-collector and timer threads). libsrt's
/// own log goes quiet below "critical": every error reaches the caller as a value.
pub(crate) fn startup() -> Result<(), Error> {
    static STARTED: OnceLock<Result<(), Error>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            // SAFETY: srt_startup may be called at any time; OnceLock makes it once.
            if unsafe { sys::srt_startup() } < 0 {
                return Err(Error::last("srt_startup"));
            }
            // SAFETY: sets a global log level; LOG_CRIT = 2 (syslog numbering).
            unsafe { sys::srt_setloglevel(2) };
            Ok(())
        })
        .clone()
}

/// What a live-mode socket is configured with. Applied before bind (listener: inherited
/// by every accepted socket) or before connect (caller).
#[derive(Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// The receiver's buffering delay (SRTO_LATENCY, both directions).
    pub latency: Duration,
    /// AES passphrase (10–79 characters); `None` or empty: no encryption.
    pub passphrase: Option<String>,
    /// AES key length in bytes: 16, 24 or 32 (with a passphrase).
    pub pbkeylen: u8,
    /// Sending rate cap in bytes per second (SRTO_MAXBW); `None`: libsrt's default.
    pub max_bandwidth: Option<i64>,
    /// How long a caller's handshake may take (SRTO_CONNTIMEO).
    pub connect_timeout: Duration,
    /// A connection silent this long is broken (SRTO_PEERIDLETIMEO).
    pub peer_idle_timeout: Duration,
    /// The caller's streamid (SRTO_STREAMID).
    pub streamid: Option<String>,
    /// How long a closed socket keeps sending what it has queued (SRTO_LINGER); zero:
    /// queued messages are dropped at close (libsrt's live-mode default).
    pub linger: Duration,
}

impl std::fmt::Debug for SocketOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketOptions")
            .field("latency", &self.latency)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "(redacted)"),
            )
            .field("pbkeylen", &self.pbkeylen)
            .field("max_bandwidth", &self.max_bandwidth)
            .field("connect_timeout", &self.connect_timeout)
            .field("peer_idle_timeout", &self.peer_idle_timeout)
            .field("streamid", &self.streamid.as_ref().map(|_| "(redacted)"))
            .field("linger", &self.linger)
            .finish()
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            latency: Duration::from_millis(120),
            passphrase: None,
            pbkeylen: 16,
            max_bandwidth: None,
            connect_timeout: Duration::from_secs(3),
            peer_idle_timeout: Duration::from_secs(5),
            streamid: None,
            linger: Duration::ZERO,
        }
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// A libsrt socket, closed on drop.
#[derive(Debug)]
pub struct Socket {
    id: sys::SRTSOCKET,
}

impl Socket {
    /// A new live-mode socket.
    pub fn new() -> Result<Socket, Error> {
        startup()?;
        // SAFETY: plain constructor; failure is reported by the return value.
        let id = unsafe { sys::srt_create_socket() };
        if id == sys::SRT_INVALID_SOCK {
            return Err(Error::last("srt_create_socket"));
        }
        let socket = Socket { id };
        socket.set_i32(
            sys::SRT_SOCKOPT_SRTO_TRANSTYPE,
            sys::SRT_TRANSTYPE_SRTT_LIVE as i32,
            "SRTO_TRANSTYPE",
        )?;
        // The largest live payload, so that any message a peer sends can be forwarded
        // whole (the default, 1316, would refuse a larger one).
        socket.set_i32(
            sys::SRT_SOCKOPT_SRTO_PAYLOADSIZE,
            sys::SRT_LIVE_MAX_PLSIZE,
            "SRTO_PAYLOADSIZE",
        )?;
        Ok(socket)
    }

    /// Takes ownership of a socket libsrt created (an accepted one).
    pub(crate) fn from_raw(id: sys::SRTSOCKET) -> Socket {
        Socket { id }
    }

    pub fn id(&self) -> sys::SRTSOCKET {
        self.id
    }

    pub fn apply(&self, options: &SocketOptions) -> Result<(), Error> {
        self.set_i32(
            sys::SRT_SOCKOPT_SRTO_LATENCY,
            millis(options.latency),
            "SRTO_LATENCY",
        )?;
        if let Some(passphrase) = options.passphrase.as_deref().filter(|p| !p.is_empty()) {
            self.set_bytes(
                sys::SRT_SOCKOPT_SRTO_PASSPHRASE,
                passphrase.as_bytes(),
                "SRTO_PASSPHRASE",
            )?;
            self.set_i32(
                sys::SRT_SOCKOPT_SRTO_PBKEYLEN,
                i32::from(options.pbkeylen),
                "SRTO_PBKEYLEN",
            )?;
        }
        if let Some(max_bandwidth) = options.max_bandwidth {
            self.set_raw(sys::SRT_SOCKOPT_SRTO_MAXBW, &max_bandwidth, "SRTO_MAXBW")?;
        }
        self.set_i32(
            sys::SRT_SOCKOPT_SRTO_CONNTIMEO,
            millis(options.connect_timeout),
            "SRTO_CONNTIMEO",
        )?;
        self.set_i32(
            sys::SRT_SOCKOPT_SRTO_PEERIDLETIMEO,
            millis(options.peer_idle_timeout),
            "SRTO_PEERIDLETIMEO",
        )?;
        let linger = libc::linger {
            l_onoff: i32::from(!options.linger.is_zero()),
            l_linger: i32::try_from(options.linger.as_secs().max(1)).unwrap_or(i32::MAX),
        };
        self.set_raw(sys::SRT_SOCKOPT_SRTO_LINGER, &linger, "SRTO_LINGER")?;
        if let Some(streamid) = &options.streamid {
            if streamid.len() > MAX_STREAMID_BYTES {
                return Err(Error::own(
                    "SRTO_STREAMID",
                    format!("longer than {MAX_STREAMID_BYTES} bytes"),
                ));
            }
            self.set_bytes(
                sys::SRT_SOCKOPT_SRTO_STREAMID,
                streamid.as_bytes(),
                "SRTO_STREAMID",
            )?;
        }
        Ok(())
    }

    /// Blocking (`true`) or non-blocking sends and receives (and accepts).
    pub fn set_blocking(&self, blocking: bool) -> Result<(), Error> {
        self.set_raw(sys::SRT_SOCKOPT_SRTO_RCVSYN, &blocking, "SRTO_RCVSYN")?;
        self.set_raw(sys::SRT_SOCKOPT_SRTO_SNDSYN, &blocking, "SRTO_SNDSYN")
    }

    fn set_i32(&self, option: sys::SRT_SOCKOPT, value: i32, name: &str) -> Result<(), Error> {
        self.set_raw(option, &value, name)
    }

    fn set_raw<T: Copy>(
        &self,
        option: sys::SRT_SOCKOPT,
        value: &T,
        name: &str,
    ) -> Result<(), Error> {
        // SAFETY: `value` points at a live `T` of the size passed, which is the type
        // libsrt documents for `option` (int32, int64 or bool).
        let result = unsafe {
            sys::srt_setsockflag(
                self.id,
                option,
                (value as *const T).cast::<c_void>(),
                std::mem::size_of::<T>() as c_int,
            )
        };
        if result < 0 {
            return Err(Error::last(format!("setting {name}")));
        }
        Ok(())
    }

    fn set_bytes(&self, option: sys::SRT_SOCKOPT, value: &[u8], name: &str) -> Result<(), Error> {
        // SAFETY: libsrt copies `value.len()` bytes from the slice.
        let result = unsafe {
            sys::srt_setsockflag(
                self.id,
                option,
                value.as_ptr().cast::<c_void>(),
                value.len() as c_int,
            )
        };
        if result < 0 {
            return Err(Error::last(format!("setting {name}")));
        }
        Ok(())
    }

    /// The streamid the peer sent (accepted sockets) or the one set (callers).
    pub fn streamid(&self) -> Result<String, Error> {
        let mut buffer = [0u8; MAX_STREAMID_BYTES + 1];
        let mut len = buffer.len() as c_int;
        // SAFETY: libsrt writes at most `len` bytes and stores the length written.
        let result = unsafe {
            sys::srt_getsockflag(
                self.id,
                sys::SRT_SOCKOPT_SRTO_STREAMID,
                buffer.as_mut_ptr().cast::<c_void>(),
                &mut len,
            )
        };
        if result < 0 {
            return Err(Error::last("reading SRTO_STREAMID"));
        }
        let len = usize::try_from(len).unwrap_or(0).min(MAX_STREAMID_BYTES);
        Ok(String::from_utf8_lossy(&buffer[..len]).into_owned())
    }

    pub fn bind(&self, addr: SocketAddr) -> Result<(), Error> {
        let (storage, len) = to_sockaddr(addr);
        // SAFETY: `storage` holds a sockaddr of `len` bytes for `addr`'s family.
        let result =
            unsafe { sys::srt_bind(self.id, (&raw const storage).cast::<sys::sockaddr>(), len) };
        if result < 0 {
            return Err(Error::last(format!("binding {addr}")));
        }
        Ok(())
    }

    pub fn listen(&self, backlog: i32) -> Result<(), Error> {
        // SAFETY: plain call on an owned socket.
        if unsafe { sys::srt_listen(self.id, backlog) } < 0 {
            return Err(Error::last("srt_listen"));
        }
        Ok(())
    }

    /// The next accepted connection and its peer, or `would_block` on a non-blocking
    /// listener with none pending.
    pub fn accept(&self) -> Result<(Socket, SocketAddr), Error> {
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: libsrt writes at most `len` bytes of address into `storage`.
        let id = unsafe {
            sys::srt_accept(
                self.id,
                (&raw mut storage).cast::<sys::sockaddr>(),
                &mut len,
            )
        };
        if id == sys::SRT_INVALID_SOCK {
            return Err(Error::last("srt_accept"));
        }
        let socket = Socket::from_raw(id);
        let peer = from_sockaddr(&storage)
            .ok_or_else(|| Error::own("srt_accept", "peer address of unknown family"))?;
        Ok((socket, peer))
    }

    /// Connects (blocking, within the options' connect timeout).
    pub fn connect(&self, addr: SocketAddr) -> Result<(), Error> {
        let (storage, len) = to_sockaddr(addr);
        // SAFETY: as for bind.
        let result =
            unsafe { sys::srt_connect(self.id, (&raw const storage).cast::<sys::sockaddr>(), len) };
        if result < 0 {
            let mut error = Error::last(format!("connecting to {addr}"));
            // SAFETY: plain call on an owned socket.
            let reason = unsafe { sys::srt_getrejectreason(self.id) };
            if reason > 0 {
                error.reject = Some(RejectReason(reason));
            }
            return Err(error);
        }
        Ok(())
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: libsrt writes at most `len` bytes of address into `storage`.
        let result = unsafe {
            sys::srt_getsockname(
                self.id,
                (&raw mut storage).cast::<sys::sockaddr>(),
                &mut len,
            )
        };
        if result < 0 {
            return Err(Error::last("srt_getsockname"));
        }
        from_sockaddr(&storage).ok_or_else(|| Error::own("srt_getsockname", "unknown family"))
    }

    /// Receives one message into `buffer` (which must hold [`crate::MAX_PAYLOAD`]).
    pub fn recv_message(&self, buffer: &mut [std::mem::MaybeUninit<u8>]) -> Result<usize, Error> {
        // SAFETY: libsrt writes at most `buffer.len()` bytes into it and returns how many.
        let received =
            unsafe { sys::srt_recvmsg(self.id, buffer.as_mut_ptr().cast(), buffer.len() as c_int) };
        if received < 0 {
            return Err(Error::last("srt_recvmsg"));
        }
        Ok(received as usize)
    }

    /// Sends `message` as one message (live mode: whole or not at all).
    pub fn send_message(&self, message: &[u8]) -> Result<usize, Error> {
        // SAFETY: libsrt copies `message.len()` bytes; a null control block means
        // defaults (no TTL, in order).
        let sent = unsafe {
            sys::srt_sendmsg2(
                self.id,
                message.as_ptr().cast(),
                message.len() as c_int,
                std::ptr::null_mut(),
            )
        };
        if sent < 0 {
            return Err(Error::last("srt_sendmsg2"));
        }
        Ok(sent as usize)
    }

    /// True once the connection is broken or closed (by either side).
    pub fn is_gone(&self) -> bool {
        // SAFETY: plain query on an owned socket.
        let state = unsafe { sys::srt_getsockstate(self.id) };
        state >= sys::SRT_SOCKSTATUS_SRTS_BROKEN
    }

    /// The link's statistics since it connected.
    pub fn stats(&self) -> Result<LinkStats, Error> {
        let mut perf: sys::SRT_TRACEBSTATS = unsafe { std::mem::zeroed() };
        // SAFETY: libsrt fills the struct; clear = 0 keeps the totals, instantaneous = 1
        // gives the current RTT and bandwidth estimates.
        if unsafe { sys::srt_bistats(self.id, &mut perf, 0, 1) } < 0 {
            return Err(Error::last("srt_bistats"));
        }
        let count = |value: c_int| u64::try_from(value).unwrap_or(0);
        Ok(LinkStats {
            rtt_ms: perf.msRTT,
            packets_received: u64::try_from(perf.pktRecvTotal).unwrap_or(0),
            packets_sent: u64::try_from(perf.pktSentTotal).unwrap_or(0),
            packets_lost_receiving: count(perf.pktRcvLossTotal),
            packets_lost_sending: count(perf.pktSndLossTotal),
            packets_retransmitted: count(perf.pktRetransTotal),
            packets_retransmitted_received: count(perf.pktRcvRetrans),
            packets_dropped_receiving: count(perf.pktRcvDropTotal),
            packets_dropped_sending: count(perf.pktSndDropTotal),
            bandwidth_mbps: perf.mbpsBandwidth,
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: the socket is owned; libsrt removes it from every epoll set.
        unsafe { sys::srt_close(self.id) };
    }
}

/// What ops watch on an SRT link (from `srt_bistats`): round trip, loss, retransmissions
/// and packets that arrived too late to play.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkStats {
    pub rtt_ms: f64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// Packets the receiver found missing (before retransmission).
    pub packets_lost_receiving: u64,
    /// Packets the peer reported missing.
    pub packets_lost_sending: u64,
    /// Packets this side sent again.
    pub packets_retransmitted: u64,
    /// Retransmitted packets received from the peer.
    pub packets_retransmitted_received: u64,
    /// Packets that never arrived within the latency and were skipped.
    pub packets_dropped_receiving: u64,
    pub packets_dropped_sending: u64,
    /// libsrt's estimate of the link's capacity.
    pub bandwidth_mbps: f64,
}

fn to_sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, c_int) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as c_int)
}

pub(crate) fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The peer address libsrt passes to a listen callback.
///
/// # Safety
/// `addr` must be null or point at a sockaddr of its family's full size.
pub(crate) unsafe fn peer_of(addr: *const sys::sockaddr) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid sockaddr; copy only what its family holds.
    let family = c_int::from(unsafe { (*addr).sa_family });
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match family {
        libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
        libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
        _ => return None,
    };
    // SAFETY: `len` bytes are valid at `addr` for this family and fit in `storage`.
    unsafe {
        std::ptr::copy_nonoverlapping(addr.cast::<u8>(), (&raw mut storage).cast::<u8>(), len)
    };
    from_sockaddr(&storage)
}

/// The C string libsrt passes as a streamid, if any.
///
/// # Safety
/// `text` must be null or a NUL-terminated string.
pub(crate) unsafe fn c_text(text: *const std::ffi::c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees NUL termination.
    Some(
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned(),
    )
}
