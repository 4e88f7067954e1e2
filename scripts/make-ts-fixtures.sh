#!/usr/bin/env bash
# Makes the MPEG-TS fixtures of crates/mpegts and the TS inspector tests with Debian 12's
# ffmpeg (5.1, libx264, libx265) and GStreamer (1.22, x264enc, mpegtsmux): small (< 300 KB
# each), a keyframe every 30 frames.
#   tests/fixtures/ffmpeg-avc-aac.ts  4 s of testsrc2 320x240 25 fps, H.264 with B-frames
#                                     (-bf 2), and an AAC audio PID the demuxer skips
#   tests/fixtures/ffmpeg-hevc.ts     3 s of testsrc2 320x240 25 fps, HEVC (x265, B-frames)
#   tests/fixtures/gstreamer-avc.ts   60 frames of videotestsrc 320x240, H.264 (x264enc,
#                                     B-frames) muxed by GStreamer 1.22's mpegtsmux, which
#                                     writes bounded video PES (a length, not 0)
# ffmpeg's TS muxer writes PAT/PMT first and then periodically, video PES of length 0
# (unbounded), an AUD first in each access unit, the random-access indicator on keyframes.
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc2=size=320x240:rate=25:duration=4 \
  -f lavfi -i sine=frequency=440:sample_rate=48000:duration=4 \
  -c:v libx264 -g 30 -bf 2 -pix_fmt yuv420p -b:v 250k -c:a aac -b:a 32k \
  -f mpegts ffmpeg-avc-aac.ts
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i testsrc2=size=320x240:rate=25:duration=3 \
  -c:v libx265 -x265-params log-level=error -g 30 -bf 2 -pix_fmt yuv420p -b:v 200k \
  -f mpegts ffmpeg-hevc.ts
gst-launch-1.0 -q videotestsrc num-buffers=60 \
  ! video/x-raw,width=320,height=240,framerate=25/1 \
  ! x264enc key-int-max=30 bframes=2 bitrate=150 ! h264parse \
  ! mpegtsmux ! filesink location=gstreamer-avc.ts
