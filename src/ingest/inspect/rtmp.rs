//! RTMP's inspector: the sans-IO demuxer (the `livegate-rtmp` crate) behind the
//! [`Inspector`] trait, its events mapped to the protocol-neutral [`StreamEvent`]s.

use super::{InspectError, Inspector};
use crate::stream::{
    AccessUnit, AnnouncedMetadata, BitstreamFormat, CodecConfig, StreamEvent, UninspectableReason,
    VideoCodec,
};
use livegate_rtmp::demux::HANDSHAKE_LEN;
use livegate_rtmp::{
    DemuxEvent, DemuxLimits, Demuxer, StreamMetadata, VideoCodec as RtmpCodec, VideoFrame,
    split_stream_key,
};

/// C0 (the version byte) and C1: what a publisher must send before the origin is dialled.
const HANDSHAKE_START_LEN: usize = 1 + 1536;
/// RTMP's C0 version byte; nginx-rtmp refuses any other (6 would be RTMPE).
const RTMP_VERSION: u8 = 3;

pub struct RtmpInspector {
    demuxer: Demuxer,
    demuxed: Vec<DemuxEvent>,
}

impl RtmpInspector {
    pub fn new(limits: DemuxLimits) -> Self {
        RtmpInspector {
            demuxer: Demuxer::new(limits),
            demuxed: Vec::new(),
        }
    }
}

impl Inspector for RtmpInspector {
    fn protocol(&self) -> &'static str {
        "RTMP"
    }

    fn handshake_start(&self) -> &'static str {
        "an RTMP handshake start (C0 + C1)"
    }

    fn dial_after(&self) -> usize {
        HANDSHAKE_START_LEN
    }

    fn check_start(&self, start: &[u8]) -> Result<(), InspectError> {
        match start.first() {
            Some(&version) if version != RTMP_VERSION => Err(InspectError(format!(
                "not RTMP: first byte {version:#04x} is not RTMP version 3 (C0)"
            ))),
            _ => Ok(()),
        }
    }

    fn origin_handshake_len(&self) -> u64 {
        // S0 + S1 + S2: as long as the client's C0 + C1 + C2.
        HANDSHAKE_LEN
    }

    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), InspectError> {
        let parsed = self.demuxer.feed(bytes, &mut self.demuxed);
        // Events before the error happened: the publish of a banned key must still be
        // refused even if the bytes after it are garbage.
        events.extend(self.demuxed.drain(..).map(stream_event));
        parsed.map_err(|error| InspectError(error.to_string()))
    }

    fn held_from(&self) -> Option<u64> {
        self.demuxer.held_from()
    }

    fn hold_whole_messages(&mut self) -> bool {
        self.demuxer.hold_whole_messages();
        true
    }
}

fn codec(codec: RtmpCodec) -> VideoCodec {
    match codec {
        RtmpCodec::Avc => VideoCodec::Avc,
        RtmpCodec::Hevc => VideoCodec::Hevc,
        RtmpCodec::Av1 => VideoCodec::Av1,
        RtmpCodec::Vp9 => VideoCodec::Vp9,
    }
}

/// How FLV (and Enhanced RTMP) frames each codec's bytes.
fn format(codec: RtmpCodec) -> BitstreamFormat {
    match codec {
        RtmpCodec::Avc | RtmpCodec::Hevc => BitstreamFormat::LengthPrefixed,
        RtmpCodec::Av1 => BitstreamFormat::Obu,
        RtmpCodec::Vp9 => BitstreamFormat::Raw,
    }
}

fn stream_event(event: DemuxEvent) -> StreamEvent {
    match event {
        DemuxEvent::Connect { app, .. } => StreamEvent::Application { app },
        DemuxEvent::Publish { stream_key, .. } => {
            // The key alone identifies the stream (as nginx-rtmp's `name`): a `?query`
            // (often a token) must neither be logged nor let a banned key back in under
            // a new query.
            let (key, _query) = split_stream_key(&stream_key);
            StreamEvent::Publish { key: key.into() }
        }
        DemuxEvent::Metadata(StreamMetadata {
            width,
            height,
            framerate,
            encoder,
            ..
        }) => StreamEvent::Metadata(AnnouncedMetadata {
            width,
            height,
            framerate,
            encoder,
        }),
        DemuxEvent::VideoConfig {
            codec: rtmp_codec,
            extradata,
        } => StreamEvent::CodecConfig(CodecConfig {
            codec: codec(rtmp_codec),
            extradata,
        }),
        DemuxEvent::VideoFrame(VideoFrame {
            codec: rtmp_codec,
            keyframe,
            dts_ms,
            pts_ms,
            data,
            start_offset,
        }) => StreamEvent::AccessUnit(AccessUnit {
            codec: codec(rtmp_codec),
            format: format(rtmp_codec),
            keyframe,
            pts_ms,
            dts_ms,
            data,
            offset: start_offset,
        }),
        DemuxEvent::UnsupportedVideo { description } => StreamEvent::Uninspectable {
            reason: UninspectableReason::UnsupportedVideo,
            description: format!("unsupported video: {description}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ffmpeg → nginx-rtmp publish, as captured on the wire.
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/ffmpeg-publish-avc.rtmp");

    fn inspect(pieces: impl Iterator<Item = usize>) -> Vec<StreamEvent> {
        let mut inspector = RtmpInspector::new(DemuxLimits::default());
        let mut events = Vec::new();
        let mut rest = FIXTURE;
        for size in pieces {
            let (piece, after) = rest.split_at(size.min(rest.len()));
            inspector
                .feed(piece, &mut events)
                .expect("the fixture parses");
            rest = after;
            if rest.is_empty() {
                break;
            }
        }
        events
    }

    #[test]
    fn rtmp_events_become_stream_events() {
        let events = inspect(std::iter::once(FIXTURE.len()));
        assert!(matches!(&events[0], StreamEvent::Application { app } if app == "live"));
        let publish = events
            .iter()
            .find_map(|event| match event {
                StreamEvent::Publish { key } => Some(key.clone()),
                _ => None,
            })
            .expect("a publish");
        assert!(!publish.contains('?'), "{publish}");
        let config = events
            .iter()
            .find_map(|event| match event {
                StreamEvent::CodecConfig(config) => Some(config.clone()),
                _ => None,
            })
            .expect("a codec config");
        assert_eq!(config.codec, VideoCodec::Avc);
        assert_eq!(config.extradata[0], 1, "an avcC record");
        let units: Vec<&AccessUnit> = events
            .iter()
            .filter_map(|event| match event {
                StreamEvent::AccessUnit(unit) => Some(unit),
                _ => None,
            })
            .collect();
        assert!(units.len() > 10, "{} access units", units.len());
        assert!(units[0].keyframe);
        assert!(units.iter().any(|unit| !unit.keyframe));
        for unit in &units {
            assert_eq!(unit.codec, VideoCodec::Avc);
            assert_eq!(unit.format, BitstreamFormat::LengthPrefixed);
            assert!(unit.pts_ms >= unit.dts_ms);
            assert!(unit.offset < FIXTURE.len() as u64);
        }
        assert!(units.windows(2).all(|pair| pair[0].offset < pair[1].offset));
    }

    #[test]
    fn every_split_of_the_bytes_gives_the_same_events() {
        let whole = inspect(std::iter::once(FIXTURE.len()));
        for size in [1, 7, 128, 1537, 4096] {
            assert_eq!(inspect(std::iter::repeat(size)), whole, "pieces of {size}");
        }
    }

    #[test]
    fn the_handshake_start_must_be_rtmp() {
        let inspector = RtmpInspector::new(DemuxLimits::default());
        assert_eq!(inspector.dial_after(), 1537);
        assert!(inspector.check_start(&[3, 0, 0]).is_ok());
        assert!(inspector.check_start(&[]).is_ok());
        let error = inspector
            .check_start(b"GET / HTTP/1.1")
            .expect_err("not RTMP");
        assert!(error.0.contains("not RTMP: first byte 0x47"), "{error}");
    }
}
