//! The file-service client subcommands: put, get, ls, stat, rm, mkdir.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use sockit::files::{ClientConfig, FileClient, TreeSummary};
use sockit_proto::files::{Entry, EntryKind};
use sockit_proto::hostport::HostPort;
use sockit_proto::path::RelPath;

use super::client_dial;
use crate::UsageError;
use crate::cli::{ClientArgs, ExecArgs, GetArgs, LsArgs, PathArgs, PutArgs, RmArgs};
use crate::exit;
use crate::output::{Reporter, human_bytes, json_line, named, transfer_done};

async fn connect(args: &ClientArgs, server: &HostPort) -> anyhow::Result<FileClient> {
    let dial = client_dial(&args.auth, &args.tls)?;
    let mut config = ClientConfig::new(server.with_default(crate::cli::port::FILES), dial.auth);
    config.tls = dial.tls;
    config.timeout = Duration::from_secs(args.timeout.max(1));
    FileClient::connect(&config).await.map_err(|e| {
        // A script written for the old grammar (`put LOCAL REMOTE` with the
        // server implied) now names a local file as the server: say so.
        if args.server.is_none() && Path::new(&server.host).exists() {
            UsageError(format!(
                "{} is a local file, not a server: the server comes first, or in -s or SOCKIT_SERVER ({e})",
                server.host
            ))
            .into()
        } else {
            e.into()
        }
    })
}

fn remote_path(name: &str) -> anyhow::Result<RelPath> {
    RelPath::parse(name).map_err(|e| UsageError(format!("bad remote name {name:?}: {e}")).into())
}

fn local_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            UsageError(format!(
                "{} has no usable file name; name the remote file",
                path.display()
            ))
            .into()
        })
}

pub async fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let (server, ops) = args
        .client
        .split_server("put", &args.operands, 1..=2, "LOCAL [REMOTE]")?;
    let (local, remote) = match ops {
        [local] => (local, None),
        [local, remote] => (local, Some(remote)),
        _ => return Err(UsageError("usage: sockit put HOST[:PORT] LOCAL [REMOTE]".into()).into()),
    };
    let local = std::path::PathBuf::from(local);
    // A trailing `/` names a folder to upload into, as cp and scp read it.
    let remote_name = match remote {
        Some(r) if r.ends_with('/') => format!("{r}{}", local_name(&local)?),
        Some(r) => r.clone(),
        None => local_name(&local)?,
    };
    let remote = remote_path(&remote_name)?;
    let json = args.client.json;
    let mut reporter = Reporter::new(json, "put");
    if args.classic {
        let client = connect(&args.client, &server).await?;
        let t = client
            .put_classic(&local, &remote.to_string(), &mut reporter)
            .await
            .with_context(|| format!("cannot upload {}", local.display()))?;
        transfer_done("put", &t, json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut client = connect(&args.client, &server).await?;
    if args.recursive {
        if !local.is_dir() {
            return Err(UsageError(format!("{} is not a folder", local.display())).into());
        }
        let summary = client
            .put_tree(&local, &remote, args.resume, &mut reporter)
            .await
            .with_context(|| format!("cannot upload {}", local.display()))?;
        return Ok(tree_done("put", &summary, json)?);
    }
    if local.is_dir() {
        return Err(UsageError(format!("{} is a folder; use put -r", local.display())).into());
    }
    let t = client
        .put(&local, &remote, args.resume, &mut reporter)
        .await
        .with_context(|| format!("cannot upload {}", local.display()))?;
    transfer_done("put", &t, json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn get(args: GetArgs) -> anyhow::Result<ExitCode> {
    let (server, [remote]) = args.client.server_and("get", &args.operands, "REMOTE")?;
    let remote = remote_path(remote)?;
    let local = super::output_path(args.output.as_deref(), remote.file_name())?;
    let json = args.client.json;
    let mut reporter = Reporter::new(json, "get");
    let mut client = connect(&args.client, &server).await?;
    if args.recursive {
        let summary = client
            .get_tree(&remote, &local, args.resume, &mut reporter)
            .await
            .with_context(|| format!("cannot download {remote}"))?;
        return Ok(tree_done("get", &summary, json)?);
    }
    let t = client
        .get(&remote, &local, args.resume, &mut reporter)
        .await
        .with_context(|| format!("cannot download {remote}"))?;
    transfer_done("get", &t, json)?;
    Ok(ExitCode::SUCCESS)
}

/// The end of a folder transfer. Each file was reported as it landed or
/// failed (`--json` events, or an error line); this is the summary.
fn tree_done(verb: &str, summary: &TreeSummary, json: bool) -> std::io::Result<ExitCode> {
    let bytes: u64 = summary.files.iter().map(|t| t.size).sum();
    let failed = summary.failed.len() + summary.not_sent;
    if json {
        let mut event = json!({"event": "summary", "op": verb, "files": summary.files.len(),
            "folders": summary.folders, "bytes": bytes, "failed": summary.failed.len(),
            "not_sent": summary.not_sent});
        if let (Some(e), Some(fields)) = (&summary.interrupted, event.as_object_mut()) {
            fields.insert("interrupted".into(), e.to_string().into());
        }
        json_line(&event)?;
    } else {
        if let Some(e) = &summary.interrupted {
            eprintln!(
                "sockit: {verb} stopped: {e}; {} files not sent (--resume continues)",
                summary.not_sent
            );
        }
        crate::outln!(
            "{verb}: {} files, {} folders, {}, verified (xxh3); {} failed",
            summary.files.len(),
            summary.folders,
            human_bytes(bytes),
            failed
        )?;
    }
    Ok(if failed == 0 && summary.interrupted.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

pub async fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let (server, ops) = args.client.split_server("ls", &args.operands, 0..=1, "[PATH]")?;
    let name = ops.first().map_or("", String::as_str);
    if args.partials && !name.is_empty() {
        return Err(UsageError("ls --partials lists every kept upload; it takes no PATH".into()).into());
    }
    let path = RelPath::parse_dir(name).map_err(|e| UsageError(format!("bad remote name {name:?}: {e}")))?;
    let mut client = connect(&args.client, &server).await?;
    if args.partials {
        let kept = client.partials().await.context("cannot list partial uploads")?;
        for p in &kept {
            if args.client.json {
                json_line(&named("partial", serde_json::to_value(p).unwrap_or_default()))?;
            } else {
                let name = sockit_proto::display::escape(&p.path, false);
                crate::outln!(
                    "partial {:>10} of {:>10}  {}  {name}",
                    p.size,
                    p.filesize,
                    format_time(p.mtime)
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let entries = client
        .ls(&path, args.recursive)
        .await
        .with_context(|| format!("cannot list {name:?}"))?;
    for e in &entries {
        print_entry(e, args.client.json)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stat(args: PathArgs) -> anyhow::Result<ExitCode> {
    let (server, [path]) = args.client.server_and("stat", &args.operands, "PATH")?;
    let path = remote_path(path)?;
    let mut client = connect(&args.client, &server).await?;
    let entry = client
        .stat(&path)
        .await
        .with_context(|| format!("cannot stat {path}"))?;
    print_entry(&entry, args.client.json)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn rm(args: RmArgs) -> anyhow::Result<ExitCode> {
    let (server, [path]) = args.client.server_and("rm", &args.operands, "PATH")?;
    let path = remote_path(path)?;
    let mut client = connect(&args.client, &server).await?;
    if args.partial {
        client
            .rm_partial(&path)
            .await
            .with_context(|| format!("cannot remove the partial upload of {path}"))?;
    } else {
        client
            .rm(&path, args.recursive)
            .await
            .with_context(|| format!("cannot remove {path}"))?;
    }
    if args.client.json {
        json_line(&json!({"event": "removed", "path": path.to_string()}))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn mkdir(args: PathArgs) -> anyhow::Result<ExitCode> {
    let (server, [path]) = args.client.server_and("mkdir", &args.operands, "PATH")?;
    let path = remote_path(path)?;
    let mut client = connect(&args.client, &server).await?;
    client
        .mkdir(&path)
        .await
        .with_context(|| format!("cannot create {path}"))?;
    if args.client.json {
        json_line(&json!({"event": "created", "path": path.to_string()}))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a command remotely: its stdout to ours, its stderr to ours, its
/// exit code as ours (1 if it had none: killed, timed out).
pub async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let (server, argv) = args
        .client
        .split_server("exec", &args.argv, 1..=usize::MAX, "CMD [ARG]...")?;
    let stdin = if args.no_stdin || std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Vec::new()
    } else {
        read_stdin(sockit::exec::MAX_STDIN).await?
    };
    let mut client = connect(&args.client, &server).await?;
    let command = sockit_proto::exec::Command::Argv(argv.to_vec());
    let result = client
        .exec(command, &stdin, args.max_output)
        .await
        .with_context(|| format!("cannot run {:?}", argv.join(" ")))?;
    if args.client.json {
        json_line(&json!({
            "event": "exec", "exit_code": result.exit_code, "timed_out": result.timed_out,
            "truncated": result.truncated,
            "stdout": String::from_utf8_lossy(&result.stdout), "stderr": String::from_utf8_lossy(&result.stderr),
        }))?;
    } else {
        use std::io::Write as _;
        std::io::stdout().write_all(&result.stdout)?;
        std::io::stderr().write_all(&result.stderr)?;
    }
    let code = result
        .exit_code
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(exit::FAILED);
    Ok(ExitCode::from(code))
}

/// All of stdin, refusing more than `max` bytes (the command's input is
/// sent whole, before it runs).
async fn read_stdin(max: u64) -> anyhow::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let mut data = Vec::new();
    tokio::io::stdin()
        .take(max + 1)
        .read_to_end(&mut data)
        .await
        .context("cannot read stdin")?;
    if data.len() as u64 > max {
        return Err(UsageError(format!(
            "stdin is over {max} bytes; send the data with put and read it there"
        ))
        .into());
    }
    Ok(data)
}

fn print_entry(e: &Entry, json: bool) -> std::io::Result<()> {
    if json {
        return json_line(&named("entry", serde_json::to_value(e).unwrap_or_default()));
    }
    // A hostile server's names must not act on the terminal or fake lines.
    let path = sockit_proto::display::escape(&e.path, false);
    let (kind, name) = match e.kind {
        EntryKind::Dir => ("d", format!("{path}/")),
        EntryKind::File => ("-", path.into_owned()),
        EntryKind::Other => ("p", path.into_owned()),
    };
    crate::outln!("{kind} {:>10}  {}  {name}", e.size, shown_time(e.mtime))
}

/// An entry's time as `ls` shows it; 0 is one the server does not know
/// (an object store's folder), shown as `-` in the same width.
fn shown_time(mtime: i64) -> String {
    if mtime == 0 {
        format!("{:<16}", "-")
    } else {
        format_time(mtime)
    }
}

/// `YYYY-MM-DD HH:MM` in UTC, from Unix seconds (no time-zone database needed).
fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::{format_time, shown_time};

    #[test]
    fn times_format_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_time(1_795_650_000), "2026-11-25 23:40");
    }

    #[test]
    fn an_unknown_time_is_a_dash_in_the_same_width() {
        assert_eq!(shown_time(0), "-               ");
        assert_eq!(shown_time(0).len(), shown_time(1_795_650_000).len());
    }
}
