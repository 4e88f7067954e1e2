//! FFmpeg decoding: sampled frames of a video file (for `livegate hash`) and prompt
//! decoding of lone keyframe packets (for the live path, one decoder per stream).
//!
//! A live decoder is bounded: pictures over its pixel limit are refused from the
//! sequence header when it can be read ([`super::sequence_header`]) and by FFmpeg's own
//! `max_pixels` otherwise, before a picture buffer is allocated; it decodes on the
//! calling thread only (no frame- or slice-thread pools, so its memory is one picture
//! plus per-macroblock tables, and FFmpeg's reports about a decode come from that thread).
//! What FFmpeg says only in its log — error concealment, a refused size — is read
//! through [`super::log::capture`].

use std::os::raw::c_int;
use std::path::{Path, PathBuf};

use ffmpeg_next::codec::{self, decoder, packet};
use ffmpeg_next::ffi;
use ffmpeg_next::{Packet, Rational, format, frame, media};

use super::log::{self, Captured};
use super::sequence_header;
use crate::stream::VideoCodec;

/// The FFmpeg decoder for a stream's codec.
pub fn decoder_for(codec: VideoCodec) -> codec::Id {
    match codec {
        VideoCodec::Avc => codec::Id::H264,
        VideoCodec::Hevc => codec::Id::HEVC,
        VideoCodec::Av1 => codec::Id::AV1,
        VideoCodec::Vp9 => codec::Id::VP9,
    }
}

/// Largest codec configuration record accepted (avcC/hvcC/av1C are a few hundred bytes).
pub const MAX_EXTRADATA_BYTES: usize = 1 << 20;

/// Why a video could not be opened or decoded.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{path}: cannot open as a video: {source}")]
    Open {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("{path}: no video stream")]
    NoVideoStream { path: PathBuf },
    #[error("{path}: reading packets failed: {source}")]
    Read {
        path: PathBuf,
        source: ffmpeg_next::Error,
    },
    #[error("no FFmpeg decoder for codec {0:?}")]
    NoDecoder(codec::Id),
    #[error("codec configuration record of {0} bytes exceeds {MAX_EXTRADATA_BYTES}")]
    ExtradataTooLarge(usize),
    #[error("cannot allocate {0} bytes for the codec configuration record")]
    Alloc(usize),
    #[error("opening the {codec:?} decoder failed: {source}")]
    OpenDecoder {
        codec: codec::Id,
        source: ffmpeg_next::Error,
    },
    #[error("decoding failed: {0}")]
    Decode(ffmpeg_next::Error),
    #[error("the keyframe packet produced no picture")]
    NoPicture,
    #[error("empty keyframe packet (FFmpeg would take it for end of stream)")]
    EmptyPacket,
    #[error("picture size {width}x{height} exceeds the limit of {max_pixels} pixels")]
    PictureTooLarge {
        width: u64,
        height: u64,
        max_pixels: u64,
    },
}

/// Which frames of a video file are hashed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// One decoded frame every this many seconds, chosen like vPDQ: frame numbers that are
    /// multiples of `trunc(seconds × frame rate)` (at least 1).
    Every(f64),
    /// Every keyframe, each decoded on its own as the live path does.
    Keyframes,
}

/// An opened video file: its best video stream and a decoder for it.
pub struct VideoFile {
    path: PathBuf,
    input: format::context::Input,
    stream_index: usize,
    time_base: Rational,
    start_time: Option<i64>,
    frame_rate: f64,
    duration_seconds: Option<f64>,
    parameters: codec::Parameters,
}

impl VideoFile {
    pub fn open(path: &Path) -> Result<Self, MediaError> {
        log::install();
        ffmpeg_next::init().map_err(|source| MediaError::Open {
            path: path.to_owned(),
            source,
        })?;
        let input = format::input(path).map_err(|source| MediaError::Open {
            path: path.to_owned(),
            source,
        })?;
        let stream =
            input
                .streams()
                .best(media::Type::Video)
                .ok_or_else(|| MediaError::NoVideoStream {
                    path: path.to_owned(),
                })?;
        let time_base = stream.time_base();
        // vPDQ's frame rate: the average, else the lowest rate representing all timestamps.
        let rate = match stream.avg_frame_rate() {
            r if r.numerator() != 0 && r.denominator() != 0 => r,
            _ => stream.rate(),
        };
        let frame_rate = match f64::from(rate) {
            fps if fps.is_finite() && fps > 0.0 => fps,
            _ => 0.0,
        };
        let duration_seconds =
            (stream.duration() > 0).then(|| stream.duration() as f64 * f64::from(time_base));
        let start_time = (stream.start_time() != ffi::AV_NOPTS_VALUE).then(|| stream.start_time());
        Ok(Self {
            path: path.to_owned(),
            stream_index: stream.index(),
            time_base,
            start_time,
            frame_rate,
            duration_seconds,
            parameters: stream.parameters(),
            input,
        })
    }

    /// Length of the video stream in seconds, when the container says.
    pub fn duration_seconds(&self) -> Option<f64> {
        self.duration_seconds
    }

    /// Decodes the file and calls `on_frame(frame, pts_seconds)` for each sampled frame,
    /// `pts_seconds` counted from the stream's start.
    pub fn sample<E: From<MediaError>>(
        &mut self,
        sampling: Sampling,
        mut on_frame: impl FnMut(&frame::Video, f64) -> Result<(), E>,
    ) -> Result<(), E> {
        match sampling {
            Sampling::Every(seconds) => self.sample_every(seconds, &mut on_frame),
            Sampling::Keyframes => self.sample_keyframes(&mut on_frame),
        }
    }

    fn pts_seconds(&self, timestamp: Option<i64>, frame_number: u64) -> f64 {
        match timestamp {
            Some(ts) => (ts - self.start_time.unwrap_or(0)) as f64 * f64::from(self.time_base),
            None if self.frame_rate > 0.0 => frame_number as f64 / self.frame_rate,
            None => 0.0,
        }
    }

    /// Reads the next packet of the video stream; `None` at the end of the file.
    fn next_packet(&mut self, packet: &mut Packet) -> Result<Option<()>, MediaError> {
        loop {
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.stream_index => return Ok(Some(())),
                Ok(()) => continue,
                Err(ffmpeg_next::Error::Eof) => return Ok(None),
                // A demuxer resyncs past a corrupt packet, like the ffmpeg CLI does.
                Err(ffmpeg_next::Error::InvalidData) => continue,
                Err(source) => {
                    return Err(MediaError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }

    fn sample_every<E: From<MediaError>>(
        &mut self,
        seconds: f64,
        on_frame: &mut impl FnMut(&frame::Video, f64) -> Result<(), E>,
    ) -> Result<(), E> {
        // Without a known frame rate every frame is hashed (vPDQ refuses such files).
        let frame_mod = ((seconds * self.frame_rate) as u64).max(1);
        let mut decoder = open_decoder(self.parameters.clone())?;
        let mut frame = frame::Video::empty();
        let mut packet = Packet::empty();
        let mut frame_number = 0u64;
        let mut drain = |decoder: &mut decoder::Video, this: &Self| -> Result<(), E> {
            while decoder.receive_frame(&mut frame).is_ok() {
                if frame_number.is_multiple_of(frame_mod) {
                    on_frame(&frame, this.pts_seconds(frame.timestamp(), frame_number))?;
                }
                frame_number += 1;
            }
            Ok(())
        };
        while self.next_packet(&mut packet)?.is_some() {
            match decoder.send_packet(&packet) {
                // A corrupt packet loses its picture, not the rest of the file.
                Ok(()) | Err(ffmpeg_next::Error::InvalidData) => {}
                Err(error) => return Err(MediaError::Decode(error).into()),
            }
            drain(&mut decoder, self)?;
        }
        decoder
            .send_eof()
            .map_err(|error| E::from(MediaError::Decode(error)))?;
        drain(&mut decoder, self)
    }

    fn sample_keyframes<E: From<MediaError>>(
        &mut self,
        on_frame: &mut impl FnMut(&frame::Video, f64) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut decoder = KeyframeDecoder::from_parameters(self.parameters.clone())?;
        let mut packet = Packet::empty();
        let mut keyframe_number = 0u64;
        while self.next_packet(&mut packet)?.is_some() {
            if !packet.is_key() {
                continue;
            }
            let frame = decoder.decode_packet(&packet)?.picture;
            let pts = self.pts_seconds(frame.timestamp(), keyframe_number);
            on_frame(frame, pts)?;
            keyframe_number += 1;
        }
        Ok(())
    }
}

fn open_decoder(parameters: codec::Parameters) -> Result<decoder::Video, MediaError> {
    let id = parameters.id();
    let context = codec::context::Context::from_parameters(parameters)
        .map_err(|source| MediaError::OpenDecoder { codec: id, source })?;
    context
        .decoder()
        .video()
        .map_err(|source| MediaError::OpenDecoder { codec: id, source })
}

/// A demuxed stream's codec configuration record (avcC, hvcC, av1C: what RTMP's sequence
/// header carries), copied out of its parameters; empty when it has none.
pub fn extradata_of(parameters: &codec::Parameters) -> Vec<u8> {
    // SAFETY: reads the parameters' extradata buffer of extradata_size bytes, which the
    // parameters own and which outlives the copy.
    unsafe {
        let raw = parameters.as_ptr();
        match usize::try_from((*raw).extradata_size) {
            Ok(size) if size > 0 && !(*raw).extradata.is_null() => {
                std::slice::from_raw_parts((*raw).extradata, size).to_vec()
            }
            _ => Vec::new(),
        }
    }
}

/// Whether a [`KeyframeDecoder`] runs the codec's in-loop deblocking filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deblocking {
    /// The picture the encoder meant, as `livegate hash` decodes it.
    Full,
    /// FFmpeg's `skip_loop_filter = all`: ~11 % less H.264 decode time on noisy 720p
    /// keyframes. Only the live path sets it: the filter smooths block edges a few pixels
    /// wide, which PDQ's 64×64 downscale all but averages away (within 4 bits of the
    /// deblocked picture's hash on 234 keyframes, `livegate-bench live-hash`).
    Skip,
}

/// Decodes lone keyframes promptly. With B-frames an H.264/HEVC decoder holds a picture
/// back for reordering; each keyframe is therefore sent, followed by end-of-stream, its
/// picture received, and the decoder flushed for the next one.
pub struct KeyframeDecoder {
    decoder: decoder::Video,
    frame: frame::Video,
    max_pixels: u64,
}

/// A decoded keyframe.
#[derive(Clone, Copy)]
pub struct Decoded<'a> {
    pub picture: &'a frame::Video,
    /// How much of it error concealment made up; `None` for a clean decode.
    pub concealment: Option<Concealment>,
}

/// How much of a decoded picture FFmpeg's error resilience made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concealment {
    /// Macroblocks replaced by concealment.
    pub concealed: u32,
    /// Macroblocks (16×16) in the picture.
    pub macroblocks: u32,
}

impl Concealment {
    /// Share of the picture that was concealed (0 to 1).
    pub fn fraction(&self) -> f64 {
        f64::from(self.concealed.min(self.macroblocks)) / f64::from(self.macroblocks.max(1))
    }
}

impl KeyframeDecoder {
    /// A decoder for `codec` configured by its configuration record (the payload of an
    /// FLV/MP4 `avcC`, `hvcC` or `av1C` sequence header); packets are then in the
    /// container's length-prefixed form. Pictures of more than `max_pixels` are refused:
    /// here when the record announces them, at decoding otherwise.
    pub fn new(
        codec: codec::Id,
        extradata: &[u8],
        max_pixels: u64,
        deblocking: Deblocking,
    ) -> Result<Self, MediaError> {
        log::install();
        ffmpeg_next::init().map_err(|source| MediaError::OpenDecoder { codec, source })?;
        if extradata.len() > MAX_EXTRADATA_BYTES {
            return Err(MediaError::ExtradataTooLarge(extradata.len()));
        }
        if let Some(size) = sequence_header::largest_picture(codec, extradata)
            && size.pixels() > max_pixels
        {
            return Err(MediaError::PictureTooLarge {
                width: size.width,
                height: size.height,
                max_pixels,
            });
        }
        let found = decoder::find(codec).ok_or(MediaError::NoDecoder(codec))?;
        let mut context = codec::context::Context::new_with_codec(found);
        let padded = extradata.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        // SAFETY: the context owns `extradata` and frees it with av_free in
        // avcodec_free_context; the buffer comes from av_mallocz, is zero-padded as libavcodec
        // requires, and the length fits a c_int (capped above). The other fields are plain
        // options read by avcodec_open2.
        unsafe {
            let buffer = ffi::av_mallocz(padded) as *mut u8;
            if buffer.is_null() {
                return Err(MediaError::Alloc(padded));
            }
            std::ptr::copy_nonoverlapping(extradata.as_ptr(), buffer, extradata.len());
            let raw = context.as_mut_ptr();
            (*raw).extradata = buffer;
            (*raw).extradata_size = extradata.len() as c_int;
            // Checked by FFmpeg before any picture buffer is allocated (and passed to
            // libdav1d as its frame size limit).
            (*raw).max_pixels = i64::try_from(max_pixels).unwrap_or(i64::MAX);
            // One thread: no per-thread copies of the pictures and tables, and FFmpeg's
            // log lines about a decode come from the thread that asked for it.
            (*raw).thread_count = 1;
            (*raw).thread_type = 0;
            if deblocking == Deblocking::Skip {
                (*raw).skip_loop_filter = ffi::AVDiscard::AVDISCARD_ALL;
            }
        }
        // Some decoders size themselves from the record when opened (libdav1d reads the
        // AV1 sequence header), and refuse it there with the same report.
        let (opened, captured) = log::capture(|| {
            context
                .decoder()
                .open_as(found)
                .and_then(|opened| opened.video())
        });
        let decoder = match (opened, captured.refused_size) {
            (Ok(decoder), _) => decoder,
            (Err(_), Some((width, height))) => {
                return Err(MediaError::PictureTooLarge {
                    width: width.into(),
                    height: height.into(),
                    max_pixels,
                });
            }
            (Err(source), None) => return Err(MediaError::OpenDecoder { codec, source }),
        };
        Ok(Self {
            decoder,
            frame: frame::Video::empty(),
            max_pixels,
        })
    }

    /// A decoder configured from a demuxed stream's parameters (no pixel limit: the
    /// operator's own files).
    pub fn from_parameters(parameters: codec::Parameters) -> Result<Self, MediaError> {
        Ok(Self {
            decoder: open_decoder(parameters)?,
            frame: frame::Video::empty(),
            max_pixels: u64::MAX,
        })
    }

    /// Decodes one keyframe packet (`data`, presentation timestamp `pts` in the stream's
    /// time base) into its picture.
    pub fn decode_keyframe(&mut self, data: &[u8], pts: i64) -> Result<Decoded<'_>, MediaError> {
        if data.is_empty() {
            return Err(MediaError::EmptyPacket);
        }
        let mut packet = Packet::copy(data);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        packet.set_flags(packet::Flags::KEY);
        self.decode_packet(&packet)
    }

    fn decode_packet(&mut self, packet: &Packet) -> Result<Decoded<'_>, MediaError> {
        let (decoded, captured) = log::capture(|| self.decode_alone(packet));
        // Flushing resets the end-of-stream state so the next keyframe can be sent.
        self.decoder.flush();
        match (decoded, captured.refused_size) {
            (Err(_), Some((width, height))) => Err(MediaError::PictureTooLarge {
                width: width.into(),
                height: height.into(),
                max_pixels: self.max_pixels,
            }),
            (Err(error), None) => Err(error),
            (Ok(()), _) => Ok(Decoded {
                concealment: concealment_of(&self.frame, &captured),
                picture: &self.frame,
            }),
        }
    }

    fn decode_alone(&mut self, packet: &Packet) -> Result<(), MediaError> {
        self.decoder
            .send_packet(packet)
            .map_err(MediaError::Decode)?;
        self.decoder.send_eof().map_err(MediaError::Decode)?;
        match self.decoder.receive_frame(&mut self.frame) {
            Ok(()) => Ok(()),
            Err(ffmpeg_next::Error::Eof) => Err(MediaError::NoPicture),
            Err(ffmpeg_next::Error::Other { errno }) if errno == ffi::EAGAIN => {
                Err(MediaError::NoPicture)
            }
            Err(error) => Err(MediaError::Decode(error)),
        }
    }
}

/// FFmpeg 5.1 counts concealed macroblocks only in its log ("concealing N DC, N AC, N MV
/// errors"); the frame's `decode_error_flags` say that concealment ran.
fn concealment_of(picture: &frame::Video, captured: &Captured) -> Option<Concealment> {
    // SAFETY: reads a plain field of the decoded AVFrame owned by `picture`.
    let flags = unsafe { (*picture.as_ptr()).decode_error_flags };
    let flagged = flags & ffi::FF_DECODE_ERROR_CONCEALMENT_ACTIVE != 0;
    let macroblocks = picture.width().div_ceil(16) * picture.height().div_ceil(16);
    match &captured.concealed {
        Some(counts) => Some(Concealment {
            concealed: counts.macroblocks(),
            macroblocks,
        }),
        // Flagged without a count: how much is unknown, so all of it is assumed.
        None if flagged => Some(Concealment {
            concealed: macroblocks,
            macroblocks,
        }),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::inspect::Inspector;
    use crate::ingest::inspect::rtmp::RtmpInspector;
    use crate::stream::{AccessUnit, StreamEvent};

    /// A real ffmpeg → nginx-rtmp publish (H.264 in FLV: avcC + length-prefixed NALs).
    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/ffmpeg-publish-avc.rtmp");
    const MAX_PIXELS: u64 = 4096 * 2304;

    /// The fixture's avcC record and first keyframe.
    fn avcc_and_keyframe() -> (Vec<u8>, AccessUnit) {
        let mut inspector = RtmpInspector::new(Default::default());
        let mut events = Vec::new();
        inspector
            .feed(FIXTURE, &mut events)
            .expect("the fixture parses");
        let mut config = None;
        for event in events {
            match event {
                StreamEvent::CodecConfig(found) => config = Some(found.extradata.to_vec()),
                StreamEvent::AccessUnit(unit) if unit.keyframe => {
                    return (config.expect("config before the keyframe"), unit);
                }
                _ => {}
            }
        }
        panic!("no keyframe in the fixture");
    }

    /// The same keyframe as an MPEG-TS would carry it: SPS and PPS in-band, every NAL
    /// unit after a start code.
    fn annex_b(avcc: &[u8], length_prefixed: &[u8]) -> Vec<u8> {
        const START: [u8; 4] = [0, 0, 0, 1];
        let mut out = Vec::new();
        let length_size = usize::from(avcc[4] & 3) + 1;
        let mut at = 5;
        for sets in 0..2 {
            let count = if sets == 0 { avcc[at] & 0x1f } else { avcc[at] };
            at += 1;
            for _ in 0..count {
                let len = usize::from(u16::from_be_bytes([avcc[at], avcc[at + 1]]));
                out.extend_from_slice(&START);
                out.extend_from_slice(&avcc[at + 2..at + 2 + len]);
                at += 2 + len;
            }
        }
        let mut rest = length_prefixed;
        while rest.len() > length_size {
            let len = rest[..length_size]
                .iter()
                .fold(0usize, |len, byte| len << 8 | usize::from(*byte));
            out.extend_from_slice(&START);
            out.extend_from_slice(&rest[length_size..length_size + len]);
            rest = &rest[length_size + len..];
        }
        out
    }

    fn luma(picture: &frame::Video) -> Vec<u8> {
        let (width, stride) = (picture.width() as usize, picture.stride(0));
        (0..picture.height() as usize)
            .flat_map(|row| picture.data(0)[row * stride..row * stride + width].to_vec())
            .collect()
    }

    #[test]
    fn an_annex_b_keyframe_decodes_without_a_codec_config() {
        let (avcc, keyframe) = avcc_and_keyframe();
        let h264 = decoder_for(VideoCodec::Avc);
        let mut with_config =
            KeyframeDecoder::new(h264, &avcc, MAX_PIXELS, Deblocking::Full).expect("decoder");
        let reference = with_config
            .decode_keyframe(&keyframe.data, keyframe.pts_ms)
            .expect("decodes with avcC");
        assert!(reference.concealment.is_none());
        let reference = luma(reference.picture);

        let in_band = annex_b(&avcc, &keyframe.data);
        let mut without_config =
            KeyframeDecoder::new(h264, &[], MAX_PIXELS, Deblocking::Full).expect("decoder");
        let decoded = without_config
            .decode_keyframe(&in_band, keyframe.pts_ms)
            .expect("decodes from in-band parameter sets");
        assert!(decoded.concealment.is_none());
        assert_eq!(luma(decoded.picture), reference, "the same picture");
    }
}
