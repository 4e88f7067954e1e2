#!/usr/bin/env bash
# The one-command demo. Installs what is missing, builds livegate, starts a real nginx-rtmp
# origin on 127.0.0.1:1936 and livegate on its embedded default config (1935 → 1936, hash
# list lists/demo-known.csv), then publishes two streams through livegate at real-time
# rate with ffmpeg: a benign one, and one that turns to "known" footage after a few
# seconds. The listed stream is cut at its first matching keyframe (audit record shown);
# the benign one keeps flowing to its end. Everything is stopped and removed afterwards.
#
#   scripts/demo.sh               run the demo (exit status 0 only if both outcomes held)
#   scripts/demo.sh --write-list  regenerate lists/demo-known.csv from the demo clip
# LIVEGATE_BIN=path/to/livegate skips the release build (the tests use their own build).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d /tmp/livegate-demo.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

encode=(-c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0)

# The "known" footage: stands for a clip a platform has already removed.
make_clip() {
  ffmpeg -hide_banner -nostdin -loglevel error -y \
    -f lavfi -i "mandelbrot=s=640x360:r=30:start_scale=2:end_scale=0.05" -t 6 \
    "${encode[@]}" "$1"
}

if [ -z "${LIVEGATE_BIN:-}" ]; then
  echo "== installing what the demo needs (apt: build tools, FFmpeg, nginx-rtmp; skipped when present)"
  bash scripts/install-deps.sh --demo
  echo "== building livegate (release: about 5-7 min the first time on 2 cores, ~5 GB in target/;"
  echo "   seconds afterwards)"
  cargo build --release --locked --bin livegate
fi
livegate=${LIVEGATE_BIN:-$root/target/release/livegate}

if [ "${1:-}" = "--write-list" ]; then
  make_clip "$work/known.mp4"
  { echo "# The demo's list: 'livegate hash --every 1' of the clip scripts/demo.sh makes."
    "$livegate" hash --every 1 "$work/known.mp4" | sed "s#$work/##"; } > lists/demo-known.csv
  echo "wrote lists/demo-known.csv"
  exit 0
fi

for port in 1935 1936; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: the demo needs 1935 (livegate) and 1936 (origin) free" >&2
    exit 1
  fi
done

echo "== preparing footage (benign test pattern; 'known' clip)"
make_clip "$work/known.mp4"
ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=s=640x360:r=30" -t 12 \
  "${encode[@]}" -f flv "$work/benign.flv"
ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=s=640x360:r=30:d=4" \
  -i "$work/known.mp4" -filter_complex "[0:v][1:v]concat=n=2:v=1:a=0[v]" -map "[v]" \
  "${encode[@]}" -f flv "$work/listed.flv"

mkdir -p "$work/records" && chmod 777 "$work/records"
sed "s#@RECORDS@#$work/records#; s#@DIR@#$work#" demo/nginx-origin.conf > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-startup.log" &
pids+=($!)
RUST_LOG=${RUST_LOG:-info} "$livegate" run 2> "$work/livegate.log" &
pids+=($!)
for _ in $(seq 100); do
  grep -q "ingest listening" "$work/livegate.log" 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/1936) 2>/dev/null && break
  sleep 0.1
done
grep -q "ingest listening" "$work/livegate.log" || { cat "$work/livegate.log"; exit 1; }

echo "== publishing through livegate: rtmp://127.0.0.1:1935/live/benign-stream-key (12 s)"
echo "==                          and rtmp://127.0.0.1:1935/live/listed-stream-key (4 s benign, then the known clip)"
publish() { ffmpeg -hide_banner -nostdin -loglevel quiet -re -i "$1" -c copy -f flv "rtmp://127.0.0.1:1935/live/$2"; }
publish "$work/benign.flv" benign-stream-key & benign=$!
publish "$work/listed.flv" listed-stream-key & listed=$!
listed_status=0; wait "$listed" || listed_status=$?
benign_status=0; wait "$benign" || benign_status=$?
sleep 0.3

echo "== livegate's log (stream keys appear only redacted)"
cat "$work/livegate.log"
echo
ok=true
# The audit record of the cut, from the log (no audit file in the default config).
if [ "$listed_status" -ne 0 ] && python3 - "$work/livegate.log" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    if "livegate::audit" in line and '"event":"cut"' in line:
        record = json.loads(line.split("record=", 1)[1])
        print("listed stream CUT, audit record:", json.dumps(record, indent=2))
        print(f"-> cut {record['time_to_cut_ms']:.0f} ms after the matching keyframe arrived "
              f"(list {record['signal']['list']}, distance {record['signal']['distance']}, "
              f"at {record['pts_seconds']:.1f} s into the stream)")
        sys.exit(0)
sys.exit(1)
EOF
then :; else
  echo "FAIL: the listed stream was not cut (ffmpeg exit $listed_status)"
  ok=false
fi
if [ "$benign_status" -eq 0 ]; then
  frames=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
    -of csv=p=0 "$work/records/benign-stream-key.flv")
  echo "benign stream flowed to its end: the origin recorded $frames frames (12 s at 30 fps)"
else
  echo "FAIL: the benign stream did not finish cleanly (ffmpeg exit $benign_status)"
  ok=false
fi
if grep -q -e "benign-stream-key" -e "listed-stream-key" "$work/livegate.log"; then
  echo "FAIL: a stream key leaked into the log"
  ok=false
fi
$ok && echo "== demo OK"
$ok
