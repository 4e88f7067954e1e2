//! The protocol edge: how publishers' bytes arrive ([`transport`], over TLS: [`tls`], over
//! SRT: [`srt`], which also reads the stream's identity from the SRT handshake) and what they mean
//! ([`inspect`]: one passive inspector per protocol, turning a copy of the bytes into the
//! protocol-neutral [`crate::stream::StreamEvent`]s; RTMP's is the sans-IO demuxer of the
//! `livegate-rtmp` crate), and the PROXY protocol header a load balancer may put before
//! them ([`proxy_protocol`]). Nothing here knows sessions, analysis or actions: the session
//! drives both through their traits.

pub mod inspect;
pub mod proxy_protocol;
pub mod srt;
pub mod tls;
pub mod transport;
