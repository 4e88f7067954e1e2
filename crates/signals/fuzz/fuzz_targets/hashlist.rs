//! Fuzzes the hash-list parser: any file content must parse or fail with a `file:line`
//! error, within small caps, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_signals::hashlist::{HashListBuilder, ListLimits};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let limits = ListLimits {
        max_line_bytes: 256,
        max_file_bytes: 1 << 16,
        max_hashes: 64,
    };
    let mut builder = HashListBuilder::new(Path::new("fuzz.csv"), limits);
    if builder.read(data).is_ok() {
        let _ = builder.finish();
    }
});
