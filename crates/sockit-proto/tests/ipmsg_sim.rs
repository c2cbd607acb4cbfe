//! The IPMSG node on a virtual clock: two nodes over a simulated network
//! that drops and duplicates datagrams, plus hand-written peer packets.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockit_proto::assist::text::TextEncoding;
use sockit_proto::ipmsg::{Config, Event, FileEntry, Mode, Node, Packet, opt};

const WALL: u64 = 1_700_000_000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn node(name: &str, local: &str, now: Instant) -> Node {
    let mut config = Config::new(name, "box", addr(local));
    config.nick = format!("{name}-nick");
    Node::new(config, now, WALL)
}

/// A deterministic loss/duplication source (a 64-bit LCG).
struct Faults {
    state: u64,
    drop_percent: u64,
    dup_percent: u64,
}

impl Faults {
    /// A network that neither drops nor duplicates.
    fn none() -> Faults {
        Faults {
            state: 1,
            drop_percent: 0,
            dup_percent: 0,
        }
    }

    fn roll(&mut self) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.state >> 33) % 100
    }
}

/// Moves datagrams between two nodes until both are quiet, advancing the
/// clock to the next timeout when nothing is in flight. Bounded in steps.
fn run(a: &mut Node, b: &mut Node, now: &mut Instant, faults: &mut Faults, events: &mut [Vec<Event>; 2]) {
    let addrs = [a.config().local, b.config().local];
    for _ in 0..10_000 {
        let mut wire: VecDeque<(usize, SocketAddr, Vec<u8>)> = VecDeque::new();
        for (i, n) in [&mut *a, &mut *b].into_iter().enumerate() {
            while let Some(t) = n.poll_transmit() {
                let to = addrs
                    .iter()
                    .position(|&x| x == t.to)
                    .expect("only the two nodes are addressed");
                if faults.roll() < faults.drop_percent {
                    continue;
                }
                if faults.roll() < faults.dup_percent {
                    wire.push_back((to, addrs[i], t.bytes.clone()));
                }
                wire.push_back((to, addrs[i], t.bytes));
            }
        }
        if wire.is_empty() {
            let next = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) => {
                    *now = t.max(*now);
                    a.handle_timeout(*now);
                    b.handle_timeout(*now);
                }
                None => break,
            }
        }
        *now += Duration::from_millis(1);
        for (to, from, bytes) in wire {
            let n = if to == 0 { &mut *a } else { &mut *b };
            n.handle_datagram(*now, from, &bytes);
        }
        for (i, n) in [&mut *a, &mut *b].into_iter().enumerate() {
            while let Some(e) = n.poll_event() {
                events[i].push(e);
            }
        }
    }
}

fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn entry_is_answered_and_both_list_each_other() {
    let mut now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let mut b = node("bob", "127.0.0.2:2425", now);
    a.announce(now, &[addr("127.0.0.2:2425")], true);
    let mut events = [Vec::new(), Vec::new()];
    run(&mut a, &mut b, &mut now, &mut Faults::none(), &mut events);
    assert_eq!(a.peers().map(|p| p.nick.as_str()).collect::<Vec<_>>(), ["bob-nick"]);
    assert_eq!(b.peers().map(|p| p.nick.as_str()).collect::<Vec<_>>(), ["alice-nick"]);
    assert!(b.peers().all(|p| p.utf8), "sockit advertises CAPUTF8OPT");
    assert!(matches!(&events[0][0], Event::Entry { peer, new: true } if peer.user == "bob"));
}

#[test]
fn messages_arrive_once_and_are_acknowledged_despite_loss_and_duplicates() {
    for seed in 1..=40u64 {
        let mut now = Instant::now();
        let mut a = node("alice", "127.0.0.1:2425", now);
        let mut b = node("bob", "127.0.0.2:2425", now);
        let mut faults = Faults {
            state: seed,
            drop_percent: 25,
            dup_percent: 30,
        };
        let mut events = [Vec::new(), Vec::new()];
        let mut sent = Vec::new();
        for i in 0..5 {
            sent.push(
                a.send_message(now, addr("127.0.0.2:2425"), &format!("m{i}"), &[])
                    .unwrap(),
            );
        }
        run(&mut a, &mut b, &mut now, &mut faults, &mut events);
        let delivered: Vec<u64> = events[0]
            .iter()
            .filter_map(|e| match e {
                Event::Delivered { packet_no, .. } => Some(*packet_no),
                _ => None,
            })
            .collect();
        let undelivered = events[0]
            .iter()
            .filter(|e| matches!(e, Event::Undelivered { .. }))
            .count();
        assert_eq!(delivered.len() + undelivered, 5, "seed {seed}: every send ends one way");
        let mut got = messages(&events[1]);
        got.sort();
        got.dedup();
        assert_eq!(
            got.len(),
            messages(&events[1]).len(),
            "seed {seed}: no duplicate reached the user"
        );
        for n in &delivered {
            let i = sent.iter().position(|s| s == n).unwrap();
            assert!(got.contains(&format!("m{i}")), "seed {seed}: acked implies received");
        }
        assert_eq!(a.pending_count(), 0);
    }
}

#[test]
fn an_unanswered_message_is_sent_max_attempts_times_then_reported() {
    let start = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", start);
    let to = addr("127.0.0.9:2425");
    let packet_no = a.send_message(start, to, "hello?", &[]).unwrap();
    let mut sends = 0;
    let mut now = start;
    for _ in 0..100 {
        while a.poll_transmit().is_some() {
            sends += 1;
        }
        let Some(t) = a.poll_timeout() else { break };
        now = t;
        a.handle_timeout(now);
    }
    assert_eq!(sends, a.config().max_attempts);
    assert_eq!(now - start, a.config().retry_interval * a.config().max_attempts);
    assert_eq!(
        a.poll_event(),
        Some(Event::Undelivered {
            to,
            packet_no,
            attempts: a.config().max_attempts
        })
    );
}

fn peer_packet(packet_no: u64, command: u32, extra: &[u8]) -> Vec<u8> {
    let mut bytes = format!("1:{packet_no}:peer:peerbox:{command}:").into_bytes();
    bytes.extend_from_slice(extra);
    bytes
}

fn drain(n: &mut Node) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| n.poll_transmit().map(|t| t.bytes)).collect()
}

#[test]
fn duplicates_are_acked_again_but_shown_once() {
    let now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let from = addr("127.0.0.3:2425");
    let msg = peer_packet(77, 0x20 | opt::SENDCHECK, b"hi\0");
    a.handle_datagram(now, from, &msg);
    a.handle_datagram(now, from, &msg);
    let acks = drain(&mut a);
    assert_eq!(acks.len(), 2);
    for ack in &acks {
        let p = Packet::decode(ack).unwrap();
        assert_eq!(p.command.mode, Mode::RecvMsg);
        assert_eq!(p.extra, b"77\0");
    }
    let shown: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(messages(&shown), ["hi"]);
}

#[test]
fn broadcast_and_auto_reply_messages_are_never_acknowledged() {
    let now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let from = addr("127.0.0.3:2425");
    a.handle_datagram(
        now,
        from,
        &peer_packet(1, 0x20 | opt::SENDCHECK | opt::BROADCAST, b"all\0"),
    );
    a.handle_datagram(
        now,
        from,
        &peer_packet(2, 0x20 | opt::SENDCHECK | opt::AUTORET, b"away\0"),
    );
    assert!(drain(&mut a).is_empty());
    let shown: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(messages(&shown), ["all", "away"]);
}

#[test]
fn own_looped_back_broadcasts_are_ignored() {
    let now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    a.announce(now, &[addr("127.255.255.255:2425")], false);
    let entry = drain(&mut a).remove(0);
    a.handle_datagram(now, addr("127.0.0.1:2425"), &entry);
    assert!(drain(&mut a).is_empty(), "no answer to ourselves");
    assert_eq!(a.poll_event(), None);
    assert_eq!(a.peers().count(), 0);

    let mut config = Config::new("any", "box", addr("0.0.0.0:2425"));
    config.own_ips = vec!["10.0.0.5".parse().unwrap()];
    let mut wild = Node::new(config, now, WALL);
    wild.handle_datagram(now, addr("10.0.0.5:2425"), &entry);
    assert_eq!(wild.peers().count(), 0);
    wild.handle_datagram(now, addr("10.0.0.6:2425"), &entry);
    assert_eq!(wild.peers().count(), 1);
}

#[test]
fn packet_numbers_strictly_increase_within_a_second_and_follow_the_clock() {
    let start = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", start);
    let to = addr("127.0.0.2:2425");
    a.announce(start, &[to, to, to], true);
    a.handle_timeout(start);
    let mut later = node("alice", "127.0.0.1:2425", start);
    later.announce(start + Duration::from_secs(100), &[to], true);
    let numbers: Vec<u64> = drain(&mut a)
        .iter()
        .map(|b| Packet::decode(b).unwrap().packet_no)
        .collect();
    assert_eq!(numbers, [WALL, WALL + 1, WALL + 2]);
    assert_eq!(Packet::decode(&drain(&mut later)[0]).unwrap().packet_no, WALL + 100);
}

#[test]
fn text_goes_out_in_utf8_to_capable_peers_and_gbk_to_others() {
    let now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let feiq = addr("127.0.0.3:2425");
    let modern = addr("127.0.0.4:2425");
    a.handle_datagram(
        now,
        feiq,
        b"1_lbt6_0#128#000C29D68D8F#0#0#0#4001#9:1334542470:Administrator:PC:6291459:fq\0g\0",
    );
    a.handle_datagram(now, modern, &peer_packet(5, 0x03 | opt::CAPUTF8, b"m\0"));
    drain(&mut a);
    a.send_message(now, feiq, "你好", &[]).unwrap();
    a.send_message(now, modern, "你好", &[]).unwrap();
    let out = drain(&mut a);
    let gbk = Packet::decode(&out[0]).unwrap();
    assert_eq!(gbk.extra, [TextEncoding::Gbk.encode("你好").unwrap(), vec![0]].concat());
    assert!(!gbk.command.has(opt::UTF8));
    let utf8 = Packet::decode(&out[1]).unwrap();
    assert_eq!(utf8.extra, "你好\0".as_bytes());
    assert!(utf8.command.has(opt::UTF8));
}

#[test]
fn feiq_and_gbk_messages_are_decoded_and_styles_stripped() {
    let now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let from = addr("127.0.0.3:2425");
    let mut msg = b"1_lbt6_0#128#000C29D68D8F#0#0#0#4001#9:1334542471:Administrator:PC:288:".to_vec();
    msg.extend(
        TextEncoding::Gbk
            .encode("你好{/font;-16777216;12;0;0;0;0;宋体;0;}")
            .unwrap(),
    );
    msg.push(0);
    a.handle_datagram(now, from, &msg);
    let shown: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(messages(&shown), ["你好"]);
    let ack = Packet::decode(&drain(&mut a)[0]).unwrap();
    assert_eq!(ack.extra, b"1334542471\0");
}

#[test]
fn attachments_travel_in_the_file_list() {
    let mut now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let mut b = node("bob", "127.0.0.2:2425", now);
    let files = [FileEntry {
        id: 0,
        name: "報告 v1:final.txt".into(),
        size: 1234,
        mtime: WALL,
        attr: 1,
    }];
    a.send_message(now, addr("127.0.0.2:2425"), "see attached", &files)
        .unwrap();
    let mut events = [Vec::new(), Vec::new()];
    run(&mut a, &mut b, &mut now, &mut Faults::none(), &mut events);
    let Some(Event::Message(m)) = events[1].iter().find(|e| matches!(e, Event::Message(_))) else {
        panic!("no message: {:?}", events[1]);
    };
    assert_eq!(m.text, "see attached");
    assert_eq!(m.files, files);
}

#[test]
fn exit_and_absence_update_the_list() {
    let now = Instant::now();
    let mut a = node("alice", "127.0.0.1:2425", now);
    let from = addr("127.0.0.3:2425");
    a.handle_datagram(now, from, &peer_packet(1, 0x01, b"pal\0grp\0"));
    a.handle_datagram(now, from, &peer_packet(2, 0x04 | opt::ABSENCE, b"pal (away)\0grp\0"));
    assert!(a.peer(from).unwrap().absent);
    a.handle_datagram(now, from, &peer_packet(3, 0x02, b""));
    assert_eq!(a.peers().count(), 0);
    let shown: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(matches!(shown.last(), Some(Event::Exit { nick, .. }) if nick == "pal (away)"));
}

#[test]
fn junk_is_reported_not_fatal_and_the_peer_list_is_bounded() {
    let now = Instant::now();
    let mut config = Config::new("alice", "box", addr("127.0.0.1:2425"));
    config.max_peers = 8;
    let mut a = Node::new(config, now, WALL);
    a.handle_datagram(now, addr("127.0.0.3:1"), b"\xff\xfe not ipmsg");
    assert!(matches!(a.poll_event(), Some(Event::Malformed { .. })));
    for i in 0..50u16 {
        a.handle_datagram(
            now + Duration::from_millis(u64::from(i)),
            addr(&format!("127.0.1.{i}:2425")),
            &peer_packet(1, 0x01, b"x\0"),
        );
    }
    assert_eq!(a.peers().count(), 8);
    assert!(a.peer(addr("127.0.1.49:2425")).is_some(), "the newest are kept");
}
