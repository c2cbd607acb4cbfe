//! `sockit explain`: a capture read back as conversations, each packet with
//! what it means (the handshake, the close, frames, TFTP blocks, IPMSG
//! commands).
//!
//! [`capture`] reads pcap and pcapng, [`packet`] takes a frame down to TCP
//! or UDP, [`apps`] says what the bytes mean, and the [`Explainer`] here
//! follows each conversation: which side is the client, sequence numbers
//! relative to each side's first, the stream in order for the framed
//! protocol, and which UDP flows belong to a TFTP transfer.

pub mod apps;
pub mod capture;
pub mod packet;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

pub use apps::{App, Meaning, Side};
pub use capture::{Capture, CaptureError, Frame};
use packet::{TcpFlags, Transport};

/// Conversations followed at once; past this, new ones are listed as
/// skipped (a hostile capture must not take unbounded memory).
pub const MAX_CONVERSATIONS: usize = 100_000;

/// Client bytes kept to recognise an echo server (its first reply equals
/// the start of what the client sent).
const ECHO_PROBE: usize = 64;

/// A TFTP requester remembered, so the transfer that follows on new ports
/// is read as TFTP too.
const MAX_TFTP_REQUESTERS: usize = 4096;

/// How the user said a port should be read (`--decode PORT=APP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeRule {
    pub port: u16,
    pub app: App,
}

/// What the explainer reports, in capture order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A conversation's first packet is next.
    Conversation(Start),
    Packet(Line),
    /// A frame that is not TCP or UDP over IP, or one past a limit.
    Skipped {
        number: u64,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Start {
    pub conversation: u32,
    pub transport: &'static str,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub app: App,
    pub app_name: &'static str,
    /// Joined after it began (no SYN seen), so client and server are a guess.
    pub mid_stream: bool,
}

/// One packet, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub number: u64,
    /// Seconds since the capture's first frame (Wireshark's relative time).
    pub seconds: f64,
    pub conversation: u32,
    pub from: Side,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpLine>,
    /// Application bytes (TCP payload or UDP payload).
    pub len: usize,
    pub meaning: Vec<Meaning>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpLine {
    /// Relative to this side's initial sequence number, as Wireshark shows.
    pub seq: u32,
    /// Relative to the other side's; 0 without the ACK flag.
    pub ack: u32,
    pub seq_raw: u32,
    pub ack_raw: u32,
    pub flags: Vec<&'static str>,
    pub flags_raw: u8,
    pub window: u16,
}

/// A conversation's totals, at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub conversation: u32,
    pub transport: &'static str,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub app: App,
    pub packets: u64,
    /// Application bytes each way.
    pub client_bytes: u64,
    pub server_bytes: u64,
    /// Framed protocol: frames each way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<(u64, u64)>,
    /// TCP: completed handshake, how it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    tcp: bool,
    low: SocketAddr,
    high: SocketAddr,
}

impl Key {
    fn new(tcp: bool, a: SocketAddr, b: SocketAddr) -> Key {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        Key { tcp, low, high }
    }
}

#[derive(Debug)]
struct Conversation {
    id: u32,
    client: SocketAddr,
    server: SocketAddr,
    app: App,
    decided: bool,
    packets: u64,
    bytes: Both<u64>,
    state: State,
}

#[derive(Debug)]
enum State {
    Tcp(Box<TcpState>),
    Udp(UdpState),
}

/// One value for each direction, by the side that sends.
#[derive(Debug, Default, Clone, Copy)]
struct Both<T> {
    client: T,
    server: T,
}

impl<T> Both<T> {
    fn of(&self, side: Side) -> &T {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn of_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

#[derive(Debug, Default)]
struct TcpState {
    /// Per direction (0 client to server, 1 back): the initial sequence
    /// number, and the next one expected.
    isn: Both<Option<u32>>,
    next: Both<Option<u32>>,
    handshake: u8,
    /// The sequence number each side's FIN took, and whether it was acked.
    fin: Both<Option<u32>>,
    fin_acked: Both<bool>,
    close_step: u8,
    reset: bool,
    streams: Both<apps::FramedStream>,
    /// The start of the client's stream, to recognise an echo.
    probe: Vec<u8>,
    auth: Auth,
}

/// The framed services' optional challenge and answer (docs/protocol.md §2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Auth {
    #[default]
    None,
    Challenged,
    AwaitingAnswer,
    Done,
}

#[derive(Debug, Default)]
struct UdpState {
    tftp: apps::TftpSession,
    last_request: Vec<u8>,
}

/// Follows every conversation in a capture.
#[derive(Debug, Default)]
pub struct Explainer {
    conversations: HashMap<Key, Conversation>,
    next_id: u32,
    first_time: Option<Duration>,
    rules: Vec<DecodeRule>,
    tftp_requesters: Vec<SocketAddr>,
    finished: Vec<Summary>,
}

impl Explainer {
    pub fn new(rules: Vec<DecodeRule>) -> Explainer {
        Explainer {
            rules,
            ..Explainer::default()
        }
    }

    /// Explains one frame; the events go to `out`.
    pub fn frame(&mut self, frame: &Frame, out: &mut Vec<Event>) {
        let first = *self.first_time.get_or_insert(frame.time);
        let time = frame.time.saturating_sub(first).as_secs_f64();
        let packet = match packet::decode(frame.link, &frame.data) {
            Ok(p) => p,
            Err(e) => {
                out.push(Event::Skipped {
                    number: frame.number,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let tcp = matches!(packet.transport, Transport::Tcp(_));
        let key = Key::new(tcp, packet.src, packet.dst);
        let mut is_new = false;
        if !self.conversations.contains_key(&key) {
            if self.conversations.len() >= MAX_CONVERSATIONS {
                out.push(Event::Skipped {
                    number: frame.number,
                    reason: format!("more than {MAX_CONVERSATIONS} conversations at once"),
                });
                return;
            }
            let conversation = self.open(&packet);
            self.conversations.insert(key, conversation);
            is_new = true;
        }
        let Some(conversation) = self.conversations.get_mut(&key) else {
            return;
        };
        let from = if packet.src == conversation.client {
            Side::Client
        } else {
            Side::Server
        };
        let dir = from;
        conversation.packets += 1;
        *conversation.bytes.of_mut(dir) += packet.payload.len() as u64;
        let captured_unix = i64::try_from(frame.time.as_secs()).unwrap_or(0);
        let mut meaning = Vec::new();
        let tcp_line = match packet.transport {
            Transport::Tcp(h) => tcp_packet(conversation, dir, h, packet.payload, captured_unix, &mut meaning),
            Transport::Udp => {
                let requester = udp_packet(conversation, dir, packet.payload, captured_unix, &mut meaning);
                if requester && self.tftp_requesters.len() < MAX_TFTP_REQUESTERS {
                    self.tftp_requesters.push(packet.src);
                }
                None
            }
        };
        if is_new {
            // Announced after its first packet, so a protocol recognised
            // by that packet's content is named.
            out.push(Event::Conversation(Start {
                conversation: conversation.id,
                transport: if tcp { "tcp" } else { "udp" },
                client: conversation.client,
                server: conversation.server,
                app: conversation.app,
                app_name: conversation.app.describe(),
                mid_stream: tcp && !matches!(packet.transport, Transport::Tcp(h) if h.flags.has(TcpFlags::SYN)),
            }));
        }
        out.push(Event::Packet(Line {
            number: frame.number,
            seconds: time,
            conversation: conversation.id,
            from,
            src: packet.src,
            dst: packet.dst,
            transport: if tcp { "tcp" } else { "udp" },
            tcp: tcp_line,
            len: packet.payload.len(),
            meaning,
        }));
        let ended = matches!(&conversation.state, State::Tcp(t) if t.reset || t.close_step >= 4);
        if ended {
            if let Some(c) = self.conversations.remove(&key) {
                self.finished.push(summary(&c));
            }
        }
    }

    /// Every conversation's totals, in the order they began.
    pub fn finish(mut self) -> Vec<Summary> {
        let mut all = std::mem::take(&mut self.finished);
        all.extend(self.conversations.values().map(summary));
        all.sort_by_key(|s| s.conversation);
        all
    }

    fn open(&mut self, packet: &packet::Packet<'_>) -> Conversation {
        self.next_id += 1;
        let (client, server) = match packet.transport {
            // A SYN comes from the client, a SYN-ACK from the server.
            Transport::Tcp(h) if h.flags.has(TcpFlags::SYN) && h.flags.has(TcpFlags::ACK) => (packet.dst, packet.src),
            Transport::Tcp(h) if h.flags.has(TcpFlags::SYN) => (packet.src, packet.dst),
            // Mid-stream: the lower port is more likely the server's.
            Transport::Tcp(_) if packet.src.port() < packet.dst.port() => (packet.dst, packet.src),
            _ => (packet.src, packet.dst),
        };
        let ruled = self
            .rules
            .iter()
            .find(|r| r.port == server.port() || r.port == client.port())
            .map(|r| r.app);
        let tftp_flow = matches!(packet.transport, Transport::Udp)
            && self.tftp_requesters.iter().any(|r| *r == client || *r == server);
        let known = ruled
            .or(tftp_flow.then_some(App::Tftp))
            .or_else(|| App::by_port(server.port()));
        // A TFTP transfer's first datagram comes from the server's new
        // port to the requester: make the requester the client.
        let (client, server) = if tftp_flow && self.tftp_requesters.contains(&server) {
            (server, client)
        } else {
            (client, server)
        };
        Conversation {
            id: self.next_id,
            client,
            server,
            app: known.unwrap_or(App::Unknown),
            decided: known.is_some(),
            packets: 0,
            bytes: Both::default(),
            state: match packet.transport {
                Transport::Tcp(_) => State::Tcp(Box::default()),
                Transport::Udp => State::Udp(UdpState::default()),
            },
        }
    }
}

fn tcp_packet(
    c: &mut Conversation,
    dir: Side,
    h: packet::TcpHeader,
    payload: &[u8],
    captured_unix: i64,
    meaning: &mut Vec<Meaning>,
) -> Option<TcpLine> {
    let other = dir.other();
    // The key holds the transport, so a TCP packet finds TCP state.
    let State::Tcp(t) = &mut c.state else { return None };
    let syn = h.flags.has(TcpFlags::SYN);
    let ack = h.flags.has(TcpFlags::ACK);
    if syn {
        *t.isn.of_mut(dir) = Some(h.seq);
        *t.next.of_mut(dir) = Some(h.seq.wrapping_add(1));
        t.handshake = if ack { 2 } else { 1 };
        meaning.push(Meaning::Handshake { step: t.handshake });
    } else if t.isn.of(dir).is_none() {
        // Joined mid-stream: this is where this side's count starts.
        *t.isn.of_mut(dir) = Some(h.seq.wrapping_sub(1));
        *t.next.of_mut(dir) = Some(h.seq);
    }
    if !syn && ack && t.handshake == 2 && dir == Side::Client && payload.is_empty() {
        t.handshake = 3;
        meaning.push(Meaning::Handshake { step: 3 });
    }
    let isn = t.isn.of(dir).unwrap_or(0);
    let line = TcpLine {
        seq: h.seq.wrapping_sub(isn),
        ack: if ack {
            t.isn.of(other).map_or(0, |i| h.ack.wrapping_sub(i))
        } else {
            0
        },
        seq_raw: h.seq,
        ack_raw: h.ack,
        flags: h.flags.names(),
        flags_raw: h.flags.0,
        window: h.window,
    };
    if !payload.is_empty() {
        stream_bytes(c, dir, h.seq, payload, captured_unix, meaning);
    }
    let State::Tcp(t) = &mut c.state else { return Some(line) };
    // The four-way close.
    let mut steps = Vec::new();
    if ack {
        if let Some(fin) = *t.fin.of(other) {
            if !*t.fin_acked.of(other) && h.ack == fin.wrapping_add(1) {
                *t.fin_acked.of_mut(other) = true;
                t.close_step += 1;
                steps.push(if t.fin.of(dir).is_some() { 4 } else { 2 });
            }
        }
    }
    if h.flags.has(TcpFlags::FIN) && t.fin.of(dir).is_none() {
        *t.fin.of_mut(dir) = Some(h.seq.wrapping_add(payload.len() as u32));
        t.close_step += 1;
        steps.push(if t.fin.of(other).is_some() { 3 } else { 1 });
    }
    if !steps.is_empty() {
        steps.sort_unstable();
        meaning.push(Meaning::Close { steps, side: dir });
    }
    if h.flags.has(TcpFlags::RST) {
        t.reset = true;
        meaning.push(Meaning::Reset { side: dir });
    }
    Some(line)
}

/// A segment's payload, in stream order: new bytes go to the dissector;
/// a retransmission or a gap is said as such.
fn stream_bytes(
    c: &mut Conversation,
    dir: Side,
    seq: u32,
    payload: &[u8],
    captured_unix: i64,
    meaning: &mut Vec<Meaning>,
) {
    let State::Tcp(t) = &mut c.state else { return };
    let expected = *t.next.of_mut(dir).get_or_insert(seq);
    // Signed distance in sequence space (RFC 793 arithmetic).
    let ahead = seq.wrapping_sub(expected) as i32;
    let fresh: &[u8] = if ahead < 0 {
        let old = (ahead.unsigned_abs() as usize).min(payload.len());
        meaning.push(Meaning::Retransmission { bytes: old as u64 });
        payload.get(old..).unwrap_or_default()
    } else {
        if ahead > 0 {
            meaning.push(Meaning::Gap {
                missing: u64::from(ahead.unsigned_abs()),
            });
            t.streams.of_mut(dir).lose_sync();
        }
        payload
    };
    if fresh.is_empty() {
        return;
    }
    *t.next.of_mut(dir) = Some(seq.wrapping_add(payload.len() as u32));
    if !c.decided {
        decide_tcp(c, dir, fresh);
    }
    let State::Tcp(t) = &mut c.state else { return };
    match c.app {
        App::Framed => {
            let mut fresh = fresh;
            if dir == Side::Server && t.auth == Auth::Challenged {
                meaning.push(Meaning::AuthChallenge { bytes: fresh.len() });
                t.auth = Auth::AwaitingAnswer;
                return;
            }
            if dir == Side::Client && t.auth == Auth::AwaitingAnswer {
                // The HMAC: 16 bytes (MD5) or 32 (SHA-256), maybe with
                // the first frame behind it in the same segment.
                let answer = [16, 32]
                    .into_iter()
                    .find(|&n| fresh.len() == n || fresh.get(n..).is_some_and(apps::looks_framed))
                    .unwrap_or(fresh.len().min(32));
                meaning.push(Meaning::AuthAnswer { bytes: answer });
                t.auth = Auth::Done;
                fresh = fresh.get(answer..).unwrap_or_default();
            }
            t.streams.of_mut(dir).feed(fresh, meaning);
        }
        App::Time => match <[u8; 4]>::try_from(fresh) {
            Ok(four) if dir == Side::Server => meaning.push(apps::time(four, captured_unix)),
            _ => meaning.push(Meaning::Data { bytes: fresh.len() }),
        },
        App::Text if dir == Side::Server => meaning.push(apps::text(fresh)),
        App::Echo => meaning.push(Meaning::Echo { bytes: fresh.len() }),
        _ => meaning.push(Meaning::Data { bytes: fresh.len() }),
    }
}

/// Which protocol a TCP conversation speaks, from its first bytes.
fn decide_tcp(c: &mut Conversation, dir: Side, fresh: &[u8]) {
    let State::Tcp(t) = &mut c.state else { return };
    let client_sent = c.bytes.client > 0;
    if dir == Side::Client {
        // The course's client sends the 4-byte length on its own, then
        // the header.
        let lone_prefix = <[u8; 4]>::try_from(fresh)
            .is_ok_and(|p| (1..=crate::frame::DEFAULT_MAX_HEADER_LEN).contains(&u32::from_le_bytes(p)));
        if apps::looks_framed(fresh) || lone_prefix {
            c.app = App::Framed;
            c.decided = true;
            return;
        }
        let room = ECHO_PROBE.saturating_sub(t.probe.len()).min(fresh.len());
        t.probe.extend_from_slice(fresh.get(..room).unwrap_or_default());
        return;
    }
    // The server's first bytes.
    if !client_sent {
        if apps::looks_like_challenge(fresh) {
            // sockit's framed services challenge before any frame; the
            // client's answer (16 or 32 bytes) comes next.
            c.app = App::Framed;
            t.auth = Auth::Challenged;
            c.decided = true;
        } else if fresh.len() == 4 {
            c.app = App::Time;
            c.decided = true;
        } else if crate::auth::is_text(fresh) {
            c.app = App::Text;
            c.decided = true;
        }
        return;
    }
    let n = t.probe.len().min(fresh.len());
    c.app = if n > 0 && t.probe.get(..n) == fresh.get(..n) {
        App::Echo
    } else {
        App::Unknown
    };
    t.probe = Vec::new();
    c.decided = true;
}

/// A UDP datagram; true when it is a TFTP request (its sender's later
/// flows are TFTP too).
fn udp_packet(c: &mut Conversation, dir: Side, payload: &[u8], captured_unix: i64, meaning: &mut Vec<Meaning>) -> bool {
    let State::Udp(u) = &mut c.state else { return false };
    let is_request = dir == Side::Client && apps::looks_like_tftp_request(payload);
    if !c.decided {
        if is_request {
            c.app = App::Tftp;
            c.decided = true;
        } else if apps::looks_like_ipmsg(payload) {
            c.app = App::Ipmsg;
            c.decided = true;
        } else if dir == Side::Server {
            c.app = if payload == u.last_request.as_slice() {
                App::Echo
            } else if payload.len() == 4 {
                App::Time
            } else if crate::auth::is_text(payload) {
                App::Text
            } else {
                App::Unknown
            };
            c.decided = true;
        }
    }
    if dir == Side::Client {
        u.last_request = payload.get(..payload.len().min(2048)).unwrap_or_default().to_vec();
    }
    meaning.push(match c.app {
        App::Tftp => u.tftp.explain(payload),
        App::Ipmsg => apps::ipmsg(payload),
        App::Echo => Meaning::Echo { bytes: payload.len() },
        App::Time if dir == Side::Server => match <[u8; 4]>::try_from(payload) {
            Ok(four) => apps::time(four, captured_unix),
            Err(_) => apps::text(payload),
        },
        App::Text | App::Time => apps::text(payload),
        _ => Meaning::Data { bytes: payload.len() },
    });
    c.app == App::Tftp && is_request
}

fn summary(c: &Conversation) -> Summary {
    let (transport, frames, ending) = match &c.state {
        State::Tcp(t) => (
            "tcp",
            (c.app == App::Framed).then_some((t.streams.client.frames, t.streams.server.frames)),
            Some(if t.reset {
                "reset"
            } else if t.close_step >= 4 {
                "closed"
            } else if t.fin.client.is_some() || t.fin.server.is_some() {
                "half-closed"
            } else {
                "open at the end of the capture"
            }),
        ),
        State::Udp(_) => ("udp", None, None),
    };
    Summary {
        conversation: c.id,
        transport,
        client: c.client,
        server: c.server,
        app: c.app,
        packets: c.packets,
        client_bytes: c.bytes.client,
        server_bytes: c.bytes.server,
        frames,
        ending,
    }
}
