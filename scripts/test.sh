#!/usr/bin/env bash
# The test suite: installs what is missing, then checks formatting, lints, builds the fuzz
# targets and runs every test of the workspace (unit and property tests of every crate,
# integration tests against real nginx-rtmp, ffmpeg and Meta's PDQ). This is the command
# .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
bash scripts/fuzz.sh build
cargo test --workspace --locked --all-targets
