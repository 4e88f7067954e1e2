//! The one place a decoded video frame becomes PDQ input, shared by `livegate hash` and
//! the live path.
//!
//! It follows Meta's vPDQ, which lists of known videos are made with: the decoded frame is
//! converted by swscale to RGB24 at its own size with the `SWS_AREA` flag, then hashed at
//! full resolution with the C++ `f32` luma (`fillFloatLumaFromRGB`, here
//! [`LumaFormula::Float32`]).

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;

use super::borders::{crop, find_content_box};
use livegate_signals::pdq::{
    Image, LumaFormula, PdqDihedral, PdqError, PdqHasher, PdqOutput, PixelLayout,
};

/// The swscale algorithm flag vPDQ passes (`DOWNSAMPLE_METHOD = SWS_AREA`).
const VPDQ_SCALER_FLAGS: scaling::Flags = scaling::Flags::AREA;
/// vPDQ hashes the RGB24 frame with the C++ `f32` luma.
const VPDQ_LAYOUT: PixelLayout = PixelLayout::Rgb8(LumaFormula::Float32);

/// Why a decoded frame could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("decoded frame has no pixel format or an empty size ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("cannot convert {format:?} {width}x{height} frames to RGB24: {source}")]
    Scaler {
        format: Pixel,
        width: u32,
        height: u32,
        source: ffmpeg_next::Error,
    },
    #[error("RGB24 conversion of a {width}x{height} frame failed: {source}")]
    Convert {
        width: u32,
        height: u32,
        source: ffmpeg_next::Error,
    },
    #[error("PDQ of a decoded frame: {0}")]
    Pdq(#[from] PdqError),
}

/// A swscale context, owned by one [`FrameHasher`].
struct Scaler {
    context: scaling::Context,
    format: Pixel,
    width: u32,
    height: u32,
}

impl Scaler {
    fn new(format: Pixel, width: u32, height: u32) -> Result<Self, FrameError> {
        let context = scaling::Context::get(
            format,
            width,
            height,
            Pixel::RGB24,
            width,
            height,
            VPDQ_SCALER_FLAGS,
        )
        .map_err(|source| FrameError::Scaler {
            format,
            width,
            height,
            source,
        })?;
        Ok(Self {
            context,
            format,
            width,
            height,
        })
    }
}

// SAFETY: an SwsContext has no thread affinity; it is only unsafe to use from two threads
// at once, which the `&mut self` of every FrameHasher method rules out. Moving the hasher
// to an analysis worker thread is what the live path needs.
unsafe impl Send for Scaler {}

/// A decoded frame's hashes for lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHashes {
    pub full: PdqDihedral,
    /// The picture inside letterbox/pillarbox bars, when there are bars.
    pub inside_bars: Option<PdqDihedral>,
}

/// Turns decoded frames into PDQ hashes, reusing its converter and buffers across frames
/// (no allocation per frame while the stream's size and pixel format stay the same).
pub struct FrameHasher {
    pdq: PdqHasher,
    scaler: Option<Scaler>,
    rgb: frame::Video,
}

impl Default for FrameHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameHasher {
    pub fn new() -> Self {
        Self {
            pdq: PdqHasher::new(),
            scaler: None,
            rgb: frame::Video::empty(),
        }
    }

    /// PDQ hash and quality of a decoded frame, as vPDQ computes them.
    pub fn hash_frame(&mut self, frame: &frame::Video) -> Result<PdqOutput, FrameError> {
        self.convert_to_rgb(frame)?;
        Ok(self.pdq.hash(rgb_view(&self.rgb), VPDQ_LAYOUT)?)
    }

    /// The 8 dihedral variants' hashes of a decoded frame.
    pub fn hash_frame_dihedral(&mut self, frame: &frame::Video) -> Result<PdqDihedral, FrameError> {
        self.convert_to_rgb(frame)?;
        Ok(self.pdq.hash_dihedral(rgb_view(&self.rgb), VPDQ_LAYOUT)?)
    }

    /// What the live path looks up: the dihedral hashes of the frame, and of the picture
    /// inside black bars when the frame has them (see [`super::borders`]).
    pub fn hash_frame_for_matching(
        &mut self,
        frame: &frame::Video,
    ) -> Result<FrameHashes, FrameError> {
        self.convert_to_rgb(frame)?;
        let whole = rgb_view(&self.rgb);
        let full = self.pdq.hash_dihedral(whole, VPDQ_LAYOUT)?;
        let inside_bars = match find_content_box(&whole).and_then(|content| crop(&whole, content)) {
            Some(picture) => Some(self.pdq.hash_dihedral(picture, VPDQ_LAYOUT)?),
            None => None,
        };
        Ok(FrameHashes { full, inside_bars })
    }

    /// The RGB24 picture of a decoded frame, converted as for hashing but not hashed
    /// (what `livegate describe` feeds the descriptor model).
    pub fn picture(&mut self, frame: &frame::Video) -> Result<Image<'_>, FrameError> {
        self.convert_to_rgb(frame)?;
        Ok(rgb_view(&self.rgb))
    }

    /// The RGB24 picture of the frame hashed last (empty before the first), for other
    /// signals to reuse instead of converting again.
    pub fn rgb_picture(&self) -> Image<'_> {
        rgb_view(&self.rgb)
    }

    /// Converts the frame into the owned RGB24 buffer.
    fn convert_to_rgb(&mut self, frame: &frame::Video) -> Result<(), FrameError> {
        let (format, width, height) = (frame.format(), frame.width(), frame.height());
        if format == Pixel::None || width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        let scaler = match self.scaler.take() {
            Some(s) if s.format == format && s.width == width && s.height == height => s,
            _ => {
                self.rgb = frame::Video::new(Pixel::RGB24, width, height);
                Scaler::new(format, width, height)?
            }
        };
        let scaler = self.scaler.insert(scaler);
        scaler
            .context
            .run(frame, &mut self.rgb)
            .map_err(|source| FrameError::Convert {
                width,
                height,
                source,
            })?;
        Ok(())
    }
}

fn rgb_view(rgb: &frame::Video) -> Image<'_> {
    Image {
        data: rgb.data(0),
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        stride: rgb.stride(0),
    }
}
