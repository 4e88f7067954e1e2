//! The demuxer on a real publish session: FFmpeg (libx264 with B-frames, AAC) publishing
//! to nginx-rtmp, captured by `scripts/capture-rtmp-fixture.py`.

use livegate::ingest::rtmp::{DemuxEvent, DemuxLimits, Demuxer, VideoCodec, VideoFrame};

const FIXTURE: &[u8] = include_bytes!("fixtures/ffmpeg-publish-avc.rtmp");

fn demux_in_pieces(data: &[u8], split: impl Fn(usize) -> usize) -> Vec<DemuxEvent> {
    let mut demuxer = Demuxer::new(DemuxLimits::default());
    let mut events = Vec::new();
    let mut position = 0;
    while position < data.len() {
        let end = (position + split(position)).min(data.len());
        demuxer.feed(&data[position..end], &mut events).unwrap();
        position = end;
    }
    events
}

fn frames(events: &[DemuxEvent]) -> Vec<&VideoFrame> {
    events
        .iter()
        .filter_map(|e| match e {
            DemuxEvent::VideoFrame(f) => Some(f),
            _ => None,
        })
        .collect()
}

#[test]
fn ffmpeg_session_yields_connect_publish_metadata_config_and_frames() {
    let events = demux_in_pieces(FIXTURE, |_| FIXTURE.len());
    for e in &events {
        match e {
            DemuxEvent::VideoFrame(f) => println!(
                "frame key={} dts={} pts={} len={} off={}",
                f.keyframe,
                f.dts_ms,
                f.pts_ms,
                f.data.len(),
                f.start_offset
            ),
            other => println!("{other:?}"),
        }
    }
}
