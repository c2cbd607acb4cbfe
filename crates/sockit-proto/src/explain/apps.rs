//! What a segment or datagram means to the protocols sockit speaks: the
//! framed protocol (streamed, so frames may straddle segments), TFTP,
//! IPMSG, echo and the time services.

use serde::Serialize;

use crate::frame::{self, DEFAULT_MAX_HEADER_LEN};
use crate::ipmsg::command::{Mode as IpmsgMode, opt};
use crate::tftp::packet::Packet as TftpPacket;

/// The application a conversation carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum App {
    /// sockit's framed protocol (docs/protocol.md §1), the course's
    /// sticky-packet fix.
    Framed,
    Tftp,
    Ipmsg,
    Echo,
    /// RFC 868: 4 bytes, seconds since 1900.
    Time,
    /// Lines of text: RFC 867 daytime, the course's UDP time server, a
    /// chat room, a banner.
    Text,
    Unknown,
}

impl App {
    pub const NAMES: [(&'static str, App); 7] = [
        ("framed", App::Framed),
        ("tftp", App::Tftp),
        ("ipmsg", App::Ipmsg),
        ("echo", App::Echo),
        ("time", App::Time),
        ("text", App::Text),
        ("raw", App::Unknown),
    ];

    pub fn from_name(name: &str) -> Option<App> {
        Self::NAMES.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// The name `--decode` takes.
    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, a)| *a == self).map_or("raw", |(n, _)| n)
    }

    pub fn describe(self) -> &'static str {
        match self {
            App::Framed => "sockit framed protocol",
            App::Tftp => "TFTP",
            App::Ipmsg => "IP Messenger",
            App::Echo => "echo",
            App::Time => "time (RFC 868)",
            App::Text => "text",
            App::Unknown => "data",
        }
    }

    /// The well-known ports, tried after the user's `--decode` rules.
    pub fn by_port(port: u16) -> Option<App> {
        match port {
            7 => Some(App::Echo),
            13 => Some(App::Text),
            37 => Some(App::Time),
            // sockit's own default echo port.
            8007 => Some(App::Echo),
            69 => Some(App::Tftp),
            2425 => Some(App::Ipmsg),
            _ => None,
        }
    }
}

/// Which way a packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

/// One thing a packet means. A packet may mean several: the end of one
/// frame's body and the next frame's header (the sticky-packet effect).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Meaning {
    /// The three-way handshake: SYN (1), SYN-ACK (2), ACK (3).
    Handshake {
        step: u8,
    },
    /// The four-way close: FIN (1), its ACK (2), the other FIN (3), its ACK
    /// (4). A FIN that also acknowledges the first is steps 2 and 3.
    Close {
        steps: Vec<u8>,
        side: Side,
    },
    Reset {
        side: Side,
    },
    /// Bytes this side had sent before.
    Retransmission {
        bytes: u64,
    },
    /// Bytes missing from the capture before this segment; the stream
    /// cannot be cut into messages after it.
    Gap {
        missing: u64,
    },
    /// The server's authentication challenge (docs/protocol.md §2).
    AuthChallenge {
        bytes: usize,
    },
    /// The client's HMAC of the challenge.
    AuthAnswer {
        bytes: usize,
    },
    /// A frame's 4-byte length and JSON header.
    FrameHeader {
        header_len: u32,
        header: String,
        body_len: u64,
    },
    /// Some of a frame's body: `bytes` here, `done` of `of` so far.
    FrameBody {
        bytes: u64,
        done: u64,
        of: u64,
    },
    /// A frame's length or header that continues in the next segment.
    FramePart {
        what: &'static str,
        have: usize,
        need: usize,
    },
    /// The stream broke the framing rules; nothing after is cut.
    FrameError {
        reason: String,
    },
    Tftp(TftpMeaning),
    Ipmsg(IpmsgMeaning),
    /// Bytes to echo, or echoed.
    Echo {
        bytes: usize,
    },
    /// An RFC 868 time: seconds since 1900 and the UTC time they name.
    Time {
        since_1900: u32,
        utc: String,
    },
    /// A line of text (daytime, the course's time server).
    Text {
        text: String,
    },
    /// Application bytes sockit does not take apart.
    Data {
        bytes: usize,
    },
    Undecodable {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TftpMeaning {
    pub opcode: u16,
    /// RRQ, WRQ, DATA, ACK, ERROR, OACK.
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_len: Option<usize>,
    /// The last DATA of a transfer: shorter than the block size.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
    /// This DATA's place in its window (RFC 7440), 1-based, and the size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<(u16, u16)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpmsgMeaning {
    pub command: u32,
    /// IPMSG_SENDMSG and the like.
    pub mode: String,
    pub options: Vec<&'static str>,
    pub packet_no: u64,
    pub user: String,
    pub host: String,
    /// The extra section, decoded (UTF-8 when flagged or valid, else GB18030).
    pub text: String,
}

/// Longest header text kept in a meaning; the rest is elided.
const HEADER_SHOWN: usize = 160;

/// One direction of a framed stream, cut into frames as bytes arrive.
#[derive(Debug, Default)]
pub struct FramedStream {
    state: FramedState,
    /// The length prefix or header gathered so far (at most 4 + 64 KiB).
    pending: Vec<u8>,
    pub frames: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FramedState {
    #[default]
    Prefix,
    Header {
        len: u32,
    },
    Body {
        remaining: u64,
        of: u64,
    },
    Broken,
}

impl FramedStream {
    /// The stream lost bytes: what follows cannot be cut.
    pub fn lose_sync(&mut self) {
        self.state = FramedState::Broken;
        self.pending = Vec::new();
    }

    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Meaning>) {
        while !data.is_empty() {
            match self.state {
                FramedState::Broken => return,
                FramedState::Prefix => {
                    let n = (4 - self.pending.len()).min(data.len());
                    self.pending.extend_from_slice(data.get(..n).unwrap_or_default());
                    data = data.get(n..).unwrap_or_default();
                    let Ok(prefix) = <[u8; 4]>::try_from(self.pending.as_slice()) else {
                        out.push(Meaning::FramePart {
                            what: "length prefix",
                            have: self.pending.len(),
                            need: 4,
                        });
                        return;
                    };
                    let len = u32::from_le_bytes(prefix);
                    if len == 0 || len > DEFAULT_MAX_HEADER_LEN {
                        out.push(Meaning::FrameError {
                            reason: format!("a header length of {len} (1 to {DEFAULT_MAX_HEADER_LEN} allowed)"),
                        });
                        self.lose_sync();
                        return;
                    }
                    self.state = FramedState::Header { len };
                }
                FramedState::Header { len } => {
                    let need = 4 + len as usize;
                    let n = (need - self.pending.len()).min(data.len());
                    self.pending.extend_from_slice(data.get(..n).unwrap_or_default());
                    data = data.get(n..).unwrap_or_default();
                    if self.pending.len() < need {
                        out.push(Meaning::FramePart {
                            what: "header",
                            have: self.pending.len() - 4,
                            need: len as usize,
                        });
                        return;
                    }
                    let json = self.pending.get(4..).unwrap_or_default();
                    let header = match serde_json::from_slice::<serde_json::Value>(json) {
                        Ok(serde_json::Value::Object(map)) => map,
                        Ok(_) => return self.broken(out, "the header is JSON but not an object".into()),
                        Err(e) => return self.broken(out, format!("the header is not JSON: {e}")),
                    };
                    let body_len = match frame::body_len(&header) {
                        Ok(n) => n,
                        Err(e) => return self.broken(out, e.to_string()),
                    };
                    let mut text = serde_json::Value::Object(header).to_string();
                    if text.len() > HEADER_SHOWN {
                        let cut = (0..=HEADER_SHOWN)
                            .rev()
                            .find(|&i| text.is_char_boundary(i))
                            .unwrap_or(0);
                        text.truncate(cut);
                        text.push('…');
                    }
                    out.push(Meaning::FrameHeader {
                        header_len: len,
                        header: text,
                        body_len,
                    });
                    self.frames += 1;
                    self.pending.clear();
                    self.state = if body_len == 0 {
                        FramedState::Prefix
                    } else {
                        FramedState::Body {
                            remaining: body_len,
                            of: body_len,
                        }
                    };
                }
                FramedState::Body { remaining, of } => {
                    let n = remaining.min(data.len() as u64);
                    data = data.get(n as usize..).unwrap_or_default();
                    let left = remaining - n;
                    out.push(Meaning::FrameBody {
                        bytes: n,
                        done: of - left,
                        of,
                    });
                    self.state = if left == 0 {
                        FramedState::Prefix
                    } else {
                        FramedState::Body { remaining: left, of }
                    };
                }
            }
        }
    }

    fn broken(&mut self, out: &mut Vec<Meaning>, reason: String) {
        out.push(Meaning::FrameError { reason });
        self.lose_sync();
    }
}

/// Could these first bytes from a client start a frame? A plausible
/// length, then a JSON object's `{`.
pub fn looks_framed(first: &[u8]) -> bool {
    match (le32(first), first.get(4)) {
        (Some(len), Some(b'{')) => (1..=DEFAULT_MAX_HEADER_LEN).contains(&len),
        _ => false,
    }
}

pub use crate::auth::looks_like_challenge;

/// The big-endian u16 at `at`, if the bytes reach that far.
pub(crate) fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let two: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(two))
}

/// The little-endian u32 the bytes start with.
fn le32(bytes: &[u8]) -> Option<u32> {
    let four: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(four))
}

/// What a TFTP transfer agreed on, for reading its DATA packets.
#[derive(Debug, Clone, Copy)]
pub struct TftpSession {
    pub blksize: usize,
    pub windowsize: u16,
}

impl Default for TftpSession {
    fn default() -> Self {
        TftpSession {
            blksize: 512,
            windowsize: 1,
        }
    }
}

impl TftpSession {
    pub fn explain(&mut self, datagram: &[u8]) -> Meaning {
        let opcode = be16(datagram, 0).unwrap_or(0);
        let packet = match TftpPacket::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                return Meaning::Undecodable {
                    reason: format!("TFTP: {e}"),
                };
            }
        };
        let mut m = TftpMeaning {
            opcode,
            name: "",
            block: None,
            data_len: None,
            last: false,
            window: None,
            file: None,
            mode: None,
            options: Vec::new(),
            error_code: None,
            message: None,
        };
        match packet {
            TftpPacket::Rrq(r) | TftpPacket::Wrq(r) => {
                m.name = if opcode == 1 { "RRQ" } else { "WRQ" };
                m.file = Some(r.filename);
                m.mode = Some(r.mode.as_str());
                m.options = r.options;
            }
            TftpPacket::Oack { options } => {
                m.name = "OACK";
                for (k, v) in &options {
                    match k.as_str() {
                        "blksize" => self.blksize = v.parse().unwrap_or(self.blksize),
                        "windowsize" => self.windowsize = v.parse().unwrap_or(self.windowsize).max(1),
                        _ => {}
                    }
                }
                m.options = options;
            }
            TftpPacket::Data { block, data } => {
                m.name = "DATA";
                m.block = Some(block);
                m.data_len = Some(data.len());
                m.last = data.len() < self.blksize;
                if self.windowsize > 1 {
                    // Blocks count from 1, so block b is slot (b-1) mod w + 1
                    // in the window that starts after the last ACK.
                    let slot = (block.wrapping_sub(1) % self.windowsize) + 1;
                    m.window = Some((slot, self.windowsize));
                }
            }
            TftpPacket::Ack { block } => {
                m.name = "ACK";
                m.block = Some(block);
            }
            TftpPacket::Error { code, message } => {
                m.name = "ERROR";
                m.error_code = be16(datagram, 2);
                m.message = Some(if message.is_empty() { code.to_string() } else { message });
            }
        }
        Meaning::Tftp(m)
    }
}

/// A TFTP request (RRQ or WRQ with a known mode): how a transfer starts.
pub fn looks_like_tftp_request(datagram: &[u8]) -> bool {
    matches!(
        TftpPacket::decode(datagram),
        Ok(TftpPacket::Rrq(_) | TftpPacket::Wrq(_))
    )
}

pub fn ipmsg(datagram: &[u8]) -> Meaning {
    match crate::ipmsg::packet::Packet::decode(datagram) {
        Ok(p) => {
            let parts = p.extra_parts();
            let text = parts
                .first()
                .map(|t| crate::ipmsg::extra::decode_text(t, p.command, crate::assist::text::TextEncoding::Gbk))
                .unwrap_or_default();
            Meaning::Ipmsg(IpmsgMeaning {
                command: p.command.number(),
                mode: ipmsg_mode_name(p.command.mode),
                options: ipmsg_options(p.command.mode, p.command.opts),
                packet_no: p.packet_no,
                user: String::from_utf8_lossy(&p.user).into_owned(),
                host: String::from_utf8_lossy(&p.host).into_owned(),
                text,
            })
        }
        Err(e) => Meaning::Undecodable {
            reason: format!("IPMSG: {e}"),
        },
    }
}

/// An IPMSG packet: a version, a packet number, names and a command.
pub fn looks_like_ipmsg(datagram: &[u8]) -> bool {
    crate::ipmsg::packet::Packet::decode(datagram).is_ok()
}

fn ipmsg_mode_name(mode: IpmsgMode) -> String {
    let name = match mode {
        IpmsgMode::NoOperation => "NOOPERATION",
        IpmsgMode::BrEntry => "BR_ENTRY",
        IpmsgMode::BrExit => "BR_EXIT",
        IpmsgMode::AnsEntry => "ANSENTRY",
        IpmsgMode::BrAbsence => "BR_ABSENCE",
        IpmsgMode::SendMsg => "SENDMSG",
        IpmsgMode::RecvMsg => "RECVMSG",
        IpmsgMode::ReadMsg => "READMSG",
        IpmsgMode::GetInfo => "GETINFO",
        IpmsgMode::SendInfo => "SENDINFO",
        IpmsgMode::GetFileData => "GETFILEDATA",
        IpmsgMode::ReleaseFiles => "RELEASEFILES",
        IpmsgMode::Other(byte) => return format!("IPMSG_{byte:#04x}"),
    };
    format!("IPMSG_{name}")
}

/// The option flags by name; the same bit means different things for
/// entries and for messages (ipmsg.h).
fn ipmsg_options(mode: IpmsgMode, opts: u32) -> Vec<&'static str> {
    let entry = matches!(
        mode,
        IpmsgMode::BrEntry | IpmsgMode::BrExit | IpmsgMode::AnsEntry | IpmsgMode::BrAbsence
    );
    let named: &[(u32, &'static str)] = if entry {
        &[
            (opt::ABSENCE, "ABSENCE"),
            (opt::DIALUP, "DIALUP"),
            (opt::FILEATTACH, "FILEATTACH"),
            (opt::ENCRYPT, "ENCRYPT"),
            (opt::UTF8, "UTF8"),
            (opt::CAPUTF8, "CAPUTF8"),
        ]
    } else {
        &[
            (opt::SENDCHECK, "SENDCHECK"),
            (opt::SECRET, "SECRET"),
            (opt::BROADCAST, "BROADCAST"),
            (opt::MULTICAST, "MULTICAST"),
            (opt::AUTORET, "AUTORET"),
            (opt::RETRY, "RETRY"),
            (opt::NOLOG, "NOLOG"),
            (opt::NOADDLIST, "NOADDLIST"),
            (opt::READCHECK, "READCHECK"),
            (opt::FILEATTACH, "FILEATTACH"),
            (opt::ENCRYPT, "ENCRYPT"),
            (opt::UTF8, "UTF8"),
            (opt::CAPUTF8, "CAPUTF8"),
        ]
    };
    named
        .iter()
        .filter(|(bit, _)| opts & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// An RFC 868 reply, read near the time it was captured.
pub fn time(bytes: [u8; 4], captured_unix: i64) -> Meaning {
    let unix = crate::clock::rfc868_decode(bytes, captured_unix);
    let utc = chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    Meaning::Time {
        since_1900: u32::from_be_bytes(bytes),
        utc,
    }
}

/// Text as a one-line value (control characters escaped).
pub fn text(bytes: &[u8]) -> Meaning {
    let text = String::from_utf8_lossy(bytes);
    Meaning::Text {
        text: crate::display::escape(text.trim_end_matches(['\r', '\n']), false).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(header: &str, body: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn frames_cut_the_same_however_the_segments_fall() {
        let mut stream = frame(r#"{"cmd":"put","data_size":5}"#, b"hello");
        stream.extend(frame(r#"{"cmd":"ls"}"#, b""));
        let whole = {
            let mut s = FramedStream::default();
            let mut out = Vec::new();
            s.feed(&stream, &mut out);
            out
        };
        assert_eq!(whole.len(), 3, "{whole:?}");
        assert!(matches!(
            &whole[0],
            Meaning::FrameHeader {
                header_len: 27,
                body_len: 5,
                ..
            }
        ));
        assert_eq!(
            whole[1],
            Meaning::FrameBody {
                bytes: 5,
                done: 5,
                of: 5
            }
        );
        for cut in 1..stream.len() {
            let mut s = FramedStream::default();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            s.feed(&stream[..cut], &mut a);
            s.feed(&stream[cut..], &mut b);
            assert_eq!(s.frames, 2, "cut at {cut}");
            let headers = a
                .iter()
                .chain(&b)
                .filter(|m| matches!(m, Meaning::FrameHeader { .. }))
                .count();
            assert_eq!(headers, 2);
        }
    }

    #[test]
    fn a_broken_frame_is_reported_once_and_stops_the_cutting() {
        let mut s = FramedStream::default();
        let mut out = Vec::new();
        s.feed(&[0, 0, 0, 0, b'{', b'}'], &mut out);
        assert!(matches!(&out[..], [Meaning::FrameError { .. }]));
        s.feed(&frame("{}", b""), &mut out);
        assert_eq!(out.len(), 1);
        assert!(looks_framed(&frame("{}", b"")));
        assert!(!looks_framed(b"GET / HTTP/1.1"));
    }

    #[test]
    fn tftp_data_shows_its_window_place_once_negotiated() {
        let mut s = TftpSession::default();
        let oack = b"\x00\x06blksize\x001024\x00windowsize\x004\x00";
        assert!(matches!(
            s.explain(oack),
            Meaning::Tftp(TftpMeaning { name: "OACK", .. })
        ));
        let mut data = vec![0, 3, 0, 6];
        data.extend(vec![0; 100]);
        let Meaning::Tftp(m) = s.explain(&data) else { panic!() };
        assert_eq!(
            (m.block, m.data_len, m.last, m.window),
            (Some(6), Some(100), true, Some((2, 4)))
        );
    }
}
