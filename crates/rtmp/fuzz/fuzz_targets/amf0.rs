//! Fuzzes the AMF0 decoder directly: any bytes must decode or fail with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_rtmp::amf0::Amf0Decoder;

fuzz_target!(|data: &[u8]| {
    let _ = Amf0Decoder::new(data, 0).remaining_values();
});
