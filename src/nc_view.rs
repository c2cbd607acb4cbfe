//! How `sockit nc` shows a session: raw bytes (netcat), log lines with
//! optional timestamps and client tags, hexdumps, or JSON events; and the
//! `--log` copy, which is always timestamped log lines.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;

use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use sockit::nc::{CloseReason, NcEvent, PeerId};
use sockit_proto::assist::hex::{self, HexDump};
use sockit_proto::assist::messages::{FrameMode, Message, Splitter};
use sockit_proto::assist::text::{TextDecoder, TextEncoding};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes as they arrive (transcoded to UTF-8 when --encoding says so).
    Raw,
    /// One line per message: `[time] peer < text`.
    Log,
    /// A header line per message, then its hexdump.
    Hex,
    /// One JSON object per event.
    Json,
}

#[derive(Debug, Clone)]
pub struct ViewOptions {
    pub mode: Mode,
    pub timestamps: bool,
    pub encoding: TextEncoding,
    pub frame: Option<FrameMode>,
    /// Tag lines with the client number (listen with -k).
    pub many_peers: bool,
    /// Connection notices on stderr in raw mode (-v).
    pub verbose: bool,
    /// Print the listening address even without -v (port 0 was asked for).
    pub announce_listen: bool,
}

/// Per peer and direction: decoding state that spans reads.
#[derive(Debug)]
struct Flow {
    decoder: TextDecoder,
    dump: HexDump,
    splitter: Option<Splitter>,
}

impl Flow {
    fn new(opts: &ViewOptions) -> Self {
        Self {
            decoder: opts.encoding.decoder(),
            dump: HexDump::new(),
            splitter: opts.frame.map(Splitter::new),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    In,
    Out,
}

impl Direction {
    fn arrow(self) -> &'static str {
        match self {
            Direction::In => "<",
            Direction::Out => ">",
        }
    }
}

pub struct View<W> {
    opts: ViewOptions,
    out: W,
    log: Option<std::io::BufWriter<std::fs::File>>,
    flows: HashMap<(PeerId, Direction), Flow>,
}

impl<W> std::fmt::Debug for View<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("opts", &self.opts).finish_non_exhaustive()
    }
}

/// One message ready to show, before any timestamp is put in front.
struct Shown {
    head: String,
    body: Vec<String>,
}

impl<W: AsyncWrite + Unpin> View<W> {
    pub fn new(opts: ViewOptions, out: W, log: Option<std::fs::File>) -> Self {
        Self {
            opts,
            out,
            log: log.map(std::io::BufWriter::new),
            flows: HashMap::new(),
        }
    }

    pub async fn show(&mut self, event: &NcEvent) -> std::io::Result<()> {
        match event {
            NcEvent::Received { id, peer, data } => self.data(*id, *peer, Direction::In, data).await,
            NcEvent::Sent { id, peer, data } => self.data(*id, *peer, Direction::Out, data).await,
            NcEvent::Closed { id, peer, .. } => {
                for direction in [Direction::In, Direction::Out] {
                    self.flush_flow(*id, *peer, direction).await?;
                }
                self.notice(event).await
            }
            _ => self.notice(event).await,
        }
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if let Some(log) = &mut self.log {
            log.flush()?;
        }
        self.out.flush().await
    }

    async fn data(&mut self, id: PeerId, peer: SocketAddr, direction: Direction, data: &[u8]) -> std::io::Result<()> {
        if self.opts.mode == Mode::Raw && direction == Direction::In {
            if self.opts.encoding == TextEncoding::Utf8 {
                self.out.write_all(data).await?;
            } else {
                let text = self.flow(id, direction).decoder.decode(data, false);
                self.out.write_all(text.as_bytes()).await?;
            }
        }
        if self.opts.mode == Mode::Raw && self.log.is_none() {
            return Ok(());
        }
        let shown = self.messages(id, peer, direction, data);
        self.emit(id, peer, direction, &shown).await
    }

    /// Cuts what moved into messages and renders each once for the display
    /// and the log.
    fn messages(&mut self, id: PeerId, peer: SocketAddr, direction: Direction, data: &[u8]) -> Vec<(Shown, Vec<u8>)> {
        let tag = self.tag(id, peer);
        let opts = self.opts.clone();
        let flow = self.flow(id, direction);
        let mut out = Vec::new();
        let Some(splitter) = &mut flow.splitter else {
            let body = render(&opts, flow, data, true);
            let head = format!("{tag} {} {} bytes", direction.arrow(), data.len());
            out.push((Shown { head, body }, data.to_vec()));
            return out;
        };
        splitter.push(data);
        loop {
            match splitter.next_message() {
                Ok(Some(message)) => out.push(describe(&opts, &tag, direction, &message)),
                Ok(None) => break,
                Err(e) => {
                    let head = format!(
                        "{tag} {} framing lost: {e}; showing the rest unframed",
                        direction.arrow()
                    );
                    out.push((Shown { head, body: Vec::new() }, Vec::new()));
                    flow.splitter = None;
                    break;
                }
            }
        }
        out
    }

    async fn flush_flow(&mut self, id: PeerId, peer: SocketAddr, direction: Direction) -> std::io::Result<()> {
        let tag = self.tag(id, peer);
        let opts = self.opts.clone();
        let Some(flow) = self.flows.get_mut(&(id, direction)) else {
            return Ok(());
        };
        let shown = match flow.splitter.as_mut().map(Splitter::finish) {
            Some(Ok(Some(message))) => vec![describe(&opts, &tag, direction, &message)],
            Some(Err(e)) => {
                let head = format!("{tag} {} {e}", direction.arrow());
                vec![(Shown { head, body: Vec::new() }, Vec::new())]
            }
            _ => Vec::new(),
        };
        self.emit(id, peer, direction, &shown).await
    }

    async fn emit(
        &mut self,
        id: PeerId,
        peer: SocketAddr,
        direction: Direction,
        shown: &[(Shown, Vec<u8>)],
    ) -> std::io::Result<()> {
        let stamp = timestamp();
        for (message, raw) in shown {
            if let Some(log) = &mut self.log {
                write_lines(log, &stamp, message)?;
            }
            match self.opts.mode {
                Mode::Raw => {}
                Mode::Log | Mode::Hex => {
                    let prefix = if self.opts.timestamps { stamp.as_str() } else { "" };
                    let mut text = Vec::new();
                    write_lines(&mut text, prefix, message)?;
                    self.out.write_all(&text).await?;
                }
                Mode::Json => {
                    let (text, _) = TextDecoder::decode_message(self.opts.encoding, raw);
                    let event = crate::output::event(json!({
                        "event": "data",
                        "direction": if direction == Direction::In { "in" } else { "out" },
                        "id": id,
                        "peer": peer.to_string(),
                        "bytes": raw.len(),
                        "text": text,
                        "hex": hex::format(raw),
                    }));
                    self.out.write_all(format!("{event}\n").as_bytes()).await?;
                }
            }
        }
        Ok(())
    }

    /// Connection events: stderr in raw mode (with -v), inline otherwise.
    async fn notice(&mut self, event: &NcEvent) -> std::io::Result<()> {
        let line = match event {
            NcEvent::Listening(addr) => {
                if self.opts.mode == Mode::Raw && !self.opts.verbose && !self.opts.announce_listen {
                    return Ok(());
                }
                // Tests and scripts read this line for the bound port.
                eprintln!("listening on {addr}");
                return Ok(());
            }
            NcEvent::Connected { id, peer, local } => format!("{} connected (local {local})", self.tag(*id, *peer)),
            NcEvent::Closed { id, peer, reason } => {
                format!("{} closed: {}", self.tag(*id, *peer), describe_close(reason))
            }
            NcEvent::Refused { peer } => format!("{peer} turned away: too many clients"),
            NcEvent::InputDone => "input ended".to_string(),
            NcEvent::Answered { id, peer, rule } => format!("{} answered by {rule}", self.tag(*id, *peer)),
            NcEvent::Note { id, peer, text } => format!("{} {text}", self.tag(*id, *peer)),
            _ => return Ok(()),
        };
        let stamp = timestamp();
        if let Some(log) = &mut self.log {
            writeln!(log, "{stamp}-- {line}")?;
        }
        match self.opts.mode {
            Mode::Raw => {
                if self.opts.verbose {
                    eprintln!("{line}");
                }
            }
            Mode::Log | Mode::Hex => {
                let prefix = if self.opts.timestamps { stamp.as_str() } else { "" };
                self.out.write_all(format!("{prefix}-- {line}\n").as_bytes()).await?;
            }
            Mode::Json => {
                let value = crate::output::event(json_notice(event));
                self.out.write_all(format!("{value}\n").as_bytes()).await?;
            }
        }
        Ok(())
    }

    fn tag(&self, id: PeerId, peer: SocketAddr) -> String {
        if self.opts.many_peers {
            format!("#{id} {peer}")
        } else {
            peer.to_string()
        }
    }

    fn flow(&mut self, id: PeerId, direction: Direction) -> &mut Flow {
        let opts = &self.opts;
        self.flows.entry((id, direction)).or_insert_with(|| Flow::new(opts))
    }
}

fn describe(opts: &ViewOptions, tag: &str, direction: Direction, message: &Message) -> (Shown, Vec<u8>) {
    let arrow = direction.arrow();
    let (head, bytes): (String, &[u8]) = match message {
        Message::Line { text, complete } => {
            let mark = if *complete { "" } else { " (no line end yet)" };
            (format!("{tag} {arrow} line{mark}"), text)
        }
        Message::Sized(payload) => (format!("{tag} {arrow} message of {} bytes", payload.len()), payload),
        Message::FrameHeader { header, body_len } => {
            let json = serde_json::to_string(header).unwrap_or_default();
            return (
                Shown {
                    head: format!("{tag} {arrow} header {json} (body {body_len} bytes)"),
                    body: Vec::new(),
                },
                Vec::new(),
            );
        }
        Message::FrameBody(piece) => (format!("{tag} {arrow} body piece of {} bytes", piece.len()), piece),
    };
    let mut flow = Flow::new(opts);
    let body = render(opts, &mut flow, bytes, false);
    (Shown { head, body }, bytes.to_vec())
}

/// The body lines of a message: a hexdump, or its decoded text with
/// control characters made visible so each message stays on its lines.
fn render(opts: &ViewOptions, flow: &mut Flow, data: &[u8], streaming: bool) -> Vec<String> {
    if opts.mode == Mode::Hex {
        return flow.dump.lines(data).into_iter().map(|l| format!("  {l}")).collect();
    }
    let text = if streaming {
        flow.decoder.decode(data, false)
    } else {
        TextDecoder::decode_message(opts.encoding, data).0
    };
    let mut lines: Vec<String> = text.split_inclusive('\n').map(visible).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// A line with its ending and other control characters written as escapes.
fn visible(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for ch in line
        .strip_suffix('\n')
        .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l))
        .chars()
    {
        match ch {
            '\t' => out.push('\t'),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn write_lines(out: &mut impl std::io::Write, prefix: &str, message: &Shown) -> std::io::Result<()> {
    // Text messages read best as `head: text` on one line when short.
    match message.body.as_slice() {
        [only] if !only.starts_with("  ") => writeln!(out, "{prefix}{}: {only}", message.head),
        body => {
            writeln!(out, "{prefix}{}", message.head)?;
            for line in body {
                writeln!(out, "{prefix}{line}")?;
            }
            Ok(())
        }
    }
}

/// A connection event as JSON: what happened, with who and why as fields.
fn json_notice(event: &NcEvent) -> serde_json::Value {
    match event {
        NcEvent::Connected { id, peer, local } => {
            json!({"event": "connected", "id": id, "peer": peer.to_string(), "local": local.to_string()})
        }
        NcEvent::Closed { id, peer, reason } => json!({
            "event": "closed", "id": id, "peer": peer.to_string(),
            "reason": close_code(reason), "detail": describe_close(reason),
        }),
        NcEvent::Refused { peer } => json!({"event": "refused", "peer": peer.to_string(), "reason": "max-clients"}),
        NcEvent::Answered { id, peer, rule } => {
            json!({"event": "answered", "id": id, "peer": peer.to_string(), "rule": rule})
        }
        NcEvent::Note { id, peer, text } => json!({"event": "note", "id": id, "peer": peer.to_string(), "text": text}),
        _ => json!({"event": "input-ended"}),
    }
}

/// A close reason as a stable word for scripts.
fn close_code(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::PeerClosed => "peer-closed",
        CloseReason::QuitAfterEof => "quit-after-eof",
        CloseReason::Idle => "idle",
        CloseReason::TooSlow => "too-slow",
        CloseReason::Error(_) => "error",
        CloseReason::ByRule(_) => "rule",
        CloseReason::Disconnected => "disconnected",
    }
}

fn describe_close(reason: &CloseReason) -> String {
    match reason {
        CloseReason::PeerClosed => "by the peer".into(),
        CloseReason::QuitAfterEof => "-q expired after input ended".into(),
        CloseReason::Idle => "idle for the -w limit".into(),
        CloseReason::TooSlow => "it stopped reading and fell too far behind".into(),
        CloseReason::Error(e) => e.clone(),
        CloseReason::ByRule(rule) => format!("by {rule}"),
        CloseReason::Disconnected => "disconnected by the session".into(),
    }
}

/// `[HH:MM:SS.mmm] ` in local time.
fn timestamp() -> String {
    format!("[{}] ", chrono::Local::now().format("%H:%M:%S%.3f"))
}
