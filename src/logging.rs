//! Where log events go. Without `-v`, stderr is for people: only warnings
//! and errors, as `sockit: warning: …` lines with no timestamp. `-v` and up
//! (or `--log-file`) turn on the timestamped log of what happens.
//! `--json-log` writes that log as JSON lines instead, for a collector.

use std::fmt;
use std::path::Path;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The env-filter for a count of `-v`.
fn level_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "sockit=info,sockit_lib=info",
        2 => "sockit=debug,sockit_lib=debug",
        _ => "trace",
    }
}

/// Sets up stderr (and `--log-file`, appended to). A log file that cannot
/// be opened is the user's to fix: the error says which.
pub fn init(verbose: u8, log_file: Option<&Path>, json: bool) -> Result<(), String> {
    let from_env = || EnvFilter::try_from_env("SOCKIT_LOG").ok();
    // A JSON log is for a collector: what -v shows, at least.
    let verbose = if json { verbose.max(1) } else { verbose };
    let stderr_filter = from_env().unwrap_or_else(|| EnvFilter::new(level_filter(verbose)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(stderr_filter)
            .boxed()
    } else if verbose == 0 {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(ForPeople)
            .with_filter(stderr_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_target(false)
            .with_filter(stderr_filter)
            .boxed()
    };
    let file = match log_file {
        None => None,
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            let filter = from_env().unwrap_or_else(|| EnvFilter::new(level_filter(verbose.max(1))));
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_target(false);
            Some(if json {
                layer.json().flatten_event(true).with_filter(filter).boxed()
            } else {
                layer.with_filter(filter).boxed()
            })
        }
    };
    tracing_subscriber::registry().with(stderr).with(file).init();
    Ok(())
}

/// `sockit: warning: message key=value`: a line a person reads, like the
/// binary's own messages.
struct ForPeople;

impl<S, N> FormatEvent<S, N> for ForPeople
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        write!(writer, "sockit: {level}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
