//! Program-specific information: PSI sections reassembled from transport packet payloads
//! the way FFmpeg's `write_section_data` does, their CRC-32, and the two tables livegate
//! reads — the PAT (program → PMT PID) and the PMT (program → elementary streams).

/// Largest section FFmpeg's section filter holds; a longer declared section is dropped.
pub const MAX_SECTION_BYTES: usize = 4096;

pub const TABLE_ID_PAT: u8 = 0x00;
pub const TABLE_ID_PMT: u8 = 0x02;

/// The CRC-32 of MPEG-2 sections (polynomial 0x04C11DB7, initial value all ones, no
/// reflection, no final xor): over a whole section, CRC field included, it is 0.
pub fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(u32::MAX, |crc, &byte| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)]
    })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = (index as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// Reassembles the sections of one PID. Like FFmpeg: a payload unit start begins a new
/// section after the pointer field (the bytes before it finish the previous one, unless a
/// continuity error lost some of it); several sections may follow each other in one
/// packet until a 0xFF stuffing byte; data after a complete section is ignored until the
/// next unit start.
#[derive(Debug, Default)]
pub struct SectionAssembler {
    buffer: Vec<u8>,
    /// A section completed and nothing after it started another: continuation packets
    /// are ignored until the next payload unit start.
    end_reached: bool,
}

impl SectionAssembler {
    /// Adds one packet's payload; returns the sections it completed (CRC unchecked).
    pub fn push(&mut self, payload: &[u8], unit_start: bool, continuity_ok: bool) -> Vec<Vec<u8>> {
        let mut sections = Vec::new();
        if unit_start {
            let Some((&pointer, rest)) = payload.split_first() else {
                return sections;
            };
            let pointer = usize::from(pointer);
            // A pointer past the packet: FFmpeg drops the packet.
            let Some((tail, start)) = rest.split_at_checked(pointer) else {
                return sections;
            };
            if !tail.is_empty() && continuity_ok {
                self.write(tail, false, &mut sections);
            }
            if !start.is_empty() {
                self.write(start, true, &mut sections);
            }
        } else if continuity_ok {
            self.write(payload, false, &mut sections);
        }
        sections
    }

    fn write(&mut self, data: &[u8], start: bool, sections: &mut Vec<Vec<u8>>) {
        if start {
            self.buffer.clear();
            self.end_reached = false;
        } else if self.end_reached {
            return;
        }
        let room = MAX_SECTION_BYTES - self.buffer.len();
        self.buffer.extend_from_slice(&data[..data.len().min(room)]);
        let mut offset = 0;
        while let Some(rest) = self
            .buffer
            .get(offset..)
            .filter(|rest| rest.first() != Some(&0xFF))
        {
            let Some(length_bytes) = rest.get(1..3) else {
                self.end_reached = false;
                break;
            };
            let length =
                usize::from(u16::from_be_bytes([length_bytes[0], length_bytes[1]]) & 0xFFF) + 3;
            if length > MAX_SECTION_BYTES {
                break;
            }
            match rest.get(..length) {
                Some(section) => {
                    sections.push(section.to_vec());
                    self.end_reached = true;
                    offset += length;
                }
                None => {
                    self.end_reached = false;
                    break;
                }
            }
        }
        // Sections handed out are not kept; an incomplete one stays at the front.
        if offset > 0 {
            self.buffer.drain(..offset);
        }
    }
}

/// The long-form header every PAT and PMT section starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    pub table_id: u8,
    /// `transport_stream_id` (PAT) or `program_number` (PMT).
    pub id: u16,
    pub version: u8,
    /// 0: the table is not yet in force (sent ahead); demuxers ignore it.
    pub current_next: bool,
}

/// Header bytes before a long-form section's table data.
const LONG_HEADER_LEN: usize = 8;
const CRC_LEN: usize = 4;

/// The header and the table data (between the header and the CRC) of a section, or
/// `None` when it is too short to hold them.
pub fn split_section(section: &[u8]) -> Option<(SectionHeader, &[u8])> {
    if section.len() < LONG_HEADER_LEN + CRC_LEN {
        return None;
    }
    let header = SectionHeader {
        table_id: section[0],
        id: u16::from_be_bytes([section[3], section[4]]),
        version: (section[5] >> 1) & 0x1F,
        current_next: section[5] & 1 != 0,
    };
    Some((header, &section[LONG_HEADER_LEN..section.len() - CRC_LEN]))
}

fn pid_of(high: u8, low: u8) -> u16 {
    u16::from_be_bytes([high & 0x1F, low])
}

/// One PAT entry: a program and the PID of its PMT (program 0, the network PID, is left
/// out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    pub program_number: u16,
    pub pmt_pid: u16,
}

/// The programs of a PAT's table data (a trailing partial entry is ignored).
pub fn parse_pat(data: &[u8]) -> Vec<PatEntry> {
    data.chunks_exact(4)
        .map(|entry| PatEntry {
            program_number: u16::from_be_bytes([entry[0], entry[1]]),
            pmt_pid: pid_of(entry[2], entry[3]),
        })
        .filter(|entry| entry.program_number != 0)
        .collect()
}

/// One elementary stream of a PMT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
    /// The `format_identifier` of its registration descriptor (tag 5), if any.
    pub registration: Option<[u8; 4]>,
}

/// The elementary streams of a PMT's table data, in order. Like FFmpeg, an entry whose
/// descriptors run past the section ends the list; the entries before it are kept.
pub fn parse_pmt(data: &[u8]) -> Vec<PmtStream> {
    let mut streams = Vec::new();
    let Some(info_len) = data.get(2..4) else {
        return streams;
    };
    let program_info_length = usize::from(u16::from_be_bytes([info_len[0], info_len[1]]) & 0xFFF);
    let mut rest = data.get(4 + program_info_length..).unwrap_or_default();
    while let [stream_type, pid_high, pid_low, len_high, len_low, tail @ ..] = rest {
        let es_info_length = usize::from(u16::from_be_bytes([*len_high, *len_low]) & 0xFFF);
        let Some((descriptors, after)) = tail.split_at_checked(es_info_length) else {
            break;
        };
        streams.push(PmtStream {
            stream_type: *stream_type,
            pid: pid_of(*pid_high, *pid_low),
            registration: registration(descriptors),
        });
        rest = after;
    }
    streams
}

const REGISTRATION_DESCRIPTOR: u8 = 0x05;

/// The format identifier of the first registration descriptor in a descriptor loop.
fn registration(mut descriptors: &[u8]) -> Option<[u8; 4]> {
    while let [tag, length, rest @ ..] = descriptors {
        let body = rest.get(..usize::from(*length))?;
        if *tag == REGISTRATION_DESCRIPTOR
            && let Some(identifier) = body.get(..4)
        {
            return identifier.try_into().ok();
        }
        descriptors = &rest[body.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux;

    #[test]
    fn crc_of_a_known_pat() {
        // The PAT FFmpeg's muxer writes (program 1 → PMT PID 0x1000).
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
            0x04, 0xB2,
        ];
        assert_eq!(crc32(&pat), 0);
        assert_eq!(crc32(&pat[..12]), 0x2AB1_04B2);
        let (header, data) = split_section(&pat).expect("long enough");
        assert_eq!((header.table_id, header.id, header.version), (0, 1, 0));
        assert!(header.current_next);
        assert_eq!(
            parse_pat(data),
            [PatEntry {
                program_number: 1,
                pmt_pid: 0x1000
            }]
        );
        assert_eq!(mux::pat(0, &[(1, 0x1000)]), pat);
    }

    #[test]
    fn sections_split_across_packets_and_packed_together() {
        let pmt = mux::pmt(1, 0, &[(0x1B, 0x100, &[0x05, 4, b'H', b'E', b'V', b'C'])]);
        let mut assembler = SectionAssembler::default();
        let (first, second) = pmt.split_at(7);
        let mut start = vec![0];
        start.extend_from_slice(first);
        assert!(assembler.push(&start, true, true).is_empty());
        let mut rest = second.to_vec();
        // Stuffing after the section, then bytes that must be ignored.
        rest.extend([0xFF, 0xFF]);
        assert_eq!(
            assembler.push(&rest, false, true),
            std::slice::from_ref(&pmt)
        );
        assert!(assembler.push(&pmt, false, true).is_empty());
        // The end of one section before the pointer, two sections after it.
        let pat = mux::pat(3, &[(1, 0x20)]);
        let mut packet = vec![0];
        packet.extend(&pat);
        packet.extend(&pat);
        assert_eq!(
            assembler.push(&packet, true, true),
            [pat.clone(), pat.clone()]
        );
        let streams = parse_pmt(split_section(&pmt).expect("a section").1);
        assert_eq!(
            streams,
            [PmtStream {
                stream_type: 0x1B,
                pid: 0x100,
                registration: Some(*b"HEVC")
            }]
        );
    }

    #[test]
    fn a_continuity_error_drops_the_continuation() {
        let pmt = mux::pmt(1, 0, &[(0x1B, 0x100, &[])]);
        let mut assembler = SectionAssembler::default();
        let mut start = vec![0];
        start.extend_from_slice(&pmt[..5]);
        assert!(assembler.push(&start, true, true).is_empty());
        assert!(assembler.push(&pmt[5..], false, false).is_empty());
        // The next unit start begins afresh.
        let mut whole = vec![0];
        whole.extend(&pmt);
        assert_eq!(assembler.push(&whole, true, true), [pmt]);
        // A pointer field past the payload: the packet is dropped.
        assert!(assembler.push(&[200, 0, 0], true, true).is_empty());
    }

    #[test]
    fn truncated_pmt_entries_end_the_list() {
        let pmt = mux::pmt(1, 0, &[(0x1B, 0x100, &[]), (0x0F, 0x101, &[1, 2])]);
        let (_, data) = split_section(&pmt).expect("a section");
        assert_eq!(parse_pmt(data).len(), 2);
        assert_eq!(parse_pmt(&data[..data.len() - 1]).len(), 1);
        assert_eq!(parse_pmt(&data[..3]).len(), 0);
        assert!(split_section(&pmt[..11]).is_none());
    }
}
