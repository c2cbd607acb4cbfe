//! One TFTP transfer as a sans-IO state machine, for either end and either
//! direction: the driver feeds datagrams, timeouts and file bytes in, and
//! drains datagrams to send, the next deadline and events out.
//!
//! Rules it keeps (RFC 1350, RFC 1123 §4.2.3.1, RFC 2347, RFC 7440):
//! - Lock-step (window 1) or windowed sending; the window restarts after
//!   the last block the receiver acknowledged.
//! - Only a timeout retransmits. A duplicate ACK never does, which is what
//!   prevents the Sorcerer's Apprentice syndrome.
//! - A duplicate DATA is acknowledged again but delivered once.
//! - Block numbers wrap from 65535 to 0, or to 1 with the rollover option
//!   (see [`Rollover`]); inside, blocks are counted in u64.
//! - Retries are bounded; the receiver of the last block dallies to answer
//!   a retransmitted last DATA.
//! - A datagram from any address other than the peer's TID gets ERROR 5 and
//!   changes nothing.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::netascii;
use super::options::{Ask, OackError, Rollover, Settings};
use super::packet::{ErrorCode, Mode, Packet, Request, ack_packet, data_packet, error_packet};

/// Retransmission timeout when none is negotiated. One second is what
/// tftp-hpa uses; loopback and LANs answer in well under that.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Retransmissions of the same packet before the transfer is given up.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// Retransmissions to a peer that has never answered on our TID. Its
/// address may be forged, so it gets fewer copies of our larger replies.
pub const UNVERIFIED_RETRIES: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Used unless a timeout option is negotiated.
    pub timeout: Duration,
    pub max_retries: u32,
    /// After the last ACK, stay one timeout to repeat it if the last block
    /// comes again (RFC 1350 §6). Servers do; clients such as tftp-hpa and
    /// curl do not, since the file is already complete on their side.
    pub dally: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            dally: true,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The settings in force, once the peer has answered (client) or at
    /// once (server). Without an OACK these are RFC 1350's.
    Negotiated(Settings),
    /// Received file bytes, in order and exactly once (netascii translated).
    Data(Bytes),
    /// Every byte was delivered (receiver) or acknowledged (sender).
    Complete,
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the peer refused: {}", remote_text(*code, message))]
    Remote { code: ErrorCode, message: String },
    #[error("no answer after {0} retransmissions")]
    TimedOut(u32),
    #[error(transparent)]
    Oack(#[from] OackError),
    #[error("the peer broke the protocol: {0}")]
    Protocol(&'static str),
    #[error("aborted: {0}")]
    Aborted(String),
}

/// A peer's ERROR as a reader wants it: its own text when it says more
/// than the code, then the code's meaning.
fn remote_text(code: ErrorCode, message: &str) -> String {
    let meaning = code.to_string();
    if message.is_empty() || message.eq_ignore_ascii_case(&meaning) {
        meaning
    } else {
        format!("{message} ({meaning})")
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams sent again after a timeout or a duplicate.
    pub retransmits: u64,
    /// File bytes delivered (receiver) or acknowledged (sender), on the wire.
    pub bytes: u64,
}

#[derive(Debug)]
pub struct Transfer {
    peer: Peer,
    settings: Settings,
    config: Config,
    state: State,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    timer: Option<Instant>,
    retries: u32,
    /// The peer has sent something to our TID: its address is real.
    verified: bool,
    stats: Stats,
}

#[derive(Debug, Clone, Copy)]
enum Peer {
    Known(SocketAddr),
    /// A client before the first reply: the server answers from a new port.
    Awaiting(SocketAddr),
}

#[derive(Debug)]
enum State {
    Requesting {
        request: Bytes,
        ask: Ask,
        mode: Mode,
        is_read: bool,
    },
    Sending(Sender),
    Receiving(Receiver),
    Done,
}

#[derive(Debug)]
struct Sender {
    encoder: Option<netascii::Encoder>,
    /// Bytes not yet cut into a block: `pending[cut..]`. Cutting only moves
    /// `cut`; the buffer is compacted when more bytes arrive (then it is
    /// nearly empty), so a block costs no memmove of the whole buffer.
    pending: Vec<u8>,
    cut: usize,
    input_done: bool,
    /// DATA packets for blocks acked+1 onwards, with their payload sizes.
    blocks: VecDeque<(Bytes, usize)>,
    acked: u64,
    sent: u64,
    last_block: Option<u64>,
    /// An OACK to repeat until ACK 0 arrives (a read with options).
    handshake: Option<Bytes>,
}

#[derive(Debug)]
struct Receiver {
    decoder: Option<netascii::Decoder>,
    received: u64,
    /// Blocks taken since the last ACK (a window is acknowledged once).
    since_ack: u16,
    /// What a timeout repeats: the request, OACK or ACK 0 before the first
    /// block, the latest ACK after.
    last_sent: Bytes,
    /// Which block `last_sent` acknowledges (None: it is not an ACK).
    last_acked: Option<u64>,
    /// A gap was already reported for the current expected block.
    gap_reported: bool,
    /// The short last block arrived; the receiver is dallying.
    finished: bool,
}

impl Transfer {
    /// A server answering a read request. `negotiation` comes from
    /// [`super::options::negotiate`]; with an OACK to send, data waits for
    /// ACK 0.
    pub fn server_read(
        now: Instant,
        peer: SocketAddr,
        request: &Request,
        settings: Settings,
        oack: Option<Bytes>,
        config: Config,
    ) -> Self {
        let mut t = Self::new(Peer::Known(peer), settings, config, State::Done);
        let handshake = oack.clone();
        t.state = State::Sending(Sender::new(request.mode, handshake));
        t.events.push_back(Event::Negotiated(settings));
        if let Some(packet) = oack {
            t.send(packet);
            t.arm(now);
        }
        t
    }

    /// A server answering a write request: OACK or ACK 0 goes out at once.
    pub fn server_write(
        now: Instant,
        peer: SocketAddr,
        request: &Request,
        settings: Settings,
        oack: Option<Bytes>,
        config: Config,
    ) -> Self {
        let first = oack.unwrap_or_else(|| ack_packet(0));
        let last_acked = if first.get(1) == Some(&4) { Some(0) } else { None };
        let mut t = Self::new(Peer::Known(peer), settings, config, State::Done);
        t.state = State::Receiving(Receiver::new(request.mode, first.clone(), last_acked));
        t.events.push_back(Event::Negotiated(settings));
        t.send(first);
        t.arm(now);
        t
    }

    /// A client asking `server` to read (`is_read`) or write `filename`.
    pub fn client(
        now: Instant,
        server: SocketAddr,
        filename: &str,
        mode: Mode,
        ask: Ask,
        is_read: bool,
        config: Config,
    ) -> Self {
        let request = Request {
            filename: filename.to_string(),
            mode,
            options: ask.to_options(),
        };
        let packet = if is_read {
            Packet::Rrq(request)
        } else {
            Packet::Wrq(request)
        }
        .encode();
        let state = State::Requesting {
            request: packet.clone(),
            ask,
            mode,
            is_read,
        };
        let mut t = Self::new(Peer::Awaiting(server), Settings::default(), config, state);
        // The client chose to talk to this address; it needs no proof.
        t.verified = true;
        t.transmits.push_back(Transmit {
            to: server,
            data: packet,
        });
        t.arm(now);
        t
    }

    fn new(peer: Peer, settings: Settings, config: Config, state: State) -> Self {
        Self {
            peer,
            settings,
            config,
            state,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timer: None,
            retries: 0,
            verified: false,
            stats: Stats::default(),
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        match self.peer {
            Peer::Known(peer) if peer != from => {
                // RFC 1350 §4: answer a stranger with ERROR 5, keep going.
                let data = error_packet(ErrorCode::UnknownTid, "unknown transfer ID");
                self.transmits.push_back(Transmit { to: from, data });
                return;
            }
            Peer::Awaiting(server) if server.ip() != from.ip() => {
                let data = error_packet(ErrorCode::UnknownTid, "unknown transfer ID");
                self.transmits.push_back(Transmit { to: from, data });
                return;
            }
            _ => {}
        }
        // A datagram that does not parse is noise; the timer covers loss.
        let Ok(packet) = Packet::decode(bytes) else {
            return;
        };
        if let Packet::Error { code, message } = packet {
            if !matches!(self.state, State::Done) {
                self.fail(Failure::Remote { code, message }, None);
            }
            return;
        }
        self.verified = true;
        match &mut self.state {
            State::Requesting { .. } => self.first_reply(now, from, packet),
            State::Sending(_) => self.on_sender_packet(now, packet),
            State::Receiving(_) => self.on_receiver_packet(now, packet),
            State::Done => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_none_or(|t| now < t) {
            return;
        }
        self.timer = None;
        if let State::Receiving(r) = &self.state {
            if r.finished {
                // The dally is over: the last ACK was not asked for again.
                self.state = State::Done;
                return;
            }
        }
        let limit = if self.verified {
            self.config.max_retries
        } else {
            self.config.max_retries.min(UNVERIFIED_RETRIES)
        };
        if self.retries >= limit {
            let retries = self.retries;
            self.fail(Failure::TimedOut(retries), Some((ErrorCode::NotDefined, "timed out")));
            return;
        }
        self.retries += 1;
        let peer = self.peer_addr();
        let rollover = self.settings.rollover;
        let again: Vec<Bytes> = match &mut self.state {
            State::Requesting { request, .. } => vec![request.clone()],
            State::Sending(s) => match &s.handshake {
                Some(oack) => vec![oack.clone()],
                None => {
                    // Resend everything outstanding: the window from acked+1.
                    let outstanding = usize::try_from(s.sent - s.acked).unwrap_or(usize::MAX);
                    s.blocks.iter().take(outstanding).map(|(p, _)| p.clone()).collect()
                }
            },
            State::Receiving(r) => {
                if r.received > 0 && r.last_acked != Some(r.received) {
                    // Mid-window: acknowledge what has arrived in order.
                    r.last_sent = ack_packet(rollover.wire(r.received));
                    r.last_acked = Some(r.received);
                    r.since_ack = 0;
                }
                vec![r.last_sent.clone()]
            }
            State::Done => Vec::new(),
        };
        self.stats.retransmits += again.len() as u64;
        for data in again {
            self.transmits.push_back(Transmit { to: peer, data });
        }
        self.arm(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True once nothing more will be sent or received (events may remain).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The peer's TID, once known.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self.peer {
            Peer::Known(p) => Some(p),
            Peer::Awaiting(_) => None,
        }
    }

    /// Bytes of file data a sender holds: what is buffered and the blocks
    /// cut for the window. Bounded by one read chunk plus window × blksize.
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Sending(s) => s.buffered() + s.blocks.iter().map(|(p, _)| p.len()).sum::<usize>(),
            _ => 0,
        }
    }

    /// Sender: true while it can take more file bytes.
    pub fn wants_data(&self) -> bool {
        self.data_wanted(1) > 0
    }

    /// Sender: how many file bytes to read next (0: none now), at most
    /// `chunk`. Memory stays bounded: blocks are cut only as far as the
    /// window reaches, and bytes are asked for only while what is buffered
    /// does not cover the window. Before the peer has answered on our TID
    /// (its address may be forged), only the first block's worth: an
    /// unanswered request costs one block, and with options nothing at all
    /// until ACK 0.
    pub fn data_wanted(&self, chunk: usize) -> usize {
        let State::Sending(s) = &self.state else {
            // A write request learns its block size from the reply; until
            // then bytes would be cut wrongly.
            return 0;
        };
        if s.input_done || s.handshake.is_some() {
            return 0;
        }
        let blksize = usize::from(self.settings.blksize);
        let room = self.effective_window().saturating_sub(s.blocks.len()) * blksize;
        let buffered = s.buffered();
        if buffered >= room.max(1) {
            return 0;
        }
        if self.verified {
            chunk
        } else {
            (room - buffered).min(chunk)
        }
    }

    /// Sender: the next file bytes (any amount; they are cut into blocks as
    /// the window allows, the rest kept until it moves).
    pub fn push_data(&mut self, now: Instant, bytes: &[u8]) {
        if let State::Sending(s) = &mut self.state {
            s.pending.drain(..s.cut);
            s.cut = 0;
            match &mut s.encoder {
                Some(e) => e.encode(bytes, &mut s.pending),
                None => s.pending.extend_from_slice(bytes),
            }
        }
        self.fill_window(now);
    }

    /// Sender: the file ended; the last (short, maybe empty) block follows.
    pub fn end_data(&mut self, now: Instant) {
        if let State::Sending(s) = &mut self.state {
            s.input_done = true;
        }
        self.fill_window(now);
    }

    /// Blocks a sender keeps cut and in flight: the negotiated window once
    /// the peer has answered, one block before.
    fn effective_window(&self) -> usize {
        if self.verified {
            usize::from(self.settings.windowsize)
        } else {
            1
        }
    }

    /// Stops the transfer (a local failure), telling the peer why.
    pub fn abort(&mut self, code: ErrorCode, message: &str) {
        if !matches!(self.state, State::Done) {
            self.fail(Failure::Aborted(message.to_string()), Some((code, message)));
        }
    }

    fn first_reply(&mut self, now: Instant, from: SocketAddr, packet: Packet) {
        let State::Requesting { ask, mode, is_read, .. } = &self.state else {
            return;
        };
        let (ask, mode, is_read) = (*ask, *mode, *is_read);
        self.peer = Peer::Known(from);
        self.retries = 0;
        match (packet, is_read) {
            (Packet::Oack { options }, _) => {
                let accepted = if ask.is_empty() {
                    Err(OackError::Unrequested("(any)".into()))
                } else {
                    ask.accept(&options)
                };
                match accepted {
                    Ok(settings) => {
                        self.settings = settings;
                        self.events.push_back(Event::Negotiated(settings));
                        if is_read {
                            let ack0 = ack_packet(0);
                            self.state = State::Receiving(Receiver::new(mode, ack0.clone(), Some(0)));
                            self.send(ack0);
                            self.arm(now);
                        } else {
                            self.state = State::Sending(Sender::new(mode, None));
                            self.timer = None;
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        self.fail(Failure::Oack(e), Some((ErrorCode::OptionsRefused, &message)));
                    }
                }
            }
            (data @ Packet::Data { .. }, true) => {
                // No OACK: the server ignored the options (RFC 2347 §4).
                self.settings = Settings::default();
                self.events.push_back(Event::Negotiated(self.settings));
                self.state = State::Receiving(Receiver::new(mode, Bytes::new(), None));
                self.on_receiver_packet(now, data);
            }
            (Packet::Ack { block: 0 }, false) => {
                self.settings = Settings::default();
                self.events.push_back(Event::Negotiated(self.settings));
                self.state = State::Sending(Sender::new(mode, None));
                self.timer = None;
            }
            _ => self.fail(
                Failure::Protocol("unexpected first reply"),
                Some((ErrorCode::IllegalOperation, "unexpected packet")),
            ),
        }
    }

    fn on_sender_packet(&mut self, now: Instant, packet: Packet) {
        let rollover = self.settings.rollover;
        let Packet::Ack { block } = packet else {
            // DATA or a request on a read transfer: ignore, as tftp-hpa does.
            return;
        };
        let State::Sending(s) = &mut self.state else {
            return;
        };
        if s.handshake.is_some() {
            if block == 0 {
                s.handshake = None;
                self.retries = 0;
                self.timer = None;
                self.fill_window(now);
            }
            return;
        }
        let outstanding = s.sent - s.acked;
        let ahead = u64::try_from(rollover.delta(rollover.wire(s.acked), block)).unwrap_or(0);
        if ahead == 0 || ahead > outstanding {
            // A duplicate or stale ACK: never a reason to resend.
            return;
        }
        for _ in 0..ahead {
            if let Some((_, len)) = s.blocks.pop_front() {
                self.stats.bytes += len as u64;
            }
        }
        s.acked += ahead;
        if s.acked < s.sent {
            // RFC 7440: the receiver saw a gap; the next window starts here.
            s.sent = s.acked;
        }
        self.retries = 0;
        self.timer = None;
        if s.last_block == Some(s.acked) {
            self.state = State::Done;
            self.events.push_back(Event::Complete);
            return;
        }
        self.fill_window(now);
    }

    fn on_receiver_packet(&mut self, now: Instant, packet: Packet) {
        let (block, data) = match packet {
            Packet::Data { block, data } => (block, data),
            Packet::Oack { .. } => {
                // The server repeated its OACK: our ACK 0 was lost.
                if let State::Receiving(r) = &self.state {
                    if r.received == 0 && r.last_acked == Some(0) {
                        let again = r.last_sent.clone();
                        self.stats.retransmits += 1;
                        self.send(again);
                    }
                }
                return;
            }
            _ => return,
        };
        let blksize = usize::from(self.settings.blksize);
        let window = self.settings.windowsize;
        let rollover = self.settings.rollover;
        let State::Receiving(r) = &mut self.state else {
            return;
        };
        if data.len() > blksize {
            self.fail(
                Failure::Protocol("a block larger than the block size"),
                Some((ErrorCode::IllegalOperation, "block too large")),
            );
            return;
        }
        let expected = r.received + 1;
        let offset = i64::from(rollover.delta(rollover.wire(expected), block));
        if r.finished || offset < 0 {
            // A duplicate: our ACK was lost. Repeat it if it covers this
            // block (the newest ACK); never deliver the data again.
            let dup = expected.checked_add_signed(offset).unwrap_or(0);
            if r.last_acked == Some(dup) {
                let again = r.last_sent.clone();
                self.stats.retransmits += 1;
                self.send(again);
            }
            return;
        }
        if offset > 0 {
            // A gap inside a window: say once where we are (RFC 7440).
            if !r.gap_reported {
                r.gap_reported = true;
                let ack = ack_packet(rollover.wire(r.received));
                r.last_sent = ack.clone();
                r.last_acked = Some(r.received);
                r.since_ack = 0;
                self.send(ack);
                self.arm(now);
            }
            return;
        }
        r.received = expected;
        r.gap_reported = false;
        r.since_ack += 1;
        self.retries = 0;
        self.stats.bytes += data.len() as u64;
        let last = data.len() < blksize;
        let delivered = match &mut r.decoder {
            Some(d) => {
                let mut out = Vec::with_capacity(data.len());
                d.decode(&data, &mut out);
                if last {
                    d.finish(&mut out);
                }
                Bytes::from(out)
            }
            None => data,
        };
        let ack_now = last || r.since_ack >= window;
        if ack_now {
            r.last_acked = Some(expected);
            r.last_sent = ack_packet(block);
            r.since_ack = 0;
        }
        // After the last block the timer is the dally: one timeout to
        // answer a retransmitted last block.
        r.finished = last;
        let ack = ack_now.then(|| r.last_sent.clone());
        if !delivered.is_empty() {
            self.events.push_back(Event::Data(delivered));
        }
        if let Some(ack) = ack {
            self.send(ack);
        }
        if last {
            self.events.push_back(Event::Complete);
            if !self.config.dally {
                self.state = State::Done;
                self.timer = None;
                return;
            }
        }
        self.arm(now);
    }

    fn fill_window(&mut self, now: Instant) {
        let window = u64::from(self.settings.windowsize);
        let cut_up_to = self.effective_window();
        let blksize = usize::from(self.settings.blksize);
        let rollover = self.settings.rollover;
        let peer = self.peer_addr();
        let State::Sending(s) = &mut self.state else {
            return;
        };
        if s.handshake.is_some() {
            return;
        }
        s.cut_blocks(blksize, cut_up_to, rollover);
        let mut sent_any = false;
        while s.sent < s.acked + window {
            let index = usize::try_from(s.sent - s.acked).unwrap_or(usize::MAX);
            let Some((packet, _)) = s.blocks.get(index) else {
                break;
            };
            self.transmits.push_back(Transmit {
                to: peer,
                data: packet.clone(),
            });
            s.sent += 1;
            sent_any = true;
        }
        if sent_any && self.timer.is_none() {
            self.arm(now);
        }
    }

    fn fail(&mut self, failure: Failure, tell_peer: Option<(ErrorCode, &str)>) {
        if let (Some((code, message)), Peer::Known(peer)) = (tell_peer, self.peer) {
            self.transmits.push_back(Transmit {
                to: peer,
                data: error_packet(code, message),
            });
        }
        self.state = State::Done;
        self.timer = None;
        self.events.push_back(Event::Failed(failure));
    }

    fn send(&mut self, data: Bytes) {
        let to = self.peer_addr();
        self.transmits.push_back(Transmit { to, data });
    }

    fn arm(&mut self, now: Instant) {
        let timeout = self
            .settings
            .timeout
            .map_or(self.config.timeout, |s| Duration::from_secs(u64::from(s)));
        self.timer = Some(now + timeout);
    }

    fn peer_addr(&self) -> SocketAddr {
        match self.peer {
            Peer::Known(p) | Peer::Awaiting(p) => p,
        }
    }
}

impl Sender {
    fn new(mode: Mode, handshake: Option<Bytes>) -> Self {
        Self {
            encoder: (mode == Mode::Netascii).then_some(netascii::Encoder),
            pending: Vec::new(),
            cut: 0,
            input_done: false,
            blocks: VecDeque::new(),
            acked: 0,
            sent: 0,
            last_block: None,
            handshake,
        }
    }

    /// Cuts full blocks from `pending` until `window` blocks are cut; once
    /// input has ended, the short last one.
    fn cut_blocks(&mut self, blksize: usize, window: usize, rollover: Rollover) {
        while self.blocks.len() < window && self.buffered() >= blksize {
            self.push_block(self.cut, self.cut + blksize, rollover);
            self.cut += blksize;
        }
        if self.input_done && self.last_block.is_none() && self.blocks.len() < window {
            // A file that is a multiple of the block size ends with an
            // empty block (RFC 1350 §6).
            self.push_block(self.cut, self.pending.len(), rollover);
            self.cut = self.pending.len();
            self.last_block = Some(self.acked + self.blocks.len() as u64);
        }
    }

    fn buffered(&self) -> usize {
        self.pending.len() - self.cut
    }

    fn push_block(&mut self, from: usize, to: usize, rollover: Rollover) {
        let number = self.acked + self.blocks.len() as u64 + 1;
        let payload = self.pending.get(from..to).unwrap_or_default();
        self.blocks
            .push_back((data_packet(rollover.wire(number), payload), payload.len()));
    }
}

impl Receiver {
    fn new(mode: Mode, last_sent: Bytes, last_acked: Option<u64>) -> Self {
        Self {
            decoder: (mode == Mode::Netascii).then(netascii::Decoder::default),
            received: 0,
            since_ack: 0,
            last_sent,
            last_acked,
            gap_reported: false,
            finished: false,
        }
    }
}
