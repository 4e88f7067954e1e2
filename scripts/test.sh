#!/usr/bin/env bash
# The test suite: installs what is missing, then checks formatting, lints, builds the fuzz
# targets and runs every test (unit, property, and integration tests against real
# nginx-rtmp, ffmpeg and Meta's PDQ). This is the command .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
bash scripts/fuzz.sh build
cargo test --locked --all-targets
