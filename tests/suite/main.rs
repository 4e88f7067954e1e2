//! Every integration test in one binary: one link of livegate, FFmpeg's bindings and the
//! support code instead of one per file. Each module is one area (named as the files
//! were: `cargo test --test suite cut::` runs the cut tests); they share `support`, which
//! starts real nginx-rtmp origins, ffmpeg publishers and the livegate binary on free
//! 127.0.0.1 ports.

mod support;

mod admin_api;
mod classifier;
mod classifier_stream;
mod cluster;
mod console;
mod console_browser;
mod cut;
mod demo;
mod demux_fixture;
mod descriptor;
mod descriptor_lists;
mod descriptor_stream;
mod docker;
mod enhanced_rtmp;
mod evasion;
mod evidence;
mod gate;
mod lifecycle;
mod match_cli;
mod mpegts_keyframes;
mod openapi;
mod pdq_conformance;
mod proxy_protocol;
mod readme;
mod relay;
mod rtmps;
mod srt;
mod video_hashing;
