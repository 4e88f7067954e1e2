//! A minimal MPEG-TS writer for tests and the fuzz target (the `mux`
//! feature; never in the proxy): PAT and PMT sections, PES packets, and transport packets
//! with continuity counters and adaptation-field stuffing, so that edge cases can be built
//! byte by byte.

use crate::psi::{TABLE_ID_PAT, TABLE_ID_PMT, crc32};
use crate::{PACKET_SIZE, SYNC_BYTE};

/// A long-form section: header, `data`, CRC.
pub fn section(table_id: u8, id: u16, version: u8, data: &[u8]) -> Vec<u8> {
    let length = 5 + data.len() + 4;
    let mut section = vec![table_id, 0xB0 | (length >> 8) as u8, length as u8];
    section.extend(id.to_be_bytes());
    section.push(0xC1 | (version & 0x1F) << 1);
    section.extend([0, 0]);
    section.extend_from_slice(data);
    section.extend(crc32(&section).to_be_bytes());
    section
}

/// A PAT of `(program_number, pmt_pid)` pairs.
pub fn pat(version: u8, programs: &[(u16, u16)]) -> Vec<u8> {
    let data: Vec<u8> = programs
        .iter()
        .flat_map(|&(program, pid)| {
            let [a, b] = program.to_be_bytes();
            let [c, d] = (0xE000 | pid).to_be_bytes();
            [a, b, c, d]
        })
        .collect();
    section(TABLE_ID_PAT, 1, version, &data)
}

/// A PMT of `(stream_type, pid, es_descriptors)` entries.
pub fn pmt(program: u16, version: u8, streams: &[(u8, u16, &[u8])]) -> Vec<u8> {
    let mut data = vec![0xE1, 0x00, 0xF0, 0x00];
    for &(stream_type, pid, descriptors) in streams {
        data.push(stream_type);
        data.extend((0xE000 | pid).to_be_bytes());
        data.extend((0xF000 | descriptors.len() as u16).to_be_bytes());
        data.extend_from_slice(descriptors);
    }
    section(TABLE_ID_PMT, program, version, &data)
}

/// A 33-bit timestamp field with the `prefix` nibble and marker bits.
fn timestamp(prefix: u8, ticks: u64) -> [u8; 5] {
    [
        prefix << 4 | ((ticks >> 29) as u8 & 0x0E) | 1,
        (ticks >> 22) as u8,
        ((ticks >> 14) as u8 & 0xFE) | 1,
        (ticks >> 7) as u8,
        ((ticks << 1) as u8 & 0xFE) | 1,
    ]
}

/// A PES packet: start code, `stream_id`, length (0 unless `bounded`), the optional header
/// with PTS (and DTS when given), then `payload`.
pub fn pes(
    stream_id: u8,
    pts: Option<u64>,
    dts: Option<u64>,
    payload: &[u8],
    bounded: bool,
) -> Vec<u8> {
    let mut header_data = Vec::new();
    let flags = match (pts, dts) {
        (Some(pts), Some(dts)) => {
            header_data.extend(timestamp(3, pts));
            header_data.extend(timestamp(1, dts));
            0xC0
        }
        (Some(pts), None) => {
            header_data.extend(timestamp(2, pts));
            0x80
        }
        _ => 0,
    };
    let length = if bounded {
        (3 + header_data.len() + payload.len()) as u16
    } else {
        0
    };
    let mut pes = vec![0, 0, 1, stream_id];
    pes.extend(length.to_be_bytes());
    pes.extend([0x80, flags, header_data.len() as u8]);
    pes.extend(header_data);
    pes.extend_from_slice(payload);
    pes
}

/// Writes transport packets, keeping each PID's continuity counter.
#[derive(Debug, Default)]
pub struct Writer {
    pub out: Vec<u8>,
    counters: std::collections::HashMap<u16, u8>,
}

impl Writer {
    /// Makes the next packet of `pid` skip a continuity counter value (a lost packet).
    pub fn lose_one(&mut self, pid: u16) {
        *self.counters.entry(pid).or_default() += 1;
    }

    fn next_counter(&mut self, pid: u16, payload: bool) -> u8 {
        // The counter advances with each payload; a packet without one repeats the last.
        let counter = self.counters.entry(pid).or_default();
        if payload {
            *counter = counter.wrapping_add(1);
        }
        counter.wrapping_sub(1) & 0x0F
    }

    /// One packet carrying as much of `payload` as fits (stuffing the rest with an
    /// adaptation field); returns the bytes of `payload` it took.
    pub fn packet(
        &mut self,
        pid: u16,
        unit_start: bool,
        random_access: bool,
        payload: &[u8],
    ) -> usize {
        // Adaptation field: length byte, flags byte, stuffing.
        let min_adaptation = if random_access { 2 } else { 0 };
        let taken = payload.len().min(PACKET_SIZE - 4 - min_adaptation);
        let adaptation = PACKET_SIZE - 4 - taken;
        let control = if adaptation > 0 { 0x30 } else { 0x10 };
        let counter = self.next_counter(pid, true);
        self.header(pid, unit_start, control | counter);
        if adaptation > 0 {
            self.out.push((adaptation - 1) as u8);
            if adaptation > 1 {
                self.out.push(if random_access { 0x40 } else { 0 });
                self.out.resize(self.out.len() + adaptation - 2, 0xFF);
            }
        }
        self.out.extend_from_slice(&payload[..taken]);
        taken
    }

    /// A packet with an adaptation field only (no payload: the counter does not advance).
    pub fn adaptation_only(&mut self, pid: u16, random_access: bool) {
        let counter = self.next_counter(pid, false);
        self.header(pid, false, 0x20 | counter);
        self.out.push(183);
        self.out.push(if random_access { 0x40 } else { 0 });
        self.out.resize(self.out.len() + 182, 0xFF);
    }

    fn header(&mut self, pid: u16, unit_start: bool, control: u8) {
        let [high, low] = pid.to_be_bytes();
        self.out.extend([
            SYNC_BYTE,
            (u8::from(unit_start) << 6) | (high & 0x1F),
            low,
            control,
        ]);
    }

    /// A payload unit (a PES packet, or a section after its pointer field) over as many
    /// packets as it needs, the first one flagged as its start.
    pub fn unit(&mut self, pid: u16, unit: &[u8], random_access: bool) {
        let mut rest = unit;
        let mut first = true;
        while first || !rest.is_empty() {
            let taken = self.packet(pid, first, random_access && first, rest);
            rest = &rest[taken..];
            first = false;
        }
    }

    /// A section on `pid`, pointer field 0.
    pub fn section(&mut self, pid: u16, section: &[u8]) {
        let mut unit = vec![0];
        unit.extend_from_slice(section);
        self.unit(pid, &unit, false);
    }

    /// PAT (program 1 → `pmt_pid`) and its PMT listing `streams`.
    pub fn tables(&mut self, pmt_pid: u16, version: u8, streams: &[(u8, u16, &[u8])]) {
        self.section(0, &pat(version, &[(1, pmt_pid)]));
        self.section(pmt_pid, &pmt(1, version, streams));
    }
}
