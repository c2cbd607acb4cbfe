//! The `sockit` binary: arguments, output and exit codes. No protocol logic
//! and no socket code live here; they are in `sockit-proto` and `sockit`.
#![forbid(unsafe_code)]

mod chart;
mod cli;
mod commands;
mod config;
mod limits;
mod logging;
mod nc_view;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

/// Exit codes (STYLE: 0 success, 1 the operation failed, 2 usage, 130 interrupted).
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const INTERRUPTED: u8 = 130;
}

/// An error that is the user's to fix (exit 2), not a failed operation.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|a| (a, m)));
    let args = match parsed {
        Ok((mut args, matches)) => {
            let (name, json) = command_of(&matches);
            output::set_command(name, json);
            if let (cli::Command::Serve(serve), Some(("serve", m))) = (&mut args.command, matches.subcommand()) {
                serve.flags_given = serve_flags_given(m);
            }
            args
        }
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // nc's -v is netcat's (connection notices); its log level starts at -vvv.
    let log_level = match args.command {
        cli::Command::Nc(_) => args.verbose.saturating_sub(2),
        _ => args.verbose,
    };
    if let Err(e) = logging::init(log_level, args.log_file.as_deref(), args.json_log) {
        eprintln!("sockit: {e}");
        return ExitCode::from(exit::USAGE);
    }
    // Before any thread exists: it reads and clears the environment.
    sockit::activation::take_from_env();
    // TFTP is lock-step: each block waits for the peer's answer. On one
    // thread a wake-up is a local poll; on a multi-thread runtime it is a
    // cross-thread hand-off (futex, eventfd) that costs more than the block.
    let mut builder = match args.command {
        cli::Command::Tftp(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sockit: cannot start the runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(commands::run(args.command, args.verbose)) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// The subcommand path (`tftp get`) and whether its `--json` is set.
fn command_of(matches: &clap::ArgMatches) -> (String, bool) {
    let mut names = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        names.push(name);
        m = sub;
    }
    let json = matches!(m.try_get_one::<bool>("json"), Ok(Some(true)));
    (names.join(" "), json)
}

/// Whether `serve` was given a flag that describes the file service (not
/// just -v, --log-file or --print-config).
fn serve_flags_given(m: &clap::ArgMatches) -> bool {
    m.ids().any(|id| {
        !matches!(
            id.as_str(),
            "verbose" | "log_file" | "print_config" | "no_config" | "stats" | "qr" | "print_web_url"
        ) && m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
    })
}

/// Prints the error chain once and picks the exit code.
fn report(err: &anyhow::Error) -> ExitCode {
    // Whoever read our output went away (`| head`): not a failure, and
    // nothing left to tell them. Work in progress was stopped and cleaned up.
    let broken_pipe = output::stdout_closed()
        || err.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
                || matches!(c.downcast_ref::<sockit::Error>(), Some(sockit::Error::Cancelled))
        });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("sockit: {err:#}");
    let usage = err
        .chain()
        .any(|c| c.is::<UsageError>() || matches!(c.downcast_ref::<sockit::Error>(), Some(sockit::Error::Usage(_))));
    let code = if usage { exit::USAGE } else { exit::FAILED };
    // A JSON reader gets the failure as an event too (docs/json.md).
    if output::json_mode() {
        let _ = output::json_line(&serde_json::json!({
            "event": "error", "message": format!("{err:#}"), "exit_code": code,
        }));
    }
    ExitCode::from(code)
}
