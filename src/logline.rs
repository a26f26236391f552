//! How a log event becomes one line of text or JSON.
//!
//! dialtone writes one event per phone exchange, so at tens of thousands of
//! exchanges a second the formatting is a hot path. The stock formatters of
//! tracing-subscriber escape every string through `Debug`, format the time
//! from scratch for each event and style every field name even with colours
//! off; this one writes the same lines for a third of the cost: the date and
//! time down to the second are reused within a second, plain values are copied
//! as they are, and only values that need it are quoted (text) or escaped
//! (JSON). Spans are not shown (dialtone's events carry all their context).
//!
//! Lines then reach stderr through [`sink`]: the threads answering phones
//! append to a buffer, and a writer thread writes what gathered every few
//! milliseconds in one system call, instead of being woken for every line.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter: `json` for `--log-format json`, else text.
/// `journal` (stderr is the journal: `JOURNAL_STREAM` is set) drops the text
/// format's own timestamp, as journald stamps every line, and starts each
/// line with its syslog priority (`<3>` error ... `<7>` debug, sd-daemon(3)),
/// so `journalctl -p warning` filters dialtone's lines.
pub struct LineFormat {
    pub json: bool,
    pub journal: bool,
}

/// The sd-daemon(3) prefix for a level.
fn priority(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "<3>",
        tracing::Level::WARN => "<4>",
        tracing::Level::INFO => "<6>",
        _ => "<7>",
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = String::with_capacity(320);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if self.json {
            line.push_str("{\"timestamp\":\"");
            timestamp(&mut line, now.as_secs(), now.subsec_micros());
            line.push_str("\",\"level\":\"");
            line.push_str(meta.level().as_str());
            line.push('"');
            event.record(&mut JsonFields(&mut line));
            line.push_str(",\"target\":");
            json_string(&mut line, meta.target());
            line.push('}');
        } else if self.journal {
            line.push_str(priority(meta.level()));
            let _ = write!(line, "{:>5} {}:", meta.level().as_str(), meta.target());
            event.record(&mut TextFields(&mut line));
        } else {
            timestamp(&mut line, now.as_secs(), now.subsec_micros());
            let _ = write!(line, " {:>5} {}:", meta.level().as_str(), meta.target());
            event.record(&mut TextFields(&mut line));
        }
        line.push('\n');
        w.write_str(&line)
    }
}

/// RFC 3339 in UTC with microseconds, the date and time down to the second
/// reused while the second lasts.
fn timestamp(out: &mut String, secs: u64, micros: u32) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let (y, mo, d) = crate::units::civil_from_days((secs / 86_400) as i64);
            let s = secs % 86_400;
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
                s / 3600,
                s / 60 % 60,
                s % 60
            );
            cached.0 = secs;
        }
        out.push_str(&cached.1);
    });
    let _ = write!(out, ".{micros:06}Z");
}

/// ` message key=value ...`: values without spaces, quotes, `=` or control
/// characters as they are, others quoted like Rust strings.
struct TextFields<'a>(&'a mut String);

impl TextFields<'_> {
    /// Writes ` key=`, then the value as `write` puts it; quotes it afterwards
    /// if it has to be.
    fn field(&mut self, field: &Field, write: impl FnOnce(&mut String)) {
        self.0.push(' ');
        if field.name() != "message" {
            self.0.push_str(field.name());
            self.0.push('=');
        }
        let start = self.0.len();
        write(self.0);
        let v = &self.0[start..];
        let plain = field.name() == "message"
            || (!v.is_empty()
                && !v
                    .chars()
                    .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control()));
        if !plain {
            let v = self.0.split_off(start);
            let _ = write!(self.0, "{v:?}");
        }
    }
}

impl Visit for TextFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |s| s.push_str(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |s| {
            let _ = write!(s, "{value:?}");
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

/// `,"key":value` for each field: numbers and booleans bare, the rest as
/// JSON strings.
struct JsonFields<'a>(&'a mut String);

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        self.0.push(',');
        json_string(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        json_string(self.0, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        // Most values need no escaping: written in place, escaped only if
        // they do.
        let start = self.0.len();
        self.0.push('"');
        let _ = write!(self.0, "{value:?}");
        if self.0[start + 1..]
            .chars()
            .any(|c| c == '"' || c == '\\' || c < ' ')
        {
            let v = self.0.split_off(start + 1);
            self.0.truncate(start);
            json_string(self.0, &v);
        } else {
            self.0.push('"');
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        let _ = write!(self.0, "{value}");
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// How long the writer thread lets lines gather before writing them.
const GATHER: Duration = Duration::from_millis(20);
/// Written at once, without waiting for the gathering time.
const HIGH: usize = 256 << 10;
/// Beyond this, a logging thread waits for the writer (nothing is dropped).
const FULL: usize = 16 << 20;

struct Shared {
    buf: Mutex<Vec<u8>>,
    /// Lines waiting, or closing.
    ready: Condvar,
    /// Room again below `FULL`.
    room: Condvar,
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writing end, for `tracing_subscriber::fmt().with_writer(...)`.
#[derive(Clone)]
pub struct SinkWriter(Arc<Shared>);

/// Writes what is left and stops the writer thread when dropped.
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the writer thread that owns `out`. Lines logged once the guard is
/// dropped (or if the thread cannot start) go straight to stderr.
pub fn sink(mut out: impl std::io::Write + Send + 'static) -> (SinkWriter, SinkGuard) {
    let shared = Arc::new(Shared {
        buf: Mutex::new(Vec::with_capacity(HIGH)),
        ready: Condvar::new(),
        room: Condvar::new(),
        closed: AtomicBool::new(false),
    });
    let s = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let mut spare = Vec::with_capacity(HIGH);
            let mut buf = s.lock();
            loop {
                while buf.is_empty() && !s.closed.load(Ordering::Acquire) {
                    buf = s.ready.wait(buf).unwrap_or_else(|e| e.into_inner());
                }
                if buf.is_empty() {
                    return;
                }
                if buf.len() < HIGH && !s.closed.load(Ordering::Acquire) {
                    drop(buf);
                    std::thread::sleep(GATHER);
                    buf = s.lock();
                }
                std::mem::swap(&mut *buf, &mut spare);
                drop(buf);
                s.room.notify_all();
                // Nowhere to report a failing stderr; the lines are lost.
                let _ = out.write_all(&spare).and_then(|()| out.flush());
                spare.clear();
                buf = s.lock();
            }
        });
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            // Without a thread, lines are written by whoever logs them.
            eprintln!("dialtone: cannot start the log writer thread: {e}");
            None
        }
    };
    let direct = thread.is_none();
    shared.closed.store(direct, Ordering::Release);
    (
        SinkWriter(Arc::clone(&shared)),
        SinkGuard { shared, thread },
    )
}

/// One event's line on its way into the buffer.
pub struct LineWriter<'a>(&'a Shared);

impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.0.lock();
        // Checked under the lock: the writer thread decides to stop under
        // it too, so no line lands in a buffer nobody will write.
        if self.0.closed.load(Ordering::Acquire) {
            drop(buf);
            return std::io::stderr().write(line);
        }
        while buf.len() > FULL {
            buf = self.0.room.wait(buf).unwrap_or_else(|e| e.into_inner());
        }
        let was_empty = buf.is_empty();
        buf.extend_from_slice(line);
        let high = buf.len() >= HIGH;
        drop(buf);
        if was_empty || high {
            self.0.ready.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SinkWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(&self.0)
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.ready.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(json: bool, f: impl FnOnce()) -> String {
        capture_as(
            LineFormat {
                json,
                journal: false,
            },
            f,
        )
    }

    fn capture_as(format: LineFormat, f: impl FnOnce()) -> String {
        let sink = Sink::default();
        let out = sink.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(sub, f);
        let bytes = sink.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn exchange() {
        let note = "line 1\n\"two\"";
        tracing::info!(target: "dialtone::dhcp", request = "DISCOVER", mac = %"00:90:8f:12:34:56",
            classes = "", quoted = ?"q", count = 3u64, delta = -2i64, ok = true, note, "dhcp exchange");
    }

    #[test]
    fn journal_lines_carry_the_priority_and_no_timestamp() {
        let format = LineFormat {
            json: false,
            journal: true,
        };
        let line = capture_as(format, exchange);
        assert!(line.starts_with("<6> INFO dialtone::dhcp:"), "{line}");
        assert!(line.contains("mac=00:90:8f:12:34:56"), "{line}");
        let warn = capture_as(
            LineFormat {
                json: false,
                journal: true,
            },
            || tracing::warn!(target: "dialtone", "hm"),
        );
        assert!(warn.starts_with("<4> WARN dialtone:"), "{warn}");
        assert!(!warn.contains("Z "), "no timestamp: {warn}");
    }

    #[test]
    fn json_lines_parse_and_keep_every_field() {
        let line = capture(true, exchange);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect(&line);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "dhcp exchange");
        assert_eq!(v["request"], "DISCOVER");
        assert_eq!(v["mac"], "00:90:8f:12:34:56");
        assert_eq!(v["classes"], "");
        assert_eq!(v["quoted"], "\"q\"");
        assert_eq!(v["count"], 3);
        assert_eq!(v["delta"], -2);
        assert_eq!(v["ok"], true);
        assert_eq!(v["note"], "line 1\n\"two\"");
        assert_eq!(v["target"], "dialtone::dhcp");
        let ts = v["timestamp"].as_str().unwrap_or_default();
        assert_eq!(ts.len(), 27, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    }

    #[test]
    fn text_lines_quote_only_what_needs_it() {
        let line = capture(false, exchange);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        assert!(
            line.contains(
                " INFO dialtone::dhcp: dhcp exchange request=DISCOVER mac=00:90:8f:12:34:56 classes=\"\" quoted=\"\\\"q\\\"\" count=3 delta=-2 ok=true note=\"line 1\\n\\\"two\\\"\""
            ),
            "{line}"
        );
    }

    #[test]
    fn the_sink_writes_every_line_once_and_the_rest_at_exit() {
        let out = Sink::default();
        let (writer, guard) = sink(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        let mut line = tracing_subscriber::fmt::MakeWriter::make_writer(&w);
                        let _ =
                            std::io::Write::write_all(&mut line, format!("{t} {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        // Gathered, not yet written: the guard writes the rest.
        drop(guard);
        let bytes = out.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').expect(line);
            let t: usize = t.parse().expect(line);
            assert_eq!(i, next[t].to_string(), "thread {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [5000; 4]);
    }

    #[test]
    fn timestamps_are_rfc3339_with_microseconds() {
        let mut s = String::new();
        timestamp(&mut s, 1_795_326_566, 537_879);
        assert_eq!(s, "2026-11-22T05:49:26.537879Z");
    }
}
