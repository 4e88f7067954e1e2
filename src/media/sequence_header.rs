//! Picture size from a stream's codec configuration record, read before any decoder is
//! opened so that an oversized stream is refused without FFmpeg allocating for it.
//!
//! FFmpeg 5.1's H.264 and HEVC decoders size their per-macroblock tables from the
//! sequence parameter set before `max_pixels` is checked (it is checked when a picture
//! buffer is requested), so the size is read here from every SPS of an `avcC` or `hvcC`
//! record, and the largest counts. Other codecs (AV1, VP9) rely on `max_pixels` alone:
//! VP9 checks it as soon as a frame header sets the size; FFmpeg's libdav1d wrapper
//! checks it against the `av1C` sequence header when the decoder opens, and passes it to
//! libdav1d as its frame size limit. Sizes in-band (a new SPS inside a keyframe packet)
//! are likewise left to `max_pixels`.

use ffmpeg_next::codec::Id;

/// Width and height of the pictures a sequence header announces (after cropping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureSize {
    pub width: u64,
    pub height: u64,
}

impl PictureSize {
    pub fn pixels(&self) -> u64 {
        self.width.saturating_mul(self.height)
    }
}

/// The largest picture any sequence parameter set of the record announces; `None` for
/// codecs not read here and for records or SPSs that cannot be parsed (the decoder then
/// judges them, `max_pixels` included).
pub fn largest_picture(codec: Id, record: &[u8]) -> Option<PictureSize> {
    let sizes: Vec<PictureSize> = match codec {
        Id::H264 => avcc_sps(record)?
            .into_iter()
            .filter_map(|nal| h264_sps_size(&unescape(nal.get(1..)?)))
            .collect(),
        Id::HEVC => hvcc_sps(record)?
            .into_iter()
            .filter_map(|nal| hevc_sps_size(&unescape(nal.get(2..)?)))
            .collect(),
        _ => return None,
    };
    sizes.into_iter().max_by_key(PictureSize::pixels)
}

/// The SPS NAL units of an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3).
fn avcc_sps(record: &[u8]) -> Option<Vec<&[u8]>> {
    let count = usize::from(*record.get(5)? & 0x1f);
    let mut rest = record.get(6..)?;
    let mut units = Vec::with_capacity(count);
    for _ in 0..count {
        let (unit, after) = length_prefixed(rest)?;
        units.push(unit);
        rest = after;
    }
    Some(units)
}

/// The SPS NAL units (type 33) of an `HEVCDecoderConfigurationRecord` (§8.3.3).
fn hvcc_sps(record: &[u8]) -> Option<Vec<&[u8]>> {
    const SPS: u8 = 33;
    let arrays = *record.get(22)?;
    let mut rest = record.get(23..)?;
    let mut units = Vec::new();
    for _ in 0..arrays {
        let nal_type = *rest.first()? & 0x3f;
        let count = u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?]);
        rest = rest.get(3..)?;
        for _ in 0..count {
            let (unit, after) = length_prefixed(rest)?;
            if nal_type == SPS {
                units.push(unit);
            }
            rest = after;
        }
    }
    Some(units)
}

/// A 16-bit length, then that many bytes.
fn length_prefixed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let length = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let unit = bytes.get(2..2 + length)?;
    Some((unit, &bytes[2 + length..]))
}

/// The RBSP of a NAL unit's payload: emulation-prevention bytes (`00 00 03`) removed.
fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &byte in payload {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        rbsp.push(byte);
    }
    rbsp
}

/// An MSB-first bit reader with Exp-Golomb codes; every read fails past the end.
struct Bits<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, position: 0 }
    }

    fn bit(&mut self) -> Option<u64> {
        let byte = self.data.get(self.position / 8)?;
        let bit = (byte >> (7 - self.position % 8)) & 1;
        self.position += 1;
        Some(u64::from(bit))
    }

    fn bits(&mut self, count: u32) -> Option<u64> {
        (0..count).try_fold(0, |value, _| Some((value << 1) | self.bit()?))
    }

    fn skip(&mut self, count: usize) -> Option<()> {
        self.position += count;
        (self.position <= self.data.len() * 8).then_some(())
    }

    /// `ue(v)`; codes longer than 32 bits are refused (no valid SPS has them).
    fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 32 {
                return None;
            }
        }
        Some((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    /// `se(v)`, as its magnitude is all the callers need to skip it.
    fn se(&mut self) -> Option<()> {
        self.ue().map(drop)
    }
}

/// Crop of a conformance/cropping window, in units of the chroma subsampling.
fn cropped(full: u64, unit: u64, first: u64, second: u64) -> u64 {
    let crop = unit.saturating_mul(first.saturating_add(second));
    // FFmpeg ignores a crop as large as the picture; so does this.
    if crop < full { full - crop } else { full }
}

/// (SubWidthC, SubHeightC) of a `chroma_format_idc`, 1×1 for monochrome and separate planes.
fn chroma_subsampling(chroma_format_idc: u64, separate_planes: bool) -> (u64, u64) {
    match (chroma_format_idc, separate_planes) {
        (1, false) => (2, 2),
        (2, false) => (2, 1),
        _ => (1, 1),
    }
}

/// An H.264 SPS RBSP (after the NAL header byte), ITU-T H.264 §7.3.2.1.1.
fn h264_sps_size(rbsp: &[u8]) -> Option<PictureSize> {
    let mut bits = Bits::new(rbsp);
    let profile_idc = bits.bits(8)?;
    bits.skip(16)?; // constraint flags, level_idc
    bits.ue()?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut separate_planes) = (1, false);
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = bits.ue()?;
        if chroma_format_idc == 3 {
            separate_planes = bits.bit()? == 1;
        }
        bits.ue()?; // bit_depth_luma_minus8
        bits.ue()?; // bit_depth_chroma_minus8
        bits.bit()?; // qpprime_y_zero_transform_bypass_flag
        if bits.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for list in 0..lists {
                if bits.bit()? == 1 {
                    skip_scaling_list(&mut bits, if list < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    bits.ue()?; // log2_max_frame_num_minus4
    match bits.ue()? {
        0 => {
            bits.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            bits.bit()?; // delta_pic_order_always_zero_flag
            bits.se()?; // offset_for_non_ref_pic
            bits.se()?; // offset_for_top_to_bottom_field
            let cycle = bits.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                bits.se()?;
            }
        }
        _ => {}
    }
    bits.ue()?; // max_num_ref_frames
    bits.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_in_mbs = bits.ue()? + 1;
    let height_in_map_units = bits.ue()? + 1;
    let frame_mbs_only = bits.bit()?;
    if frame_mbs_only == 0 {
        bits.bit()?; // mb_adaptive_frame_field_flag
    }
    bits.bit()?; // direct_8x8_inference_flag
    let width = width_in_mbs * 16;
    let height = (2 - frame_mbs_only) * height_in_map_units * 16;
    if bits.bit()? == 0 {
        return Some(PictureSize { width, height });
    }
    let (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
    let (sub_width, sub_height) = chroma_subsampling(chroma_format_idc, separate_planes);
    Some(PictureSize {
        width: cropped(width, sub_width, left, right),
        height: cropped(height, sub_height * (2 - frame_mbs_only), top, bottom),
    })
}

/// `scaling_list()` of §7.3.2.1.1.1: only read past. A scale of 0 ends the explicit
/// list (the rest repeats the last scale), so the scales are tracked to know where.
fn skip_scaling_list(bits: &mut Bits, size: usize) -> Option<()> {
    let mut last_scale = 8i64;
    for _ in 0..size {
        let code = bits.ue()?;
        // se(v) from its ue(v) code: 1, -1, 2, -2, …
        let delta = if code % 2 == 1 {
            code.div_ceil(2) as i64
        } else {
            -((code / 2) as i64)
        };
        let next_scale = (last_scale + delta).rem_euclid(256);
        if next_scale == 0 {
            return Some(());
        }
        last_scale = next_scale;
    }
    Some(())
}

/// An HEVC SPS RBSP (after the two NAL header bytes), ITU-T H.265 §7.3.2.2.
fn hevc_sps_size(rbsp: &[u8]) -> Option<PictureSize> {
    let mut bits = Bits::new(rbsp);
    bits.skip(4)?; // sps_video_parameter_set_id
    let sub_layers = bits.bits(3)? as usize; // sps_max_sub_layers_minus1
    bits.skip(1)?; // sps_temporal_id_nesting_flag
    // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3: the general profile
    // (88 bits) and level (8 bits), then each sub-layer's presence flags and fields.
    bits.skip(96)?;
    let mut present = [(false, false); 8];
    for flags in present.iter_mut().take(sub_layers) {
        *flags = (bits.bit()? == 1, bits.bit()? == 1);
    }
    if sub_layers > 0 {
        bits.skip(2 * (8 - sub_layers))?;
    }
    for (profile, level) in present.into_iter().take(sub_layers) {
        if profile {
            bits.skip(88)?;
        }
        if level {
            bits.skip(8)?;
        }
    }
    bits.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = bits.ue()?;
    let separate_planes = chroma_format_idc == 3 && bits.bit()? == 1;
    let width = bits.ue()?;
    let height = bits.ue()?;
    if bits.bit()? == 0 {
        return Some(PictureSize { width, height });
    }
    let (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
    let (sub_width, sub_height) = chroma_subsampling(chroma_format_idc, separate_planes);
    Some(PictureSize {
        width: cropped(width, sub_width, left, right),
        height: cropped(height, sub_height, top, bottom),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u64, height: u64) -> Option<PictureSize> {
        Some(PictureSize { width, height })
    }

    #[test]
    fn h264_sizes_are_read_with_cropping() {
        // x264 (ultrafast: constrained baseline) at 1920x1080: 1088 lines coded, 8 cropped.
        let baseline_1080p = [
            0x01, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x42, 0xc0, 0x28, 0xda, 0x01,
            0xe0, 0x08, 0x9f, 0x97, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03,
            0x03, 0x20, 0xf1, 0x83, 0x2a, 0x01, 0x00, 0x04, 0x68, 0xce, 0x0f, 0xc8,
        ];
        assert_eq!(largest_picture(Id::H264, &baseline_1080p), size(1920, 1080));
        // x264 High profile (chroma format and bit depths present) at 1366x768: 1376
        // columns coded, 10 cropped.
        let high_1366 = [
            0x01, 0x64, 0x00, 0x20, 0xff, 0xe1, 0x00, 0x19, 0x67, 0x64, 0x00, 0x20, 0xac, 0xb4,
            0x02, 0xb0, 0x30, 0xf3, 0x78, 0x08, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00,
            0x19, 0x07, 0x8c, 0x19, 0x50, 0x01, 0x00, 0x05, 0x68, 0xce, 0x0f, 0xc4, 0x0c, 0xfd,
            0xf8, 0xf8, 0x00,
        ];
        assert_eq!(largest_picture(Id::H264, &high_1366), size(1366, 768));
    }

    #[test]
    fn hevc_sizes_are_read_with_the_conformance_window() {
        // x265's SPS at 1366x766 (1368x768 coded), in an hvcC with just that array.
        let sps = [
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x03, 0x00, 0x78, 0xa0, 0x02, 0xb0, 0x80, 0x30, 0x1c, 0xd5, 0x96, 0x56, 0x54,
            0xa4, 0xc2, 0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0c,
            0x84,
        ];
        let mut record = vec![0u8; 22];
        record[0] = 1;
        record.extend_from_slice(&[1, 0xa1, 0, 1]);
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(&sps);
        assert_eq!(largest_picture(Id::HEVC, &record), size(1366, 766));
    }

    #[test]
    fn unreadable_records_leave_the_decision_to_the_decoder() {
        assert_eq!(largest_picture(Id::H264, &[]), None);
        // A truncated SPS.
        assert_eq!(
            largest_picture(
                Id::H264,
                &[1, 0x64, 0, 0x20, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0]
            ),
            None
        );
        assert_eq!(largest_picture(Id::HEVC, &[1; 10]), None);
        assert_eq!(largest_picture(Id::AV1, &[0x81, 0, 0, 0]), None);
    }

    #[test]
    fn emulation_prevention_bytes_are_removed() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }
}
