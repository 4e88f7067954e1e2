//! FFmpeg decoding: sampled frames of a video file (for `livegate hash`) and prompt
//! decoding of lone keyframe packets (for the live path, one decoder per stream).

use std::os::raw::c_int;
use std::path::{Path, PathBuf};

use ffmpeg_next::codec::{self, decoder, packet};
use ffmpeg_next::ffi;
use ffmpeg_next::{Packet, Rational, format, frame, media};

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
            let frame = decoder.decode_packet(&packet)?;
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

/// Decodes lone keyframes promptly. With B-frames an H.264/HEVC decoder holds a picture
/// back for reordering; each keyframe is therefore sent, followed by end-of-stream, its
/// picture received, and the decoder flushed for the next one.
pub struct KeyframeDecoder {
    decoder: decoder::Video,
    frame: frame::Video,
}

impl KeyframeDecoder {
    /// A decoder for `codec` configured by its configuration record (the payload of an
    /// FLV/MP4 `avcC`, `hvcC` or `av1C` sequence header); packets are then in the
    /// container's length-prefixed form.
    pub fn new(codec: codec::Id, extradata: &[u8]) -> Result<Self, MediaError> {
        ffmpeg_next::init().map_err(|source| MediaError::OpenDecoder { codec, source })?;
        if extradata.len() > MAX_EXTRADATA_BYTES {
            return Err(MediaError::ExtradataTooLarge(extradata.len()));
        }
        let found = decoder::find(codec).ok_or(MediaError::NoDecoder(codec))?;
        let mut context = codec::context::Context::new_with_codec(found);
        let padded = extradata.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        // SAFETY: the context owns `extradata` and frees it with av_free in
        // avcodec_free_context; the buffer comes from av_mallocz, is zero-padded as libavcodec
        // requires, and the length fits a c_int (capped above).
        unsafe {
            let buffer = ffi::av_mallocz(padded) as *mut u8;
            if buffer.is_null() {
                return Err(MediaError::Alloc(padded));
            }
            std::ptr::copy_nonoverlapping(extradata.as_ptr(), buffer, extradata.len());
            let raw = context.as_mut_ptr();
            (*raw).extradata = buffer;
            (*raw).extradata_size = extradata.len() as c_int;
        }
        let decoder = context
            .decoder()
            .open_as(found)
            .and_then(|opened| opened.video())
            .map_err(|source| MediaError::OpenDecoder { codec, source })?;
        Ok(Self {
            decoder,
            frame: frame::Video::empty(),
        })
    }

    /// A decoder configured from a demuxed stream's parameters.
    pub fn from_parameters(parameters: codec::Parameters) -> Result<Self, MediaError> {
        Ok(Self {
            decoder: open_decoder(parameters)?,
            frame: frame::Video::empty(),
        })
    }

    /// Decodes one keyframe packet (`data`, presentation timestamp `pts` in the stream's
    /// time base) into its picture.
    pub fn decode_keyframe(&mut self, data: &[u8], pts: i64) -> Result<&frame::Video, MediaError> {
        if data.is_empty() {
            return Err(MediaError::EmptyPacket);
        }
        let mut packet = Packet::copy(data);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        packet.set_flags(packet::Flags::KEY);
        self.decode_packet(&packet)
    }

    fn decode_packet(&mut self, packet: &Packet) -> Result<&frame::Video, MediaError> {
        let decoded = self.decode_alone(packet);
        // Flushing resets the end-of-stream state so the next keyframe can be sent.
        self.decoder.flush();
        decoded?;
        Ok(&self.frame)
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
