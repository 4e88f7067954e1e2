//! The passive MPEG-TS demuxer: fed a copy of the transport stream a publisher sends
//! (split anywhere), it reports the access units of the one H.264 or HEVC video stream
//! it inspects, and video it cannot inspect, as [`DemuxEvent`]s.
//!
//! After an error the demuxer is dead: every later `feed` returns the same error again
//! and emits nothing.
//!
//! Livegate must read the bytes as the origin (and the players behind it) do, or a
//! publisher could show viewers pictures livegate never saw. Where demuxers differ, it
//! reads as FFmpeg's (`libavformat/mpegts.c`) does, or refuses:
//! - **Sync**: every 188th byte must be 0x47, from the first byte on. FFmpeg would scan
//!   for the next 0x47 and read on, other demuxers differ in how they resync, so a lost
//!   sync byte ends the stream's inspection ([`DemuxError::LostSync`]). SRT delivers whole
//!   datagrams of 7 packets (or drops them whole), so a real encoder never loses sync.
//!   192- and 204-byte packets are refused the same way.
//! - **Continuity counters** are checked as FFmpeg does (a discontinuity indicator, the
//!   first packet of a PID and adaptation-only packets excepted) and errors are only
//!   counted ([`Stats::continuity_errors`]): FFmpeg keeps appending to the PES in progress
//!   (it marks the packet corrupt and players still decode it), so the access unit goes on
//!   here too and is inspected as received. A PSI section loses its continuation, as in
//!   FFmpeg. The transport error indicator is counted and otherwise ignored, likewise.
//! - **PSI**: PAT and PMT sections are reassembled as FFmpeg does ([`crate::psi`]) and
//!   checked against their CRC; a failing section is ignored and counted. FFmpeg starts
//!   using failing sections of a PID once 10 in a row have failed: that stream is
//!   refused ([`DemuxError::CrcFailures`]) rather than read two ways. Sections not yet in
//!   force (`current_next_indicator` 0) are ignored; a repeated identical table is skipped.
//! - **PES** reassembly follows FFmpeg ([`crate::pes`]): an unbounded video PES ends at
//!   the next payload unit start of its PID; the access unit is emitted then, one picture
//!   late. A PES is one access unit (as every encoder muxes them): one holding several
//!   pictures is inspected as one.
//! - **Which video**: the first H.264 (stream type 0x1B) or HEVC (0x24, or a registration
//!   descriptor `HEVC`, as FFmpeg reads it) stream of the PMTs, in the order they
//!   arrived. A second video stream, video of another codec, and — since FFmpeg probes
//!   the content of private and unknown streams and of PIDs no PMT lists — any other PES
//!   (audio, private, unknown or unlisted) that starts like video (stream id 0xE0–0xEF or an Annex B start code) is reported as
//!   [`DemuxEvent::UnsupportedVideo`], once per stream: a player may show it.
//! - **PMT changes** take effect at once: a PID whose role or codec changes starts
//!   afresh (its PES in progress is dropped), a PID still listed the same keeps it.
//! - **Keyframes** are decided by the NAL units alone: an IDR slice (H.264) or an IRAP
//!   picture (HEVC) is what a decoder can start from, whatever the container says. The
//!   adaptation field's random-access indicator is the publisher's word: set on every
//!   P-frame it would spend livegate's sampling budget on undecodable pictures, cleared on
//!   an IDR it would hide a keyframe viewers see. It is reported
//!   ([`AccessUnit::random_access_indicator`]) and mismatches are counted.
//! - **Before the first PMT** nothing can be told about a PID, so PES data is skipped;
//!   a stream with no PMT within [`Limits::max_bytes_before_pmt`] is refused.
//!
//! Timestamps: 33-bit 90 kHz PTS/DTS, unwrapped (each placed within ±2^32 ticks of the
//! previous one) and converted to milliseconds of the stream's own clock; a unit without
//! a PTS takes the previous unit's times; a PTS without a DTS is both.

use std::collections::HashMap;

use bytes::Bytes;

use crate::nal::{avc_has_idr, hevc_has_irap};
use crate::pes::{Pes, PesAssembler, UnitStart};
use crate::psi::{
    PmtStream, SectionAssembler, TABLE_ID_PAT, TABLE_ID_PMT, crc32, parse_pat, parse_pmt,
    split_section,
};
use crate::{PACKET_SIZE, SYNC_BYTE};

const PAT_PID: u16 = 0x0000;
const NULL_PID: u16 = 0x1FFF;
/// PIDs below this are reserved for PSI and DVB/ATSC tables; never elementary streams.
const FIRST_ELEMENTARY_PID: u16 = 0x0020;

/// Payload bytes held of a PES that is only looked at for what it starts with.
const SNIFF_BYTES: usize = 4;

/// FFmpeg's `crc_validity`: a good section sets it to this, each bad one decrements it,
/// and below [`CRC_ACCEPTED_AT`] FFmpeg uses bad sections too.
const CRC_VALID: i32 = 100;
const CRC_ACCEPTED_AT: i32 = -10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest video PES (access unit) held, in bytes.
    pub max_pes_bytes: usize,
    /// Most PIDs tracked at once (PMTs and elementary streams, listed or not).
    pub max_pids: usize,
    /// Most programs a PAT may list.
    pub max_programs: usize,
    /// Stream bytes after which a stream still without a PMT is refused.
    pub max_bytes_before_pmt: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Keyframes of 4K streams reach a few MB.
            max_pes_bytes: 8 * 1024 * 1024,
            max_pids: 64,
            max_programs: 16,
            // FFmpeg's muxer repeats the PMT every 100 ms, encoders every 100–500 ms: 4 MiB
            // is seconds of a contribution stream.
            max_bytes_before_pmt: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Avc,
    Hevc,
}

/// One access unit of the inspected video stream, in Annex B form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub codec: VideoCodec,
    pub pid: u16,
    /// It holds an IDR (H.264) or IRAP (HEVC) picture.
    pub keyframe: bool,
    /// The random-access indicator of the packet that started it (a hint only).
    pub random_access_indicator: bool,
    pub pts_ms: i64,
    pub dts_ms: i64,
    /// The PES payload: NAL units after start codes, parameter sets in-band.
    pub data: Bytes,
    /// Stream offset of the first byte of the transport packet that started its PES.
    pub start_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    AccessUnit(AccessUnit),
    /// Video livegate cannot inspect; reported once per stream.
    UnsupportedVideo {
        description: String,
    },
}

/// Counters of what was tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub packets: u64,
    /// Packets whose continuity counter was not the expected one (lost, repeated or
    /// reordered packets) on a tracked PID.
    pub continuity_errors: u64,
    /// Packets with the transport error indicator set.
    pub transport_errors: u64,
    /// PSI sections that failed their CRC (and were ignored).
    pub crc_errors: u64,
    /// Access units whose random-access indicator disagrees with their NAL units.
    pub random_access_mismatches: u64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DemuxError {
    #[error("not MPEG-TS: first byte {found:#04x} is not the sync byte 0x47")]
    NotMpegTs { found: u8 },
    #[error(
        "lost MPEG-TS sync at byte {offset}: {found:#04x} where a packet's sync byte 0x47 belongs (demuxers resynchronise differently)"
    )]
    LostSync { offset: u64, found: u8 },
    #[error("no PMT in the first {bytes} bytes: the stream's video cannot be identified")]
    NoProgramMap { bytes: u64 },
    #[error(
        "PSI on PID {pid:#06x} failed its CRC {failures} times in a row (at byte {offset}): FFmpeg would use such sections from here, other demuxers never"
    )]
    CrcFailures {
        pid: u16,
        failures: u32,
        offset: u64,
    },
    #[error("PAT at byte {offset} lists {count} programs, above cap {cap}")]
    TooManyPrograms {
        count: usize,
        cap: usize,
        offset: u64,
    },
    #[error("more than {cap} PIDs to track: PID {pid:#06x} at byte {offset}")]
    TooManyPids { cap: usize, pid: u16, offset: u64 },
    #[error(
        "video PES on PID {pid:#06x} started at byte {offset} exceeds cap {cap} bytes ({received} received)"
    )]
    PesTooLarge {
        pid: u16,
        received: usize,
        cap: usize,
        offset: u64,
    },
}

/// What a tracked PID carries.
#[derive(Debug)]
enum Role {
    Pat(SectionAssembler),
    Pmt(SectionAssembler),
    Video {
        codec: VideoCodec,
        pes: PesAssembler,
    },
    /// A listed stream of an unknown or private type, or an unlisted PID: only the start
    /// of each PES is looked at.
    Sniff {
        stream_type: Option<u8>,
        pes: PesAssembler,
    },
    /// Audio, known non-video data, or video already reported as unsupported.
    Ignored,
}

impl Role {
    /// Whether an existing PID keeps its state when the tables are rebuilt.
    fn same_as(&self, other: &Role) -> bool {
        match (self, other) {
            (Role::Pat(_), Role::Pat(_))
            | (Role::Pmt(_), Role::Pmt(_))
            | (Role::Ignored, Role::Ignored) => true,
            (Role::Video { codec: a, .. }, Role::Video { codec: b, .. }) => a == b,
            (Role::Sniff { stream_type: a, .. }, Role::Sniff { stream_type: b, .. }) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct PidState {
    role: Role,
    last_cc: Option<u8>,
    /// FFmpeg's CRC validity count (PSI PIDs).
    crc_validity: i32,
    /// Sections in a row that failed their CRC (PSI PIDs).
    crc_failures: u32,
    /// Version and CRC of the last table used (PSI PIDs), to skip repeats.
    last_table: Option<(u8, u32)>,
}

impl PidState {
    fn new(role: Role) -> Self {
        PidState {
            role,
            last_cc: None,
            crc_validity: 0,
            crc_failures: 0,
            last_table: None,
        }
    }
}

/// A PMT in force: the program it describes, the PID it came on, its streams.
#[derive(Debug)]
struct ProgramMap {
    program_number: u16,
    pmt_pid: u16,
    streams: Vec<PmtStream>,
}

/// Extends 33-bit timestamps: each is placed within ±2^32 ticks of the previous one.
#[derive(Debug, Default)]
struct Clock {
    last: Option<(u64, i64)>,
}

const TIMESTAMP_MASK: u64 = (1 << 33) - 1;

/// `later - earlier` of two 33-bit timestamps, in [-2^32, 2^32).
fn wrapped_difference(later: u64, earlier: u64) -> i64 {
    let difference = later.wrapping_sub(earlier) & TIMESTAMP_MASK;
    if difference >= 1 << 32 {
        difference as i64 - (1 << 33)
    } else {
        difference as i64
    }
}

impl Clock {
    fn extend(&mut self, ticks: u64) -> i64 {
        let extended = match self.last {
            None => ticks as i64,
            Some((raw, extended)) => extended + wrapped_difference(ticks, raw),
        };
        self.last = Some((ticks, extended));
        extended
    }
}

/// 90 kHz ticks to milliseconds (rounded down).
fn ticks_to_ms(ticks: i64) -> i64 {
    ticks.div_euclid(90)
}

/// Passive, sans-IO demuxer for one transport stream.
#[derive(Debug)]
pub struct Demuxer {
    limits: Limits,
    failed: Option<DemuxError>,
    /// Stream offset of the next packet's first byte.
    offset: u64,
    /// The start of a packet whose end has not arrived yet.
    partial: Vec<u8>,
    pids: HashMap<u16, PidState>,
    /// PMT PIDs of the PAT in force, in its order.
    pmt_pids: Vec<u16>,
    maps: Vec<ProgramMap>,
    /// A PMT has been read: PIDs can be told apart from here on.
    pmt_seen: bool,
    clock: Clock,
    /// Times of the last access unit, for one without a PTS.
    last_times: (i64, i64),
    unsupported_reported: bool,
    stats: Stats,
    /// PES packets completed by the current packet, reused.
    done: Vec<Pes>,
}

impl Default for Demuxer {
    fn default() -> Self {
        Demuxer::new(Limits::default())
    }
}

impl Demuxer {
    pub fn new(limits: Limits) -> Self {
        let mut pids = HashMap::new();
        pids.insert(
            PAT_PID,
            PidState::new(Role::Pat(SectionAssembler::default())),
        );
        Demuxer {
            limits,
            failed: None,
            offset: 0,
            partial: Vec::with_capacity(PACKET_SIZE),
            pids,
            pmt_pids: Vec::new(),
            maps: Vec::new(),
            pmt_seen: false,
            clock: Clock::default(),
            last_times: (0, 0),
            unsupported_reported: false,
            stats: Stats::default(),
            done: Vec::new(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Feeds the next bytes of the stream. Events for everything these bytes complete are
    /// appended to `events` (also those before an error).
    pub fn feed(&mut self, data: &[u8], events: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.feed_inner(data, events);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
            self.partial.clear();
            self.pids.clear();
            self.maps.clear();
        }
        result
    }

    fn feed_inner(
        &mut self,
        mut data: &[u8],
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        if !self.partial.is_empty() {
            let wanted = (PACKET_SIZE - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..wanted]);
            data = &data[wanted..];
            if self.partial.len() < PACKET_SIZE {
                return Ok(());
            }
            let packet = std::mem::take(&mut self.partial);
            let result = self.packet(&packet, events);
            self.partial = packet;
            self.partial.clear();
            result?;
        }
        let mut packets = data.chunks_exact(PACKET_SIZE);
        for packet in &mut packets {
            self.packet(packet, events)?;
        }
        let rest = packets.remainder();
        if let Some(&first) = rest.first() {
            // A wrong sync byte is known as soon as it arrives.
            self.check_sync(first)?;
            self.partial.extend_from_slice(rest);
        }
        Ok(())
    }

    fn check_sync(&self, first: u8) -> Result<(), DemuxError> {
        match (first, self.offset) {
            (SYNC_BYTE, _) => Ok(()),
            (found, 0) => Err(DemuxError::NotMpegTs { found }),
            (found, offset) => Err(DemuxError::LostSync { offset, found }),
        }
    }

    fn packet(&mut self, packet: &[u8], events: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        self.check_sync(packet[0])?;
        let offset = self.offset;
        self.offset += PACKET_SIZE as u64;
        self.stats.packets += 1;
        if !self.pmt_seen && offset >= self.limits.max_bytes_before_pmt {
            return Err(DemuxError::NoProgramMap { bytes: offset });
        }
        let unit_start = packet[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([packet[1] & 0x1F, packet[2]]);
        let control = (packet[3] >> 4) & 3;
        // Reserved adaptation_field_control: FFmpeg drops the packet before its counter.
        if pid == NULL_PID || control == 0 {
            return Ok(());
        }
        let has_adaptation = control & 2 != 0;
        let has_payload = control & 1 != 0;
        let adaptation_len = if has_adaptation {
            usize::from(packet[4])
        } else {
            0
        };
        let adaptation_flags = (has_adaptation && adaptation_len > 0).then_some(packet[5]);
        let discontinuity = adaptation_flags.is_some_and(|flags| flags & 0x80 != 0);
        let random_access = adaptation_flags.is_some_and(|flags| flags & 0x40 != 0);
        let payload_at = if has_adaptation {
            5 + adaptation_len
        } else {
            4
        };
        // An adaptation field running past the packet leaves no payload (as in FFmpeg).
        let payload = packet
            .get(payload_at..)
            .filter(|p| has_payload && !p.is_empty());

        if !self.pids.contains_key(&pid) {
            // A PES on a PID no PMT lists: FFmpeg adds it as a stream and probes it.
            if !(unit_start
                && payload.is_some()
                && !self.maps.is_empty()
                && pid >= FIRST_ELEMENTARY_PID)
            {
                return Ok(());
            }
            self.track(
                pid,
                Role::Sniff {
                    stream_type: None,
                    pes: PesAssembler::new(SNIFF_BYTES),
                },
                offset,
            )?;
        }
        let Some(state) = self.pids.get_mut(&pid) else {
            return Ok(());
        };
        let counter = packet[3] & 0x0F;
        let continuity_ok = match state.last_cc {
            None => true,
            Some(last) => {
                discontinuity || counter == if has_payload { (last + 1) & 0x0F } else { last }
            }
        };
        state.last_cc = Some(counter);
        if !continuity_ok {
            self.stats.continuity_errors += 1;
        }
        if packet[1] & 0x80 != 0 {
            self.stats.transport_errors += 1;
        }
        let Some(payload) = payload else {
            return Ok(());
        };
        let start = unit_start.then_some(UnitStart {
            offset,
            random_access,
        });
        match &mut state.role {
            Role::Pat(sections) | Role::Pmt(sections) => {
                let sections = sections.push(payload, unit_start, continuity_ok);
                for section in sections {
                    self.section(pid, &section, offset, events)?;
                }
            }
            Role::Video { codec, pes } => {
                let codec = *codec;
                let mut done = std::mem::take(&mut self.done);
                pes.push(payload, start, &mut done);
                let in_progress = pes.received();
                let started_at = pes.started_at().offset;
                let cap = self.limits.max_pes_bytes;
                for pes in done.drain(..) {
                    self.access_unit(codec, pid, pes, events)?;
                }
                self.done = done;
                if in_progress > cap {
                    return Err(DemuxError::PesTooLarge {
                        pid,
                        received: in_progress,
                        cap,
                        offset: started_at,
                    });
                }
            }
            Role::Sniff { stream_type, pes } => {
                let stream_type = *stream_type;
                let mut done = std::mem::take(&mut self.done);
                pes.push(payload, start, &mut done);
                let mut looks_like_video = done
                    .iter()
                    .any(|pes| video_like(pes.header.stream_id, &pes.payload));
                done.clear();
                self.done = done;
                if let Some((stream_id, start)) = pes.peek() {
                    looks_like_video |= video_like(stream_id, start);
                    if start.len() >= SNIFF_BYTES {
                        // Seen enough of this PES: skip the rest of it.
                        pes.discard();
                    }
                }
                if looks_like_video {
                    let listed = match stream_type {
                        Some(stream_type) => format!("listed with stream_type {stream_type:#04x}"),
                        None => "listed in no PMT".to_string(),
                    };
                    self.unsupported(
                        format!("PID {pid:#06x} ({listed}) carries video-like PES data livegate does not inspect; players probing it may show it"),
                        events,
                    );
                }
            }
            Role::Ignored => {}
        }
        Ok(())
    }

    /// Starts tracking `pid`, within the cap.
    fn track(&mut self, pid: u16, role: Role, offset: u64) -> Result<(), DemuxError> {
        if self.pids.len() >= self.limits.max_pids {
            return Err(DemuxError::TooManyPids {
                cap: self.limits.max_pids,
                pid,
                offset,
            });
        }
        self.pids.insert(pid, PidState::new(role));
        Ok(())
    }

    fn unsupported(&mut self, description: String, events: &mut Vec<DemuxEvent>) {
        if !self.unsupported_reported {
            self.unsupported_reported = true;
            events.push(DemuxEvent::UnsupportedVideo { description });
        }
    }

    /// A complete PSI section from `pid`.
    fn section(
        &mut self,
        pid: u16,
        section: &[u8],
        offset: u64,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        let Some(state) = self.pids.get_mut(&pid) else {
            return Ok(());
        };
        if crc32(section) != 0 {
            self.stats.crc_errors += 1;
            state.crc_failures += 1;
            if state.crc_validity > CRC_ACCEPTED_AT {
                state.crc_validity -= 1;
                return Ok(());
            }
            return Err(DemuxError::CrcFailures {
                pid,
                failures: state.crc_failures,
                offset,
            });
        }
        state.crc_validity = CRC_VALID;
        state.crc_failures = 0;
        let Some((header, data)) = split_section(section) else {
            return Ok(());
        };
        let expected_table = if pid == PAT_PID {
            TABLE_ID_PAT
        } else {
            TABLE_ID_PMT
        };
        if header.table_id != expected_table || !header.current_next {
            return Ok(());
        }
        let crc = u32::from_be_bytes(section[section.len() - 4..].try_into().unwrap_or_default());
        if state.last_table == Some((header.version, crc)) {
            return Ok(());
        }
        state.last_table = Some((header.version, crc));
        if pid == PAT_PID {
            let programs = parse_pat(data);
            if programs.len() > self.limits.max_programs {
                return Err(DemuxError::TooManyPrograms {
                    count: programs.len(),
                    cap: self.limits.max_programs,
                    offset,
                });
            }
            self.pmt_pids.clear();
            for program in programs {
                if is_elementary_pid(program.pmt_pid) && !self.pmt_pids.contains(&program.pmt_pid) {
                    self.pmt_pids.push(program.pmt_pid);
                }
            }
            // PMTs that came on PIDs the new PAT no longer lists are out of force.
            let pmt_pids = &self.pmt_pids;
            self.maps.retain(|map| pmt_pids.contains(&map.pmt_pid));
        } else {
            let streams = parse_pmt(data);
            self.pmt_seen = true;
            match self
                .maps
                .iter_mut()
                .find(|map| map.program_number == header.id)
            {
                Some(map) => {
                    map.pmt_pid = pid;
                    map.streams = streams;
                }
                None => {
                    if self.maps.len() >= self.limits.max_programs {
                        return Err(DemuxError::TooManyPrograms {
                            count: self.maps.len() + 1,
                            cap: self.limits.max_programs,
                            offset,
                        });
                    }
                    self.maps.push(ProgramMap {
                        program_number: header.id,
                        pmt_pid: pid,
                        streams,
                    });
                }
            }
        }
        self.rebuild(offset, events)
    }

    /// Gives every PID its role under the tables in force: the PAT, the PMT PIDs, and the
    /// streams of the PMTs in the order they arrived. PIDs whose role is unchanged keep
    /// their state; others start afresh; unlisted PIDs are dropped.
    fn rebuild(&mut self, offset: u64, events: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        let mut roles: Vec<(u16, Role)> = vec![(PAT_PID, Role::Pat(SectionAssembler::default()))];
        for &pid in &self.pmt_pids {
            roles.push((pid, Role::Pmt(SectionAssembler::default())));
        }
        let mut video: Option<u16> = None;
        let mut unsupported = Vec::new();
        for stream in self.maps.iter().flat_map(|map| &map.streams) {
            let pid = stream.pid;
            if !is_elementary_pid(pid) || roles.iter().any(|(taken, _)| *taken == pid) {
                continue;
            }
            let role = match classify(stream) {
                Kind::Video(codec) => match video {
                    None => {
                        video = Some(pid);
                        Role::Video {
                            codec,
                            pes: PesAssembler::new(self.limits.max_pes_bytes),
                        }
                    }
                    Some(first) => {
                        unsupported.push(format!(
                            "a second video stream on PID {pid:#06x} (stream_type {:#04x}) besides PID {first:#06x}: livegate inspects one",
                            stream.stream_type
                        ));
                        Role::Ignored
                    }
                },
                Kind::Unsupported(name) => {
                    unsupported.push(format!(
                        "{name} (stream_type {:#04x}) on PID {pid:#06x}",
                        stream.stream_type
                    ));
                    Role::Ignored
                }
                Kind::Sniff => Role::Sniff {
                    stream_type: Some(stream.stream_type),
                    pes: PesAssembler::new(SNIFF_BYTES),
                },
                Kind::Ignored => Role::Ignored,
            };
            roles.push((pid, role));
        }
        let mut previous = std::mem::take(&mut self.pids);
        for (pid, role) in roles {
            let state = match previous.remove(&pid) {
                Some(state) if state.role.same_as(&role) => state,
                _ => PidState::new(role),
            };
            if self.pids.len() >= self.limits.max_pids {
                return Err(DemuxError::TooManyPids {
                    cap: self.limits.max_pids,
                    pid,
                    offset,
                });
            }
            self.pids.insert(pid, state);
        }
        if let Some(description) = unsupported.into_iter().next() {
            self.unsupported(description, events);
        }
        Ok(())
    }

    fn access_unit(
        &mut self,
        codec: VideoCodec,
        pid: u16,
        pes: Pes,
        events: &mut Vec<DemuxEvent>,
    ) -> Result<(), DemuxError> {
        if pes.received > self.limits.max_pes_bytes {
            return Err(DemuxError::PesTooLarge {
                pid,
                received: pes.received,
                cap: self.limits.max_pes_bytes,
                offset: pes.start.offset,
            });
        }
        let (pts_ms, dts_ms) = match (pes.header.pts, pes.header.dts) {
            (Some(pts), dts) => {
                let dts = dts.unwrap_or(pts);
                let dts_ticks = self.clock.extend(dts);
                let pts_ticks = dts_ticks + wrapped_difference(pts, dts);
                (ticks_to_ms(pts_ticks), ticks_to_ms(dts_ticks))
            }
            (None, _) => self.last_times,
        };
        self.last_times = (pts_ms, dts_ms);
        let keyframe = match codec {
            VideoCodec::Avc => avc_has_idr(&pes.payload),
            VideoCodec::Hevc => hevc_has_irap(&pes.payload),
        };
        if keyframe != pes.start.random_access {
            self.stats.random_access_mismatches += 1;
        }
        events.push(DemuxEvent::AccessUnit(AccessUnit {
            codec,
            pid,
            keyframe,
            random_access_indicator: pes.start.random_access,
            pts_ms,
            dts_ms,
            data: Bytes::from(pes.payload),
            start_offset: pes.start.offset,
        }));
        Ok(())
    }
}

fn is_elementary_pid(pid: u16) -> bool {
    (FIRST_ELEMENTARY_PID..NULL_PID).contains(&pid)
}

/// What a PMT entry is, as FFmpeg would read it.
enum Kind {
    Video(VideoCodec),
    Unsupported(&'static str),
    Sniff,
    Ignored,
}

fn classify(stream: &PmtStream) -> Kind {
    match stream.stream_type {
        0x1B => Kind::Video(VideoCodec::Avc),
        0x24 => Kind::Video(VideoCodec::Hevc),
        0x01 => Kind::Unsupported("MPEG-1 video"),
        0x02 => Kind::Unsupported("MPEG-2 video"),
        0x10 => Kind::Unsupported("MPEG-4 Part 2 video"),
        0x1E..=0x20 => Kind::Unsupported("H.264 SVC/MVC or auxiliary video"),
        0x21 => Kind::Unsupported("JPEG 2000 video"),
        0x33 => Kind::Unsupported("VVC video"),
        0x42 | 0xD2 | 0xD4 => Kind::Unsupported("AVS video"),
        0xD1 => Kind::Unsupported("Dirac video"),
        0xEA => Kind::Unsupported("VC-1 video"),
        // Sections (private, DSM-CC, SCTE-35) are not PES: nothing to probe.
        0x05 | 0x0B..=0x0D | 0x86 => Kind::Ignored,
        _ => match stream.registration.as_ref() {
            Some(b"HEVC") => Kind::Video(VideoCodec::Hevc),
            Some(b"AV01") => Kind::Unsupported("AV1 video"),
            Some(b"VC-1") => Kind::Unsupported("VC-1 video"),
            Some(b"drac") => Kind::Unsupported("Dirac video"),
            // Audio and private data: probed by FFmpeg when it does not know the type.
            _ => Kind::Sniff,
        },
    }
}

/// A PES that a probing demuxer could take for video: a video stream id, or a payload
/// starting with an Annex B start code.
fn video_like(stream_id: u8, payload: &[u8]) -> bool {
    (0xE0..=0xEF).contains(&stream_id)
        || payload.starts_with(&[0, 0, 1])
        || payload.starts_with(&[0, 0, 0, 1])
}

#[cfg(test)]
#[path = "demux_tests.rs"]
mod tests;
