//! The IPMSG node as a sans-IO state machine: the peer list, entries and
//! exits, messages resent until acknowledged, acknowledgements, duplicate
//! suppression and packet numbering. The driver feeds it datagrams and
//! timeouts and sends what `poll_transmit` returns; time and the wall clock
//! come in as arguments.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::assist::text::{TextEncoding, TextError};

use super::command::{Command, Mode, opt};
use super::extra::{
    EntryInfo, FileEntry, FileRequest, decode_text, encode_file_list, parse_acked_packet_no, parse_file_list,
    strip_feiq_style,
};
use super::packet::{Packet, PacketError, Version};

/// How long to wait for RECVMSG before sending again. IPMSG waits about a
/// second on a LAN, where a lost datagram, not a slow peer, is the reason.
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Sends of one message, the first included, before it is reported
/// undelivered (IPMSG and iptux give up after a handful).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Peers kept; beyond this the one heard from least recently is forgotten,
/// so a flood of forged entries costs memory once, not without bound.
pub const DEFAULT_MAX_PEERS: usize = 4096;

/// Messages awaiting RECVMSG at once.
pub const DEFAULT_MAX_PENDING: usize = 256;

/// (sender, packet number) pairs remembered to drop resent duplicates; a
/// resend comes within seconds, long before this many other messages.
const SEEN_WINDOW: usize = 4096;

/// Answers (ANSENTRY, SENDINFO) per second at most: entries can be forged
/// with any source address, and answers are larger than the entries.
const MAX_ANSWERS_PER_SECOND: u32 = 200;

#[derive(Debug, Clone)]
pub struct Config {
    pub user: String,
    pub host: String,
    pub nick: String,
    pub group: String,
    /// Where this node receives; packets from here are its own broadcasts
    /// coming back and are ignored.
    pub local: SocketAddr,
    /// With an unspecified `local`, the host's own addresses.
    pub own_ips: Vec<IpAddr>,
    /// Encoding for peers that have not said they read UTF-8 (FeiQ: GBK).
    pub legacy: TextEncoding,
    /// Always send in this encoding instead of choosing per peer.
    pub force_encoding: Option<TextEncoding>,
    pub retry_interval: Duration,
    pub max_attempts: u32,
    pub max_peers: usize,
    pub max_pending: usize,
    /// Written into SENDINFO replies.
    pub software: String,
}

impl Config {
    pub fn new(user: &str, host: &str, local: SocketAddr) -> Config {
        Config {
            user: user.to_string(),
            host: host.to_string(),
            nick: user.to_string(),
            group: String::new(),
            local,
            own_ips: Vec::new(),
            legacy: TextEncoding::Gbk,
            force_encoding: None,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_peers: DEFAULT_MAX_PEERS,
            max_pending: DEFAULT_MAX_PENDING,
            software: "sockit".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub user: String,
    pub host: String,
    pub nick: String,
    pub group: String,
    pub absent: bool,
    /// Send this peer UTF-8 (it advertised CAPUTF8OPT, wrote UTF8OPT, or
    /// said it prefers UTF-8).
    pub utf8: bool,
    pub version: Version,
    pub last_seen: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: SocketAddr,
    pub packet_no: u64,
    pub user: String,
    pub host: String,
    pub nick: String,
    pub text: String,
    pub files: Vec<FileEntry>,
    /// Sent to many (BROADCASTOPT/MULTICASTOPT) or as an automatic reply.
    pub broadcast: bool,
    pub auto_reply: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer announced itself or answered our announcement; `new` is false
    /// when it was already listed.
    Entry {
        peer: Peer,
        new: bool,
    },
    Absence {
        peer: Peer,
    },
    Exit {
        addr: SocketAddr,
        nick: String,
    },
    Message(Message),
    Delivered {
        to: SocketAddr,
        packet_no: u64,
    },
    Undelivered {
        to: SocketAddr,
        packet_no: u64,
        attempts: u32,
    },
    /// A datagram that is not IPMSG, or a message whose file list is bad.
    Malformed {
        from: SocketAddr,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Encoding(#[from] TextError),
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error("{0} messages are already waiting for an answer")]
    TooManyPending(usize),
}

#[derive(Debug)]
struct Pending {
    to: SocketAddr,
    bytes: Vec<u8>,
    attempts: u32,
    deadline: Instant,
}

#[derive(Debug)]
pub struct Node {
    config: Config,
    start: Instant,
    wall_start: u64,
    last_packet_no: u64,
    absent: bool,
    peers: BTreeMap<SocketAddr, Peer>,
    pending: BTreeMap<u64, Pending>,
    seen: HashSet<(IpAddr, u64)>,
    seen_order: VecDeque<(IpAddr, u64)>,
    answers: (Instant, u32),
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Node {
    /// `wall_secs` is the Unix time at `now`; packet numbers start there.
    pub fn new(config: Config, now: Instant, wall_secs: u64) -> Node {
        Node {
            config,
            start: now,
            wall_start: wall_secs,
            last_packet_no: 0,
            absent: false,
            peers: BTreeMap::new(),
            pending: BTreeMap::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            answers: (now, 0),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    pub fn peer(&self, addr: SocketAddr) -> Option<&Peer> {
        self.peers.get(&addr)
    }

    /// The first listed peer at `ip` (IPMSG peers are told apart by address;
    /// iptux ignores ports).
    pub fn peer_at_ip(&self, ip: IpAddr) -> Option<&Peer> {
        self.peers.values().find(|p| p.addr.ip() == ip)
    }

    /// The highest packet number used so far.
    pub fn last_packet_no(&self) -> u64 {
        self.last_packet_no
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Announces this node (BR_ENTRY) to broadcast addresses and listed
    /// hosts; `dialup` marks the ones sent to a host, not a broadcast address.
    pub fn announce(&mut self, now: Instant, to: &[SocketAddr], dialup: bool) {
        let mut opts = opt::CAPUTF8 | opt::FILEATTACH;
        if dialup {
            opts |= opt::DIALUP;
        }
        for &addr in to {
            self.send_entry(now, addr, Mode::BrEntry, opts);
        }
    }

    /// Says this node is away or back (BR_ABSENCE) to every listed peer.
    pub fn set_absent(&mut self, now: Instant, absent: bool) {
        self.absent = absent;
        let to: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in to {
            self.send_entry(now, addr, Mode::BrAbsence, opt::CAPUTF8 | opt::FILEATTACH);
        }
    }

    /// Says goodbye (BR_EXIT) to broadcast addresses and every listed peer.
    pub fn leave(&mut self, now: Instant, broadcast: &[SocketAddr]) {
        let mut to: Vec<SocketAddr> = broadcast.to_vec();
        to.extend(self.peers.keys().copied());
        to.sort_unstable();
        to.dedup();
        for addr in to {
            self.send_entry(now, addr, Mode::BrExit, opt::CAPUTF8);
        }
    }

    /// Sends a message that the peer must acknowledge, resending until it
    /// does or `max_attempts` sends have gone. Returns its packet number,
    /// which also names the attached files in GETFILEDATA requests.
    pub fn send_message(
        &mut self,
        now: Instant,
        to: SocketAddr,
        text: &str,
        files: &[FileEntry],
    ) -> Result<u64, SendError> {
        if self.pending.len() >= self.config.max_pending {
            return Err(SendError::TooManyPending(self.pending.len()));
        }
        let (encoding, utf8) = self.encoding_for(to);
        let mut opts = opt::SENDCHECK;
        let mut extra = encoding.encode(text)?;
        if !files.is_empty() {
            opts |= opt::FILEATTACH;
            extra.push(0);
            extra.extend(encoding.encode(&encode_file_list(files))?);
        }
        if utf8 {
            opts |= opt::UTF8;
        }
        let packet_no = self.next_packet_no(now);
        let bytes = self.packet(packet_no, Command::new(Mode::SendMsg, opts), extra, encoding)?;
        self.transmits.push_back(Transmit {
            to,
            bytes: bytes.clone(),
        });
        self.pending.insert(
            packet_no,
            Pending {
                to,
                bytes,
                attempts: 1,
                deadline: now + self.config.retry_interval,
            },
        );
        Ok(packet_no)
    }

    /// A GETFILEDATA request to send over TCP to the peer that offered a file.
    pub fn file_request(&mut self, now: Instant, request: FileRequest) -> Vec<u8> {
        let packet_no = self.next_packet_no(now);
        let extra = request.encode().into_bytes();
        let command = Command::new(Mode::GetFileData, 0);
        // Only ASCII here, so the encoding cannot fail and the packet is short.
        self.packet(packet_no, command, extra, TextEncoding::Utf8)
            .unwrap_or_default()
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.is_own(from) {
            return;
        }
        let packet = match Packet::decode(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                self.events.push_back(Event::Malformed {
                    from,
                    reason: e.to_string(),
                });
                return;
            }
        };
        match packet.command.mode {
            Mode::BrEntry => {
                self.on_entry(now, from, &packet, true);
            }
            Mode::AnsEntry => self.on_entry(now, from, &packet, false),
            Mode::BrAbsence => {
                let peer = self.upsert_peer(now, from, &packet);
                self.events.push_back(Event::Absence { peer });
            }
            Mode::BrExit => {
                let nick = self
                    .peers
                    .remove(&from)
                    .map(|p| p.nick)
                    .unwrap_or_else(|| self.text(&packet, &packet.user));
                self.events.push_back(Event::Exit { addr: from, nick });
            }
            Mode::SendMsg => self.on_message(now, from, &packet),
            Mode::RecvMsg => {
                let text = self.text(&packet, &packet.extra);
                let Some(acked) = parse_acked_packet_no(&text) else {
                    return;
                };
                // Acks are matched by address, not port: peers such as
                // iptux answer from their well-known port.
                if self.pending.get(&acked).is_some_and(|p| p.to.ip() == from.ip()) {
                    if let Some(p) = self.pending.remove(&acked) {
                        self.events.push_back(Event::Delivered {
                            to: p.to,
                            packet_no: acked,
                        });
                    }
                }
            }
            Mode::GetInfo if self.may_answer(now) => {
                let version = self.config.software.clone().into_bytes();
                self.send_plain(now, from, Command::new(Mode::SendInfo, 0), version);
            }
            _ => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&n, _)| n)
            .collect();
        for packet_no in due {
            let Some(p) = self.pending.get_mut(&packet_no) else {
                continue;
            };
            if p.attempts >= self.config.max_attempts {
                let attempts = p.attempts;
                let to = p.to;
                self.pending.remove(&packet_no);
                self.events.push_back(Event::Undelivered {
                    to,
                    packet_no,
                    attempts,
                });
            } else {
                p.attempts += 1;
                p.deadline = now + self.config.retry_interval;
                self.transmits.push_back(Transmit {
                    to: p.to,
                    bytes: p.bytes.clone(),
                });
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn on_entry(&mut self, now: Instant, from: SocketAddr, packet: &Packet, answer: bool) {
        let new = !self.peers.contains_key(&from);
        let peer = self.upsert_peer(now, from, packet);
        if answer && self.may_answer(now) {
            self.send_entry(now, from, Mode::AnsEntry, opt::CAPUTF8 | opt::FILEATTACH);
        }
        self.events.push_back(Event::Entry { peer, new });
    }

    fn on_message(&mut self, now: Instant, from: SocketAddr, packet: &Packet) {
        let c = packet.command;
        let broadcast = c.has(opt::BROADCAST) || c.has(opt::MULTICAST);
        let auto_reply = c.has(opt::AUTORET);
        // Broadcast and automatic replies are never acknowledged (spec), so
        // a message to many does not bring back an ack storm.
        if c.has(opt::SENDCHECK) && !broadcast && !auto_reply {
            let extra = packet.packet_no.to_string().into_bytes();
            self.send_plain(now, from, Command::new(Mode::RecvMsg, 0), extra);
        }
        let key = (from.ip(), packet.packet_no);
        if self.seen.contains(&key) {
            return;
        }
        self.remember(key);
        if !self.peers.contains_key(&from) && !c.has(opt::NOADDLIST) {
            let mut entry = packet.clone();
            entry.extra = Vec::new();
            self.upsert_peer(now, from, &entry);
        }
        if let Some(peer) = self.peers.get_mut(&from) {
            peer.last_seen = now;
            peer.utf8 |= c.has(opt::UTF8);
        }
        let parts = packet.extra_parts();
        let raw_text = self.text(packet, parts.first().copied().unwrap_or_default());
        let text = if packet.version.is_feiq() {
            strip_feiq_style(&raw_text).to_string()
        } else {
            raw_text
        };
        let files = if c.has(opt::FILEATTACH) {
            let list = self.text(packet, parts.get(1).copied().unwrap_or_default());
            match parse_file_list(&list) {
                Ok(files) => files,
                Err(e) => {
                    self.events.push_back(Event::Malformed {
                        from,
                        reason: e.to_string(),
                    });
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let user = self.text(packet, &packet.user);
        let nick = self.peers.get(&from).map_or_else(|| user.clone(), |p| p.nick.clone());
        self.events.push_back(Event::Message(Message {
            from,
            packet_no: packet.packet_no,
            user,
            host: self.text(packet, &packet.host),
            nick,
            text,
            files,
            broadcast,
            auto_reply,
        }));
    }

    fn upsert_peer(&mut self, now: Instant, from: SocketAddr, packet: &Packet) -> Peer {
        let parts: Vec<String> = packet.extra_parts().iter().map(|p| self.text(packet, p)).collect();
        let info = EntryInfo::parse(&parts);
        let user = self.text(packet, &packet.user);
        let c = packet.command;
        let peer = Peer {
            addr: from,
            nick: if info.nick.is_empty() { user.clone() } else { info.nick },
            user,
            host: self.text(packet, &packet.host),
            group: info.group,
            absent: c.mode != Mode::BrExit && c.has(opt::ABSENCE),
            utf8: c.has(opt::CAPUTF8) || c.has(opt::UTF8) || info.prefers_utf8,
            version: packet.version.clone(),
            last_seen: now,
        };
        if !self.peers.contains_key(&from) && self.peers.len() >= self.config.max_peers {
            let stalest = self.peers.values().min_by_key(|p| p.last_seen).map(|p| p.addr);
            if let Some(addr) = stalest {
                self.peers.remove(&addr);
            }
        }
        self.peers.insert(from, peer.clone());
        peer
    }

    fn remember(&mut self, key: (IpAddr, u64)) {
        if self.seen_order.len() >= SEEN_WINDOW {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(key);
        self.seen_order.push_back(key);
    }

    fn is_own(&self, from: SocketAddr) -> bool {
        let local = self.config.local;
        from == local
            || (local.ip().is_unspecified() && from.port() == local.port() && self.config.own_ips.contains(&from.ip()))
    }

    fn may_answer(&mut self, now: Instant) -> bool {
        let (since, count) = &mut self.answers;
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *count = 0;
        }
        *count += 1;
        *count <= MAX_ANSWERS_PER_SECOND
    }

    fn encoding_for(&self, to: SocketAddr) -> (TextEncoding, bool) {
        if let Some(forced) = self.config.force_encoding {
            return (forced, forced == TextEncoding::Utf8);
        }
        let utf8 = self
            .peers
            .get(&to)
            .or_else(|| self.peer_at_ip(to.ip()))
            .is_some_and(|p| p.utf8);
        if utf8 {
            (TextEncoding::Utf8, true)
        } else {
            (self.config.legacy, false)
        }
    }

    fn send_entry(&mut self, now: Instant, to: SocketAddr, mode: Mode, mut opts: u32) {
        if self.absent && mode != Mode::BrExit {
            opts |= opt::ABSENCE;
        }
        let (encoding, utf8) = self.encoding_for(to);
        if utf8 {
            opts |= opt::UTF8;
        }
        let mut extra = Vec::new();
        if mode != Mode::BrExit {
            let nick = self.config.nick.clone();
            let group = self.config.group.clone();
            extra.extend(encode_lossy(encoding, &nick));
            extra.push(0);
            extra.extend(encode_lossy(encoding, &group));
            extra.push(0);
        }
        let packet_no = self.next_packet_no(now);
        if let Ok(bytes) = self.packet(packet_no, Command::new(mode, opts), extra, encoding) {
            self.transmits.push_back(Transmit { to, bytes });
        }
    }

    fn send_plain(&mut self, now: Instant, to: SocketAddr, command: Command, extra: Vec<u8>) {
        let (encoding, _) = self.encoding_for(to);
        let packet_no = self.next_packet_no(now);
        if let Ok(bytes) = self.packet(packet_no, command, extra, encoding) {
            self.transmits.push_back(Transmit { to, bytes });
        }
    }

    fn packet(
        &self,
        packet_no: u64,
        command: Command,
        extra: Vec<u8>,
        encoding: TextEncoding,
    ) -> Result<Vec<u8>, PacketError> {
        Packet {
            version: Version::PLAIN,
            packet_no,
            user: encode_lossy(encoding, &self.config.user),
            host: encode_lossy(encoding, &self.config.host),
            command,
            extra,
        }
        .encode()
    }

    /// max(Unix time, last + 1): strictly increasing even when several
    /// packets leave in one second, as peers drop a number they have seen.
    fn next_packet_no(&mut self, now: Instant) -> u64 {
        let wall = self.wall_start + now.saturating_duration_since(self.start).as_secs();
        self.last_packet_no = wall.max(self.last_packet_no + 1);
        self.last_packet_no
    }

    fn text(&self, packet: &Packet, bytes: &[u8]) -> String {
        decode_text(bytes, packet.command, legacy_decoder(self.config.legacy))
    }
}

/// GBK text is decoded as GB18030, its superset.
fn legacy_decoder(legacy: TextEncoding) -> TextEncoding {
    match legacy {
        TextEncoding::Gbk | TextEncoding::Gb2312 => TextEncoding::Gb18030,
        other => other,
    }
}

/// Names are ours to choose; one that the encoding lacks is sent with '?'
/// in place of what it cannot write rather than not at all.
fn encode_lossy(encoding: TextEncoding, text: &str) -> Vec<u8> {
    encoding.encode(text).unwrap_or_else(|_| {
        let safe: String = text
            .chars()
            .map(|c| {
                if encoding.encode(c.encode_utf8(&mut [0; 4])).is_ok() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        encoding.encode(&safe).unwrap_or_default()
    })
}
