//! Links libsrt (found through pkg-config `srt`: Debian's `libsrt-openssl-dev`) and
//! generates declarations for the part of `srt.h` this crate uses.

use std::path::PathBuf;

fn main() {
    let library = match pkg_config::Config::new()
        .atleast_version("1.4")
        .probe("srt")
    {
        Ok(library) => library,
        Err(error) => panic!(
            "libsrt not found through pkg-config `srt` ({error}); install libsrt-openssl-dev (scripts/install-deps.sh)"
        ),
    };
    println!("cargo:rerun-if-changed=wrapper.h");
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        // Only what the wrapper calls: a narrow surface is easier to review.
        .allowlist_function(
            "srt_(startup|create_socket|bind|listen|accept|listen_callback|connect|close|getpeername|getsockname|getsockflag|setsockflag|sendmsg2|recvmsg|getlasterror|getlasterror_str|strerror|clearlasterror|bistats|getsockstate|epoll_create|epoll_add_usock|epoll_remove_usock|epoll_uwait|epoll_set|getrejectreason|setrejectreason|rejectreason_str|setloglevel)",
        )
        .allowlist_type("SRT_(TRACEBSTATS|EPOLL_EVENT|SOCKSTATUS|SOCKOPT|MSGCTRL)")
        .allowlist_var("SRT_(EPOLL_.*|LIVE_MAX_PLSIZE|REJX_.*|REJ_.*|ERRNO_.*|INVALID_SOCK|ERROR)")
        .allowlist_type("SRT_(ERRNO|REJECT_REASON|EPOLL_OPT|EPOLL_FLAGS|TRANSTYPE)")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .layout_tests(false)
        .generate_comments(false);
    for path in &library.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|error| panic!("generating libsrt bindings: {error}"));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    bindings
        .write_to_file(out.join("srt_sys.rs"))
        .unwrap_or_else(|error| panic!("writing libsrt bindings: {error}"));
}
