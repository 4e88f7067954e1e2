//! MPEG-TS's inspector (the payload of SRT): the sans-IO demuxer of the `livegate-mpegts`
//! crate behind the [`Inspector`] trait, its events mapped to the protocol-neutral
//! [`StreamEvent`]s.
//!
//! A transport stream names no application and no key: the transport that carries it
//! (SRT's streamid) does, so this inspector reports only video. Its access units are
//! Annex B with their parameter sets in-band, so no [`crate::stream::CodecConfig`] is
//! sent: the decoder configures itself from the keyframe.

use super::{InspectError, Inspector};
use crate::stream::{AccessUnit, BitstreamFormat, StreamEvent, UninspectableReason, VideoCodec};
use livegate_mpegts::{DemuxEvent, Demuxer, Limits, VideoCodec as TsCodec};

pub struct MpegTsInspector {
    protocol: &'static str,
    demuxer: Demuxer,
    demuxed: Vec<DemuxEvent>,
}

impl MpegTsInspector {
    /// An inspector for a transport stream carried by `protocol` (its name in messages:
    /// "SRT").
    pub fn new(protocol: &'static str, limits: Limits) -> Self {
        MpegTsInspector {
            protocol,
            demuxer: Demuxer::new(limits),
            demuxed: Vec::new(),
        }
    }

    /// What the demuxer tolerated so far (continuity errors and the like).
    pub fn stats(&self) -> livegate_mpegts::Stats {
        self.demuxer.stats()
    }
}

impl Inspector for MpegTsInspector {
    fn protocol(&self) -> &'static str {
        self.protocol
    }

    fn handshake_start(&self) -> &'static str {
        "an MPEG-TS packet"
    }

    fn dial_after(&self) -> usize {
        // The transport (SRT) has done its own handshake before any byte arrives here.
        0
    }

    fn check_start(&self, _start: &[u8]) -> Result<(), InspectError> {
        Ok(())
    }

    fn origin_handshake_len(&self) -> u64 {
        0
    }

    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), InspectError> {
        let parsed = self.demuxer.feed(bytes, &mut self.demuxed);
        // Units completed before the error are still inspected.
        events.extend(self.demuxed.drain(..).map(stream_event));
        parsed.map_err(|error| InspectError(format!("MPEG-TS: {error}")))
    }

    fn held_from(&self) -> Option<u64> {
        // Nothing in a transport stream acts on the origin before it is inspected (no
        // commands, no identity): every byte is released at once.
        None
    }
}

fn stream_event(event: DemuxEvent) -> StreamEvent {
    match event {
        DemuxEvent::AccessUnit(unit) => StreamEvent::AccessUnit(AccessUnit {
            codec: match unit.codec {
                TsCodec::Avc => VideoCodec::Avc,
                TsCodec::Hevc => VideoCodec::Hevc,
            },
            format: BitstreamFormat::AnnexB,
            keyframe: unit.keyframe,
            pts_ms: unit.pts_ms,
            dts_ms: unit.dts_ms,
            data: unit.data,
            offset: unit.start_offset,
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
    use livegate_mpegts::mux;

    /// ffmpeg's H.264 + AAC transport stream (`scripts/make-ts-fixtures.sh`).
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/ffmpeg-avc-aac.ts");

    fn inspect(
        data: &[u8],
        piece: usize,
    ) -> Result<Vec<StreamEvent>, (InspectError, Vec<StreamEvent>)> {
        let mut inspector = MpegTsInspector::new("SRT", Limits::default());
        let mut events = Vec::new();
        for bytes in data.chunks(piece) {
            if let Err(error) = inspector.feed(bytes, &mut events) {
                return Err((error, events));
            }
        }
        Ok(events)
    }

    #[test]
    fn transport_stream_events_become_stream_events() {
        let events = inspect(FIXTURE, FIXTURE.len()).expect("the fixture parses");
        let units: Vec<&AccessUnit> = events
            .iter()
            .map(|event| match event {
                StreamEvent::AccessUnit(unit) => unit,
                other => panic!("only access units expected, got {other:?}"),
            })
            .collect();
        assert_eq!(units.len(), 99, "100 frames, the last one still open");
        let keyframes: Vec<_> = units
            .iter()
            .filter(|unit| unit.keyframe)
            .map(|unit| unit.pts_ms)
            .collect();
        assert_eq!(keyframes, [1480, 2680, 3880, 5080]);
        for unit in &units {
            assert_eq!(unit.codec, VideoCodec::Avc);
            assert_eq!(unit.format, BitstreamFormat::AnnexB);
            assert!(unit.pts_ms >= unit.dts_ms);
            assert_eq!(unit.offset % 188, 0, "a transport packet's first byte");
        }
        assert!(units.windows(2).all(|pair| pair[0].offset < pair[1].offset));
        for piece in [1, 7, 188, 1316, 4096] {
            assert_eq!(
                inspect(FIXTURE, piece).expect("parses"),
                events,
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn the_transport_did_the_handshake() {
        let inspector = MpegTsInspector::new("SRT", Limits::default());
        assert_eq!(inspector.protocol(), "SRT");
        assert_eq!(inspector.dial_after(), 0);
        assert_eq!(inspector.origin_handshake_len(), 0);
        assert!(inspector.check_start(b"").is_ok());
        assert_eq!(inspector.held_from(), None);
    }

    #[test]
    fn unsupported_video_is_uninspectable_and_garbage_an_error() {
        let mut writer = mux::Writer::default();
        writer.tables(0x1000, 0, &[(0x02, 0x100, &[])]);
        let events = inspect(&writer.out, 188).expect("parses");
        assert_eq!(
            events,
            [StreamEvent::Uninspectable {
                reason: UninspectableReason::UnsupportedVideo,
                description: "unsupported video: MPEG-2 video (stream_type 0x02) on PID 0x0100"
                    .into()
            }]
        );
        // A TLS ClientHello (an `rtmps://` publisher on the wrong port).
        let (error, _) = inspect(&[0x16, 3, 1, 0, 0xA5], 2).expect_err("not TS");
        assert_eq!(
            error.0,
            "MPEG-TS: not MPEG-TS: first byte 0x16 is not the sync byte 0x47"
        );
        // An HTTP request starts with 'G', the sync byte: it fails where the next packet
        // should start.
        let mut request = b"GET / HTTP/1.1\r\n".repeat(12);
        request.truncate(189);
        let (error, _) = inspect(&request, 64).expect_err("not TS");
        assert_eq!(
            error.0,
            "MPEG-TS: lost MPEG-TS sync at byte 188: 0x2e where a packet's sync byte 0x47 belongs (demuxers resynchronise differently)"
        );
    }
}
