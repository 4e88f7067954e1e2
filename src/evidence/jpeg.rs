//! An analysed picture as a small JPEG: the decoded picture (on the hash path) or the RGB24
//! picture the classifier and descriptor got is scaled by swscale straight into
//! full-range YUV 4:2:0 at the evidence width (one SIMD pass doing both the scale and the
//! colour conversion), a detection's box is drawn on the planes, and FFmpeg's `mjpeg`
//! encoder writes the JPEG with the standard Huffman tables.
//!
//! The decoded picture is the cheaper source: already planar YUV, it is only scaled,
//! where RGB24 is converted at full size first (at 720p about 2 ms against 0.5 ms).
//!
//! FFmpeg rather than a Rust JPEG crate: it is already linked for decoding, its scaler
//! and DCT are SIMD, and a 480-pixel-wide JPEG costs well under a millisecond, against
//! the tens of milliseconds of a keyframe's decode and hash. The scaler and encoder are
//! kept per thread ([`encode`]) and reopened only when the picture size changes.

use ffmpeg_next::codec;
use ffmpeg_next::ffi;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;
use std::cell::RefCell;

use livegate_signals::pdq::Image;

/// FFmpeg's `FF_QP2LAMBDA` (a macro the bindings do not carry): lambda per qscale step.
const QP2LAMBDA: i32 = 118;
/// Width of a drawn box's lines, in pixels of the JPEG (even: 4:2:0 chroma).
const BOX_LINE: usize = 2;

/// Why a picture could not be made a JPEG.
#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    #[error("empty or truncated picture ({width}x{height}, stride {stride}, {bytes} bytes)")]
    BadPicture {
        width: usize,
        height: usize,
        stride: usize,
        bytes: usize,
    },
    #[error("cannot scale {from_width}x{from_height} to {to_width}x{to_height}: {source}")]
    Scaler {
        from_width: usize,
        from_height: usize,
        to_width: u32,
        to_height: u32,
        source: ffmpeg_next::Error,
    },
    #[error("FFmpeg has no mjpeg encoder")]
    NoEncoder,
    #[error("cannot open the mjpeg encoder at {width}x{height}: {source}")]
    OpenEncoder {
        width: u32,
        height: u32,
        source: ffmpeg_next::Error,
    },
    #[error("mjpeg encoding failed: {0}")]
    Encode(ffmpeg_next::Error),
}

/// A JPEG and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Jpeg {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// FFmpeg's mjpeg qscale for an IJG quality (1–100, libjpeg's `-quality`). libjpeg scales
/// its standard tables by 5000/Q % below 50 and by (200 − 2Q) % above; FFmpeg's mjpeg
/// writes the same standard tables scaled by qscale/8. So qscale = 8 × libjpeg's scale,
/// within FFmpeg's range 1–31 (quality 80 → 3, 90 → 2, 50 → 8).
pub fn qscale_for_quality(quality: u8) -> i32 {
    let quality = f64::from(quality.clamp(1, 100));
    let percent = if quality < 50.0 {
        5000.0 / quality
    } else {
        200.0 - 2.0 * quality
    };
    ((percent / 100.0 * 8.0).round() as i32).clamp(1, 31)
}

/// The JPEG size for a `width`×`height` picture at most `max_width` wide: the aspect kept,
/// never enlarged, both sides even (4:2:0).
pub fn scaled_size(width: usize, height: usize, max_width: u32) -> (u32, u32) {
    let to_width = (width.min(max_width as usize) as u32).max(2) & !1;
    let to_height =
        ((height as f64 * f64::from(to_width) / width.max(1) as f64).round() as u32).max(2) & !1;
    (to_width, to_height)
}

/// The picture a JPEG is made of.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// A decoded frame, in its own pixel format.
    Frame(&'a frame::Video),
    /// Packed RGB24 rows.
    Rgb(&'a Image<'a>),
}

impl Source<'_> {
    fn format(&self) -> Pixel {
        match self {
            Source::Frame(frame) => frame.format(),
            Source::Rgb(_) => Pixel::RGB24,
        }
    }

    fn size(&self) -> (usize, usize) {
        match self {
            Source::Frame(frame) => (frame.width() as usize, frame.height() as usize),
            Source::Rgb(image) => (image.width, image.height),
        }
    }
}

/// What an encoder is made for: the source's format and size, the JPEG's size, qscale.
type EncoderKey = (Pixel, usize, usize, u32, u32, i32);

/// A scaler and an encoder for one size, kept by one thread.
struct Encoder {
    key: EncoderKey,
    scaler: scaling::Context,
    encoder: ffmpeg_next::encoder::Video,
    yuv: frame::Video,
    packet: ffmpeg_next::Packet,
}

thread_local! {
    /// Evidence is encoded on the thread that decided (an analysis worker, a classifier
    /// or descriptor thread); each keeps its own scaler and encoder, as it keeps its other
    /// scratch buffers, without threading them through every signal's job.
    static ENCODER: RefCell<Option<Encoder>> = const { RefCell::new(None) };
}

/// Encodes `source` as a JPEG at most `max_width` wide at IJG `quality`, with `bbox`
/// (`[x, y, width, height]` in the picture's pixels) drawn when given.
pub fn encode(
    source: Source<'_>,
    max_width: u32,
    quality: u8,
    bbox: Option<[f32; 4]>,
) -> Result<Jpeg, JpegError> {
    let (from_width, from_height) = source.size();
    let bad = |stride: usize, bytes: usize| JpegError::BadPicture {
        width: from_width,
        height: from_height,
        stride,
        bytes,
    };
    match source {
        Source::Rgb(picture) => {
            let needed = picture
                .stride
                .checked_mul(picture.height.saturating_sub(1))
                .and_then(|rows| rows.checked_add(picture.width.checked_mul(3)?));
            if picture.stride < picture.width.saturating_mul(3)
                || needed.is_none_or(|needed| picture.data.len() < needed)
            {
                return Err(bad(picture.stride, picture.data.len()));
            }
        }
        Source::Frame(frame) if frame.format() == Pixel::None => return Err(bad(0, 0)),
        Source::Frame(_) => {}
    }
    if from_width < 2 || from_height < 2 {
        return Err(bad(0, 0));
    }
    let (width, height) = scaled_size(from_width, from_height, max_width);
    let key = (
        source.format(),
        from_width,
        from_height,
        width,
        height,
        qscale_for_quality(quality),
    );
    ENCODER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let encoder = match cell.take() {
            Some(encoder) if encoder.key == key => encoder,
            _ => Encoder::new(key)?,
        };
        let encoder = cell.insert(encoder);
        encoder.run(source, bbox)
    })
}

impl Encoder {
    fn new(key: EncoderKey) -> Result<Encoder, JpegError> {
        let (format, from_width, from_height, width, height, qscale) = key;
        crate::media::log::install();
        let scaler = scaling::Context::get(
            format,
            from_width as u32,
            from_height as u32,
            Pixel::YUVJ420P,
            width,
            height,
            scaling::Flags::AREA,
        )
        .map_err(|source| JpegError::Scaler {
            from_width,
            from_height,
            to_width: width,
            to_height: height,
            source,
        })?;
        let found = ffmpeg_next::encoder::find(codec::Id::MJPEG).ok_or(JpegError::NoEncoder)?;
        let open_error = |source| JpegError::OpenEncoder {
            width,
            height,
            source,
        };
        let mut video = codec::context::Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(open_error)?;
        video.set_width(width);
        video.set_height(height);
        video.set_format(Pixel::YUVJ420P);
        video.set_time_base((1, 25));
        video.set_flags(codec::Flags::QSCALE);
        video.set_global_quality(qscale * QP2LAMBDA);
        video.set_qmin(qscale);
        video.set_qmax(qscale);
        // The standard Huffman tables: FFmpeg's default (`optimal`) codes every picture
        // twice to build its own, for a few percent fewer bytes.
        let mut options = ffmpeg_next::Dictionary::new();
        options.set("huffman", "default");
        let encoder = video.open_as_with(found, options).map_err(open_error)?;
        let mut yuv = frame::Video::new(Pixel::YUVJ420P, width, height);
        // SAFETY: a plain field of the frame we own. With AV_CODEC_FLAG_QSCALE the mjpeg
        // encoder takes each frame's quantiser from `quality` (0 would mean qmin).
        unsafe {
            (*yuv.as_mut_ptr()).quality = qscale * QP2LAMBDA;
        }
        Ok(Encoder {
            key,
            scaler,
            encoder,
            yuv,
            packet: ffmpeg_next::Packet::empty(),
        })
    }

    fn run(&mut self, source: Source<'_>, bbox: Option<[f32; 4]>) -> Result<Jpeg, JpegError> {
        let (width, height) = (self.yuv.width(), self.yuv.height());
        let (from_width, from_height) = source.size();
        match source {
            Source::Frame(frame) => self
                .scaler
                .run(frame, &mut self.yuv)
                .map_err(JpegError::Encode)?,
            Source::Rgb(picture) => {
                let planes = [picture.data.as_ptr(), std::ptr::null(), std::ptr::null()];
                let stride = [picture.stride as i32, 0, 0];
                // SAFETY: the scaler was made for RGB24 at the picture's size; `encode`
                // checked that `data` holds `height` rows of `stride` bytes (the last one
                // `width * 3`), all that sws_scale reads from one packed plane. The
                // destination is our own frame of the scaler's output size and format.
                let scaled = unsafe {
                    let yuv = self.yuv.as_mut_ptr();
                    ffi::sws_scale(
                        self.scaler.as_mut_ptr(),
                        planes.as_ptr(),
                        stride.as_ptr(),
                        0,
                        from_height as i32,
                        (*yuv).data.as_ptr(),
                        (*yuv).linesize.as_ptr(),
                    )
                };
                if scaled <= 0 {
                    return Err(JpegError::Encode(ffmpeg_next::Error::from(scaled)));
                }
            }
        }
        if let Some(bbox) = bbox {
            let scale = f64::from(width) / from_width as f64;
            draw_box(&mut self.yuv, bbox.map(|v| (f64::from(v) * scale) as i64));
        }
        self.encoder
            .send_frame(&self.yuv)
            .map_err(JpegError::Encode)?;
        self.encoder
            .receive_packet(&mut self.packet)
            .map_err(JpegError::Encode)?;
        let data = self.packet.data().unwrap_or_default().to_vec();
        Ok(Jpeg {
            data,
            width,
            height,
        })
    }
}

/// Draws a red rectangle `[x, y, width, height]` (JPEG pixels, clipped to the picture) on
/// a full-range YUV 4:2:0 frame.
fn draw_box(yuv: &mut frame::Video, [x, y, w, h]: [i64; 4]) {
    let (width, height) = (i64::from(yuv.width()), i64::from(yuv.height()));
    let clip = |v: i64, max: i64| v.clamp(0, max) as usize & !1;
    let (left, top) = (clip(x, width - 2), clip(y, height - 2));
    let (right, bottom) = (clip(x + w, width - 2), clip(y + h, height - 2));
    if right <= left || bottom <= top {
        return;
    }
    // Red in full-range BT.601: Y 76, Cb 85, Cr 255.
    for (plane, value, shift) in [(0, 76u8, 0), (1, 85, 1), (2, 255, 1)] {
        let stride = yuv.stride(plane);
        let data = yuv.data_mut(plane);
        let (left, right, top, bottom) =
            (left >> shift, right >> shift, top >> shift, bottom >> shift);
        let line = BOX_LINE >> shift;
        let mut fill = |x0: usize, x1: usize, y0: usize, y1: usize| {
            for row in y0..y1 {
                if let Some(pixels) = data.get_mut(row * stride + x0..row * stride + x1) {
                    pixels.fill(value);
                }
            }
        };
        fill(left, right + line, top, top + line);
        fill(left, right + line, bottom, bottom + line);
        fill(left, left + line, top, bottom + line);
        fill(right, right + line, top, bottom + line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_maps_to_ffmpeg_qscale_as_libjpeg_scales_its_tables() {
        assert_eq!(qscale_for_quality(80), 3);
        assert_eq!(qscale_for_quality(90), 2);
        assert_eq!(qscale_for_quality(50), 8);
        assert_eq!(qscale_for_quality(100), 1);
        assert_eq!(qscale_for_quality(1), 31);
    }

    #[test]
    fn sizes_keep_the_aspect_and_never_enlarge() {
        assert_eq!(scaled_size(1280, 720, 480), (480, 270));
        assert_eq!(scaled_size(320, 240, 480), (320, 240));
        assert_eq!(scaled_size(1921, 1081, 481), (480, 270));
    }

    #[test]
    fn a_picture_becomes_a_jpeg_of_the_width_with_its_box() {
        let (width, height) = (640usize, 360usize);
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 200) as u8).collect();
        let picture = Image {
            data: &pixels,
            width,
            height,
            stride: width * 3,
        };
        let jpeg = encode(
            Source::Rgb(&picture),
            480,
            80,
            Some([64.0, 64.0, 200.0, 100.0]),
        )
        .expect("jpeg");
        assert_eq!((jpeg.width, jpeg.height), (480, 270));
        assert_eq!(&jpeg.data[..3], &[0xff, 0xd8, 0xff], "JPEG signature");
        let decoded = image::load_from_memory(&jpeg.data)
            .expect("decodable")
            .to_rgb8();
        assert_eq!(decoded.dimensions(), (480, 270));
        // The box's top edge, scaled by 0.75: red.
        let pixel = decoded.get_pixel(100, 49);
        assert!(
            pixel[0] > 180 && pixel[1] < 90 && pixel[2] < 90,
            "{pixel:?}"
        );
        // A truncated picture is refused, not read past its end.
        let short = Image {
            data: &pixels[..100],
            ..picture
        };
        assert!(matches!(
            encode(Source::Rgb(&short), 480, 80, None),
            Err(JpegError::BadPicture { .. })
        ));
    }
}
