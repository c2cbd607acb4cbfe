//! The small classic services end to end on 127.0.0.1:0: echo, time,
//! one-shot download and remote exec, with the limits each must keep.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use common::{Options, PATIENCE, TestServer, frame, random_bytes, read_reply, spawn_tcp, spawn_udp};
use serde_json::json;
use sockit::clients::{self, Dial};
use sockit::clock::{TimeProtocol, TimeService};
use sockit::download::Download;
use sockit::echo::Echo;
use sockit::exec::ExecLimits;

use sockit_proto::auth::Digest;
use sockit_proto::exec::Command;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn tcp_echo_streams_large_messages_unchanged_and_upper_cases() {
    let (addr, _stop) = spawn_tcp(Echo { upper: false }, None);
    let big = random_bytes(8 * 1024 * 1024, 9);
    let reply = clients::tcp_exchange(
        &addr.to_string(),
        &Dial::default(),
        &big,
        clients::max_echo_reply(big.len()),
        PATIENCE,
    )
    .await
    .unwrap();
    assert_eq!(reply.len(), big.len());
    assert!(reply == big, "8 MiB echoed unchanged");

    let (addr, _stop) = spawn_tcp(Echo { upper: true }, None);
    let reply = clients::tcp_exchange(&addr.to_string(), &Dial::default(), "hello 你好 ǆ".as_bytes(), 4096, T)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(reply).unwrap(), "HELLO 你好 Ǆ");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_upper_echo_keeps_characters_split_across_writes() {
    let (addr, _stop) = spawn_tcp(Echo { upper: true }, None);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let text = "é你".as_bytes();
    s.write_all(&text[..1]).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await; // force two reads
    s.write_all(&text[1..]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "É你");
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_echo_never_answers_with_more_than_it_received() {
    let (addr, _stop) = spawn_udp(Echo { upper: true });
    let a = addr.to_string();
    assert_eq!(
        clients::udp_exchange(&a, "hello 你好".as_bytes(), T).await.unwrap(),
        "HELLO 你好".as_bytes()
    );
    // 'ŉ' grows when upper-cased; the reply is cut to the request's size.
    let reply = clients::udp_exchange(&a, "ŉ".as_bytes(), T).await.unwrap();
    assert!(reply.len() <= "ŉ".len());
    let (addr, _stop) = spawn_udp(Echo { upper: false });
    let payload = random_bytes(60_000, 3);
    assert_eq!(
        clients::udp_exchange(&addr.to_string(), &payload, T).await.unwrap(),
        payload
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_classic_time_service_answers_strftime_requests() {
    let (addr, _stop) = spawn_udp(TimeService {
        protocol: TimeProtocol::Strftime,
    });
    let a = addr.to_string();
    let year = chrono::Local::now().format("%Y").to_string();
    assert_eq!(clients::udp_exchange(&a, b"%Y", T).await.unwrap(), year.as_bytes());
    let default = String::from_utf8(clients::udp_exchange(&a, b"", T).await.unwrap()).unwrap();
    // %Y-%m-%d %X
    assert_eq!(default.len(), 19, "{default}");
    assert!(default.starts_with(&year) && default.as_bytes()[10] == b' ' && default.as_bytes()[13] == b':');
    let bad = clients::udp_exchange(&a, b"%Q", T).await.unwrap();
    assert_eq!(bad, b"error: invalid strftime format");
    let huge = clients::udp_exchange(&a, "%c".repeat(40).as_bytes(), T).await.unwrap();
    assert!(huge.starts_with(b"error: reply would exceed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn daytime_and_rfc868_answer_on_tcp_and_udp() {
    let now = chrono::Utc::now().timestamp();
    for protocol in [TimeProtocol::Daytime, TimeProtocol::Rfc868] {
        let (tcp, _a) = spawn_tcp(TimeService { protocol }, None);
        let (udp, _b) = spawn_udp(TimeService { protocol });
        let over_tcp = clients::tcp_exchange(&tcp.to_string(), &Dial::default(), b"", clients::MAX_TIME_REPLY, T)
            .await
            .unwrap();
        let over_udp = clients::udp_exchange(&udp.to_string(), b"", T).await.unwrap();
        for reply in [over_tcp, over_udp] {
            match protocol {
                TimeProtocol::Rfc868 => {
                    let got = sockit_proto::clock::rfc868_decode(reply.as_slice().try_into().unwrap(), now);
                    assert!((got - now).abs() < 60, "{got} vs {now}");
                }
                _ => assert!(reply.ends_with(b"\r\n") && reply.len() > 20, "{reply:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_random_datagrams_leave_udp_services_serving() {
    let (time, _a) = spawn_udp(TimeService {
        protocol: TimeProtocol::Strftime,
    });
    let (echo, _b) = spawn_udp(Echo { upper: true });
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..1000u64 {
        let junk = random_bytes((i as usize * 37) % 1500, i + 1);
        sock.send_to(&junk, time).await.unwrap();
        sock.send_to(&junk, echo).await.unwrap();
    }
    // Replies to junk are bounded; drain what came back and check sizes.
    let mut buf = vec![0u8; 65_536];
    while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await {
        assert!(n <= 1500.max(sockit_proto::clock::REPLY_ALLOWANCE));
    }
    assert_eq!(
        clients::udp_exchange(&echo.to_string(), b"still", T).await.unwrap(),
        b"STILL"
    );
    assert_eq!(clients::udp_exchange(&time.to_string(), b"ok", T).await.unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_download_sends_the_file_and_nothing_for_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pub");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let data = random_bytes(700_000, 4);
    std::fs::write(root.join("sub/f.bin"), &data).unwrap();
    std::fs::write(dir.path().join("secret"), b"secret").unwrap();
    let (addr, _stop) = spawn_tcp(Download::new(&root).unwrap(), None);
    let a = addr.to_string();
    let dest = dir.path().join("got.bin");
    assert_eq!(
        clients::download(
            &a,
            &Dial::default(),
            "sub/f.bin",
            &dest,
            clients::DEFAULT_MAX_DOWNLOAD,
            T
        )
        .await
        .unwrap(),
        data.len() as u64
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    for bad in ["../secret", "/etc/passwd", "missing", "sub"] {
        let out = dir.path().join("bad");
        let err = clients::download(&a, &Dial::default(), bad, &out, clients::DEFAULT_MAX_DOWNLOAD, T)
            .await
            .unwrap_err();
        assert!(matches!(err, sockit::Error::NothingSent), "{bad}: {err}");
        assert!(!out.exists());
    }
}

fn exec_server_config(enabled: bool) -> Options {
    Options {
        auth: Some(Digest::Md5),
        ..Options::default()
    }
    .with_exec(enabled)
}

trait WithExec {
    fn with_exec(self, enabled: bool) -> Self;
}

impl WithExec for Options {
    fn with_exec(mut self, enabled: bool) -> Self {
        self.exec = enabled.then(|| ExecLimits {
            timeout: Duration::from_millis(500),
            max_output: 4096,
        });
        self
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn framed_exec_reports_streams_and_exit_code() {
    let srv = TestServer::start(exec_server_config(true)).await;
    let mut c = srv.client().await;
    let r = c
        .exec(Command::Shell("echo out; echo err >&2; exit 4".into()), b"", 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"out\n"[..], &b"err\n"[..], Some(4))
    );
    let r = c
        .exec(Command::Argv(vec!["sleep".into(), "600".into()]), b"", 1 << 20)
        .await
        .unwrap();
    assert!(r.timed_out && r.exit_code.is_none(), "killed at the limit");
    let r = c
        .exec(Command::Shell("head -c 100000 /dev/zero".into()), b"", 1 << 20)
        .await
        .unwrap();
    assert!(r.truncated && String::from_utf8_lossy(&r.stdout).contains("output cut at 4096 bytes"));
    // The connection still serves files afterwards.
    assert!(
        c.ls(&sockit_proto::path::RelPath::root(), false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn framed_exec_feeds_stdin_and_bounds_it() {
    let srv = TestServer::start(exec_server_config(true)).await;
    let mut c = srv.client().await;
    let r = c
        .exec(Command::Argv(vec!["sort".into()]), b"pear\napple\n", 1 << 20)
        .await
        .unwrap();
    assert_eq!((r.stdout.as_slice(), r.exit_code), (&b"apple\npear\n"[..], Some(0)));
    // A command that never reads its stdin still finishes.
    let r = c
        .exec(Command::Argv(vec!["true".into()]), &vec![b'x'; 1 << 20], 1 << 20)
        .await
        .unwrap();
    assert_eq!(r.exit_code, Some(0));
    // Over the cap: refused before anything runs, and the connection lives.
    let big = vec![b'y'; usize::try_from(sockit::exec::MAX_STDIN).unwrap() + 1];
    let err = c
        .exec(Command::Argv(vec!["wc".into()]), &big, 1 << 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too_large"), "{err}");
    let r = c
        .exec(Command::Argv(vec!["echo".into(), "ok".into()]), b"", 1 << 20)
        .await
        .unwrap();
    assert_eq!(r.stdout, b"ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_is_refused_when_not_enabled() {
    let srv = TestServer::start(exec_server_config(false)).await;
    let mut c = srv.client().await;
    let err = c
        .exec(Command::Argv(vec!["id".into()]), b"", 1 << 20)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("remote exec is disabled"), "{err}");
    // The classic raw client gets the classic reply shape saying so.
    let mut s = srv.raw().await;
    s.write_all(b"id").await.unwrap();
    let reply = read_reply(&mut s).await.unwrap();
    assert!(reply.get("data_size").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_needs_authentication() {
    let srv = TestServer::start(exec_server_config(true)).await;
    // No handshake answer: the raw command is taken as the auth answer and
    // fails it, so nothing runs and the connection closes with no reply.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let marker = srv.dir.path().join("ran");
    let cmd = format!("touch {}", marker.display());
    let mut challenge = [0u8; 32];
    s.read_exact(&mut challenge).await.unwrap();
    let _ = s.write_all(cmd.as_bytes()).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    assert!(!marker.exists(), "an unauthenticated command must never run");
}

/// The seed's exec client's read: `struct.unpack('i')`, the JSON header,
/// then exactly `data_size` bytes.
async fn read_classic_reply(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut head = vec![0u8; i32::from_le_bytes(len) as usize];
    s.read_exact(&mut head).await.unwrap();
    let head: serde_json::Value = serde_json::from_slice(&head).unwrap();
    let mut out = vec![0u8; head["data_size"].as_u64().unwrap() as usize];
    s.read_exact(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_raw_commands_and_frames_share_the_port() {
    let srv = TestServer::start(exec_server_config(true)).await;
    let mut s = srv.raw().await;
    // A two-byte command: decided by the pause, not by 4 bytes.
    s.write_all(b"pwd").await.unwrap();
    let out = read_classic_reply(&mut s).await;
    assert_eq!(String::from_utf8(out).unwrap().trim(), srv.root.to_str().unwrap());
    // stderr wins when there is any, as in the seed.
    s.write_all(b"ls /nonexistent-dir").await.unwrap();
    let out = read_classic_reply(&mut s).await;
    assert!(
        String::from_utf8_lossy(&out).contains("No such file"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Then a framed request on the same connection.
    s.write_all(&frame(&json!({"cmd":"ls"}))).await.unwrap();
    assert_eq!(read_reply(&mut s).await.unwrap()["status"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_command_gets_it_killed() {
    let srv = TestServer::start(Options {
        exec: Some(ExecLimits {
            timeout: Duration::from_secs(60),
            max_output: 4096,
        }),
        ..Options::default()
    })
    .await;
    let started = srv.dir.path().join("started");
    let marker = srv.dir.path().join("survived");
    let mut s = srv.raw().await;
    let line = format!("touch {}; sleep 2; touch {}", started.display(), marker.display());
    s.write_all(&frame(&json!({"cmd":"exec","command": line})))
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    while !started.exists() {
        assert!(t0.elapsed() < PATIENCE, "the command never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(s);
    // Past the command's own 2 s: had it lived, the marker would be there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!marker.exists(), "the command must die with its client");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_echo_client_is_dropped_at_the_idle_deadline_and_an_active_one_is_not() {
    let mut config = sockit::server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), None);
    config.idle_timeout = Duration::from_millis(400);
    let server = sockit::server::TcpServer::bind(config).unwrap();
    let addr = server.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server.run(std::sync::Arc::new(Echo { upper: false }), stop.clone()));

    // Active: a message every 100 ms for 1.2 s, three deadlines' worth.
    let mut active = TcpStream::connect(addr).await.unwrap();
    let mut back = [0u8; 2];
    for _ in 0..12 {
        active.write_all(b"hi").await.unwrap();
        active.read_exact(&mut back).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Silent: closed by the server.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(common::closed_by_server(&mut silent, PATIENCE).await);
    stop.cancel();
}

/// A hostile echo or time server that never stops sending: the clients
/// refuse past their cap instead of buffering gigabytes.
#[tokio::test(flavor = "multi_thread")]
async fn tcp_clients_cap_what_a_server_sends() {
    let flood = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = flood.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = flood.accept().await {
            tokio::spawn(async move {
                let chunk = vec![b'x'; 64 * 1024];
                while s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    for (payload, max) in [
        (&b"hi"[..], clients::max_echo_reply(2)),
        (&b""[..], clients::MAX_TIME_REPLY),
    ] {
        let err = tokio::time::timeout(
            PATIENCE,
            clients::tcp_exchange(&addr.to_string(), &Dial::default(), payload, max, PATIENCE),
        )
        .await
        .expect("a flood must be refused at the cap")
        .unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }
}
