//! One chat room across three servers over a real NATS (Debian's
//! nats-server with JetStream): 30 members, TCP and web, spread across
//! them; every line reaches every other member exactly once and in its
//! sender's order; nicks are unique across servers; /who lists everyone;
//! a server killed is seen to leave, its members can rejoin elsewhere
//! under their nicks, and the other servers carry on.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::collections::{HashMap, HashSet};
use std::io::BufRead as _;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use support::nats::Nats;
use support::{KillOnDrop, Sandbox, write};

/// Longest wait for any one expected line: a server counts as gone after
/// 5 s of silence, and a loaded machine may be slow besides.
const PATIENCE: Duration = Duration::from_secs(30);

const SERVERS: usize = 3;
const MEMBERS: usize = 30;
/// Of each server's 10 members, this many join through the web.
const WEB_PER_SERVER: usize = 3;
/// Lines each member says.
const LINES: usize = 20;

/// One `sockit serve` with a chat listener and a web listener, both in
/// the room shared over the bus.
struct Instance {
    _server: KillOnDrop,
    chat: String,
    web: String,
    token: String,
}

fn start_instance(sb: &Sandbox, n: usize, bus: &str) -> Instance {
    let config = format!("work/instance{n}.toml");
    write(
        &sb.path(&config),
        format!(
            "[[service]]\nkind = \"chat\"\nlisten = \"127.0.0.1:0\"\ninsecure_no_auth = true\nbus = \"{bus}\"\nroom = \"lab\"\n\n\
             [[service]]\nkind = \"web\"\nlisten = \"127.0.0.1:0\"\nroot = \"web{n}\"\nbus = \"{bus}\"\nroom = \"lab\"\n"
        )
        .as_bytes(),
    );
    let mut child = sb
        .cmd()
        .args(["serve", "--config", &format!("instance{n}.toml")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let server = KillOnDrop(child);
    let mut read_line = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim().to_owned()
    };
    let chat_line = read_line();
    assert!(chat_line.contains("(chat, auth: off"), "{chat_line}");
    let chat = chat_line.split(' ').nth(3).unwrap().to_owned();
    assert!(read_line().contains("(web, auth: token"));
    let url = read_line().strip_prefix("web: ").unwrap().to_owned();
    let (base, token) = url.split_once("/#token=").unwrap();
    let web = base.strip_prefix("http://").unwrap().to_owned();
    let token = token.to_owned();
    std::thread::spawn(move || for _ in out.lines() {});
    Instance {
        _server: server,
        chat,
        web,
        token,
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

enum Conn {
    Tcp(tokio::io::Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf),
    Web(Box<Ws>),
}

/// A member as its peer sees the room: the lines it is sent, one by one.
struct Member {
    conn: Conn,
}

impl Member {
    async fn tcp(addr: &str) -> Member {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Member {
            conn: Conn::Tcp(BufReader::new(read).lines(), write),
        }
    }

    async fn web(instance: &Instance) -> Member {
        let mut request = format!("ws://{}/api/chat", instance.web).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", instance.token).parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Member {
            conn: Conn::Web(Box::new(ws)),
        }
    }

    async fn say(&mut self, line: &str) {
        match &mut self.conn {
            Conn::Tcp(_, write) => write.write_all(format!("{line}\n").as_bytes()).await.unwrap(),
            Conn::Web(ws) => ws.send(Message::text(line)).await.unwrap(),
        }
    }

    /// The next line the room sends (a web member's presence updates are
    /// skipped); panics after [`PATIENCE`].
    async fn line(&mut self) -> String {
        tokio::time::timeout(PATIENCE, async {
            match &mut self.conn {
                Conn::Tcp(lines, _) => lines.next_line().await.unwrap().expect("the room closed"),
                Conn::Web(ws) => loop {
                    let message = ws.next().await.expect("the room closed").unwrap();
                    let Message::Text(text) = message else { continue };
                    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if let Some(line) = json["line"].as_str() {
                        break line.to_owned();
                    }
                },
            }
        })
        .await
        .expect("no line from the room in time")
    }

    /// Lines until one containing `text`; returns them all.
    async fn expect(&mut self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.line().await;
            let found = line.contains(text);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_one_room_and_a_killed_one_is_seen_to_leave() {
    let sb = Sandbox::new();
    let Some(nats) = Nats::start(&sb) else { return };
    let mut instances: Vec<Option<Instance>> = (0..SERVERS).map(|n| Some(start_instance(&sb, n, &nats.url))).collect();

    // 30 members, ten per server, three of each ten through the web. The
    // room names them guestN from one counter, so no two share a name.
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let server = i % SERVERS;
        let instance = instances[server].as_ref().unwrap();
        let mut m = if i / SERVERS < WEB_PER_SERVER {
            Member::web(instance).await
        } else {
            Member::tcp(&instance.chat).await
        };
        m.expect("welcome, guest").await;
        members.push((server, m));
    }

    // Nicks are unique across servers, whatever their case.
    members[0].1.say("/nick m0").await;
    for (_, m) in &mut members {
        m.expect("is now known as m0").await;
    }
    members[1].1.say("/nick M0").await;
    members[1].1.expect("!!! M0 is taken").await;

    // Everyone else takes a name; every member sees every rename, here or
    // on another server.
    for (i, (_, m)) in members.iter_mut().enumerate().skip(1) {
        m.say(&format!("/nick m{i}")).await;
    }
    for (i, (_, m)) in members.iter_mut().enumerate() {
        let mut waiting: HashSet<String> = (1..MEMBERS).filter(|&j| j != i).map(|j| format!("m{j}")).collect();
        while !waiting.is_empty() {
            let line = m.line().await;
            if let Some((_, nick)) = line.split_once(" is now known as ") {
                waiting.remove(nick);
            }
        }
    }

    // /who lists everyone, from any server.
    let mut everyone: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}")).collect();
    everyone.sort();
    for (server, m) in members.iter_mut().take(SERVERS) {
        m.say("/who").await;
        let who = m.expect(" here: ").await.pop().unwrap();
        assert_eq!(
            who,
            format!("*** {MEMBERS} here: {}", everyone.join(", ")),
            "server {server}"
        );
    }

    // Everyone talks at once; each member gets every other member's lines
    // once each, in the order they were said.
    let mut talking = Vec::new();
    for (i, (server, mut m)) in members.into_iter().enumerate() {
        talking.push(tokio::spawn(async move {
            for k in 0..LINES {
                m.say(&format!("line {k} from m{i}")).await;
            }
            let mut heard: HashMap<usize, Vec<usize>> = HashMap::new();
            let mut count = 0;
            while count < (MEMBERS - 1) * LINES {
                let line = m.line().await;
                let Some(said) = line.strip_prefix('<') else { continue };
                let (from, text) = said.split_once("> ").unwrap();
                let sender: usize = from.strip_prefix('m').unwrap().parse().unwrap();
                let (k, by) = text.strip_prefix("line ").unwrap().split_once(" from ").unwrap();
                assert_eq!(by, from);
                heard.entry(sender).or_default().push(k.parse().unwrap());
                count += 1;
            }
            for sender in (0..MEMBERS).filter(|&s| s != i) {
                let expected: Vec<usize> = (0..LINES).collect();
                assert_eq!(heard.get(&sender), Some(&expected), "m{i} from m{sender}");
            }
            (server, m)
        }));
    }
    let mut members = Vec::new();
    for t in talking {
        members.push(t.await.unwrap());
    }

    // Server 2 dies. Everyone elsewhere hears each of its members leave,
    // once, and the others' talk goes on.
    let killed = 2;
    drop(instances[killed].take());
    let gone: Vec<String> = (0..MEMBERS)
        .filter(|i| i % SERVERS == killed)
        .map(|i| format!("m{i}"))
        .collect();
    let mut survivors: Vec<(usize, Member)> = members.into_iter().filter(|(s, _)| *s != killed).collect();
    for (_, m) in &mut survivors {
        let mut left = Vec::new();
        while left.len() < gone.len() {
            let line = m.line().await;
            if let Some(who) = line
                .strip_prefix("*** ")
                .and_then(|l| l.strip_suffix(" left (their server is gone)"))
            {
                assert!(!left.contains(&who.to_owned()), "{who} left twice");
                left.push(who.to_owned());
            }
        }
        left.sort();
        let mut expected = gone.clone();
        expected.sort();
        assert_eq!(left, expected);
    }

    // One of them comes back through server 0, under its own nick: the
    // dead server's claims were released before its members were said
    // to have left.
    let instance = instances[0].as_ref().unwrap();
    let mut back = Member::tcp(&instance.chat).await;
    back.expect("welcome, guest").await;
    back.say(&format!("/nick {}", gone[0])).await;
    back.expect(&format!("is now known as {}", gone[0])).await;
    back.say("/who").await;
    let who = back.expect(" here: ").await.pop().unwrap();
    assert!(
        who.starts_with(&format!("*** {} here: ", MEMBERS - gone.len() + 1)),
        "{who}"
    );
    back.say("hello again").await;
    for (_, m) in &mut survivors {
        m.expect(&format!("<{}> hello again", gone[0])).await;
    }
    drop(nats);
}

#[test]
fn a_bus_that_is_not_there_or_rooms_that_disagree_are_clear_errors() {
    let sb = Sandbox::new();
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = sb
        .cmd()
        .args(["chat", "serve", "--listen", "127.0.0.1:0", "--insecure-no-auth"])
        .args(["--bus", &format!("nats://127.0.0.1:{port}"), "--room", "lab"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot share room lab over nats://127.0.0.1:") && err.contains("chat bus: connecting"),
        "{err}"
    );

    let out = sb.cmd().args(["chat", "serve", "--room", "lab"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let bad = [
        ("room = \"lab\"\n", "", "set `bus` too"),
        (
            "bus = \"nats://127.0.0.1:1\"\n",
            "bus = \"nats://127.0.0.1:2\"\n",
            "the same `bus` and `room`",
        ),
        (
            "bus = \"nats://127.0.0.1:1\"\nroom = \"a.b\"\n",
            "",
            "room: '.' is not allowed",
        ),
    ];
    for (chat, web, expected) in bad {
        write(
            &sb.path("work/bad.toml"),
            format!(
                "[[service]]\nkind = \"chat\"\nlisten = \"127.0.0.1:0\"\ninsecure_no_auth = true\n{chat}\n\
                 [[service]]\nkind = \"web\"\nlisten = \"127.0.0.1:0\"\n{web}"
            )
            .as_bytes(),
        );
        let out = sb.cmd().args(["serve", "--config", "bad.toml"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_loses_the_bus_keeps_its_own_members_talking() {
    let sb = Sandbox::new();
    let Some(nats) = Nats::start(&sb) else { return };
    let instance = start_instance(&sb, 0, &nats.url);
    let mut a = Member::tcp(&instance.chat).await;
    a.expect("welcome, guest").await;
    let mut b = Member::web(&instance).await;
    b.expect("welcome, guest").await;
    a.expect(" joined").await;
    drop(nats);
    // Far more room batches than a NATS client buffers while it
    // reconnects: each line waits for the one before it to arrive.
    for k in 0..3000 {
        a.say(&format!("local {k}")).await;
        b.expect(&format!("> local {k}")).await;
    }
}
