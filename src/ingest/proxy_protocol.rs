//! PROXY protocol (v1 and v2) on an ingest's raw TCP connections: the header a load
//! balancer puts before a publisher's bytes, read right after accept and before anything
//! else touches the socket (a TLS layer sits after it), and the header livegate can put
//! before its own bytes to the origin. Parsing is the sans-IO `livegate-proxy-header`
//! crate; this module holds the configuration (`proxy_protocol`, `trusted_proxies`,
//! `origin_proxy_protocol`) and the socket side.
//!
//! The header is peeked at, never read ahead of: the stream stays untouched until a whole
//! header is known, and then exactly its bytes are consumed — so with
//! `proxy_protocol = "optional"` a stream without one (detected by its first bytes, which
//! match neither signature) reaches the session whole, and nothing of a header is relayed
//! to the origin or seen by the inspector.

use livegate_proxy_header::{Header, HeaderError, Parse, V2_MAX_LEN, Version, encode, parse};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::config::{IngestConfig, InvalidKey};

/// How often a header that has stopped arriving half-way is peeked at again: a peek
/// returns at once while any bytes are queued, so waiting for the rest needs a pause.
const PEEK_RETRY: Duration = Duration::from_millis(10);

/// Whether an ingest expects a PROXY header before the publisher's bytes.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolMode {
    /// No header is read: a header's bytes would reach the inspector as a foreign stream.
    #[default]
    Off,
    /// A trusted proxy may send one; a header from anyone else is refused.
    Optional,
    /// Every connection comes from a trusted proxy with a header.
    Required,
}

/// The PROXY protocol version livegate sends to the origin.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProxyVersion {
    V1,
    V2,
}

impl From<ProxyVersion> for Version {
    fn from(version: ProxyVersion) -> Self {
        match version {
            ProxyVersion::V1 => Version::V1,
            ProxyVersion::V2 => Version::V2,
        }
    }
}

/// An address block of `trusted_proxies`: `10.0.0.0/8`, `2001:db8::/32`, or a single
/// address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IP address"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("prefix length `{prefix}` is not 0..={bits}"))?,
        };
        let cidr = Cidr { network, prefix };
        // Host bits are most likely a typo for another block: refuse rather than guess.
        if cidr.masked(network) != network {
            return Err(format!("`{text}` has bits set past its /{prefix} prefix"));
        }
        Ok(cidr)
    }
}

impl Cidr {
    /// Whether `ip` is in the block; an IPv4-mapped IPv6 peer (a dual-stack listener)
    /// counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((v4.to_bits() & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((v6.to_bits() & mask).into())
            }
        }
    }
}

/// Checks an ingest's PROXY protocol keys; `key` names a key of this ingest.
pub fn validate(ingest: &IngestConfig, key: impl Fn(&str) -> String) -> Result<(), InvalidKey> {
    for (j, text) in ingest.trusted_proxies.iter().enumerate() {
        text.parse::<Cidr>()
            .map_err(|message| InvalidKey::new(key(&format!("trusted_proxies[{j}]")), message))?;
    }
    if ingest.proxy_protocol != ProxyProtocolMode::Off && ingest.trusted_proxies.is_empty() {
        return Err(InvalidKey::new(
            key("trusted_proxies"),
            "proxy_protocol is on but no proxy is trusted to send a header".into(),
        ));
    }
    Ok(())
}

/// Why a connection was closed before its session started.
#[derive(Debug, thiserror::Error)]
pub enum ProxyRefusal {
    #[error("peer is not in trusted_proxies, and proxy_protocol = \"required\"")]
    UntrustedPeer,
    #[error("PROXY header from a peer not in trusted_proxies")]
    UntrustedHeader,
    #[error("no PROXY header, and proxy_protocol = \"required\"")]
    Missing,
    #[error("{0}")]
    Invalid(HeaderError),
    #[error("no complete PROXY header within {} ms ({received} bytes received)", .limit.as_millis())]
    TimedOut { limit: Duration, received: usize },
    #[error("connection closed after {0} bytes of a PROXY header")]
    Truncated(usize),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// An ingest's PROXY protocol settings, parsed once per listener.
pub struct ProxyPolicy {
    mode: ProxyProtocolMode,
    trusted: Vec<Cidr>,
    timeout: Duration,
}

impl ProxyPolicy {
    pub fn of(ingest: &IngestConfig) -> Self {
        ProxyPolicy {
            mode: ingest.proxy_protocol,
            // Validated with the configuration: nothing is dropped here.
            trusted: ingest
                .trusted_proxies
                .iter()
                .filter_map(|text| text.parse().ok())
                .collect(),
            timeout: ingest.handshake_timeout(),
        }
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(peer))
    }

    /// Whether a connection from `peer` may carry a header naming another client: its
    /// per-client cap can only be applied once the header is read.
    pub fn may_proxy(&self, peer: IpAddr) -> bool {
        self.mode != ProxyProtocolMode::Off && self.trusts(peer)
    }

    /// Reads the header a connection from `peer` starts with, as the policy asks, and
    /// returns the session's client: the header's source for a proxied TCP connection,
    /// else `peer` (no header, a `LOCAL` health check, an `UNKNOWN` family). Nothing
    /// after the header is consumed. Takes at most the ingest's handshake timeout.
    pub async fn read_header(
        &self,
        socket: &mut TcpStream,
        peer: SocketAddr,
    ) -> Result<SocketAddr, ProxyRefusal> {
        if self.mode == ProxyProtocolMode::Off {
            return Ok(peer);
        }
        let trusted = self.trusts(peer.ip());
        if self.mode == ProxyProtocolMode::Required && !trusted {
            return Err(ProxyRefusal::UntrustedPeer);
        }
        let mut received = 0;
        let peeked = tokio::time::timeout(self.timeout, peek_header(socket, &mut received))
            .await
            .map_err(|_| ProxyRefusal::TimedOut {
                limit: self.timeout,
                received,
            })??;
        let Some((len, header)) = peeked else {
            return match self.mode {
                ProxyProtocolMode::Required => Err(ProxyRefusal::Missing),
                _ => Ok(peer),
            };
        };
        if !trusted {
            return Err(ProxyRefusal::UntrustedHeader);
        }
        // Already queued (it was peeked): this returns at once.
        socket.read_exact(&mut vec![0; len]).await?;
        Ok(match header {
            Header::Proxied { source, .. } => source,
            Header::Local | Header::Unknown => peer,
        })
    }
}

/// Peeks until the socket's first bytes are a whole header (its length and content) or
/// are not one (`None`); `received` tracks the bytes seen, for the timeout's message.
async fn peek_header(
    socket: &TcpStream,
    received: &mut usize,
) -> Result<Option<(usize, Header)>, ProxyRefusal> {
    let mut buffer = [0u8; V2_MAX_LEN];
    loop {
        let peeked = socket.peek(&mut buffer).await?;
        if peeked == 0 {
            return Err(ProxyRefusal::Truncated(*received));
        }
        match parse(&buffer[..peeked]) {
            Ok(Parse::Complete(parsed)) => return Ok(Some((parsed.len, parsed.header))),
            Err(HeaderError::NoSignature) => return Ok(None),
            Err(error) => return Err(ProxyRefusal::Invalid(error)),
            Ok(Parse::Incomplete) if peeked == *received => {
                // Nothing new: the peer has closed with half a header, or is slow.
                if socket.ready(Interest::READABLE).await?.is_read_closed() {
                    return Err(ProxyRefusal::Truncated(peeked));
                }
                tokio::time::sleep(PEEK_RETRY).await;
            }
            Ok(Parse::Incomplete) => *received = peeked,
        }
    }
}

/// Sends the origin a header naming `client` as the source and the origin's own address
/// as the destination, before any relayed byte.
pub async fn send_header(
    origin: &mut TcpStream,
    version: ProxyVersion,
    client: SocketAddr,
) -> std::io::Result<()> {
    let destination = origin.peer_addr()?;
    origin
        .write_all(&encode(version.into(), client, destination))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_match() {
        let block: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(block.contains("10.200.0.1".parse().expect("ip")));
        assert!(block.contains("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(!block.contains("11.0.0.1".parse().expect("ip")));
        let v6: Cidr = "2001:db8::/32".parse().expect("cidr");
        assert!(v6.contains("2001:db8:ffff::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        let single: Cidr = "192.0.2.7".parse().expect("cidr");
        assert!(single.contains("192.0.2.7".parse().expect("ip")));
        assert!(!single.contains("192.0.2.8".parse().expect("ip")));
        let everyone: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(everyone.contains("203.0.113.9".parse().expect("ip")));
        for (bad, why) in [
            ("10.0.0.1/8", "bits set"),
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0.0/x", "prefix length"),
            ("example.com/8", "not an IP address"),
        ] {
            let error = bad.parse::<Cidr>().expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
