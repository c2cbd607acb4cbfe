//! What the client prints: progress bars on a terminal, one JSON event per
//! line with `--json`, plain summaries otherwise.

use std::io::{self, IsTerminal as _, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use sockit::files::{Progress, Transfer};

/// Set once stdout has been closed by its reader (`| head`): everything
/// after is pointless, and the command stops and cleans up.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether stdout's reader has gone.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes one line to stdout. Unlike `println!`, a closed stdout is an
/// error to return (main exits 0 for it), never a panic.
pub fn write_line(args: std::fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = &written {
        if e.kind() == io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
    written
}

/// Many lines to stdout through one buffer, for commands that print a
/// line per record (`explain`): a flush per line would cost more than the
/// work. A closed stdout is reported as for [`write_line`].
pub struct Lines {
    out: io::BufWriter<io::Stdout>,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lines")
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            out: io::BufWriter::with_capacity(1 << 16, io::stdout()),
        }
    }
}

impl Lines {
    pub fn line(&mut self, args: std::fmt::Arguments<'_>) -> io::Result<()> {
        let written = self.out.write_fmt(args).and_then(|()| self.out.write_all(b"\n"));
        Self::note(written)
    }

    /// One event (see [`event`]).
    pub fn json(&mut self, v: Value) -> io::Result<()> {
        let v = event(v);
        self.line(format_args!("{v}"))
    }

    pub fn flush(&mut self) -> io::Result<()> {
        Self::note(self.out.flush())
    }

    fn note(written: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &written {
            if e.kind() == io::ErrorKind::BrokenPipe {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
            }
        }
        written
    }
}

/// `println!` that returns the write's outcome: `outln!(...)?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

/// The command being run (`put`, `tftp get`) and whether it was asked
/// for JSON; set once by main.
static COMMAND: OnceLock<(String, bool)> = OnceLock::new();

pub fn set_command(name: String, json: bool) {
    let _ = COMMAND.set((name, json));
}

/// Whether the command prints JSON events (`--json`).
pub fn json_mode() -> bool {
    COMMAND.get().is_some_and(|c| c.1)
}

/// An event as docs/json.md has it: the given fields, plus `time` (RFC
/// 3339, milliseconds, UTC) and `command`.
pub fn event(mut v: Value) -> Value {
    if let Some(fields) = v.as_object_mut() {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        fields.insert("time".into(), now.into());
        let command = COMMAND.get().map_or("", |c| c.0.as_str());
        fields.insert("command".into(), command.into());
    }
    v
}

/// `value` (an object) with `"event": name` added.
pub fn named(name: &str, mut value: Value) -> Value {
    if let Some(fields) = value.as_object_mut() {
        fields.insert("event".into(), name.into());
    }
    value
}

/// Prints one event (see [`event`]) as a line.
pub fn json_line(v: &Value) -> io::Result<()> {
    let v = event(v.clone());
    write_line(format_args!("{v}"))
}

/// Progress as bars (terminal), JSON lines (`--json`) or nothing (piped).
#[derive(Debug)]
pub struct Reporter {
    json: bool,
    /// `put`, `get`: the `op` of every event.
    op: &'static str,
    bar: Option<ProgressBar>,
    name: String,
    done: u64,
    last_json: Option<Instant>,
    /// Inside a folder transfer: one bar for the tree, files counted.
    tree: Option<TreeCount>,
}

#[derive(Debug, Clone, Copy)]
struct TreeCount {
    files: u64,
    done: u64,
    failed: u64,
}

impl TreeCount {
    fn message(&self) -> String {
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        format!("{}/{} files{failed}", self.done, self.files)
    }
}

/// JSON progress events at most this often: enough to drive a UI without
/// flooding a pipe.
const JSON_PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Reporter {
    pub fn new(json: bool, op: &'static str) -> Self {
        Self {
            json,
            op,
            bar: None,
            name: String::new(),
            done: 0,
            last_json: None,
            tree: None,
        }
    }
}

impl Reporter {
    fn bar(&mut self, total: u64, done: u64, message: String) {
        if self.json || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style =
            // The bar takes what the line leaves, so it never wraps, even
            // at 80 columns with GiB-sized numbers.
            ProgressStyle::with_template("{msg:16!} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message);
        bar.set_position(done);
        self.bar = Some(bar);
    }
}

impl Progress for Reporter {
    fn begin(&mut self, name: &str, total: u64, done: u64) {
        if self.tree.is_some() {
            return; // the tree's bar counts this file's bytes
        }
        self.name = name.to_owned();
        self.done = done;
        if self.json {
            let _ = json_line(&json!({"event": "start", "op": self.op, "name": name, "size": total, "offset": done}));
            self.last_json = Some(Instant::now());
            return;
        }
        self.bar(total, done, name.to_owned());
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
        if self.json && self.tree.is_none() && self.last_json.is_some_and(|t| t.elapsed() >= JSON_PROGRESS_EVERY) {
            let _ = json_line(&json!({"event": "progress", "op": self.op, "name": self.name, "bytes": self.done}));
            self.last_json = Some(Instant::now());
        }
    }

    /// A closed stdout stops the transfer (the library then cleans up).
    fn cancelled(&self) -> bool {
        stdout_closed()
    }

    fn end(&mut self) {
        if self.tree.is_some() {
            return;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn tree_begin(&mut self, files: u64, bytes: u64) {
        let count = TreeCount {
            files,
            done: 0,
            failed: 0,
        };
        self.tree = Some(count);
        self.done = 0;
        self.bar(bytes, 0, count.message());
    }

    /// Each file as it lands: a `done` event with `--json` (on a terminal
    /// the bar counts it; the summary follows at the end).
    fn file_done(&mut self, transfer: &Transfer) {
        if let Some(count) = &mut self.tree {
            count.done += 1;
            if let Some(bar) = &self.bar {
                bar.set_message(count.message());
            }
        }
        if self.json {
            let _ = transfer_done(self.op, transfer, true);
        }
    }

    fn file_failed(&mut self, name: &str, error: &sockit::Error) {
        if let Some(count) = &mut self.tree {
            count.failed += 1;
            if let Some(bar) = &self.bar {
                bar.set_message(count.message());
            }
        }
        if self.json {
            let _ = json_line(&json!({"event": "error", "op": self.op, "name": name, "message": error.to_string()}));
        } else if let Some(bar) = &self.bar {
            bar.suspend(|| eprintln!("sockit: {} {name}: {error}", self.op));
        } else {
            eprintln!("sockit: {} {name}: {error}", self.op);
        }
    }

    fn tree_end(&mut self) {
        self.tree = None;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The line (or JSON event) for a finished transfer.
pub fn transfer_done(verb: &str, t: &Transfer, json: bool) -> io::Result<()> {
    let secs = t.elapsed.as_secs_f64();
    let moved = t.size - t.offset;
    let rate = if secs > 0.0 { moved as f64 / secs } else { 0.0 };
    if json {
        return json_line(&json!({
            "event": "done", "op": verb, "name": t.name, "size": t.size, "offset": t.offset,
            "bytes": moved, "seconds": secs, "bytes_per_second": rate, "xxh3": t.xxh3, "verified": t.verified,
        }));
    }
    let resumed = if t.offset > 0 {
        format!(", resumed at {}", human_bytes(t.offset))
    } else {
        String::new()
    };
    let check = if t.verified {
        "verified (xxh3)"
    } else {
        "sent, not confirmed (classic server)"
    };
    crate::outln!(
        "{verb} {}: {} in {secs:.2}s ({}/s){resumed}, {check}",
        t.name,
        human_bytes(t.size),
        human_bytes(rate as u64)
    )
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

/// Writes text to stdout as it is (no newline added), like `print!`.
pub fn write_str(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    if let Err(e) = &written {
        if e.kind() == io::ErrorKind::BrokenPipe {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }
    written
}
