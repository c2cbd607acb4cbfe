//! Every other total parser in sockit-proto, on any bytes, with the
//! invariants each one promises (not just "no panic"):
//! - RelPath never yields an escaping component and round-trips;
//! - exec::classify decides on 4+ bytes, and on any non-empty bytes once paused;
//! - a time reply never exceeds its limit;
//! - an upper-cased datagram is never longer than the request;
//! - any JSON object parses to a request or a typed error;
//! - typed hex that parses formats back to the same bytes;
//! - a parsed subnet's network contains its address and its hosts;
//! - the nc message splitters never buffer past their caps, and a line
//!   message never holds a newline;
//! - a TFTP packet that decodes re-encodes to bytes that decode the same,
//!   and a transfer machine fed the bytes as datagrams never panics;
//! - an IPMSG packet that decodes and fits re-encodes to one that decodes
//!   the same, and a node fed the bytes as datagrams answers each with at
//!   most a bounded number of packets and keeps its peer list bounded;
//! - a TFTP sender holds no more than one read chunk plus its window;
//! - text escaped for a terminal holds no control character, and a chat
//!   line reader never yields a line past its cap;
//! - a message template parses or is refused, and a parsed one renders
//!   within a bound set by its own length and its inputs;
//! - a TFTP map file parses or is refused line by line, and its rules
//!   applied to its own lines never yield a name past the cap;
//! - a chat bus event decodes or is refused, a decoded one re-encodes to
//!   one that decodes the same, and its lines are single lines;
//! - an object-store upload manifest decodes or is refused, and a decoded
//!   one round-trips and leaves room for its last part (its resume offset
//!   is below its size, or 0); a store URL parses or is refused, and a
//!   parsed one displays back to a URL that parses the same.
#![no_main]

use chrono::{FixedOffset, TimeZone};
use libfuzzer_sys::fuzz_target;
use sockit_proto::assist::messages::{FrameMode, MAX_LINE, Message, Splitter};
use sockit_proto::assist::{hex, profile, rules, scenario, template};
use sockit_proto::exec::{Opening, classify};
use sockit_proto::files::Request;
use sockit_proto::path::RelPath;
use sockit_proto::subnet::Net;
use sockit_proto::tftp::options::{Ask, Settings};
use sockit_proto::tftp::packet::{self as tftp_packet, Mode, Packet};
use sockit_proto::tftp::transfer::{Config, Transfer};
use sockit_proto::{chat, clock, display, echo, files, ipmsg};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = files::object::Manifest::decode(data) {
        assert_eq!(files::object::Manifest::decode(&manifest.encode()).ok(), Some(manifest.clone()));
        assert!(manifest.offset() == 0 || manifest.offset() < manifest.filesize);
    }
    if let Ok(url) = std::str::from_utf8(data).map(files::object::StoreUrl::parse) {
        if let Ok(url) = url {
            assert_eq!(files::object::StoreUrl::parse(&url.to_string()), Ok(url));
        }
    }
    if let Ok(envelope) = chat::bus::Envelope::decode(data) {
        assert_eq!(chat::bus::Envelope::decode(&envelope.encode()).ok(), Some(envelope.clone()));
        if let chat::bus::Event::Lines { lines } = &envelope.event {
            assert!(lines.iter().all(|l| !l.text.contains('\n')));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(rules) = sockit_proto::tftp::remap::Rules::parse(text) {
            for line in text.lines().take(8) {
                let context = sockit_proto::tftp::remap::Context {
                    is_read: line.len() % 2 == 0,
                    client: std::net::IpAddr::from([127, 0, 0, 1]),
                };
                if let sockit_proto::tftp::remap::Remapped::Name(name) = rules.apply(line, context) {
                    assert!(name.len() <= sockit_proto::tftp::remap::MAX_NAME);
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(path) = RelPath::parse_dir(text) {
            for c in path.components() {
                assert!(!c.is_empty() && c != "." && c != "..");
                assert!(!c.contains(['/', '\\', '\0']));
            }
            assert_eq!(RelPath::parse_dir(&path.to_string()).ok(), Some(path));
        }
    }

    let decided = classify(data, 65_536, false);
    if data.len() >= 4 {
        assert_ne!(decided, Opening::NeedMore);
    }
    if !data.is_empty() {
        assert_ne!(classify(data, 65_536, true), Opening::NeedMore);
    }

    if let Some(now) =
        FixedOffset::east_opt(8 * 3600).and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 23, 0, 0).single())
    {
        if let Ok(reply) = clock::format_request(data, &now, clock::REPLY_ALLOWANCE) {
            assert!(reply.len() <= clock::REPLY_ALLOWANCE);
        }
    }

    assert!(echo::upper_datagram(data).len() <= data.len());

    if let (Ok(text), Some(now)) = (
        std::str::from_utf8(data),
        FixedOffset::east_opt(0).and_then(|tz| tz.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).single()),
    ) {
        if let Ok(t) = template::Template::parse(text) {
            let mut random = |buf: &mut [u8]| buf.fill(0x5A);
            let captures: [Option<&[u8]>; 2] = [Some(data), None];
            let mut ctx = template::Context {
                seq: u64::MAX,
                now: Some(now),
                random: &mut random,
                received: Some(data),
                captures: &captures,
                named: &[],
            };
            let out = t.render(&mut ctx);
            // Each macro adds at most a capture (the input), a time, or
            // 2 x MAX_RAND hex digits: the output is bounded by the
            // template's own size times that.
            let per_macro = data.len() + template::MAX_TIME_LEN + 2 * template::MAX_RAND + 20;
            assert!(out.len() <= text.len() * (1 + per_macro));
        }
    }

    // Rules, scenarios and profiles: any text loads or is refused; loaded
    // rules answer the same bytes without panicking.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(set) = rules::RuleSet::from_toml(text) {
            let mut responder = rules::Responder::new(std::sync::Arc::new(set));
            let mut random = |buf: &mut [u8]| buf.fill(0x5A);
            let _ = responder.answer(data, || chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, &mut random);
        }
        let _ = scenario::Scenario::from_toml(text);
        let _ = profile::Profile::from_toml(text);
    }

    if let Ok(serde_json::Value::Object(header)) = serde_json::from_slice(data) {
        let _ = Request::from_header(&header);
    }

    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = hex::parse(text) {
            assert_eq!(hex::parse(&hex::format(&bytes)).ok(), Some(bytes));
        }
        if let Ok(Net::V4(n)) = Net::parse(text, None) {
            let (first, last) = n.hosts();
            assert!(n.contains(n.addr()) && n.contains(first) && n.contains(last));
            assert!(first <= last);
        }
    }

    for mode in [FrameMode::Line, FrameMode::Len32Le, FrameMode::JsonFrame] {
        let mut splitter = Splitter::new(mode);
        // Fed in two pieces so reassembly across reads is exercised.
        let (a, b) = data.split_at(data.len() / 2);
        for piece in [a, b] {
            splitter.push(piece);
            while let Ok(Some(message)) = splitter.next_message() {
                if let Message::Line { text, .. } = message {
                    assert!(text.len() <= MAX_LINE && !text.contains(&b'\n'));
                }
            }
        }
        let _ = splitter.finish();
    }

    if let Ok(packet) = Packet::decode(data) {
        assert_eq!(Packet::decode(&packet.encode()), Ok(packet));
    }

    if let Ok(packet) = ipmsg::Packet::decode(data) {
        if let Ok(bytes) = packet.encode() {
            let again = ipmsg::Packet::decode(&bytes).expect("our own encoding decodes");
            assert_eq!(
                (again.packet_no, again.command, &again.user),
                (packet.packet_no, packet.command, &packet.user)
            );
        }
    }
    let now = std::time::Instant::now();
    let mut config = ipmsg::Config::new("me", "box", ([127, 0, 0, 1], 2425).into());
    config.max_peers = 4;
    let mut node = ipmsg::Node::new(config, now, 1_700_000_000);
    for (i, piece) in data.split(|&b| b == b'|').enumerate() {
        let from = ([127, 0, 1, (i % 7) as u8], 2425).into();
        node.handle_datagram(now, from, piece);
        let mut answers = 0;
        while node.poll_transmit().is_some() {
            answers += 1;
        }
        assert!(answers <= 1, "one datagram, one answer at most");
        while node.poll_event().is_some() {}
        assert!(node.peers().count() <= 4);
    }
    let now = std::time::Instant::now();
    let peer: std::net::SocketAddr = ([127, 0, 0, 1], 4000).into();
    let request = tftp_packet::Request {
        filename: "f".into(),
        mode: Mode::Netascii,
        options: vec![],
    };
    let mut machines = [
        Transfer::server_write(now, peer, &request, Settings::default(), None, Config::default()),
        Transfer::server_read(
            now,
            peer,
            &request,
            Settings {
                windowsize: 4,
                ..Settings::default()
            },
            None,
            Config::default(),
        ),
        Transfer::client(
            now,
            peer,
            "f",
            Mode::Octet,
            Ask {
                blksize: Some(600),
                ..Ask::default()
            },
            true,
            Config::default(),
        ),
    ];
    for t in &mut machines {
        t.push_data(now, &[b'\n'; 700]);
        // Netascii doubles newlines: 1,400 bytes, plus a window of packets.
        assert!(t.held_bytes() <= 1400 + 4 * 516, "{}", t.held_bytes());
        // Each 64-byte piece is one datagram, from the peer or a stranger.
        for (i, piece) in data.chunks(64).enumerate() {
            let from = if i % 5 == 4 {
                ([127, 0, 0, 2], 4000).into()
            } else {
                peer
            };
            t.handle_datagram(now, from, piece);
            t.handle_timeout(now + std::time::Duration::from_secs(i as u64));
            while t.poll_transmit().is_some() {}
            while t.poll_event().is_some() {}
        }
    }

    let text = String::from_utf8_lossy(data);
    for keep_tab in [false, true] {
        let shown = display::escape(&text, keep_tab);
        assert!(
            shown.chars().all(|c| !c.is_control() || (keep_tab && c == '\t')),
            "{shown:?}"
        );
    }
    assert!(
        !display::escape_lines(&text, "  ")
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    );
    let mut lines = chat::LineReader::with_max(64);
    lines.push(data, |line| {
        if let chat::Line::Text(t) = line {
            assert!(t.len() <= 64 && !t.contains('\n'));
        }
    });
});
