#!/usr/bin/env bash
# The one-command demo: installs what is missing, builds livegate, starts a real
# nginx-rtmp origin on 127.0.0.1:1936 and livegate on its embedded default config
# (1935 → 1936), publishes a stream through it with ffmpeg, shows what livegate saw and
# what the origin received, then cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/install-deps.sh
cargo build --release --locked --quiet
livegate="$root/target/release/livegate"

work=$(mktemp -d /tmp/livegate-demo.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/records" && chmod 777 "$work/records"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for port in 1935 1936; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: the demo needs 1935 (livegate) and 1936 (origin) free" >&2
    exit 1
  fi
done

sed "s#@RECORDS@#$work/records#; s#@DIR@#$work#" demo/nginx-origin.conf > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-startup.log" &
pids+=($!)
RUST_LOG=${RUST_LOG:-info} "$livegate" run 2> "$work/livegate.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q "ingest listening" "$work/livegate.log" 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/1936) 2>/dev/null && break
  sleep 0.1
done

echo "== publishing 8 s of 640x360 H.264 + AAC through livegate (rtmp://127.0.0.1:1935/live/demo-stream-key)"
ffmpeg -hide_banner -nostdin -loglevel error -re \
  -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440 -t 8 \
  -c:v libx264 -preset ultrafast -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -f flv rtmp://127.0.0.1:1935/live/demo-stream-key
sleep 0.5

echo "== livegate's log (the stream key never appears in full)"
cat "$work/livegate.log"
echo "== what the origin recorded"
ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,nb_read_frames -of default=noprint_wrappers=1 \
  "$work/records/demo-stream-key.flv"
if grep -q "demo-stream-key" "$work/livegate.log"; then
  echo "FAIL: the stream key leaked into the log" >&2
  exit 1
fi
grep -q "keyframes=4" "$work/livegate.log" && echo "== demo OK: relayed byte for byte, 4 keyframes seen"
