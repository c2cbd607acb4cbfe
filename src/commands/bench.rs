//! `sockit bench`: runs a load generator and prints what it measured.

use std::io::BufRead as _;
use std::process::ExitCode;
use std::time::Duration;

use sockit::bench::{self, EchoLoad};

use super::client_auth;
use crate::cli::BenchCommand;
use crate::output::json_line;

pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Echo {
            addr,
            connections,
            duration,
            payload,
            udp,
            connect_parallelism,
            json,
            auth,
        } => {
            let auth = if udp {
                None
            } else {
                client_auth(&super::key_only_if_named(&auth))?
            };
            let report = bench::echo(EchoLoad {
                addr,
                auth,
                connections,
                duration: Duration::from_secs(duration.max(1)),
                udp,
                payload: payload.max(1),
                connect_parallelism,
            })
            .await?;
            if json {
                json_line(&crate::output::named("report", serde_json::to_value(&report)?))?;
            } else {
                crate::outln!(
                    "{} {} connections: {:.0} req/s over {:.1}s, latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs; \
                     {} errors, {} failed connects ({:.2}s to connect)",
                    if udp { "udp" } else { "tcp" },
                    report.connections,
                    report.requests_per_sec,
                    report.seconds,
                    report.p50_us,
                    report.p99_us,
                    report.p999_us,
                    report.max_us,
                    report.errors,
                    report.connect_failures,
                    report.connect_seconds,
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Chat {
            addrs,
            members,
            senders,
            messages,
            rate,
            drain,
            connect_parallelism,
            json,
            auth,
        } => {
            let load = sockit::bench::chat::ChatLoad {
                addrs,
                auth: client_auth(&auth)?,
                members,
                senders,
                messages,
                rate: rate.filter(|r| *r > 0.0),
                drain: Duration::from_secs(drain.max(1)),
                connect_parallelism,
            };
            let r = sockit::bench::chat::chat(load).await?;
            if json {
                crate::output::json_line(&crate::output::named("report", serde_json::to_value(&r)?))?;
            } else {
                crate::outln!(
                    "{} members, {} senders: {} of {} deliveries in {:.2}s ({:.0}/s), missing {}, p50 {} us, p99 {} us, max {} us",
                    r.members,
                    r.senders,
                    r.delivered,
                    r.expected,
                    r.seconds,
                    r.deliveries_per_sec,
                    r.missing,
                    r.p50_us,
                    r.p99_us,
                    r.max_us
                )?;
            }
            Ok(if r.missing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::exit::FAILED)
            })
        }
        BenchCommand::Idle {
            addr,
            connections,
            hold,
            connect_parallelism,
            auth,
        } => {
            let auth = client_auth(&auth)?;
            // Hold until the time passes or stdin closes, whichever first.
            let stdin_closed = tokio::task::spawn_blocking(|| {
                let stdin = std::io::stdin();
                for _ in stdin.lock().lines() {}
            });
            let until = async move {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(hold)) => {}
                    _ = stdin_closed => {}
                }
            };
            let held = bench::hold_idle(
                addr,
                auth,
                connections,
                connect_parallelism,
                |n| {
                    let _ = crate::outln!("holding {n}");
                },
                until,
            )
            .await;
            Ok(if held == connections {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::exit::FAILED)
            })
        }
    }
}
