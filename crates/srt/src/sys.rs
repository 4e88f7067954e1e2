//! Declarations generated from the installed `srt.h` (see `build.rs` for the allowlist).
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/srt_sys.rs"));
