//! The chat room with real TCP clients on 127.0.0.1: delivery to every
//! member exactly once and in order, joins and leaves, private messages,
//! nicks, a member that never reads, and bad lines.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use sockit::chat::ChatService;

/// Only a hang reaches this.
const PATIENCE: Duration = Duration::from_secs(60);

struct Member {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    out: OwnedWriteHalf,
}

impl Member {
    /// Connects, takes the welcome, and renames itself.
    async fn join(addr: SocketAddr, nick: &str) -> Member {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut m = Member {
            lines: BufReader::new(r).lines(),
            out: w,
        };
        let welcome = m.next().await;
        assert!(welcome.starts_with("*** welcome, guest"), "{welcome}");
        m.say(&format!("/nick {nick}")).await;
        m.until(&format!("is now known as {nick}")).await;
        m
    }

    async fn say(&mut self, line: &str) {
        self.out.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    }

    async fn next(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("connection closed")
    }

    /// Reads until a line containing `needle`; returns the lines before it.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.next().await;
            if line.contains(needle) {
                return before;
            }
            before.push(line);
        }
    }
}

fn room() -> (SocketAddr, tokio_util::sync::CancellationToken) {
    common::spawn_tcp(ChatService::new(sockit::chat::DEFAULT_MEMBER_BACKLOG), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_members_get_every_message_once_and_in_order() {
    let (addr, _stop) = room();
    const MEMBERS: usize = 50;
    const EACH: usize = 10;
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        members.push(Member::join(addr, &format!("m{i}")).await);
    }
    // Everyone has seen everyone join before the talking starts.
    let last = format!("m{}", MEMBERS - 1);
    for m in members.iter_mut().take(MEMBERS - 1) {
        m.until(&format!("is now known as {last}")).await;
    }
    let mut tasks = Vec::new();
    for (i, mut m) in members.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for k in 0..EACH {
                m.say(&format!("msg {k} from m{i}")).await;
            }
            // Collect the others' messages: (MEMBERS - 1) * EACH of them.
            let mut per_sender: HashMap<String, Vec<usize>> = HashMap::new();
            let mut count = 0;
            while count < (MEMBERS - 1) * EACH {
                let line = m.next().await;
                let Some(rest) = line.strip_prefix('<') else { continue };
                let (from, text) = rest.split_once("> ").unwrap();
                assert_ne!(from, format!("m{i}"), "a member never gets its own message back");
                let k: usize = text.split(' ').nth(1).unwrap().parse().unwrap();
                per_sender.entry(from.to_string()).or_default().push(k);
                count += 1;
            }
            (m, per_sender)
        }));
    }
    for task in tasks {
        let (_m, per_sender) = task.await.unwrap();
        assert_eq!(per_sender.len(), MEMBERS - 1);
        for (from, seq) in per_sender {
            assert_eq!(
                seq,
                (0..EACH).collect::<Vec<_>>(),
                "from {from}: exactly once, in order"
            );
        }
    }
}

#[tokio::test]
async fn joins_leaves_nicks_and_private_messages() {
    let (addr, _stop) = room();
    let mut alice = Member::join(addr, "alice").await;
    let mut bob = Member::join(addr, "bob").await;
    alice.until("is now known as bob").await;
    let mut carol = Member::join(addr, "carol").await;
    alice.until("is now known as carol").await;
    bob.until("is now known as carol").await;

    // A taken nick (case does not matter) and an invalid one are refused.
    bob.say("/nick ALICE").await;
    assert_eq!(bob.next().await, "!!! ALICE is taken");
    bob.say("/nick two words").await;
    assert!(bob.next().await.starts_with("!!! ' ' is not allowed in a nick"));

    // A private message reaches only its target.
    alice.say("/msg bob secret").await;
    assert_eq!(bob.next().await, "*alice* secret");
    assert_eq!(alice.next().await, "-> bob: secret");
    alice.say("/msg nobody hello").await;
    assert_eq!(alice.next().await, "!!! no one here is called nobody");
    alice.say("public").await;
    assert_eq!(
        carol.next().await,
        "<alice> public",
        "carol never saw the private message"
    );
    assert_eq!(bob.next().await, "<alice> public");

    bob.say("/me waves").await;
    assert_eq!(alice.next().await, "* bob waves");
    carol.next().await;
    carol.say("/who").await;
    assert_eq!(carol.next().await, "*** 3 here: alice, bob, carol");

    // /quit says bye and leaves; a dropped connection leaves too.
    carol.say("/quit").await;
    assert_eq!(carol.next().await, "*** bye");
    assert!(carol.lines.next_line().await.unwrap().is_none(), "closed after bye");
    assert_eq!(alice.next().await, "*** carol left");
    drop(bob);
    assert_eq!(alice.next().await, "*** bob left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_reads_is_dropped_and_the_room_goes_on() {
    let (addr, _stop) = room();
    let mut talker = Member::join(addr, "talker").await;
    let mut listener = Member::join(addr, "listener").await;
    let stalled = Member::join(addr, "stalled").await;
    talker.until("now known as stalled").await;
    listener.until("now known as stalled").await;
    // `stalled` never reads again. Lines of 1 KB fill its socket buffers,
    // then its queue; the room must drop it, not wait for it.
    let line = "x".repeat(1000);
    let mut sent = 0;
    let mut dropped = false;
    while sent < 20_000 && !dropped {
        talker.say(&line).await;
        sent += 1;
        let got = listener.next().await;
        if got == "*** stalled left (fell too far behind)" {
            dropped = true;
            assert_eq!(listener.next().await, format!("<talker> {line}"));
        } else {
            assert_eq!(got, format!("<talker> {line}"));
        }
    }
    assert!(dropped, "the stalled member was dropped after {sent} lines");
    // The room keeps delivering.
    talker.say("still here").await;
    listener.until("<talker> still here").await;
    drop(stalled);
}

#[tokio::test]
async fn over_long_lines_and_invalid_utf8_get_a_clear_error() {
    let (addr, _stop) = room();
    let mut a = Member::join(addr, "a").await;
    let mut b = Member::join(addr, "b").await;
    a.until("now known as b").await;
    let long = "y".repeat(sockit_proto::chat::MAX_LINE + 1);
    a.say(&long).await;
    assert_eq!(a.next().await, "!!! line longer than 4096 bytes; not sent");
    a.out.write_all(b"\xff\xfe bad\n").await.unwrap();
    assert_eq!(a.next().await, "!!! line is not UTF-8; not sent");
    a.say("fine").await;
    assert_eq!(b.next().await, "<a> fine", "b saw neither bad line");
}

/// `printf '/who\n' | nc -N HOST PORT`: the member half-closes at once;
/// every reply it is owed (the welcome, /who's answer, the goodbye) still
/// reaches it before the room closes. Twenty sessions, every one whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_half_closes_gets_every_reply_first() {
    let (addr, _stop) = room();
    let _other = Member::join(addr, "present").await;
    for round in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"/who\n").await.unwrap();
        s.shutdown().await.unwrap();
        let mut all = String::new();
        tokio::time::timeout(PATIENCE, tokio::io::AsyncReadExt::read_to_string(&mut s, &mut all))
            .await
            .unwrap()
            .unwrap();
        assert!(all.starts_with("*** welcome"), "round {round}: {all:?}");
        assert!(
            all.contains("present"),
            "round {round}: /who's answer is missing: {all:?}"
        );
        assert!(all.trim_end().ends_with("*** bye"), "round {round}: {all:?}");
    }
}

#[tokio::test]
async fn control_characters_are_refused_by_the_room() {
    let (addr, _stop) = room();
    let mut a = Member::join(addr, "a").await;
    let mut b = Member::join(addr, "b").await;
    a.until("now known as b").await;
    a.say("\u{1b}]0;pwned\u{7}\u{1b}[2J").await;
    assert_eq!(a.next().await, "!!! line has a control character (U+001B); not sent");
    a.say("tabs\tare fine").await;
    a.out.write_all(b"crlf is fine\r\n").await.unwrap();
    assert_eq!(b.next().await, "<a> tabs\tare fine", "b never saw the escape");
    assert_eq!(b.next().await, "<a> crlf is fine");
}

/// A hostile room: bytes without a newline, or no welcome at all. The
/// client refuses the first at its line cap and gives up on the second at
/// its deadline, instead of buffering or waiting forever.
#[tokio::test(flavor = "multi_thread")]
async fn the_chat_client_caps_what_a_room_sends_and_waits_for_a_welcome_only_so_long() {
    use tokio::io::AsyncReadExt as _;
    let flood = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flood_addr = flood.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = flood.accept().await.unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        while s.write_all(&chunk).await.is_ok() {}
    });
    let (_tx, input) = tokio::sync::mpsc::channel(1);
    let (out, _lines) = tokio::sync::mpsc::channel(16);
    let err = tokio::time::timeout(
        PATIENCE,
        sockit::chat::client::join(
            &flood_addr.to_string(),
            &Default::default(),
            None,
            input,
            out,
            Duration::from_secs(10),
        ),
    )
    .await
    .expect("a flood must be refused, not buffered")
    .unwrap_err();
    assert!(err.to_string().contains("longer than"), "{err}");

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = silent.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let (_tx, input) = tokio::sync::mpsc::channel(1);
    let (out, _lines) = tokio::sync::mpsc::channel(16);
    let err = tokio::time::timeout(
        PATIENCE,
        sockit::chat::client::join(
            &silent_addr.to_string(),
            &Default::default(),
            None,
            input,
            out,
            Duration::from_millis(300),
        ),
    )
    .await
    .expect("a silent room must time out")
    .unwrap_err();
    assert!(matches!(err, sockit::Error::Timeout { .. }), "{err}");
}

/// While the room is busy (a member talking without pause), members keep
/// joining: each one's first line is its welcome, never a line batched
/// before it arrived. (Found by scripts/soak.sh.)
#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_hears_its_welcome_first_even_in_a_busy_room() {
    let (addr, _stop) = room();
    let mut talker = Member::join(addr, "talker").await;
    let chatter = tokio::spawn(async move {
        for i in 0..2000 {
            talker.say(&format!("busy {i}")).await;
        }
        talker
    });
    for round in 0..60 {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(first.starts_with("*** welcome"), "round {round}: first line {first:?}");
        drop(w);
    }
    chatter.await.unwrap();
}

#[tokio::test]
async fn a_newcomer_sees_the_last_hundred_lines_said() {
    let (addr, _stop) = room();
    let mut alice = Member::join(addr, "alice").await;
    let mut bob = Member::join(addr, "bob").await;
    for i in 1..=120 {
        alice.say(&format!("line {i}")).await;
    }
    alice.say("/me waves").await;
    bob.until("* alice waves").await;
    // Joins, leaves and private messages are not conversation.
    bob.say("/msg alice a secret").await;
    alice.until("a secret").await;

    let (r, _w) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut carol = Member {
        lines: BufReader::new(r).lines(),
        out: _w,
    };
    assert!(carol.next().await.starts_with("*** welcome, guest"));
    assert_eq!(carol.next().await, "*** the last 100 lines said here:");
    let mut history = Vec::new();
    for _ in 0..100 {
        history.push(carol.next().await);
    }
    assert_eq!(history[0], "<alice> line 22");
    assert_eq!(history[98], "<alice> line 120");
    assert_eq!(history[99], "* alice waves");
    assert!(!history.iter().any(|l| l.contains("secret") || l.contains("joined")));
}
