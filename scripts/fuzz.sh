#!/usr/bin/env bash
# Fuzz targets of every parser (cargo-fuzz + libFuzzer), one fuzz crate beside each crate
# it fuzzes: crates/rtmp/fuzz (demux, amf0, flv_video, differential) and
# crates/signals/fuzz (hashlist, pdq, index, descriptor_list), crates/proxy-header/fuzz
# (proxy_header), crates/mpegts/fuzz (mpegts) and crates/srt/fuzz (streamid). Each depends
# on its crate only, so no
# fuzz build links FFmpeg, ONNX Runtime or hyper.
#   scripts/fuzz.sh build               build every target (what the tests script runs)
#   scripts/fuzz.sh run TARGET [SECONDS] fuzz one target (default 60 s); needs cargo-fuzz
# AddressSanitizer needs a nightly compiler, so targets run without a sanitizer
# (`-s none`): Rust's own bounds and overflow checks still turn bugs into crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_dirs=(crates/*/fuzz)
case "${1:-build}" in
  build)
    # One target directory for every fuzz crate (target names are unique across them),
    # so shared dependencies are built once.
    for dir in "${fuzz_dirs[@]}"; do
      CARGO_TARGET_DIR="$(pwd)/target/fuzz-build" cargo build --quiet --manifest-path "$dir/Cargo.toml" --bins
    done
    ;;
  run)
    target=${2:?usage: scripts/fuzz.sh run TARGET [SECONDS]}
    seconds=${3:-60}
    dir=
    for candidate in "${fuzz_dirs[@]}"; do
      if [ -f "$candidate/fuzz_targets/$target.rs" ]; then dir=$candidate; fi
    done
    if [ -z "$dir" ]; then
      echo "no fuzz target '$target'; targets:" $(basename -s .rs crates/*/fuzz/fuzz_targets/*.rs) >&2
      exit 2
    fi
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    # From the fuzzed crate's directory cargo-fuzz finds the fuzz crate as ./fuzz.
    cd "${dir%/fuzz}" && cargo fuzz run -s none "$target" -- -max_total_time="$seconds"
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | run TARGET [SECONDS]" >&2
    exit 2
    ;;
esac
