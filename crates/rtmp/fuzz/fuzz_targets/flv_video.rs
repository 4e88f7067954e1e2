//! Fuzzes the FLV / Enhanced RTMP video tag parser directly.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use livegate_rtmp::flv::{VideoTag, parse_video_tag};

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(VideoTag::Frame { data: frame, .. } | VideoTag::Config { extradata: frame, .. }) =
        parse_video_tag(&payload)
    {
        assert!(frame.len() < payload.len());
    }
});
