//! PES reassembly for one PID, following FFmpeg's `mpegts_push_data` so that livegate
//! reads the same elementary-stream bytes a FFmpeg-based origin or player does:
//! - a payload unit start ends the PES in progress (if it has payload) and begins a new
//!   one; without `00 00 01` in front, or for the padding stream, the unit is skipped;
//! - stream ids without the optional header (program stream map, private stream 2, ECM,
//!   EMM, directory, DSM-CC, H.222.1 type E) carry payload right after the 6-byte start;
//! - a bounded PES (`PES_packet_length` > 0) ends as soon as its declared payload has
//!   arrived, and what follows up to the next unit start is skipped; a packet that would
//!   overrun the declared length makes FFmpeg hand out what it has and read on as if the
//!   PES were unbounded — the bytes of both are the same elementary stream, so here they
//!   stay one unit; a first packet longer than a small declared PES is cut to it;
//! - an unbounded PES (length 0, what video uses) runs until the next unit start.
//!
//! Only the first [`PesAssembler`] `keep` bytes of payload are held; the caller decides
//! what more means (an error for video, nothing when only the start is looked at).

/// Bytes of the PES start: start code prefix, stream id, packet length.
const PES_START_SIZE: usize = 6;
/// Bytes up to and including `PES_header_data_length`.
const PES_HEADER_SIZE: usize = 9;

/// Stream ids whose PES has no optional header (ISO/IEC 13818-1 table 2-21).
fn has_optional_header(stream_id: u8) -> bool {
    !matches!(stream_id, 0xBC | 0xBF | 0xF0 | 0xF1 | 0xFF | 0xF2 | 0xF8)
}

const PADDING_STREAM: u8 = 0xBE;

/// A PES packet's start: its stream id and 33-bit timestamps, when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PesHeader {
    pub stream_id: u8,
    pub pts: Option<u64>,
    pub dts: Option<u64>,
}

/// A reassembled PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    pub header: PesHeader,
    /// Its payload (at most the assembler's `keep` bytes of it).
    pub payload: Vec<u8>,
    /// Payload bytes received, including any beyond `keep`.
    pub received: usize,
    /// What the caller attached to the packet that started it.
    pub start: UnitStart,
}

/// What the demuxer knows of the transport packet that started a PES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitStart {
    /// Stream offset of the transport packet's first byte.
    pub offset: u64,
    /// Its adaptation field's random-access indicator.
    pub random_access: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a payload unit start.
    Skip,
    /// Reading the start and the optional header into `header`.
    Header,
    Payload,
}

/// The PES reassembly state of one PID.
#[derive(Debug)]
pub struct PesAssembler {
    state: State,
    keep: usize,
    header: Vec<u8>,
    /// Size of the whole header: 6, or 9 + `PES_header_data_length` once known.
    header_size: usize,
    /// `PES_packet_length`; 0 when unbounded (or after an overrun, as FFmpeg resets it).
    packet_length: usize,
    /// Payload bytes since FFmpeg's last hand-out (its `data_index`).
    handed_index: usize,
    parsed: PesHeader,
    payload: Vec<u8>,
    received: usize,
    start: UnitStart,
}

/// Largest packet FFmpeg hands out for an unbounded PES (its `max_packet_size` default);
/// past it, it hands one out and reads on.
const FFMPEG_MAX_PACKET_SIZE: usize = 204_800;

impl PesAssembler {
    /// An assembler waiting for its first unit start, keeping up to `keep` payload bytes.
    pub fn new(keep: usize) -> Self {
        PesAssembler {
            state: State::Skip,
            keep,
            header: Vec::new(),
            header_size: PES_START_SIZE,
            packet_length: 0,
            handed_index: 0,
            parsed: PesHeader::default(),
            payload: Vec::new(),
            received: 0,
            start: UnitStart::default(),
        }
    }

    /// The stream id and first payload bytes of the PES in progress, once its header
    /// has been read.
    pub fn peek(&self) -> Option<(u8, &[u8])> {
        (self.state == State::Payload).then_some((self.parsed.stream_id, &self.payload[..]))
    }

    /// Payload bytes of the PES in progress, including any beyond `keep`.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Where the PES in progress started.
    pub fn started_at(&self) -> UnitStart {
        self.start
    }

    /// Adds one transport packet's payload; PES packets it completes are appended to
    /// `done` (at most two: the one a unit start ends, and a short bounded one inside it).
    pub fn push(&mut self, mut data: &[u8], unit_start: Option<UnitStart>, done: &mut Vec<Pes>) {
        // FFmpeg checks an exact end only if nothing was handed out for this packet yet.
        let mut handed_out = false;
        if let Some(start) = unit_start {
            if self.state == State::Payload && self.handed_index > 0 {
                done.push(self.take());
                handed_out = true;
            }
            self.reset();
            self.state = State::Header;
            self.start = start;
        }
        while !data.is_empty() {
            match self.state {
                State::Skip => return,
                State::Header => {
                    let wanted = match self.header.len() {
                        length if length < PES_START_SIZE => PES_START_SIZE,
                        length if length < PES_HEADER_SIZE => PES_HEADER_SIZE,
                        _ => self.header_size,
                    };
                    let (taken, rest) = data.split_at((wanted - self.header.len()).min(data.len()));
                    self.header.extend_from_slice(taken);
                    data = rest;
                    if self.header.len() == wanted {
                        self.header_read();
                    }
                }
                State::Payload => {
                    let max = match self.packet_length + PES_START_SIZE {
                        end if self.packet_length > 0 && end > self.header_size => {
                            end - self.header_size
                        }
                        _ => FFMPEG_MAX_PACKET_SIZE,
                    };
                    let mut chunk = data;
                    if self.handed_index > 0 && self.handed_index + chunk.len() > max {
                        // FFmpeg hands out what it has and reads on, unbounded: the same
                        // elementary-stream bytes, so the unit goes on here.
                        self.handed_index = 0;
                        self.packet_length = 0;
                        handed_out = true;
                    } else if self.handed_index == 0 && chunk.len() > max {
                        chunk = &chunk[..max];
                    }
                    let kept = chunk
                        .len()
                        .min(self.keep.saturating_sub(self.payload.len()));
                    self.payload.extend_from_slice(&chunk[..kept]);
                    self.received += chunk.len();
                    self.handed_index += chunk.len();
                    if !handed_out
                        && self.packet_length > 0
                        && self.header_size + self.handed_index
                            == self.packet_length + PES_START_SIZE
                    {
                        done.push(self.take());
                        self.state = State::Skip;
                    }
                    return;
                }
            }
        }
    }

    /// Decides what the header read so far says: skip the unit, read more header, or
    /// start the payload.
    fn header_read(&mut self) {
        let header = &self.header;
        if header.len() == PES_START_SIZE {
            if header[..3] != [0, 0, 1] || header[3] == PADDING_STREAM {
                self.state = State::Skip;
                return;
            }
            self.parsed.stream_id = header[3];
            self.packet_length = usize::from(u16::from_be_bytes([header[4], header[5]]));
            if !has_optional_header(header[3]) {
                self.header_size = PES_START_SIZE;
                self.state = State::Payload;
            }
        } else if header.len() == PES_HEADER_SIZE {
            self.header_size = PES_HEADER_SIZE + usize::from(header[8]);
            if self.header_size == PES_HEADER_SIZE {
                self.optional_header_read();
            }
        } else {
            self.optional_header_read();
        }
    }

    fn optional_header_read(&mut self) {
        let flags = self.header[7];
        let fields = &self.header[PES_HEADER_SIZE..];
        let (pts, dts) = match flags & 0xC0 {
            0x80 => {
                let pts = fields.get(..5).map(timestamp);
                (pts, pts)
            }
            0xC0 => (
                fields.get(..5).map(timestamp),
                fields.get(5..10).map(timestamp),
            ),
            _ => (None, None),
        };
        self.parsed.pts = pts;
        self.parsed.dts = dts;
        self.state = State::Payload;
    }

    fn take(&mut self) -> Pes {
        // The next unit is likely of a similar size: start it with room for this one.
        let room = Vec::with_capacity(self.payload.len());
        let pes = Pes {
            header: self.parsed,
            payload: std::mem::replace(&mut self.payload, room),
            received: self.received,
            start: self.start,
        };
        self.reset();
        pes
    }

    fn reset(&mut self) {
        self.header.clear();
        self.header_size = PES_START_SIZE;
        self.packet_length = 0;
        self.handed_index = 0;
        self.parsed = PesHeader::default();
        self.payload.clear();
        self.received = 0;
    }

    /// Forgets the PES in progress and waits for the next unit start.
    pub fn discard(&mut self) {
        self.reset();
        self.state = State::Skip;
    }
}

/// A 33-bit PTS/DTS field (marker bits ignored, as FFmpeg's `ff_parse_pes_pts` does).
fn timestamp(field: &[u8]) -> u64 {
    (u64::from(field[0] & 0x0E) << 29)
        | (u64::from(u16::from_be_bytes([field[1], field[2]]) >> 1) << 15)
        | u64::from(u16::from_be_bytes([field[3], field[4]]) >> 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux;

    fn start(offset: u64) -> Option<UnitStart> {
        Some(UnitStart {
            offset,
            random_access: false,
        })
    }

    /// Feeds `units` (each a list of packet payloads, the first one a unit start).
    fn assemble(keep: usize, units: &[&[&[u8]]]) -> Vec<Pes> {
        let mut assembler = PesAssembler::new(keep);
        let mut done = Vec::new();
        for (index, unit) in units.iter().enumerate() {
            for (packet, payload) in unit.iter().enumerate() {
                let unit_start = if packet == 0 {
                    start(index as u64)
                } else {
                    None
                };
                assembler.push(payload, unit_start, &mut done);
            }
        }
        done
    }

    #[test]
    fn unbounded_pes_ends_at_the_next_unit_start() {
        let pes = mux::pes(
            0xE0,
            Some(0x1_2345_6789),
            Some(0x1_0000_0001),
            &[7; 300],
            false,
        );
        let (first, rest) = pes.split_at(100);
        let (second, third) = rest.split_at(3);
        let done = assemble(
            1 << 20,
            &[
                &[first, second, third],
                &[&mux::pes(0xE0, None, None, &[1], false)],
            ],
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].payload, [7; 300]);
        assert_eq!(
            done[0].header,
            PesHeader {
                stream_id: 0xE0,
                pts: Some(0x1_2345_6789),
                dts: Some(0x1_0000_0001)
            }
        );
        assert_eq!(done[0].start.offset, 0);
    }

    #[test]
    fn a_header_split_at_every_byte() {
        let pes = mux::pes(0xE0, Some(90_000), None, &[1, 2, 3], false);
        let bytes: Vec<&[u8]> = pes.chunks(1).collect();
        let mut units: Vec<&[&[u8]]> = vec![&bytes];
        let next = mux::pes(0xE0, None, None, &[0], false);
        let next_unit: [&[u8]; 1] = [&next];
        units.push(&next_unit);
        let done = assemble(100, &units);
        assert_eq!(done[0].payload, [1, 2, 3]);
        assert_eq!(
            (done[0].header.pts, done[0].header.dts),
            (Some(90_000), Some(90_000))
        );
    }

    #[test]
    fn bounded_pes_ends_at_its_length_and_the_rest_is_skipped() {
        let pes = mux::pes(0xC0, Some(1), None, &[5; 20], true);
        let mut assembler = PesAssembler::new(100);
        let mut done = Vec::new();
        assembler.push(&pes[..10], start(0), &mut done);
        assert!(done.is_empty());
        assembler.push(&pes[10..], None, &mut done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].payload, [5; 20]);
        // Bytes after the declared end, before the next unit start: skipped.
        assembler.push(&[9; 50], None, &mut done);
        assembler.push(&mux::pes(0xC0, None, None, &[3], true), start(1), &mut done);
        assert_eq!(done.len(), 2);
        assert_eq!(done[1].payload, [3]);
    }

    #[test]
    fn an_overrun_bounded_pes_reads_on_until_the_next_unit_start() {
        let mut pes = mux::pes(0xE0, None, None, &[5; 20], true);
        // The declared payload is 20 bytes; the first packet carries 10 of them, the
        // second 15 more.
        pes.extend([6; 5]);
        let done = assemble(
            100,
            &[
                &[&pes[..19], &pes[19..]],
                &[&mux::pes(0xE0, None, None, &[0], false)],
            ],
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].received, 25);
        // A first packet longer than the declared PES is cut to it.
        let mut short = mux::pes(0xE0, None, None, &[5; 4], true);
        short.extend([0xFF; 10]);
        let done = assemble(100, &[&[&short]]);
        assert_eq!(done[0].payload, [5; 4]);
    }

    #[test]
    fn no_start_code_or_padding_skips_the_unit() {
        let done = assemble(
            100,
            &[
                &[&[0, 0, 2, 0xE0, 0, 0, 0x80, 0, 0, 1]],
                &[&mux::pes(PADDING_STREAM, None, None, &[0xFF; 8], true)],
                &[&[0, 0, 1, 0xBF, 0, 3, 7, 8, 9]],
            ],
        );
        // Private stream 2 has no optional header: its payload starts after 6 bytes.
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].payload, [7, 8, 9]);
        assert_eq!(done[0].header.stream_id, 0xBF);
    }

    #[test]
    fn keep_caps_the_payload_held() {
        let pes = mux::pes(0xE0, None, None, &[1; 500], false);
        let done = assemble(4, &[&[&pes], &[&pes]]);
        assert_eq!(done[0].payload, [1; 4]);
        assert_eq!(done[0].received, 500);
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        let max = (1u64 << 33) - 1;
        let pes = mux::pes(0xE0, Some(max), Some(0), &[], false);
        let mut assembler = PesAssembler::new(10);
        let mut done = Vec::new();
        assembler.push(&pes, start(0), &mut done);
        assembler.push(&[0xAA], None, &mut done);
        assert_eq!(assembler.peek(), Some((0xE0, &[0xAA][..])));
        assembler.push(&pes, start(1), &mut done);
        assert_eq!(
            (done[0].header.pts, done[0].header.dts),
            (Some(max), Some(0))
        );
    }
}
