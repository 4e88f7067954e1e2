//! FLV video tag bodies as carried by RTMP video messages (type 9): the legacy
//! VideoTagHeader (AVC, CodecID 7) and the Enhanced RTMP ExVideoTagHeader (FourCC
//! `avc1`, `hvc1`, `av01`, `vp09`), per veovera's Enhanced RTMP v2 specification.
//!
//! Payloads are returned as slices of the message's `Bytes`, so nothing is copied.

use bytes::Bytes;

use super::demux::VideoCodec;

/// What one video message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    /// Decoder configuration: avcC, hvcC, av1C or vpcC.
    Config { codec: VideoCodec, extradata: Bytes },
    /// One coded frame (AVC/HEVC: length-prefixed NAL units; AV1: OBUs; VP9: a frame).
    Frame {
        codec: VideoCodec,
        keyframe: bool,
        composition_time_ms: i32,
        data: Bytes,
    },
    /// Video in a codec or framing this demuxer does not decode (legacy H.263/VP6/
    /// screen video, VP8, unknown FourCCs, ModEx packets).
    Unsupported(String),
    /// Nothing to analyse: end of sequence, video command frames, HDR metadata,
    /// empty messages.
    Ignored,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FlvError {
    #[error("{what} needs {needed} bytes but only {length} are there")]
    Truncated {
        what: &'static str,
        needed: usize,
        length: usize,
    },
    #[error("AVC packet type {0} is not 0, 1 or 2")]
    UnknownAvcPacketType(u8),
    #[error("Enhanced RTMP video packet type {0} is not defined")]
    UnknownExPacketType(u8),
    #[error("Enhanced RTMP multitrack type {0} is not defined")]
    UnknownMultitrackType(u8),
    #[error("Enhanced RTMP multitrack video packet nests another multitrack packet")]
    NestedMultitrack,
}

const FRAME_TYPE_KEY: u8 = 1;
const FRAME_TYPE_GENERATED_KEY: u8 = 4;
const FRAME_TYPE_COMMAND: u8 = 5;

const LEGACY_CODEC_AVC: u8 = 7;
/// CodecID 12: the pre-Enhanced-RTMP HEVC extension (same layout as AVC) that Chinese
/// CDNs and patched FFmpeg builds still send.
const LEGACY_CODEC_HEVC: u8 = 12;

const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_METADATA: u8 = 4;
const EX_MPEG2TS_SEQUENCE_START: u8 = 5;
const EX_MULTITRACK: u8 = 6;
const EX_MOD_EX: u8 = 7;

const MULTITRACK_ONE_TRACK: u8 = 0;
const MULTITRACK_MANY_TRACKS_MANY_CODECS: u8 = 2;

/// Signed 24-bit big-endian integer (FLV composition time).
fn si24(b: &[u8]) -> i32 {
    let unsigned = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    ((unsigned << 8) as i32) >> 8
}

fn require(length: usize, needed: usize, what: &'static str) -> Result<(), FlvError> {
    if length < needed {
        return Err(FlvError::Truncated {
            what,
            needed,
            length,
        });
    }
    Ok(())
}

fn is_keyframe(frame_type: u8) -> bool {
    frame_type == FRAME_TYPE_KEY || frame_type == FRAME_TYPE_GENERATED_KEY
}

/// Parses one video message body.
pub fn parse_video_tag(payload: &Bytes) -> Result<VideoTag, FlvError> {
    let Some(&first) = payload.first() else {
        return Ok(VideoTag::Ignored);
    };
    if first & 0x80 != 0 {
        parse_ex_video_tag(payload, first)
    } else {
        parse_legacy_video_tag(payload, first)
    }
}

fn parse_legacy_video_tag(payload: &Bytes, first: u8) -> Result<VideoTag, FlvError> {
    let frame_type = first >> 4;
    let codec = match first & 0x0F {
        LEGACY_CODEC_AVC => VideoCodec::Avc,
        LEGACY_CODEC_HEVC => VideoCodec::Hevc,
        other => return Ok(VideoTag::Unsupported(format!("FLV CodecID {other}"))),
    };
    if frame_type == FRAME_TYPE_COMMAND {
        return Ok(VideoTag::Ignored);
    }
    require(payload.len(), 5, "AVC video tag header")?;
    match payload[1] {
        0 => Ok(VideoTag::Config {
            codec,
            extradata: payload.slice(5..),
        }),
        1 => Ok(VideoTag::Frame {
            codec,
            keyframe: is_keyframe(frame_type),
            composition_time_ms: si24(&payload[2..5]),
            data: payload.slice(5..),
        }),
        2 => Ok(VideoTag::Ignored),
        other => Err(FlvError::UnknownAvcPacketType(other)),
    }
}

/// Checks an ExVideoTagHeader packet type; `Ok(None)` when it carries no video body.
fn ex_packet_kind(packet_type: u8, frame_type: u8) -> Result<Option<VideoTag>, FlvError> {
    match packet_type {
        EX_MOD_EX => Ok(Some(VideoTag::Unsupported("Enhanced RTMP ModEx".into()))),
        EX_METADATA => Ok(Some(VideoTag::Ignored)),
        EX_SEQUENCE_START
        | EX_CODED_FRAMES
        | EX_SEQUENCE_END
        | EX_CODED_FRAMES_X
        | EX_MPEG2TS_SEQUENCE_START
            if frame_type == FRAME_TYPE_COMMAND =>
        {
            Ok(Some(VideoTag::Ignored))
        }
        EX_SEQUENCE_START
        | EX_CODED_FRAMES
        | EX_SEQUENCE_END
        | EX_CODED_FRAMES_X
        | EX_MPEG2TS_SEQUENCE_START => Ok(None),
        other => Err(FlvError::UnknownExPacketType(other)),
    }
}

fn parse_ex_video_tag(payload: &Bytes, first: u8) -> Result<VideoTag, FlvError> {
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0F;
    if packet_type == EX_MULTITRACK {
        return parse_multitrack(payload, frame_type);
    }
    if let Some(tag) = ex_packet_kind(packet_type, frame_type)? {
        return Ok(tag);
    }
    require(payload.len(), 5, "Enhanced RTMP video tag header")?;
    parse_ex_body(frame_type, packet_type, &payload[1..5], payload.slice(5..))
}

/// A multitrack video message: track 0 (the spec's default, highest-priority track) is
/// analysed; any other track is video a player may show that livegate does not
/// inspect, so the stream is reported uninspectable.
fn parse_multitrack(payload: &Bytes, frame_type: u8) -> Result<VideoTag, FlvError> {
    require(payload.len(), 2, "multitrack video header")?;
    let multitrack_type = payload[1] >> 4;
    let packet_type = payload[1] & 0x0F;
    if packet_type == EX_MULTITRACK {
        return Err(FlvError::NestedMultitrack);
    }
    if multitrack_type > MULTITRACK_MANY_TRACKS_MANY_CODECS {
        return Err(FlvError::UnknownMultitrackType(multitrack_type));
    }
    if let Some(tag) = ex_packet_kind(packet_type, frame_type)? {
        return Ok(tag);
    }
    let mut position = 2;
    let mut four_cc_at = position;
    let mut track_zero = None;
    if multitrack_type != MULTITRACK_MANY_TRACKS_MANY_CODECS {
        require(payload.len(), position + 4, "multitrack FourCC")?;
        position += 4;
    }
    while position < payload.len() {
        if multitrack_type == MULTITRACK_MANY_TRACKS_MANY_CODECS {
            require(payload.len(), position + 4, "multitrack FourCC")?;
            four_cc_at = position;
            position += 4;
        }
        require(payload.len(), position + 1, "multitrack track id")?;
        let track_id = payload[position];
        position += 1;
        let body = if multitrack_type == MULTITRACK_ONE_TRACK {
            payload.slice(position..)
        } else {
            require(payload.len(), position + 3, "multitrack track size")?;
            let size = (usize::from(payload[position]) << 16)
                | (usize::from(payload[position + 1]) << 8)
                | usize::from(payload[position + 2]);
            position += 3;
            require(payload.len(), position + size, "multitrack track body")?;
            position += size;
            payload.slice(position - size..position)
        };
        if track_id != 0 {
            return Ok(VideoTag::Unsupported(format!(
                "Enhanced RTMP multitrack video track {track_id} (only track 0 is inspected)"
            )));
        }
        track_zero = Some((four_cc_at, body));
        if multitrack_type == MULTITRACK_ONE_TRACK {
            break;
        }
    }
    match track_zero {
        Some((four_cc_at, body)) => parse_ex_body(
            frame_type,
            packet_type,
            &payload[four_cc_at..four_cc_at + 4],
            body,
        ),
        None => Ok(VideoTag::Ignored),
    }
}

/// The body of one track after its FourCC.
fn parse_ex_body(
    frame_type: u8,
    packet_type: u8,
    four_cc: &[u8],
    body: Bytes,
) -> Result<VideoTag, FlvError> {
    let codec = match four_cc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        b"vp09" => VideoCodec::Vp9,
        _ => {
            return Ok(VideoTag::Unsupported(format!(
                "FourCC {}",
                String::from_utf8_lossy(four_cc)
            )));
        }
    };
    let keyframe = is_keyframe(frame_type);
    match packet_type {
        EX_SEQUENCE_START => Ok(VideoTag::Config {
            codec,
            extradata: body,
        }),
        // AV1 over MPEG-2 TS: the body is an AV1 video descriptor (tag, length) whose
        // fields are those of an av1C record without config OBUs.
        EX_MPEG2TS_SEQUENCE_START if codec == VideoCodec::Av1 => {
            require(body.len(), 2, "AV1 video descriptor")?;
            Ok(VideoTag::Config {
                codec,
                extradata: body.slice(2..),
            })
        }
        EX_CODED_FRAMES if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) => {
            require(body.len(), 3, "Enhanced RTMP composition time")?;
            Ok(VideoTag::Frame {
                codec,
                keyframe,
                composition_time_ms: si24(&body[..3]),
                data: body.slice(3..),
            })
        }
        EX_CODED_FRAMES | EX_CODED_FRAMES_X => Ok(VideoTag::Frame {
            codec,
            keyframe,
            composition_time_ms: 0,
            data: body,
        }),
        // SequenceEnd, and MPEG2TSSequenceStart for codecs other than AV1.
        _ => Ok(VideoTag::Ignored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<VideoTag, FlvError> {
        parse_video_tag(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn legacy_avc_config_frames_and_end() {
        assert_eq!(
            parse(&[0x17, 0, 0, 0, 0, 1, 0x64]).unwrap(),
            VideoTag::Config {
                codec: VideoCodec::Avc,
                extradata: Bytes::from_static(&[1, 0x64])
            }
        );
        assert_eq!(
            parse(&[0x27, 1, 0xFF, 0xFF, 0xBA, 0, 0, 0, 1, 0x41]).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Avc,
                keyframe: false,
                composition_time_ms: -70,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41])
            }
        );
        assert!(matches!(
            parse(&[0x17, 1, 0, 0, 66, 0xAA]).unwrap(),
            VideoTag::Frame {
                keyframe: true,
                composition_time_ms: 66,
                ..
            }
        ));
        assert_eq!(parse(&[0x17, 2, 0, 0, 0]).unwrap(), VideoTag::Ignored);
        assert_eq!(
            parse(&[0x17, 3, 0, 0, 0]).unwrap_err(),
            FlvError::UnknownAvcPacketType(3)
        );
        assert_eq!(
            parse(&[0x17, 1, 0]).unwrap_err().to_string(),
            "AVC video tag header needs 5 bytes but only 3 are there"
        );
    }

    #[test]
    fn legacy_other_codecs_are_unsupported_and_commands_ignored() {
        assert_eq!(
            parse(&[0x24, 0]).unwrap(),
            VideoTag::Unsupported("FLV CodecID 4".into())
        );
        assert_eq!(parse(&[0x57, 0]).unwrap(), VideoTag::Ignored);
        assert_eq!(parse(&[]).unwrap(), VideoTag::Ignored);
    }

    #[test]
    fn enhanced_hevc_has_composition_time_on_coded_frames_only() {
        let mut seq = vec![0x90];
        seq.extend_from_slice(b"hvc1\x01\x02");
        assert_eq!(
            parse(&seq).unwrap(),
            VideoTag::Config {
                codec: VideoCodec::Hevc,
                extradata: Bytes::from_static(&[1, 2])
            }
        );
        let mut coded = vec![0x91];
        coded.extend_from_slice(b"hvc1\x00\x00\x21\xAB");
        assert_eq!(
            parse(&coded).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Hevc,
                keyframe: true,
                composition_time_ms: 33,
                data: Bytes::from_static(&[0xAB])
            }
        );
        let mut coded_x = vec![0xA3];
        coded_x.extend_from_slice(b"hvc1\xCD");
        assert_eq!(
            parse(&coded_x).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Hevc,
                keyframe: false,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0xCD])
            }
        );
    }

    #[test]
    fn enhanced_av1_and_vp9_coded_frames_have_no_composition_time() {
        let mut av1 = vec![0x91];
        av1.extend_from_slice(b"av01\x12\x00");
        assert_eq!(
            parse(&av1).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Av1,
                keyframe: true,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0x12, 0])
            }
        );
        let mut vp9 = vec![0xA1];
        vp9.extend_from_slice(b"vp09\x82");
        assert!(matches!(
            parse(&vp9).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Vp9,
                keyframe: false,
                ..
            }
        ));
        let mut descriptor = vec![0x95];
        descriptor.extend_from_slice(b"av01\x80\x04\x81\x00\x0C\x00");
        assert_eq!(
            parse(&descriptor).unwrap(),
            VideoTag::Config {
                codec: VideoCodec::Av1,
                extradata: Bytes::from_static(&[0x81, 0, 0x0C, 0])
            }
        );
    }

    #[test]
    fn enhanced_edge_cases() {
        let mut vp8 = vec![0x91];
        vp8.extend_from_slice(b"vp08\x00");
        assert_eq!(
            parse(&vp8).unwrap(),
            VideoTag::Unsupported("FourCC vp08".into())
        );
        assert_eq!(parse(&[0x94, 0]).unwrap(), VideoTag::Ignored);
        assert_eq!(parse(&[0xD1, 0]).unwrap(), VideoTag::Ignored);
        assert_eq!(
            parse(&[0x98]).unwrap_err(),
            FlvError::UnknownExPacketType(8)
        );
        assert!(matches!(
            parse(b"\x91hvc1\x00").unwrap_err(),
            FlvError::Truncated {
                needed: 3,
                length: 1,
                ..
            }
        ));
        assert!(matches!(
            parse(b"\x91hv").unwrap_err(),
            FlvError::Truncated { needed: 5, .. }
        ));
    }

    #[test]
    fn multitrack_yields_track_zero_and_refuses_other_tracks() {
        let one_track = b"\x96\x01hvc1\x00\x00\x00\x05\xAB";
        assert_eq!(
            parse(one_track).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Hevc,
                keyframe: true,
                composition_time_ms: 5,
                data: Bytes::from_static(&[0xAB])
            }
        );
        let track_zero = b"\xA6\x13av01\x00\x00\x00\x02\x22\x33";
        assert_eq!(
            parse(track_zero).unwrap(),
            VideoTag::Frame {
                codec: VideoCodec::Av1,
                keyframe: false,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0x22, 0x33])
            }
        );
        // Track 1 is video a player may show: not inspected, so not accepted.
        for other_track in [
            &b"\xA6\x13av01\x01\x00\x00\x01\x11\x00\x00\x00\x02\x22\x33"[..],
            b"\xA6\x13av01\x00\x00\x00\x02\x22\x33\x01\x00\x00\x01\x11",
            b"\x96\x20vp09\x01\x00\x00\x01\x01hvc1\x00\x00\x00\x01\x09",
            b"\x96\x13av01\x01\x00\x00\x01\x11",
        ] {
            assert_eq!(
                parse(other_track).unwrap(),
                VideoTag::Unsupported(
                    "Enhanced RTMP multitrack video track 1 (only track 0 is inspected)".into()
                )
            );
        }
        assert_eq!(parse(b"\x96\x14").unwrap(), VideoTag::Ignored);
        assert_eq!(
            parse(&[0x96, 0x06]).unwrap_err(),
            FlvError::NestedMultitrack
        );
        assert_eq!(
            parse(&[0x96, 0x31]).unwrap_err(),
            FlvError::UnknownMultitrackType(3)
        );
        assert_eq!(
            parse(b"\x96\x13av01\x01\x00\x00\x09\x11").unwrap_err(),
            FlvError::Truncated {
                what: "multitrack track body",
                needed: 19,
                length: 11
            }
        );
    }
}
