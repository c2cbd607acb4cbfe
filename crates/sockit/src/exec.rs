//! Running a remote command: under a time limit, with capped output, in its
//! own process group so the whole tree dies when the limit passes or the
//! client goes away.
//!
//! Whether exec is allowed at all, and who may use it, is decided before
//! this module is reached (the `--allow-exec` switch and the auth layer).

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command as Process;

use sockit_proto::exec::{Command, Outcome, truncation_marker};

/// A command that runs longer is killed: remote exec is for quick checks,
/// not for jobs.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Output kept per stream; the rest is read and dropped so the command
/// never blocks on a full pipe.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ExecLimits {
    pub timeout: Duration,
    pub max_output: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_EXEC_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

/// Why a command produced no outcome.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot start the command")]
    Spawn(#[source] std::io::Error),
    #[error("the client went away; the command was killed")]
    Abandoned,
}

/// Runs `command` in `cwd`. `abandoned` resolves when the client has gone;
/// the command's process group is then killed.
pub async fn run(
    command: &Command,
    limits: &ExecLimits,
    cwd: &Path,
    abandoned: impl Future<Output = ()>,
) -> Result<Outcome, ExecError> {
    let mut process = match command {
        Command::Shell(line) => {
            let mut p = Process::new("sh");
            p.arg("-c").arg(line);
            p
        }
        Command::Argv(argv) => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| ExecError::Spawn(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv")))?;
            let mut p = Process::new(program);
            p.args(args);
            p
        }
    };
    process
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = process.spawn().map_err(ExecError::Spawn)?;
    let group = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    let kill_group = || {
        if let Some(pid) = group {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let cap = limits.max_output;
    let collect = async {
        let (out, err) = tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap));
        let status = child.wait().await;
        (out, err, status)
    };
    tokio::pin!(collect);
    tokio::pin!(abandoned);
    let mut timed_out = false;
    let ((stdout, out_cut), (stderr, err_cut), status) = tokio::select! {
        r = &mut collect => r,
        () = tokio::time::sleep(limits.timeout) => {
            timed_out = true;
            kill_group();
            collect.await
        }
        () = &mut abandoned => {
            kill_group();
            return Err(ExecError::Abandoned);
        }
    };
    let mut outcome = Outcome {
        stdout,
        stderr,
        exit_code: status.ok().and_then(|s| s.code()),
        timed_out,
        truncated: out_cut || err_cut,
    };
    if out_cut {
        outcome.stdout.extend_from_slice(truncation_marker(cap).as_bytes());
    }
    if err_cut {
        outcome.stderr.extend_from_slice(truncation_marker(cap).as_bytes());
    }
    if timed_out {
        let note = format!("\n[sockit: killed after {}s]\n", limits.timeout.as_secs());
        outcome.stderr.extend_from_slice(note.as_bytes());
    }
    Ok(outcome)
}

/// Reads a pipe to its end, keeping the first `cap` bytes.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                let chunk = buf.get(..n).unwrap_or_default();
                kept.extend_from_slice(chunk.get(..room.min(n)).unwrap_or_default());
                cut |= n > room;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout_ms: u64, max_output: usize) -> ExecLimits {
        ExecLimits {
            timeout: Duration::from_millis(timeout_ms),
            max_output,
        }
    }

    #[tokio::test]
    async fn runs_a_shell_line_and_reports_both_streams() {
        let cmd = Command::Shell("echo out; echo err >&2; exit 3".into());
        let o = run(&cmd, &ExecLimits::default(), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert_eq!(
            (o.stdout.as_slice(), o.stderr.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        assert_eq!(o.exit_code, Some(3));
        assert!(!o.timed_out && !o.truncated);
    }

    #[tokio::test]
    async fn argv_is_not_a_shell() {
        let cmd = Command::Argv(vec!["echo".into(), "$HOME; rm -rf /".into()]);
        let o = run(&cmd, &ExecLimits::default(), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert_eq!(o.stdout, b"$HOME; rm -rf /\n");
    }

    #[tokio::test]
    async fn a_command_that_never_ends_is_killed_with_its_children() {
        // The grandchild holds stdout open: only killing the group ends it.
        let cmd = Command::Shell("sleep 600 & sleep 600".into());
        let started = std::time::Instant::now();
        let o = run(&cmd, &limits(300, 1024), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert!(o.timed_out);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(String::from_utf8_lossy(&o.stderr).contains("killed after"));
    }

    #[tokio::test]
    async fn output_past_the_cap_is_cut_with_a_marker() {
        let cmd = Command::Shell("head -c 100000 /dev/zero".into());
        let o = run(&cmd, &limits(10_000, 1000), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert!(o.truncated);
        assert!(o.stdout.starts_with(&[0u8; 1000]));
        assert!(o.stdout.ends_with(truncation_marker(1000).as_bytes()));
    }

    #[tokio::test]
    async fn an_abandoned_command_is_killed() {
        let cmd = Command::Shell("sleep 600".into());
        let r = run(&cmd, &limits(60_000, 1024), Path::new("/"), async {}).await;
        assert!(matches!(r, Err(ExecError::Abandoned)));
    }
}
