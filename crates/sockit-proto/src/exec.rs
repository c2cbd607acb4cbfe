//! Remote exec's wire format (docs/protocol.md §5), and telling the seeds'
//! classic exec client apart from a framed client on the same port.
//!
//! The classic client sends the raw command line (`conn.send(cmd)`) with no
//! header, and reads back `struct.pack('i', len)` + `{"data_size":N}` + the
//! output (stderr if there was any, else stdout). A framed client's first 4
//! bytes are a small little-endian length; a command line's are text.

use crate::frame::Header;

/// What a connection's next request is, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A length-prefixed frame (or garbage for the frame decoder to refuse).
    Framed,
    /// A classic client's bare command line.
    RawCommand,
    /// Too few bytes to tell yet.
    NeedMore,
}

/// Judges `prefix`. `paused` means the peer sent these bytes and then went
/// quiet: a framed client always sends its 4-byte prefix at once, so 1-3
/// bytes followed by a pause are a short command such as `ls`.
pub fn classify(prefix: &[u8], max_header_len: u32, paused: bool) -> Opening {
    match prefix.get(..4) {
        Some(four) => {
            let mut le = [0u8; 4];
            le.copy_from_slice(four);
            let len = u32::from_le_bytes(le);
            if (1..=max_header_len).contains(&len) || !looks_like_text(four) {
                Opening::Framed
            } else {
                Opening::RawCommand
            }
        }
        None if prefix.is_empty() => Opening::NeedMore,
        None if paused && looks_like_text(prefix) => Opening::RawCommand,
        None if paused => Opening::Framed,
        None => Opening::NeedMore,
    }
}

/// No control bytes other than tab, CR and LF, no DEL and no 0xff (valid
/// in neither UTF-8 nor GBK): a command line. Multi-byte UTF-8 and GBK
/// sequences live in 0x80-0xfe and pass.
fn looks_like_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) || (0x80..0xff).contains(&b) || matches!(b, b'\t' | b'\r' | b'\n'))
}

/// How a framed exec request names its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `"command": "ls -l | wc -l"`, run by `sh -c` like the seed's `shell=True`.
    Shell(String),
    /// `"argv": ["ls", "-l"]`, run directly with no shell.
    Argv(Vec<String>),
}

/// The outcome of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when killed by a signal (or the time limit).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// stdout or stderr went past the output cap and was cut (with a marker).
    pub truncated: bool,
}

/// The marker appended where output was cut at the cap.
pub fn truncation_marker(cap: usize) -> String {
    format!("\n[sockit: output cut at {cap} bytes]\n")
}

/// The classic reply: `{"data_size":N}` and stderr if any, else stdout.
pub fn classic_reply(o: &Outcome) -> (Header, &[u8]) {
    let body: &[u8] = if o.stderr.is_empty() { &o.stdout } else { &o.stderr };
    let mut h = Header::new();
    h.insert("data_size".into(), (body.len() as u64).into());
    (h, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn framed_prefixes_and_command_lines_are_told_apart() {
        let framed = 13u32.to_le_bytes();
        assert_eq!(classify(&framed, 65536, false), Opening::Framed);
        assert_eq!(classify(b"ls -l", 65536, false), Opening::RawCommand);
        assert_eq!(classify(b"dir\r\n", 65536, false), Opening::RawCommand);
        assert_eq!(
            classify("ipconfig /all 你好".as_bytes(), 65536, false),
            Opening::RawCommand
        );
        // Garbage with control bytes goes to the frame decoder to be refused.
        assert_eq!(classify(&[0xff, 0xff, 0xff, 0x7f], 65536, false), Opening::Framed);
    }

    #[test]
    fn short_commands_are_decided_by_the_pause() {
        assert_eq!(classify(b"ls", 65536, false), Opening::NeedMore);
        assert_eq!(classify(b"ls", 65536, true), Opening::RawCommand);
        assert_eq!(classify(&[13, 0], 65536, true), Opening::Framed);
        assert_eq!(classify(b"", 65536, true), Opening::NeedMore);
    }

    #[test]
    fn classic_reply_prefers_stderr_like_the_seed() {
        let o = Outcome {
            stdout: b"out".to_vec(),
            stderr: b"err!".to_vec(),
            exit_code: Some(1),
            ..Outcome::default()
        };
        let (h, body) = classic_reply(&o);
        assert_eq!(
            (h.get("data_size").and_then(Value::as_u64), body),
            (Some(4), &b"err!"[..])
        );
        let quiet = Outcome {
            stdout: b"out".to_vec(),
            ..Outcome::default()
        };
        assert_eq!(classic_reply(&quiet).1, b"out");
    }

    #[test]
    fn framed_reply_round_trips_both_streams() {
        let o = Outcome {
            stdout: b"hello\n".to_vec(),
            stderr: b"warn\n".to_vec(),
            exit_code: Some(3),
            timed_out: false,
            truncated: false,
        };
        let reply = crate::files::ExecReply::of(&o);
        let h = crate::files::Reply::Exec(reply).to_header();
        assert_eq!(crate::frame::body_len(&h), Ok(11));
        let body = [o.stdout.clone(), o.stderr.clone()].concat();
        assert_eq!(reply.split(&body), Some((&b"hello\n"[..], &b"warn\n"[..])));
        assert_eq!(h.get("exit_code"), Some(&Value::from(3)));
    }
}
