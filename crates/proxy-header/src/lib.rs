//! Sans-IO PROXY protocol headers (HAProxy's spec, versions 1 and 2): [`parse`] reads one
//! from the start of a byte buffer — saying `Incomplete` for any prefix of a header, so a
//! caller can peek at a socket until it has all of it — and [`encode`] writes one.
//!
//! Only what a TCP relay needs is kept: the source and destination of a proxied TCP
//! connection. A v2 `LOCAL` command (the proxy's own health check) and addresses the
//! relay has no use for (v1 `UNKNOWN`, v2 UDP, UNIX or unspecified families) parse to
//! [`Header::Local`] and [`Header::Unknown`], for which the spec says to use the
//! connection's own addresses; v2 TLVs are skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: a header starts with these 12 bytes.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 signature.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included (the spec's own bound).
pub const V1_MAX_LEN: usize = 107;
/// The longest v2 header accepted: 16 fixed bytes and 520 of addresses and TLVs, the
/// receive buffer the spec recommends. Longer ones only carry TLVs a relay ignores.
pub const V2_MAX_LEN: usize = 536;
/// The fixed part of a v2 header, up to and including its length field.
const V2_FIXED_LEN: usize = 16;

/// Which version of the protocol a header is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What a header says about the connection it precedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied TCP connection: the client's address and the one it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 `LOCAL`: the proxy speaks for itself (health checks); no client behind it.
    Local,
    /// A family or protocol without TCP addresses (v1 `UNKNOWN`, v2 UNIX, UDP,
    /// unspecified).
    Unknown,
}

/// A header read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub version: Version,
    pub header: Header,
    /// Bytes the header takes at the start of the buffer; what follows is the stream.
    pub len: usize,
}

/// The outcome of [`parse`] on a buffer that may still grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// The buffer is a prefix of a header: more bytes are needed.
    Incomplete,
    Complete(Parsed),
}

/// Why the bytes are not an acceptable PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The stream does not start with either version's signature.
    #[error("no PROXY protocol signature")]
    NoSignature,
    #[error("PROXY v1 header longer than {V1_MAX_LEN} bytes")]
    V1TooLong,
    #[error("PROXY v2 header of {0} bytes, over the {V2_MAX_LEN}-byte cap")]
    V2TooLong(usize),
    #[error("malformed PROXY v1 header: {0}")]
    V1Malformed(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2Malformed(&'static str),
}

/// Reads the header at the start of `buffer`.
pub fn parse(buffer: &[u8]) -> Result<Parse, HeaderError> {
    if starts_like(buffer, V1_SIGNATURE) {
        parse_v1(buffer)
    } else if starts_like(buffer, &V2_SIGNATURE) {
        parse_v2(buffer)
    } else {
        Err(HeaderError::NoSignature)
    }
}

/// Whether `buffer` and `signature` agree on their common length (an empty buffer
/// agrees with everything).
fn starts_like(buffer: &[u8], signature: &[u8]) -> bool {
    let common = buffer.len().min(signature.len());
    buffer[..common] == signature[..common]
}

fn parse_v1(buffer: &[u8]) -> Result<Parse, HeaderError> {
    let window = &buffer[..buffer.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&byte| byte == b'\r') else {
        if let Some(bad) = window.iter().find(|byte| !is_v1_char(**byte)) {
            return Err(HeaderError::V1Malformed(if *bad == b'\n' {
                "line feed without carriage return"
            } else {
                "byte outside printable ASCII"
            }));
        }
        return if buffer.len() >= V1_MAX_LEN {
            Err(HeaderError::V1TooLong)
        } else {
            Ok(Parse::Incomplete)
        };
    };
    let line = &window[..cr];
    if line.iter().any(|byte| !is_v1_char(*byte)) {
        return Err(HeaderError::V1Malformed("byte outside printable ASCII"));
    }
    match window.get(cr + 1) {
        None if buffer.len() >= V1_MAX_LEN => return Err(HeaderError::V1TooLong),
        None => return Ok(Parse::Incomplete),
        Some(b'\n') => {}
        Some(_) => {
            return Err(HeaderError::V1Malformed(
                "carriage return without line feed",
            ));
        }
    }
    let line = std::str::from_utf8(line)
        .map_err(|_| HeaderError::V1Malformed("byte outside printable ASCII"))?;
    Ok(Parse::Complete(Parsed {
        version: Version::V1,
        header: v1_fields(line)?,
        len: cr + 2,
    }))
}

fn is_v1_char(byte: u8) -> bool {
    byte == b' ' || byte.is_ascii_graphic()
}

/// The fields of a whole v1 line (without its CRLF).
fn v1_fields(line: &str) -> Result<Header, HeaderError> {
    let mut fields = line.split(' ');
    fields.next(); // "PROXY", matched by the signature
    let v6 = match fields.next() {
        Some("TCP4") => false,
        Some("TCP6") => true,
        // Whatever follows UNKNOWN is to be ignored.
        Some("UNKNOWN") => return Ok(Header::Unknown),
        _ => {
            return Err(HeaderError::V1Malformed(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let rest: Vec<&str> = fields.collect();
    let [source, destination, source_port, destination_port] = rest[..] else {
        return Err(HeaderError::V1Malformed("expected four address fields"));
    };
    let address = |text: &str| -> Result<IpAddr, HeaderError> {
        let parsed = if v6 {
            text.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            text.parse::<Ipv4Addr>().map(IpAddr::V4)
        };
        parsed.map_err(|_| HeaderError::V1Malformed("address not of the protocol's family"))
    };
    let port = |text: &str| -> Result<u16, HeaderError> {
        // `u16::from_str` would also take a leading '+'.
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(HeaderError::V1Malformed("port is not a number"));
        }
        text.parse()
            .map_err(|_| HeaderError::V1Malformed("port over 65535"))
    };
    Ok(Header::Proxied {
        source: SocketAddr::new(address(source)?, port(source_port)?),
        destination: SocketAddr::new(address(destination)?, port(destination_port)?),
    })
}

fn parse_v2(buffer: &[u8]) -> Result<Parse, HeaderError> {
    let Some(fixed) = buffer.get(..V2_FIXED_LEN) else {
        return Ok(Parse::Incomplete);
    };
    let version_command = fixed[12];
    if version_command >> 4 != 2 {
        return Err(HeaderError::V2Malformed("version is not 2"));
    }
    let local = match version_command & 0x0F {
        0 => true,
        1 => false,
        _ => {
            return Err(HeaderError::V2Malformed(
                "command is neither LOCAL nor PROXY",
            ));
        }
    };
    let family_protocol = fixed[13];
    let len = V2_FIXED_LEN + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > V2_MAX_LEN {
        return Err(HeaderError::V2TooLong(len));
    }
    let Some(addresses) = buffer.get(V2_FIXED_LEN..len) else {
        return Ok(Parse::Incomplete);
    };
    let header = if local {
        Header::Local
    } else {
        v2_addresses(family_protocol, addresses)?
    };
    Ok(Parse::Complete(Parsed {
        version: Version::V2,
        header,
        len,
    }))
}

/// The addresses of a v2 `PROXY` command; TLVs after them are skipped.
fn v2_addresses(family_protocol: u8, addresses: &[u8]) -> Result<Header, HeaderError> {
    const STREAM: u8 = 1;
    let (family, protocol) = (family_protocol >> 4, family_protocol & 0x0F);
    if family > 3 || protocol > 2 {
        return Err(HeaderError::V2Malformed(
            "unknown address family or protocol",
        ));
    }
    let ip_len = match (family, protocol) {
        (1, STREAM) => 4,
        (2, STREAM) => 16,
        _ => return Ok(Header::Unknown),
    };
    let Some(block) = addresses.get(..2 * ip_len + 4) else {
        return Err(HeaderError::V2Malformed(
            "length too short for its addresses",
        ));
    };
    let ip = |bytes: &[u8]| -> IpAddr {
        match <[u8; 16]>::try_from(bytes) {
            Ok(v6) => IpAddr::V6(Ipv6Addr::from(v6)),
            Err(_) => {
                let mut v4 = [0u8; 4];
                v4.copy_from_slice(bytes);
                IpAddr::V4(Ipv4Addr::from(v4))
            }
        }
    };
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    Ok(Header::Proxied {
        source: SocketAddr::new(ip(&block[..ip_len]), port(2 * ip_len)),
        destination: SocketAddr::new(ip(&block[ip_len..2 * ip_len]), port(2 * ip_len + 2)),
    })
}

/// A header announcing a TCP connection from `source` to `destination`. Both must be of
/// one family, so a mixed pair is sent as IPv6 with the IPv4 side mapped.
pub fn encode(version: Version, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source_ip, destination_ip) = match (source.ip(), destination.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (IpAddr::V4(a), IpAddr::V4(b)),
        (a, b) => (IpAddr::V6(as_v6(a)), IpAddr::V6(as_v6(b))),
    };
    match version {
        Version::V1 => {
            let protocol = if source_ip.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {protocol} {source_ip} {destination_ip} {} {}\r\n",
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        Version::V2 => {
            let mut header = V2_SIGNATURE.to_vec();
            header.push(0x21); // version 2, PROXY
            let addresses: Vec<u8> = match (source_ip, destination_ip) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    header.push(0x11); // INET, STREAM
                    [a.octets(), b.octets()].concat()
                }
                (a, b) => {
                    header.push(0x21); // INET6, STREAM
                    [as_v6(a).octets(), as_v6(b).octets()].concat()
                }
            };
            let len = addresses.len() + 4;
            header.extend_from_slice(&(len as u16).to_be_bytes());
            header.extend_from_slice(&addresses);
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
            header
        }
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test address")
    }

    /// Every strict prefix of `bytes` asks for more; the whole parses to `expected`,
    /// also with stream bytes after it.
    fn assert_parses(bytes: &[u8], version: Version, expected: Header) {
        for end in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..end]),
                Ok(Parse::Incomplete),
                "prefix of {end} bytes of {bytes:?}"
            );
        }
        let mut followed = bytes.to_vec();
        followed.extend_from_slice(&[3; 1537]); // an RTMP C0 + C1
        let parsed = Parsed {
            version,
            header: expected,
            len: bytes.len(),
        };
        assert_eq!(parse(bytes), Ok(Parse::Complete(parsed)));
        assert_eq!(parse(&followed), Ok(Parse::Complete(parsed)));
    }

    #[test]
    fn v1_headers_parse_and_every_prefix_is_incomplete() {
        let proxied = |s, d| Header::Proxied {
            source: addr(s),
            destination: addr(d),
        };
        assert_parses(
            b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 1935\r\n",
            Version::V1,
            proxied("192.0.2.7:56324", "198.51.100.1:1935"),
        );
        assert_parses(
            b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 1935\r\n",
            Version::V1,
            proxied("[2001:db8::7]:65535", "[2001:db8::1]:1935"),
        );
        assert_parses(b"PROXY UNKNOWN\r\n", Version::V1, Header::Unknown);
        assert_parses(
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
            Version::V1,
            Header::Unknown,
        );
        // The longest header the spec allows, and the longest TCP one.
        let ones = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let longest = format!("PROXY UNKNOWN {ones} {ones} 65535 65535\r\n");
        assert_eq!(longest.len(), V1_MAX_LEN);
        assert_parses(longest.as_bytes(), Version::V1, Header::Unknown);
        let all_ones = format!("[{ones}]:65535");
        assert_parses(
            format!("PROXY TCP6 {ones} {ones} 65535 65535\r\n").as_bytes(),
            Version::V1,
            proxied(&all_ones, &all_ones),
        );
    }

    #[test]
    fn v2_headers_parse_and_every_prefix_is_incomplete() {
        let v4 = encode(
            Version::V2,
            addr("192.0.2.7:56324"),
            addr("198.51.100.1:1935"),
        );
        assert_eq!(v4.len(), 28);
        assert_parses(
            &v4,
            Version::V2,
            Header::Proxied {
                source: addr("192.0.2.7:56324"),
                destination: addr("198.51.100.1:1935"),
            },
        );
        let v6 = encode(
            Version::V2,
            addr("[2001:db8::7]:1"),
            addr("[2001:db8::1]:2"),
        );
        assert_eq!(v6.len(), 52);
        assert_parses(
            &v6,
            Version::V2,
            Header::Proxied {
                source: addr("[2001:db8::7]:1"),
                destination: addr("[2001:db8::1]:2"),
            },
        );
        // LOCAL (a health check) with a TLV, and an AF_UNIX PROXY: no client address.
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 4, 0x04, 0, 1, 0]);
        assert_parses(&local, Version::V2, Header::Local);
        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0, 216]);
        unix.extend_from_slice(&[0; 216]);
        assert_parses(&unix, Version::V2, Header::Unknown);
        // TLVs after the addresses are skipped, up to the cap.
        let mut tlvs = v4.clone();
        tlvs[14..16].copy_from_slice(&((V2_MAX_LEN - 16) as u16).to_be_bytes());
        tlvs.resize(V2_MAX_LEN, 0);
        let Ok(Parse::Complete(parsed)) = parse(&tlvs) else {
            panic!("a header at the cap parses");
        };
        assert_eq!(parsed.len, V2_MAX_LEN);
    }

    #[test]
    fn mixed_families_are_sent_as_ipv6() {
        let header = encode(Version::V1, addr("192.0.2.7:5"), addr("[2001:db8::1]:6"));
        assert_eq!(
            header,
            b"PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 5 6\r\n".to_vec()
        );
    }

    #[test]
    fn garbage_oversized_and_malformed_headers_are_errors() {
        // RTMP's C0, TLS's ClientHello, HTTP: no signature.
        for stream in [&b"\x03\x00\x00"[..], b"\x16\x03\x01", b"GET / HTTP/1.1\r\n"] {
            assert_eq!(parse(stream), Err(HeaderError::NoSignature));
        }
        assert_eq!(parse(&[b'P'; 200][..2]), Err(HeaderError::NoSignature));
        let mut endless = b"PROXY TCP4 ".to_vec();
        endless.resize(V1_MAX_LEN, b'1');
        assert_eq!(parse(&endless), Err(HeaderError::V1TooLong));
        assert_eq!(parse(&endless[..V1_MAX_LEN - 1]), Ok(Parse::Incomplete));
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(parse(&v2), Err(HeaderError::V2TooLong(16 + 0xFFFF)));
        for (bytes, error) in [
            (&b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..], "line feed"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "carriage return"),
            (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "four address"),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "family"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "number"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "65535"),
            (b"PROXY TCP4 1.2.3.4\x00", "printable"),
        ] {
            let result = parse(bytes);
            assert!(
                matches!(&result, Err(HeaderError::V1Malformed(why)) if why.contains(error)),
                "{bytes:?}: {result:?}"
            );
        }
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            parse(&short),
            Err(HeaderError::V2Malformed(
                "length too short for its addresses"
            ))
        );
        let mut version_1 = V2_SIGNATURE.to_vec();
        version_1.extend_from_slice(&[0x11, 0x11, 0, 0]);
        assert_eq!(
            parse(&version_1),
            Err(HeaderError::V2Malformed("version is not 2"))
        );
    }
}
