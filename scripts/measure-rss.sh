#!/usr/bin/env bash
# Does livegate give freed memory back? Starts a real nginx-rtmp origin and livegate in
# front of it, then samples livegate's resident set (VmRSS from /proc) through:
#   1. FLOODS connection floods: CONNECTIONS sockets each send an RTMP C0+C1 (so livegate
#      starts a session and dials the origin), are held HOLD seconds, then closed;
#   2. one unpaced publisher: ffmpeg pushes a 720p clip with `-c copy` and no `-re`, i.e.
#      as fast as TCP takes it (the relay's buffers and the analysis queue fill up).
# RSS is printed after each flood, at the publisher's peak and after IDLE seconds of quiet,
# in MiB. The environment is passed to livegate unchanged, which is how allocators are
# compared on one binary, e.g.
#   scripts/measure-rss.sh                                   # the binary as built
#   MALLOC_ARENA_MAX=2 scripts/measure-rss.sh                 # glibc, fewer arenas
#   LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 scripts/measure-rss.sh
# LIVEGATE_BIN (default target/release/livegate), FLOODS (7), CONNECTIONS (1000),
# HOLD (2), IDLE (10) and LABEL (printed first) tune it. Needs nginx with the RTMP module,
# ffmpeg and python3 (scripts/install-deps.sh). Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
livegate=${LIVEGATE_BIN:-target/release/livegate}
floods=${FLOODS:-7}
connections=${CONNECTIONS:-1000}
hold=${HOLD:-2}
idle=${IDLE:-10}
label=${LABEL:-${LD_PRELOAD:-default}}

work=$(mktemp -d /tmp/livegate-rss.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# The flood holds a thousand sockets open: more than the usual soft limit of 1024.
ulimit -n "$(ulimit -Hn)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
origin_port=$(free_port)
ingest_port=$(free_port)

# The clip first, so that encoding does not overlap the measurement.
ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=s=1280x720:r=30" -t 60 \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 30 -f flv "$work/clip.flv"

mkdir -p "$work/records" && chmod 777 "$work/records"
cat > "$work/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:$origin_port; chunk_size 4096;
  application live { live on; record all; record_path $work/records; } } }
EOF
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-startup.log" &
pids+=($!)

cat > "$work/livegate.toml" <<EOF
[[ingest]]
protocol = "rtmp"
listen = "127.0.0.1:$ingest_port"
origin = "127.0.0.1:$origin_port"
[[hashlist]]
name = "example"
path = "lists/example.csv"
[log]
level = "warn"
EOF
"$livegate" run --config "$work/livegate.toml" 2> "$work/livegate.log" &
livegate_pid=$!
pids+=("$livegate_pid")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ingest_port") 2>/dev/null && break
  sleep 0.1
done

rss() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$livegate_pid/status"; }

sleep 1
line="$label: start $(rss)"
for flood in $(seq "$floods"); do
  python3 - "$ingest_port" "$connections" "$hold" <<'EOF'
import socket, sys, time
port, count, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sockets = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x03" + bytes(1536))  # C0 + C1: a session starts, the origin is dialled
    sockets.append(s)
time.sleep(hold)
for s in sockets:
    s.close()
EOF
  sleep 1
  line+=" flood$flood $(rss)"
done

# The unpaced publisher, with the peak sampled every 100 ms.
ffmpeg -hide_banner -nostdin -loglevel quiet -i "$work/clip.flv" -c copy -f flv \
  "rtmp://127.0.0.1:$ingest_port/live/unpaced-key" &
publisher=$!
pids+=("$publisher")
peak=0
while kill -0 "$publisher" 2>/dev/null; do
  now=$(rss)
  [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.1
done
line+=" publisher-peak $peak"
sleep "$idle"
line+=" idle ${idle}s $(rss) (MiB)"
echo "$line"
