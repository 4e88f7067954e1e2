//! Annex B NAL units (H.264 and HEVC as MPEG-TS carries them): finding start codes and
//! telling whether an access unit holds a picture a decoder can start from.

/// The NAL unit types in Annex B `data`: the first header byte after each start code
/// (`00 00 01`; a 4-byte `00 00 00 01` start code is the same with a leading zero).
/// Emulation prevention guarantees a start code never occurs inside a NAL unit.
pub fn nal_headers(data: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut position = 0;
    std::iter::from_fn(move || {
        let header_at = find_start_code(data, position)?;
        position = header_at;
        data.get(header_at).copied()
    })
}

/// Index of the byte after the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from + 2;
    while at < data.len() {
        // Skip ahead by what the byte found rules out: a byte above 1 cannot be any of
        // the three bytes of a start code that ends at or before `at + 2`.
        match data[at] {
            1 if data[at - 1] == 0 && data[at - 2] == 0 => return Some(at + 1),
            0 => at += 1,
            _ => at += 3,
        }
    }
    None
}

/// H.264 `nal_unit_type` 5: a slice of an IDR picture.
const AVC_IDR: u8 = 5;
/// HEVC `nal_unit_type` 16–23: IRAP pictures (BLA, IDR, CRA and the reserved IRAP types).
const HEVC_IRAP: std::ops::RangeInclusive<u8> = 16..=23;

/// True when an H.264 access unit holds an IDR slice.
pub fn avc_has_idr(data: &[u8]) -> bool {
    nal_headers(data).any(|header| header & 0x1F == AVC_IDR)
}

/// True when an HEVC access unit holds a slice of an IRAP picture.
pub fn hevc_has_irap(data: &[u8]) -> bool {
    nal_headers(data).any(|header| HEVC_IRAP.contains(&((header >> 1) & 0x3F)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_codes_of_three_and_four_bytes() {
        let data = [
            0, 0, 0, 1, 9, 0xF0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x65, 0, 0, 1,
        ];
        assert_eq!(nal_headers(&data).collect::<Vec<_>>(), [9, 0x67, 0x65]);
        assert!(avc_has_idr(&data));
        assert!(!avc_has_idr(&data[..12]));
        // Two zeros and a one split by other bytes are no start code.
        assert_eq!(nal_headers(&[0, 2, 0, 1, 0, 0, 2, 1]).count(), 0);
        assert_eq!(nal_headers(&[]).count(), 0);
        assert_eq!(nal_headers(&[0, 0, 1]).count(), 0);
    }

    #[test]
    fn every_position_of_a_start_code_is_found() {
        for offset in 0..8 {
            let mut data = vec![0xAA; offset];
            data.extend([0, 0, 1, 0x41, 0xBB, 0xCC]);
            assert_eq!(nal_headers(&data).collect::<Vec<_>>(), [0x41], "{offset}");
        }
    }

    #[test]
    fn hevc_irap_types() {
        for (nal_type, irap) in [(1, false), (15, false), (16, true), (19, true), (21, true)]
            .into_iter()
            .chain([(23, true), (24, false), (32, false), (35, false)])
        {
            assert_eq!(
                hevc_has_irap(&[0, 0, 1, nal_type << 1, 1, 0xAA]),
                irap,
                "type {nal_type}"
            );
        }
    }
}
