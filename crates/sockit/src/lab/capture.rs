//! `sockit lab capture -- CMD`: record a command's traffic with tcpdump,
//! so a student can run `sockit explain` on their own session.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long tcpdump may take to open the interface.
const START_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("lab capture runs tcpdump, which is not installed (Debian: apt install tcpdump)")]
    NoTcpdump,
    #[error("tcpdump did not start: {0}")]
    TcpdumpFailed(String),
    #[error("cannot run {program}: {source}")]
    Command { program: String, source: std::io::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What to capture and what to run meanwhile.
#[derive(Debug, Clone)]
pub struct Plan {
    pub output: PathBuf,
    pub interface: String,
    /// A pcap filter expression, empty for everything.
    pub filter: Vec<String>,
    /// The kernel's capture buffer, in KiB (tcpdump -B): loopback moves
    /// gigabytes a second, and a small buffer drops packets.
    pub buffer_kib: u32,
    /// Time to keep capturing after the command ends: the peer's side of
    /// the close may still be on its way.
    pub linger: Duration,
    pub command: Vec<String>,
}

#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    /// tcpdump's own count (`N packets captured`), when it said it.
    pub packets: Option<u64>,
    /// Packets the kernel dropped because tcpdump fell behind: the
    /// capture misses them.
    pub dropped: Option<u64>,
}

/// Starts tcpdump, waits until it listens, runs the command with this
/// process's standard streams, then stops tcpdump (SIGINT, by its PID)
/// once `linger` has passed.
pub fn run(plan: &Plan) -> Result<Outcome, CaptureError> {
    let Some((program, args)) = plan.command.split_first() else {
        return Err(CaptureError::TcpdumpFailed("no command to run".into()));
    };
    let mut tcpdump = Command::new("tcpdump");
    // Immediate mode: without it, packets still in the kernel's buffer
    // when tcpdump is stopped are lost.
    tcpdump
        .args(["-i", &plan.interface, "-n", "-U", "--immediate-mode"])
        .arg("-B")
        .arg(plan.buffer_kib.to_string())
        .arg("-w")
        .arg(&plan.output);
    if rustix::process::geteuid().is_root() {
        // Debian's tcpdump gives up root for the user "tcpdump", which
        // then cannot write to root's folders.
        tcpdump.args(["-Z", "root"]);
    }
    tcpdump.args(&plan.filter);
    let mut child = match tcpdump
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CaptureError::NoTcpdump),
        Err(e) => return Err(e.into()),
    };
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| CaptureError::TcpdumpFailed("no stderr".into()))?;
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    // tcpdump's stderr on a thread of its own: its first line says it
    // listens, its last ones how many packets it kept.
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut said = Vec::new();
    loop {
        let left = START_DEADLINE.saturating_sub(started.elapsed());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break,
            Ok(line) => said.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let why = if said.is_empty() {
                    "it ended or stalled without a word".to_owned()
                } else {
                    said.join("; ")
                };
                return Err(CaptureError::TcpdumpFailed(why));
            }
        }
    }
    let status = Command::new(program).args(args).status().map_err(|source| {
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        }
        CaptureError::Command {
            program: program.clone(),
            source,
        }
    });
    std::thread::sleep(plan.linger);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    child.wait()?;
    // Its stderr has ended with it; every line is in the channel now.
    let _ = reader.join();
    let status = status?;
    let said: Vec<String> = lines_rx.try_iter().collect();
    Ok(Outcome {
        status,
        packets: tcpdump_count(&said, "captured"),
        dropped: tcpdump_count(&said, "dropped by kernel"),
    })
}

/// A count from tcpdump's closing words: `12 packets captured`,
/// `1 packet dropped by kernel`.
fn tcpdump_count(said: &[String], what: &str) -> Option<u64> {
    said.iter().find_map(|l| {
        l.strip_suffix(&format!(" packets {what}"))
            .or_else(|| l.strip_suffix(&format!(" packet {what}")))
            .and_then(|n| n.trim().parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdumps_closing_counts_are_read() {
        let said: Vec<String> = [
            "listening on lo",
            "21873 packets captured",
            "22127 packets received by filter",
            "1 packet dropped by kernel",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(tcpdump_count(&said, "captured"), Some(21873));
        assert_eq!(tcpdump_count(&said, "dropped by kernel"), Some(1));
        assert_eq!(tcpdump_count(&said[..1], "captured"), None);
    }
}
