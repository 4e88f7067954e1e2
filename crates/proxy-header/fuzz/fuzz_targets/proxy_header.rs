//! Fuzzes the PROXY header parser: any bytes must parse, ask for more or fail with an
//! error; a parsed header never claims more bytes than it was given, every prefix of it
//! is `Incomplete`, and re-encoding an address it carried parses back to the same one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_proxy_header::{Header, Parse, Version, encode, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(Parse::Complete(parsed)) = parse(data) else {
        return;
    };
    assert!(parsed.len <= data.len());
    for end in 0..parsed.len {
        assert_eq!(parse(&data[..end]), Ok(Parse::Incomplete), "prefix of {end} bytes");
    }
    if let Header::Proxied { source, destination } = parsed.header {
        for version in [Version::V1, Version::V2] {
            let again = parse(&encode(version, source, destination));
            let Ok(Parse::Complete(again)) = again else {
                panic!("re-encoded header does not parse: {again:?}");
            };
            assert_eq!(again.header, parsed.header);
        }
    }
});
