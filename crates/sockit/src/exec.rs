//! Running a remote command: under a time limit, with capped output, and
//! contained, so that all of it ends when the command does.
//!
//! Containment: each command runs in a cgroup of its own when the host has
//! a writable cgroup2 hierarchy (the shell that starts it joins the cgroup
//! before running anything, so no child escapes the count), and in a
//! process group of its own otherwise. When the command ends, times out or
//! its client goes, the whole cgroup is killed (`cgroup.kill`), which
//! reaches children that left the process group with `setsid`; without a
//! cgroup the process group is killed, and a `setsid` child can survive
//! (docs/security.md says so).
//!
//! Every wait after a kill is bounded: output still arriving is read for
//! at most [`KILL_GRACE`], so a descendant that keeps a pipe open cannot
//! hold the reply, the connection or its slot.
//!
//! Whether exec is allowed at all, and who may use it, is decided before
//! this module is reached (the `--allow-exec` switch and the auth layer).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command as Process;

use sockit_proto::exec::{Command, Outcome, truncation_marker};

/// Largest stdin a client may send with a command (it is held in memory).
pub const MAX_STDIN: u64 = 16 * 1024 * 1024;

/// A command that runs longer is killed: remote exec is for quick checks,
/// not for jobs.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Output kept per stream; the rest is read and dropped so the command
/// never blocks on a full pipe.
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;
/// How long output is still read, and an exit waited for, after the
/// command's processes were killed. A kill takes effect in milliseconds;
/// only a process outside the containment can hold a pipe longer.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

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

/// How the main process ended.
enum Ending {
    Exited(Option<i32>),
    TimedOut,
    Abandoned,
}

/// Runs `command` in `cwd`. `abandoned` resolves when the client has gone;
/// the command's processes are then killed.
pub async fn run(
    command: &Command,
    stdin: &[u8],
    limits: &ExecLimits,
    cwd: &Path,
    abandoned: impl Future<Output = ()>,
) -> Result<Outcome, ExecError> {
    let cgroup = Cgroup::create().await;
    let mut process = launcher(command, cgroup.as_ref())?;
    process
        .current_dir(cwd)
        .stdin(if stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match process.spawn() {
        Ok(c) => c,
        Err(e) => {
            if let Some(cg) = cgroup {
                cg.end().await;
            }
            return Err(ExecError::Spawn(e));
        }
    };
    let group = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    let contained = Contained { cgroup, group };
    let cap = limits.max_output;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (mut out_cut, mut err_cut) = (false, false);
    let ending = {
        let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
        let in_pipe = child.stdin.take();
        let readers = async {
            tokio::join!(
                feed(in_pipe, stdin),
                read_capped(out_pipe, cap, &mut stdout, &mut out_cut),
                read_capped(err_pipe, cap, &mut stderr, &mut err_cut)
            )
        };
        tokio::pin!(readers);
        tokio::pin!(abandoned);
        let deadline = tokio::time::sleep(limits.timeout);
        tokio::pin!(deadline);
        let mut read_all = false;
        let ending = loop {
            tokio::select! {
                _ = &mut readers, if !read_all => read_all = true,
                status = child.wait() => break Ending::Exited(status.ok().and_then(|s| s.code())),
                () = &mut deadline => break Ending::TimedOut,
                () = &mut abandoned => break Ending::Abandoned,
            }
        };
        // The main process is done (or is to be stopped): end every process
        // it left, then take what output is left, for a bounded time.
        contained.end().await;
        if !read_all {
            let _ = tokio::time::timeout(KILL_GRACE, &mut readers).await;
        }
        ending
    };
    let exit_code = match ending {
        Ending::Abandoned => return Err(ExecError::Abandoned),
        Ending::Exited(code) => code,
        Ending::TimedOut => {
            let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
            None
        }
    };
    let timed_out = matches!(ending, Ending::TimedOut);
    let mut outcome = Outcome {
        stdout,
        stderr,
        exit_code,
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

/// Writes the client's stdin to the command, then closes it so the command
/// reads end-of-file. A command that exits without reading it all is no
/// error (as with a shell pipe).
async fn feed(pipe: Option<tokio::process::ChildStdin>, data: &[u8]) {
    if let Some(mut pipe) = pipe {
        let _ = tokio::io::AsyncWriteExt::write_all(&mut pipe, data).await;
    }
}

/// The process to spawn. With a cgroup, a shell first moves itself into
/// it, then `exec`s the command: everything the command starts is counted
/// from its first instruction.
fn launcher(command: &Command, cgroup: Option<&Cgroup>) -> Result<Process, ExecError> {
    let argv: Vec<String> = match command {
        Command::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
        Command::Argv(argv) => argv.clone(),
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(ExecError::Spawn(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty argv",
        )));
    };
    let mut process = match cgroup {
        Some(cg) => {
            let mut p = Process::new("sh");
            // $0 is the cgroup's procs file; "$@" the command, run as is.
            p.arg("-c")
                .arg(r#"echo $$ > "$0" || exit 126; exec "$@""#)
                .arg(cg.procs())
                .args(&argv);
            p
        }
        None => {
            let mut p = Process::new(program);
            p.args(args);
            p
        }
    };
    process.env_remove("SOCKIT_KEY_FILE");
    Ok(process)
}

/// What holds a command's processes.
struct Contained {
    cgroup: Option<Cgroup>,
    group: Option<rustix::process::Pid>,
}

impl Contained {
    async fn end(&self) {
        if let Some(pid) = self.group {
            // ESRCH once every member is gone: nothing to do.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        if let Some(cg) = &self.cgroup {
            cg.kill().await;
        }
    }
}

impl Drop for Contained {
    /// Also reached when `run` is dropped mid-command (its connection was
    /// dropped at shutdown): everything the command started is killed
    /// here too, not only its first process.
    fn drop(&mut self) {
        if let Some(pid) = self.group {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        if let Some(cg) = self.cgroup.take() {
            // Two small writes to cgroupfs: cheap enough for a drop.
            let _ = std::fs::write(cg.dir.join("cgroup.kill"), "1");
            // Removed off the runtime once empty.
            tokio::task::spawn_blocking(move || cg.remove_blocking());
        }
    }
}

/// A cgroup2 folder made for one command.
#[derive(Debug)]
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    /// A new cgroup under the server's own, or `None` where cgroup2 is
    /// missing or not writable (then the process group contains).
    async fn create() -> Option<Self> {
        let base = cgroup_base()?.clone();
        tokio::task::spawn_blocking(move || {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("sockit-exec-{}-{n}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => Some(Self { dir }),
                Err(e) => {
                    tracing::debug!(error = %e, dir = %dir.display(), "no cgroup for exec; using a process group");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Kills every process in the cgroup and waits (bounded) for it to
    /// empty.
    async fn kill(&self) {
        let dir = self.dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let killed_at_once = std::fs::write(dir.join("cgroup.kill"), "1").is_ok();
            let started = std::time::Instant::now();
            while started.elapsed() < KILL_GRACE {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    return;
                }
                if !killed_at_once {
                    // Kernels before 5.14 have no cgroup.kill: one by one.
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .await;
    }

    async fn end(self) {
        self.kill().await;
        let _ = tokio::task::spawn_blocking(move || self.remove_blocking()).await;
    }

    fn remove_blocking(&self) {
        let started = std::time::Instant::now();
        // rmdir fails with EBUSY until the last process has been reaped.
        while std::fs::remove_dir(&self.dir).is_err() && started.elapsed() < KILL_GRACE {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The cgroup2 folder of this process, where exec's cgroups are made, if
/// the host has cgroup2 mounted.
fn cgroup_base() -> Option<&'static PathBuf> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        // "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE OPTS"
        let mount = mounts.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split(' ').nth(4).map(PathBuf::from))?
        })?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
        Some(mount.join(path.trim_start_matches('/')))
    })
    .as_ref()
}

/// Reads a pipe to its end into `kept`, keeping the first `cap` bytes and
/// setting `cut` if there were more.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: usize, kept: &mut Vec<u8>, cut: &mut bool) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                let chunk = buf.get(..n).unwrap_or_default();
                kept.extend_from_slice(chunk.get(..room.min(n)).unwrap_or_default());
                *cut |= n > room;
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
        let o = run(
            &cmd,
            &[],
            &ExecLimits::default(),
            Path::new("/"),
            std::future::pending(),
        )
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
        let o = run(
            &cmd,
            &[],
            &ExecLimits::default(),
            Path::new("/"),
            std::future::pending(),
        )
        .await
        .unwrap();
        assert_eq!(o.stdout, b"$HOME; rm -rf /\n");
    }

    #[tokio::test]
    async fn a_command_that_never_ends_is_killed_with_its_children() {
        // The grandchild holds stdout open: only killing the group ends it.
        let cmd = Command::Shell("sleep 600 & sleep 600".into());
        let started = std::time::Instant::now();
        let o = run(&cmd, &[], &limits(300, 1024), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert!(o.timed_out);
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(String::from_utf8_lossy(&o.stderr).contains("killed after"));
    }

    #[tokio::test]
    async fn output_past_the_cap_is_cut_with_a_marker() {
        let cmd = Command::Shell("head -c 100000 /dev/zero".into());
        let o = run(&cmd, &[], &limits(10_000, 1000), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert!(o.truncated);
        assert!(o.stdout.starts_with(&[0u8; 1000]));
        assert!(o.stdout.ends_with(truncation_marker(1000).as_bytes()));
    }

    /// Whether a process whose command line is exactly `cmdline` exists.
    fn running(cmdline: &str) -> bool {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        entries.flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                c.split(|&b| b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
                    == cmdline
            })
        })
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_background_child_is_ended_with_the_command() {
        let cmd = Command::Shell("sleep 88.25 & echo started".into());
        let started = std::time::Instant::now();
        let o = run(&cmd, &[], &limits(30_000, 1024), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert_eq!(o.stdout, b"started\n");
        assert_eq!(o.exit_code, Some(0));
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert!(!running("sleep 88.25"), "the background child outlived exec");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_setsid_child_cannot_hold_the_reply() {
        // setsid leaves the process group; the wait after the kill is
        // bounded, and with a cgroup the child is ended too.
        let cmd = Command::Shell("setsid sleep 77.25; echo done".into());
        let started = std::time::Instant::now();
        let o = run(&cmd, &[], &limits(300, 1024), Path::new("/"), std::future::pending())
            .await
            .unwrap();
        assert!(o.timed_out);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        match Cgroup::create().await {
            Some(probe) => {
                probe.end().await;
                assert!(!running("sleep 77.25"), "the setsid child outlived exec");
            }
            None => assert!(std::env::var("CI").is_err(), "CI runs as root, with cgroup2"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_command_dropped_mid_run_takes_all_its_processes_with_it() {
        // The connection holding it is dropped (shutdown past the drain
        // time): the future goes, and every process of the command too.
        let cmd = Command::Shell("sleep 66.25 & sleep 66.5".into());
        let dropped = tokio::time::timeout(
            Duration::from_millis(300),
            run(&cmd, &[], &limits(30_000, 1024), Path::new("/"), std::future::pending()),
        )
        .await;
        assert!(dropped.is_err(), "the command should still have been running");
        let started = std::time::Instant::now();
        while running("sleep 66.25") || running("sleep 66.5") {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a process outlived its dropped command"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_abandoned_command_is_killed() {
        let cmd = Command::Shell("sleep 600".into());
        let r = run(&cmd, &[], &limits(60_000, 1024), Path::new("/"), async {}).await;
        assert!(matches!(r, Err(ExecError::Abandoned)));
    }
}
