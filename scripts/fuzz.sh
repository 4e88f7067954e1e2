#!/usr/bin/env bash
# Fuzz targets of every parser (fuzz/, cargo-fuzz + libFuzzer).
#   scripts/fuzz.sh build               build every target (what the tests script runs)
#   scripts/fuzz.sh run TARGET [SECONDS] fuzz one target (default 60 s); needs cargo-fuzz
# AddressSanitizer needs a nightly compiler, so targets run without a sanitizer
# (`-s none`): Rust's own bounds and overflow checks still turn bugs into crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-build}" in
  build)
    # Shares the main target directory so dependencies are built once.
    CARGO_TARGET_DIR="$(pwd)/target/fuzz-build" cargo build --quiet --manifest-path fuzz/Cargo.toml --bins
    ;;
  run)
    target=${2:?usage: scripts/fuzz.sh run TARGET [SECONDS]}
    seconds=${3:-60}
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    cd fuzz && cargo fuzz run -s none "$target" -- -max_total_time="$seconds"
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | run TARGET [SECONDS]" >&2
    exit 2
    ;;
esac
