#!/usr/bin/env python3
"""Capture the publisher->server bytes of a real RTMP publish session.

Starts nginx-rtmp on a free loopback port, puts a TCP tee between ffmpeg and nginx that
records every byte ffmpeg sends, and publishes 3 s of 320x240 test video (x264 at QP 12,
so keyframes span more than one of FFmpeg's 4096-byte chunks; B-frames; AAC audio) to
rtmp://127.0.0.1:PORT/live/testkey123. The recorded bytes (handshake included) are the
fixture `tests/fixtures/ffmpeg-publish-avc.rtmp` used by tests/suite/demux_fixture.rs.

Usage: scripts/capture-rtmp-fixture.py [OUTPUT]
Needs: nginx with libnginx-mod-rtmp, ffmpeg (see scripts/install-deps.sh).
"""

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
DEFAULT_OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/ffmpeg-publish-avc.rtmp"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def pump(src, dst, record=None):
    """Copy src to dst until EOF; append what passes to `record` if given."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                record.extend(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def tee_proxy(listener, origin_port, record, done):
    """Accept one connection and relay it to the origin, recording client->server bytes."""
    client, _ = listener.accept()
    origin = socket.create_connection(("127.0.0.1", origin_port))
    up = threading.Thread(target=pump, args=(client, origin, record))
    down = threading.Thread(target=pump, args=(origin, client))
    up.start()
    down.start()
    up.join()
    down.join()
    client.close()
    origin.close()
    done.set()


def main():
    output = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    with tempfile.TemporaryDirectory() as tmp:
        nginx_port = free_port()
        conf = pathlib.Path(tmp, "nginx.conf")
        conf.write_text(
            f"load_module {NGINX_RTMP_MODULE};\n"
            "events {}\n"
            f"rtmp {{ server {{ listen 127.0.0.1:{nginx_port}; "
            "application live { live on; } } }\n"
        )
        nginx = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", tmp,
             "-g", f"daemon off; pid {tmp}/nginx.pid; error_log stderr;"],
        )
        try:
            wait_for_port(nginx_port)
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            tee_port = listener.getsockname()[1]
            record = bytearray()
            done = threading.Event()
            threading.Thread(target=tee_proxy, args=(listener, nginx_port, record, done),
                             daemon=True).start()
            subprocess.run(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                 "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
                 "-f", "lavfi", "-i", "sine", "-t", "3",
                 "-c:v", "libx264", "-qp", "12", "-g", "15", "-bf", "2", "-c:a", "aac",
                 "-f", "flv", f"rtmp://127.0.0.1:{tee_port}/live/testkey123"],
                check=True, timeout=60,
            )
            if not done.wait(10):
                raise RuntimeError("the tee did not see the publisher close")
            listener.close()
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    output.write_bytes(bytes(record))
    print(f"wrote {len(record)} bytes to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
