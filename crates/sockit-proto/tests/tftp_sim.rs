//! TFTP transfers on a simulated network with a virtual clock: loss,
//! duplication and reordering in both directions, block-number wrap, the
//! Sorcerer's Apprentice, strangers' TIDs, refused options and timeouts.
//! Every run is deterministic (seeded) and takes milliseconds.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockit_proto::tftp::options::{Ask, Rollover, ServerLimits, Settings, negotiate};
use sockit_proto::tftp::packet::{ErrorCode, Mode, Packet, ack_packet, data_packet};
use sockit_proto::tftp::transfer::{Config, Event, Failure, Transfer};

const CLIENT: &str = "10.0.0.1:40000";
const LISTEN: &str = "10.0.0.2:69";
const SERVER_TID: &str = "10.0.0.2:50000";
const LIMITS: ServerLimits = ServerLimits {
    max_blksize: 65464,
    max_windowsize: 64,
    route_blksize: None,
    allow_fragments: false,
    rollover: Rollover::Zero,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A small deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 24) as u8).collect()
    }
}

#[derive(Clone, Copy)]
struct Faults {
    loss: u64,
    duplicate: u64,
    /// Up to this many ms of extra delay, which reorders packets.
    jitter_ms: u64,
}

const CLEAN: Faults = Faults {
    loss: 0,
    duplicate: 0,
    jitter_ms: 0,
};
const HOSTILE: Faults = Faults {
    loss: 10,
    duplicate: 10,
    jitter_ms: 30,
};

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Bytes,
}

struct Sim {
    now: Instant,
    rng: Rng,
    faults: Faults,
    wire: Vec<InFlight>,
    /// Every datagram handed to the network, for inspection.
    log: Vec<(SocketAddr, SocketAddr, Bytes)>,
}

impl Sim {
    fn new(seed: u64, faults: Faults) -> Self {
        Self {
            now: Instant::now(),
            rng: Rng(seed | 1),
            faults,
            wire: Vec::new(),
            log: Vec::new(),
        }
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, data: Bytes) {
        self.log.push((from, to, data.clone()));
        if self.rng.chance(self.faults.loss) {
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = if self.faults.jitter_ms > 0 {
                self.rng.next() % self.faults.jitter_ms
            } else {
                0
            };
            let at = self.now + Duration::from_millis(1 + jitter);
            self.wire.push(InFlight {
                at,
                from,
                to,
                data: data.clone(),
            });
        }
    }

    fn next_delivery(&self) -> Option<Instant> {
        self.wire.iter().map(|p| p.at).min()
    }

    fn take_due(&mut self) -> Option<InFlight> {
        let i = self
            .wire
            .iter()
            .enumerate()
            .filter(|(_, p)| p.at <= self.now)
            .min_by_key(|(_, p)| p.at)?
            .0;
        Some(self.wire.swap_remove(i))
    }
}

/// One side: its machine, its address, its file bytes to send, and what it
/// received and saw.
struct End {
    addr: SocketAddr,
    t: Option<Transfer>,
    source: Vec<u8>,
    fed: usize,
    received: Vec<u8>,
    complete: bool,
    failed: Option<Failure>,
    settings: Option<Settings>,
}

impl End {
    fn new(addr: SocketAddr, source: Vec<u8>) -> Self {
        Self {
            addr,
            t: None,
            source,
            fed: 0,
            received: Vec::new(),
            complete: false,
            failed: None,
            settings: None,
        }
    }

    /// Feeds file bytes, moves transmits to the network, collects events.
    fn pump(&mut self, sim: &mut Sim) {
        let Some(t) = &mut self.t else { return };
        while t.wants_data() {
            let end = (self.fed + 3000).min(self.source.len());
            if self.fed < end {
                t.push_data(sim.now, &self.source[self.fed..end]);
                self.fed = end;
            } else {
                t.end_data(sim.now);
                break;
            }
        }
        while let Some(tx) = t.poll_transmit() {
            sim.send(self.addr, tx.to, tx.data);
        }
        while let Some(e) = t.poll_event() {
            match e {
                Event::Data(d) => self.received.extend_from_slice(&d),
                Event::Complete => self.complete = true,
                Event::Failed(f) => self.failed = Some(f),
                Event::Negotiated(s) => self.settings = Some(s),
            }
        }
    }
}

struct Run {
    client: End,
    server: End,
    log: Vec<(SocketAddr, SocketAddr, Bytes)>,
}

/// Runs one whole transfer: the client asks, a listener creates the
/// server's machine from the request (negotiating with `limits`, or with
/// no options at all when `server_ignores_options`).
fn run(
    seed: u64,
    faults: Faults,
    is_read: bool,
    mode: Mode,
    ask: Ask,
    file: &[u8],
    server_ignores_options: bool,
) -> Run {
    let mut sim = Sim::new(seed, faults);
    let config = Config {
        timeout: Duration::from_millis(200),
        max_retries: 30,
        dally: true,
    };
    let mut client = End::new(addr(CLIENT), if is_read { Vec::new() } else { file.to_vec() });
    let mut server = End::new(addr(SERVER_TID), if is_read { file.to_vec() } else { Vec::new() });
    client.t = Some(Transfer::client(sim.now, addr(LISTEN), "f", mode, ask, is_read, config));
    for _ in 0..5_000_000 {
        client.pump(&mut sim);
        server.pump(&mut sim);
        let client_done = client.t.as_ref().is_some_and(Transfer::is_finished);
        let server_done = server.t.as_ref().is_some_and(Transfer::is_finished);
        if client_done && server_done && sim.wire.is_empty() {
            break;
        }
        if client_done && server.t.is_none() {
            break;
        }
        // Advance the virtual clock to the next thing that happens.
        let next = [
            sim.next_delivery(),
            client.t.as_ref().and_then(Transfer::poll_timeout),
            server.t.as_ref().and_then(Transfer::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        sim.now = sim.now.max(next);
        while let Some(p) = sim.take_due() {
            if p.to == addr(LISTEN) {
                // The listener: one machine per client TID; duplicates of
                // the request are answered once.
                if server.t.is_none() {
                    let request = match Packet::decode(&p.data).unwrap() {
                        Packet::Rrq(r) | Packet::Wrq(r) => r,
                        other => panic!("not a request: {other:?}"),
                    };
                    let options = if server_ignores_options {
                        Vec::new()
                    } else {
                        request.options.clone()
                    };
                    let n = negotiate(&options, request.mode, is_read, Some(file.len() as u64), LIMITS);
                    let oack = (!n.oack.is_empty()).then(|| {
                        Packet::Oack {
                            options: n.oack.clone(),
                        }
                        .encode()
                    });
                    server.t = Some(if is_read {
                        Transfer::server_read(sim.now, p.from, &request, n.settings, oack, config)
                    } else {
                        Transfer::server_write(sim.now, p.from, &request, n.settings, oack, config)
                    });
                }
            } else if p.to == client.addr {
                client.t.as_mut().unwrap().handle_datagram(sim.now, p.from, &p.data);
            } else if p.to == server.addr {
                if let Some(t) = server.t.as_mut() {
                    t.handle_datagram(sim.now, p.from, &p.data);
                }
            }
        }
        for end in [&mut client, &mut server] {
            if let Some(t) = end.t.as_mut() {
                if t.poll_timeout().is_some_and(|d| d <= sim.now) {
                    t.handle_timeout(sim.now);
                }
            }
        }
    }
    client.pump(&mut sim);
    server.pump(&mut sim);
    Run {
        client,
        server,
        log: sim.log,
    }
}

/// The block number of every DATA put on the wire, in order.
fn data_block_numbers(run: &Run) -> Vec<u16> {
    run.log
        .iter()
        .filter(|(_, _, d)| d[1] == 3)
        .map(|(_, _, d)| u16::from_be_bytes([d[2], d[3]]))
        .collect()
}

fn assert_delivered(run: &Run, is_read: bool, want: &[u8]) {
    let receiver = if is_read { &run.client } else { &run.server };
    assert!(run.client.failed.is_none(), "client failed: {:?}", run.client.failed);
    assert!(run.server.failed.is_none(), "server failed: {:?}", run.server.failed);
    assert!(run.client.complete && run.server.complete, "both ends complete");
    assert_eq!(receiver.received.len(), want.len());
    assert!(receiver.received == want, "exact bytes");
}

#[test]
fn lock_step_read_and_write_survive_loss_duplication_and_reordering() {
    for seed in 1..=8 {
        let file = Rng(seed).bytes(100_000 + seed as usize * 37);
        for is_read in [true, false] {
            let r = run(seed, HOSTILE, is_read, Mode::Octet, Ask::default(), &file, false);
            assert_delivered(&r, is_read, &file);
        }
    }
}

#[test]
fn windowed_transfers_survive_the_same_faults() {
    let ask = Ask {
        blksize: Some(1468),
        windowsize: Some(16),
        timeout: None,
        tsize: None,
        rollover: None,
    };
    for seed in 1..=8 {
        let file = Rng(seed + 100).bytes(400_000 + seed as usize * 1468);
        for is_read in [true, false] {
            let r = run(seed, HOSTILE, is_read, Mode::Octet, ask, &file, false);
            assert_delivered(&r, is_read, &file);
            assert_eq!(r.client.settings.unwrap().windowsize, 16);
        }
    }
}

#[test]
fn netascii_both_ways_with_faults() {
    let mut text = Vec::new();
    for i in 0..3000 {
        text.extend_from_slice(format!("line {i}\n").as_bytes());
        if i % 7 == 0 {
            text.extend_from_slice(b"bare\rcr\n");
        }
    }
    for is_read in [true, false] {
        let r = run(7, HOSTILE, is_read, Mode::Netascii, Ask::default(), &text, false);
        assert_delivered(&r, is_read, &text);
    }
    // On the wire, line ends are CR LF and a bare CR is CR NUL.
    let r = run(1, CLEAN, true, Mode::Netascii, Ask::default(), b"a\nb\rc", false);
    let data: Vec<&Bytes> = r.log.iter().filter(|(_, _, d)| d[1] == 3).map(|(_, _, d)| d).collect();
    assert_eq!(&data[0][4..], b"a\r\nb\r\0c");
}

#[test]
fn block_numbers_wrap_past_65535() {
    // 8-byte blocks make 70,000 blocks out of 560 KB.
    let file = Rng(9).bytes(560_003);
    let ask = Ask {
        blksize: Some(8),
        ..Ask::default()
    };
    for is_read in [true, false] {
        let r = run(3, CLEAN, is_read, Mode::Octet, ask, &file, false);
        assert_delivered(&r, is_read, &file);
        let data_blocks = data_block_numbers(&r);
        let wrap = data_blocks.iter().position(|&b| b == 65535).unwrap();
        assert_eq!(data_blocks[wrap + 1], 0, "65535 is followed by 0");
        assert_eq!(data_blocks.len(), 560_003 / 8 + 1);
    }
    // And with loss, across the wrap, windowed.
    let ask = Ask {
        blksize: Some(8),
        windowsize: Some(8),
        ..Ask::default()
    };
    let r = run(5, HOSTILE, true, Mode::Octet, ask, &file, false);
    assert_delivered(&r, true, &file);
}

#[test]
fn rollover_1_when_asked_skips_block_0_after_65535() {
    let file = Rng(11).bytes(560_003);
    let lock_step = Ask {
        blksize: Some(8),
        rollover: Some(Rollover::One),
        ..Ask::default()
    };
    for is_read in [true, false] {
        let r = run(4, CLEAN, is_read, Mode::Octet, lock_step, &file, false);
        assert_delivered(&r, is_read, &file);
        let data_blocks = data_block_numbers(&r);
        let wrap = data_blocks.iter().position(|&b| b == 65535).unwrap();
        assert_eq!(data_blocks[wrap + 1], 1, "65535 is followed by 1");
        assert!(!data_blocks.contains(&0), "no DATA 0 ever");
    }
    // Windowed, with loss and reordering across the wrap.
    let windowed = Ask {
        windowsize: Some(8),
        ..lock_step
    };
    for is_read in [true, false] {
        let r = run(6, HOSTILE, is_read, Mode::Octet, windowed, &file, false);
        assert_delivered(&r, is_read, &file);
    }
}

#[test]
fn a_file_that_fills_its_last_block_ends_with_an_empty_block() {
    let file = vec![7u8; 1024];
    let r = run(1, CLEAN, true, Mode::Octet, Ask::default(), &file, false);
    assert_delivered(&r, true, &file);
    let last = r.log.iter().filter(|(_, _, d)| d[1] == 3).last().unwrap();
    assert_eq!(&last.2[..], b"\x00\x03\x00\x03");
}

#[test]
fn a_server_without_options_falls_back_to_rfc_1350() {
    let file = Rng(4).bytes(10_000);
    let ask = Ask {
        blksize: Some(1468),
        windowsize: Some(16),
        tsize: Some(0),
        timeout: Some(1),
        rollover: None,
    };
    for is_read in [true, false] {
        let r = run(2, CLEAN, is_read, Mode::Octet, ask, &file, true);
        assert_delivered(&r, is_read, &file);
        assert_eq!(r.client.settings, Some(Settings::default()));
    }
}

#[test]
fn tsize_is_reported_on_a_read() {
    let file = Rng(4).bytes(12_345);
    let ask = Ask {
        tsize: Some(0),
        ..Ask::default()
    };
    let r = run(2, CLEAN, true, Mode::Octet, ask, &file, false);
    assert_delivered(&r, true, &file);
    assert_eq!(r.client.settings.unwrap().tsize, Some(12_345));
}

fn t0() -> Instant {
    Instant::now()
}

fn drain(t: &mut Transfer) -> (Vec<Bytes>, Vec<Event>) {
    let mut tx = Vec::new();
    while let Some(x) = t.poll_transmit() {
        tx.push(x.data);
    }
    let mut ev = Vec::new();
    while let Some(e) = t.poll_event() {
        ev.push(e);
    }
    (tx, ev)
}

fn read_request() -> sockit_proto::tftp::packet::Request {
    sockit_proto::tftp::packet::Request {
        filename: "f".into(),
        mode: Mode::Octet,
        options: vec![],
    }
}

#[test]
fn a_duplicate_ack_never_triggers_a_resend() {
    // RFC 1123 §4.2.3.1: the Sorcerer's Apprentice. A delayed ACK 1 arrives
    // twice; DATA 2 must go out once, not twice (and then DATA 3 twice...).
    let now = t0();
    let client = addr(CLIENT);
    let mut t = Transfer::server_read(
        now,
        client,
        &read_request(),
        Settings::default(),
        None,
        Config::default(),
    );
    t.push_data(now, &vec![1u8; 2000]);
    t.end_data(now);
    let (tx, _) = drain(&mut t);
    assert_eq!(tx, [data_packet(1, &[1u8; 512])]);
    t.handle_datagram(now, client, &ack_packet(1));
    t.handle_datagram(now, client, &ack_packet(1));
    let (tx, _) = drain(&mut t);
    assert_eq!(tx, [data_packet(2, &[1u8; 512])], "one DATA 2 for two ACK 1s");
    t.handle_datagram(now, client, &ack_packet(2));
    t.handle_datagram(now, client, &ack_packet(1));
    t.handle_datagram(now, client, &ack_packet(2));
    let (tx, _) = drain(&mut t);
    assert_eq!(tx.len(), 1, "stale and duplicate ACKs are ignored");
    // Only the timer resends.
    let deadline = t.poll_timeout().unwrap();
    t.handle_timeout(deadline);
    let (tx, _) = drain(&mut t);
    assert_eq!(tx, [data_packet(3, &[1u8; 512])]);
    assert_eq!(t.stats().retransmits, 1);
}

#[test]
fn duplicate_data_is_acked_again_but_delivered_once() {
    let now = t0();
    let client = addr(CLIENT);
    let request = read_request();
    let mut t = Transfer::server_write(now, client, &request, Settings::default(), None, Config::default());
    let (tx, _) = drain(&mut t);
    assert_eq!(tx, [ack_packet(0)]);
    let block = data_packet(1, &[5u8; 512]);
    t.handle_datagram(now, client, &block);
    t.handle_datagram(now, client, &block);
    let (tx, events) = drain(&mut t);
    assert_eq!(tx, [ack_packet(1), ack_packet(1)]);
    let data: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Data(_))).collect();
    assert_eq!(data.len(), 1);
    // The last block, then its retransmission during the dally: re-ACKed.
    t.handle_datagram(now, client, &data_packet(2, b"end"));
    t.handle_datagram(now, client, &data_packet(2, b"end"));
    let (tx, events) = drain(&mut t);
    assert_eq!(tx, [ack_packet(2), ack_packet(2)]);
    assert!(events.contains(&Event::Complete));
    assert!(!t.is_finished(), "dallying");
    t.handle_timeout(t.poll_timeout().unwrap());
    assert!(t.is_finished());

    // Without a dally (a client's choice) it is finished at the last ACK.
    let config = Config {
        dally: false,
        ..Config::default()
    };
    let mut t = Transfer::server_write(now, client, &request, Settings::default(), None, config);
    t.handle_datagram(now, client, &data_packet(1, b"end"));
    let (tx, events) = drain(&mut t);
    assert_eq!(tx, [ack_packet(0), ack_packet(1)]);
    assert!(events.contains(&Event::Complete));
    assert!(t.is_finished());
}

#[test]
fn a_stranger_gets_error_5_and_the_transfer_goes_on() {
    let now = t0();
    let client = addr(CLIENT);
    let stranger = addr("10.0.0.9:1234");
    let mut t = Transfer::server_read(
        now,
        client,
        &read_request(),
        Settings::default(),
        None,
        Config::default(),
    );
    t.push_data(now, b"small");
    t.end_data(now);
    drain(&mut t);
    t.handle_datagram(now, stranger, &ack_packet(1));
    let x = t.poll_transmit().unwrap();
    assert_eq!(x.to, stranger);
    assert_eq!(
        Packet::decode(&x.data).unwrap(),
        Packet::Error {
            code: ErrorCode::UnknownTid,
            message: "unknown transfer ID".into()
        }
    );
    assert!(!t.is_finished());
    t.handle_datagram(now, client, &ack_packet(1));
    let (_, events) = drain(&mut t);
    assert!(events.contains(&Event::Complete));
    assert!(t.is_finished());
}

#[test]
fn a_client_refuses_an_oack_it_did_not_ask_for() {
    let now = t0();
    let server = addr(LISTEN);
    let mut t = Transfer::client(
        now,
        server,
        "f",
        Mode::Octet,
        Ask {
            blksize: Some(1024),
            ..Ask::default()
        },
        true,
        Config::default(),
    );
    drain(&mut t);
    let oack = Packet::Oack {
        options: vec![("blksize".into(), "4096".into())],
    }
    .encode();
    t.handle_datagram(now, addr(SERVER_TID), &oack);
    let (tx, events) = drain(&mut t);
    assert!(matches!(
        Packet::decode(&tx[0]).unwrap(),
        Packet::Error {
            code: ErrorCode::OptionsRefused,
            ..
        }
    ));
    assert!(events.iter().any(|e| matches!(e, Event::Failed(Failure::Oack(_)))));
    assert!(t.is_finished());
}

#[test]
fn a_server_stops_when_the_client_rejects_its_oack() {
    let now = t0();
    let client = addr(CLIENT);
    let oack = Packet::Oack {
        options: vec![("blksize".into(), "1024".into())],
    }
    .encode();
    let settings = Settings {
        blksize: 1024,
        ..Settings::default()
    };
    let mut t = Transfer::server_read(
        now,
        client,
        &read_request(),
        settings,
        Some(oack.clone()),
        Config::default(),
    );
    let (tx, _) = drain(&mut t);
    assert_eq!(tx, [oack]);
    t.handle_datagram(
        now,
        client,
        &Packet::Error {
            code: ErrorCode::OptionsRefused,
            message: "no".into(),
        }
        .encode(),
    );
    let (tx, events) = drain(&mut t);
    assert!(tx.is_empty(), "no reply to an ERROR");
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Failed(Failure::Remote {
            code: ErrorCode::OptionsRefused,
            ..
        })
    )));
}

#[test]
fn retries_are_bounded() {
    let start = t0();
    let server = addr(LISTEN);
    let config = Config {
        timeout: Duration::from_secs(1),
        max_retries: 3,
        dally: true,
    };
    let mut t = Transfer::client(start, server, "f", Mode::Octet, Ask::default(), true, config);
    let mut sent = drain(&mut t).0.len();
    let mut now = start;
    while let Some(deadline) = t.poll_timeout() {
        now = deadline;
        t.handle_timeout(now);
        sent += drain(&mut t).0.len();
    }
    assert_eq!(sent, 4, "the request and 3 retransmissions");
    assert_eq!(now - start, Duration::from_secs(4));
    assert!(t.is_finished());

    // A server whose peer never answered (maybe a forged address) sends
    // its first DATA fewer times.
    let mut t = Transfer::server_read(
        start,
        addr(CLIENT),
        &read_request(),
        Settings::default(),
        None,
        Config::default(),
    );
    t.push_data(start, &[0u8; 100]);
    t.end_data(start);
    let mut copies = 0;
    loop {
        let (tx, events) = drain(&mut t);
        copies += tx.iter().filter(|d| d[1] == 3).count();
        if events.iter().any(|e| matches!(e, Event::Failed(Failure::TimedOut(_)))) {
            break;
        }
        let deadline = t.poll_timeout().unwrap();
        t.handle_timeout(deadline);
    }
    assert_eq!(copies, 3, "DATA 1 and 2 retransmissions to an unproven peer");
}

#[test]
fn an_unanswered_read_costs_one_block_and_memory_stays_within_the_window() {
    // A request whose source may be forged: until the peer answers on our
    // TID, one block is read and cut, whatever the block size.
    let now = t0();
    let client = addr(CLIENT);
    let settings = Settings {
        blksize: 8,
        windowsize: 16,
        ..Settings::default()
    };
    let mut t = Transfer::server_read(now, client, &read_request(), settings, None, Config::default());
    assert_eq!(t.data_wanted(256 * 1024), 8, "one block's worth before any answer");
    // Even a driver that pushes a whole read chunk gets one block cut.
    t.push_data(now, &vec![7u8; 256 * 1024]);
    let (tx, _) = drain(&mut t);
    assert_eq!(tx.len(), 1);
    assert!(t.held_bytes() <= 256 * 1024 + 12, "{}", t.held_bytes());
    assert_eq!(t.data_wanted(256 * 1024), 0);
    // Once the peer answers, the window opens: 16 blocks cut and sent, the
    // rest kept as bytes, not thousands of packets.
    t.handle_datagram(now, client, &ack_packet(1));
    let (tx, _) = drain(&mut t);
    assert_eq!(tx.len(), 16);
    assert!(t.held_bytes() <= 256 * 1024 + 16 * 12, "{}", t.held_bytes());
    // Every byte still arrives, in order, as the window moves.
    let mut block = 1u16;
    let mut delivered = 8 + tx.iter().map(|p| p.len() - 4).sum::<usize>();
    loop {
        block += 16;
        t.handle_datagram(now, client, &ack_packet(block));
        let (tx, _) = drain(&mut t);
        if tx.is_empty() {
            t.end_data(now);
            let (tx, _) = drain(&mut t);
            assert_eq!(tx.len(), 1, "the empty last block");
            break;
        }
        delivered += tx.iter().map(|p| p.len() - 4).sum::<usize>();
        assert!(t.held_bytes() <= 256 * 1024 + 16 * 12);
    }
    assert_eq!(delivered, 256 * 1024);
}

#[test]
fn a_read_with_options_reads_nothing_before_ack_0() {
    let now = t0();
    let settings = Settings {
        blksize: 1468,
        ..Settings::default()
    };
    let oack = Bytes::from_static(b"\x00\x06blksize\x001468\x00");
    let t = Transfer::server_read(
        now,
        addr(CLIENT),
        &read_request(),
        settings,
        Some(oack),
        Config::default(),
    );
    assert_eq!(t.data_wanted(256 * 1024), 0);
}
