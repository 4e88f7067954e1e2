//! FFmpeg's own log lines, routed into `tracing` (so `log.format = "json"` stays one JSON
//! object per line), and read by the decoder for what FFmpeg reports only there.
//!
//! FFmpeg logs through `av_log` from whichever thread runs the codec. [`install`] points
//! `av_log_set_callback` at [`on_ffmpeg_log`], which formats the line with
//! `av_log_format_line2` and:
//! - hands it to the calling thread's [`capture`], when one is active: the live decoder
//!   runs single-threaded, so the lines of one decode come from the thread that called
//!   it. FFmpeg 5.1 reports error concealment ("concealing N DC, N AC, N MV errors") and a
//!   refused picture size ("exceeds specified max pixel count") only as log lines;
//! - emits it as a `tracing` event with target `ffmpeg` at a level one step below FFmpeg's
//!   (error → warn, warning → info, info → debug): a publisher's broken bitstream is its
//!   problem, not livegate's, and must not read as a livegate error. At most
//!   [`LINES_PER_WINDOW`] lines per [`RATE_WINDOW`] are emitted process-wide (a stream that
//!   breaks every keyframe would otherwise flood the log); the number suppressed is
//!   reported with the next line emitted.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use ffmpeg_next::ffi;

/// Window of the process-wide rate limit on emitted FFmpeg lines.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// FFmpeg lines emitted per window; the rest are counted and dropped.
const LINES_PER_WINDOW: u32 = 50;
/// Longest line kept (FFmpeg's own default callback uses 1024 bytes).
const LINE_BYTES: usize = 1024;

/// Routes FFmpeg's logging into `tracing`; idempotent, done before the first decoder opens.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: both calls only store a global; the callback matches the signature the
        // sys crate's bindings declare for av_log_set_callback. The callback drops lines
        // above this level: AV_LOG_INFO keeps the concealment report (logged at info) and
        // drops FFmpeg's verbose/debug chatter before it is formatted.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_INFO);
            ffi::av_log_set_callback(Some(on_ffmpeg_log));
        }
    });
}

/// What FFmpeg reported on this thread while a [`capture`] was active.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The error-resilience report of a decoded picture: macroblocks with DC, AC and
    /// motion-vector errors that were concealed (summed if reported more than once).
    pub concealed: Option<ConcealedCounts>,
    /// A picture size refused by `max_pixels` (FFmpeg's or libdav1d's report).
    pub refused_size: Option<(u32, u32)>,
}

/// Macroblocks concealed in a picture, by the kind of error FFmpeg counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConcealedCounts {
    pub dc: u32,
    pub ac: u32,
    pub mv: u32,
}

impl ConcealedCounts {
    /// Macroblocks concealed: H.264 marks a lost macroblock with all three errors, so the
    /// largest count is the number of macroblocks whose decoded content was replaced.
    pub fn macroblocks(&self) -> u32 {
        self.dc.max(self.ac).max(self.mv)
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
    /// The line so far: FFmpeg sometimes builds one line from several `av_log` calls.
    static PENDING: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `work` and returns what FFmpeg reported on this thread meanwhile.
pub fn capture<R>(work: impl FnOnce() -> R) -> (R, Captured) {
    CAPTURE.with(|slot| *slot.borrow_mut() = Some(Captured::default()));
    let result = work();
    let captured = CAPTURE
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_default();
    (result, captured)
}

/// The `av_log` callback. It must not unwind into C: any panic is caught and dropped.
unsafe extern "C" fn on_ffmpeg_log(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    args: *mut ffi::__va_list_tag,
) {
    // av_log leaves filtering by level to the callback; verbose and debug lines (the
    // demuxers and parsers write many) are dropped before any formatting.
    // SAFETY: reads a global integer.
    if level & 0xff > unsafe { ffi::av_log_get_level() } {
        return;
    }
    let mut buffer = [0 as c_char; LINE_BYTES];
    let mut print_prefix: c_int = 0;
    // SAFETY: FFmpeg passes a valid format and argument list, consumed exactly once here;
    // the buffer's size is passed along and av_log_format_line2 NUL-terminates it.
    // `print_prefix = 0` leaves out the "[h264 @ 0x…]" prefix: the component is a field.
    let piece = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            args,
            buffer.as_mut_ptr(),
            LINE_BYTES as c_int,
            &mut print_prefix,
        );
        CStr::from_ptr(buffer.as_ptr())
    };
    let piece = piece.to_string_lossy();
    // SAFETY: `avcl` is null or points to a struct whose first member is its AVClass,
    // which is what av_log requires of its context argument.
    let component = unsafe { component_name(avcl) };
    // The high bits of `level` may carry a colour (AV_LOG_C).
    let _ = std::panic::catch_unwind(|| on_piece(level & 0xff, &component, &piece));
}

/// Name of the object that logged: the codec name for a codec context ("h264").
unsafe fn component_name(avcl: *mut c_void) -> String {
    if avcl.is_null() {
        return String::new();
    }
    // SAFETY: see the caller; the class and its names are static for FFmpeg's classes.
    unsafe {
        let class = *(avcl as *const *const ffi::AVClass);
        if class.is_null() {
            return String::new();
        }
        let name = match (*class).item_name {
            Some(item_name) => item_name(avcl),
            None => (*class).class_name,
        };
        if name.is_null() {
            String::new()
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

/// Joins pieces into lines and handles each complete one.
fn on_piece(level: c_int, component: &str, piece: &str) {
    let line = PENDING.with(|pending| {
        let text = &mut *pending.borrow_mut();
        if text.len() + piece.len() <= LINE_BYTES {
            text.push_str(piece);
        }
        piece.ends_with('\n').then(|| std::mem::take(text))
    });
    let Some(line) = line else {
        return;
    };
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    CAPTURE.with(|slot| {
        if let Some(captured) = slot.borrow_mut().as_mut() {
            read_report(line, captured);
        }
    });
    emit(level, component, line);
}

/// Picks what the decoder needs out of a line.
fn read_report(line: &str, captured: &mut Captured) {
    if let Some(counts) = parse_concealing(line) {
        let total = captured
            .concealed
            .get_or_insert_with(ConcealedCounts::default);
        total.dc = total.dc.saturating_add(counts.dc);
        total.ac = total.ac.saturating_add(counts.ac);
        total.mv = total.mv.saturating_add(counts.mv);
    } else if let Some(size) = parse_refused_size(line) {
        captured.refused_size = Some(size);
    }
}

/// `concealing 569 DC, 569 AC, 569 MV errors in I frame` (libavcodec/error_resilience.c).
fn parse_concealing(line: &str) -> Option<ConcealedCounts> {
    let rest = line.strip_prefix("concealing ")?;
    let mut numbers = rest
        .split(',')
        .map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    Some(ConcealedCounts {
        dc: numbers.next()??,
        ac: numbers.next()??,
        mv: numbers.next()??,
    })
}

/// A picture size refused by the pixel limit: `Picture size 7680x4320 exceeds specified
/// max pixel count 9437184, …` (libavutil/imgutils.c, the check behind `max_pixels`) or
/// `Frame size 7680x4320 exceeds limit 9437184` (libdav1d's frame size limit).
fn parse_refused_size(line: &str) -> Option<(u32, u32)> {
    let rest = line
        .strip_prefix("Picture size ")
        .or_else(|| line.strip_prefix("Frame size "))?;
    let (size, tail) = rest.split_once(' ')?;
    if !(tail.starts_with("exceeds specified max pixel count") || tail.starts_with("exceeds limit"))
    {
        return None;
    }
    let (width, height) = size.split_once('x')?;
    Some((width.parse().ok()?, height.parse().ok()?))
}

/// Lines emitted and suppressed in the current window.
struct RateWindow {
    started: Option<Instant>,
    emitted: u32,
    suppressed: u64,
}

static RATE: Mutex<RateWindow> = Mutex::new(RateWindow {
    started: None,
    emitted: 0,
    suppressed: 0,
});

/// Whether a line may be emitted now, and how many were suppressed before it.
fn admit(now: Instant) -> Option<u64> {
    let mut rate = RATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if rate
        .started
        .is_none_or(|started| now.duration_since(started) >= RATE_WINDOW)
    {
        rate.started = Some(now);
        rate.emitted = 0;
    }
    if rate.emitted >= LINES_PER_WINDOW {
        rate.suppressed += 1;
        return None;
    }
    rate.emitted += 1;
    Some(std::mem::take(&mut rate.suppressed))
}

fn emit(level: c_int, component: &str, line: &str) {
    // Checked before the rate limit so that lines nobody sees use none of its budget.
    let enabled = match level {
        l if l <= ffi::AV_LOG_FATAL => tracing::enabled!(target: "ffmpeg", tracing::Level::ERROR),
        l if l <= ffi::AV_LOG_ERROR => tracing::enabled!(target: "ffmpeg", tracing::Level::WARN),
        l if l <= ffi::AV_LOG_WARNING => tracing::enabled!(target: "ffmpeg", tracing::Level::INFO),
        l if l <= ffi::AV_LOG_INFO => tracing::enabled!(target: "ffmpeg", tracing::Level::DEBUG),
        _ => tracing::enabled!(target: "ffmpeg", tracing::Level::TRACE),
    };
    if !enabled {
        return;
    }
    let Some(suppressed) = admit(Instant::now()) else {
        return;
    };
    macro_rules! event {
        ($level:expr) => {
            tracing::event!(target: "ffmpeg", $level, component, suppressed, "{line}")
        };
    }
    match level {
        l if l <= ffi::AV_LOG_FATAL => event!(tracing::Level::ERROR),
        l if l <= ffi::AV_LOG_ERROR => event!(tracing::Level::WARN),
        l if l <= ffi::AV_LOG_WARNING => event!(tracing::Level::INFO),
        l if l <= ffi::AV_LOG_INFO => event!(tracing::Level::DEBUG),
        _ => event!(tracing::Level::TRACE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_from_ffmpeg_lines() {
        assert_eq!(
            parse_concealing("concealing 569 DC, 569 AC, 570 MV errors in I frame"),
            Some(ConcealedCounts {
                dc: 569,
                ac: 569,
                mv: 570
            })
        );
        assert_eq!(parse_concealing("concealing errors"), None);
        assert_eq!(
            parse_refused_size(
                "Picture size 640x480 exceeds specified max pixel count 76800, see the \
                 documentation if you wish to increase it"
            ),
            Some((640, 480))
        );
        assert_eq!(
            parse_refused_size("Frame size 7680x4320 exceeds limit 9437184"),
            Some((7680, 4320))
        );
        assert_eq!(parse_refused_size("Picture size 0x0 is invalid"), None);
    }

    #[test]
    fn lines_beyond_the_window_budget_are_counted_not_emitted() {
        let start = Instant::now() + Duration::from_secs(3600);
        // Whatever other tests emitted, a new window starts an hour from now.
        assert_eq!(admit(start), Some(0));
        for _ in 1..LINES_PER_WINDOW {
            assert!(admit(start).is_some());
        }
        assert_eq!(admit(start), None);
        assert_eq!(admit(start), None);
        assert_eq!(admit(start + RATE_WINDOW), Some(2));
    }
}
