//! One grammar across the subcommands (docs/cli.md): how a client names its
//! server, how a server announces itself, `-o` and trailing slashes, exit
//! codes, and what goes to stderr.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use predicates::prelude::*;

use support::{KillOnDrop, Sandbox, Server, start_listeners, write};

/// `listening on PROTO ADDR (SERVICE, auth: MODE…)`, the first lines of
/// every server.
fn assert_banner(line: &str) {
    assert!(is_banner(line), "not a banner: {line:?}");
}

fn is_banner(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("listening on ") else {
        return false;
    };
    let mut parts = rest.splitn(3, ' ');
    let proto = parts.next().unwrap_or("");
    let addr = parts.next().unwrap_or("");
    let paren = parts.next().unwrap_or("");
    let auth_ok = ["auth: hmac-sha256", "auth: hmac-md5", "auth: off", "auth: none"]
        .iter()
        .any(|a| paren.contains(a));
    (proto == "tcp" || proto == "udp")
        && addr.parse::<std::net::SocketAddr>().is_ok()
        && paren.starts_with('(')
        && paren.trim_end().ends_with(')')
        && auth_ok
}

#[test]
fn every_server_announces_itself_the_same_way() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    assert_banner(srv.banner.trim());
    assert!(
        srv.banner.contains("(files, auth: hmac-sha256, root: "),
        "{}",
        srv.banner
    );
    let servers: [(&[&str], usize); 7] = [
        (&["time", "serve", "--listen", "127.0.0.1:0"], 1),
        (&["echo", "serve", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"], 2),
        (
            &[
                "echo",
                "serve",
                "--listen",
                "tcp://127.0.0.1:0",
                "--listen",
                "udp://127.0.0.1:0",
            ],
            2,
        ),
        (
            &["time", "serve", "--udp", "127.0.0.1:0", "--daytime", "127.0.0.1:0"],
            3,
        ),
        (&["download", "serve", "--listen", "127.0.0.1:0", "--root", "pub"], 1),
        (&["chat", "serve", "--listen", "127.0.0.1:0"], 1),
        (&["tftp", "serve", "--listen", "127.0.0.1:0", "--root", "tftp"], 1),
    ];
    for (args, lines) in servers {
        let mut child = sb
            .cmd()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let _child = KillOnDrop(child);
        for _ in 0..lines {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert_banner(line.trim());
        }
    }
}

#[test]
fn echo_and_time_need_no_key_and_a_keyed_server_says_so() {
    let sb = Sandbox::new();
    // No key exists in this sandbox: echo and time neither make nor want one.
    let (echo, found) = start_listeners(&sb, &["echo", "serve", "--tcp", "127.0.0.1:0"], 1);
    let _echo = KillOnDrop(echo);
    assert!(found[0].2.contains("auth: off"), "{:?}", found[0]);
    sb.assert_cmd()
        .args(["echo", &found[0].1, "hi"])
        .assert()
        .success()
        .stdout("hi\n");
    assert!(!sb.path("config/sockit/key").exists());

    // With --key-file the server asks for it, and a keyless client is told.
    write(&sb.path("work/k"), b"upper secret\n");
    let (keyed, found) = start_listeners(
        &sb,
        &["echo", "serve", "--tcp", "127.0.0.1:0", "--upper", "--key-file", "k"],
        1,
    );
    let _keyed = KillOnDrop(keyed);
    assert!(found[0].2.contains("auth: hmac-sha256"), "{:?}", found[0]);
    sb.assert_cmd()
        .args(["echo", &found[0].1, "hi"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("the server wants a key: pass --key-file"));
    sb.assert_cmd()
        .args(["echo", &found[0].1, "hi", "--key-file", "k"])
        .assert()
        .success()
        .stdout("HI\n");
}

#[test]
fn a_keyless_chat_join_to_a_keyed_room_is_told_not_shown_junk() {
    let sb = Sandbox::new();
    write(&sb.path("work/k"), b"room secret\n");
    let (room, found) = start_listeners(&sb, &["chat", "serve", "--listen", "127.0.0.1:0", "--key-file", "k"], 1);
    let _room = KillOnDrop(room);
    sb.assert_cmd()
        .args(["chat", "join", &found[0].1, "--insecure-no-auth", "--timeout", "5"])
        .write_stdin("")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("the server wants a key"));
}

#[test]
fn clients_take_host_and_port_in_every_form() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &[]);
    let port = srv.addr.rsplit(':').next().unwrap().to_owned();
    write(&sb.path("work/a.txt"), b"abc");
    // --server, -s, SOCKIT_SERVER, and a host name with the port.
    sb.assert_cmd()
        .args(["put", "a.txt", "--server", &srv.addr])
        .assert()
        .success();
    sb.assert_cmd()
        .args(["stat", "a.txt", "-s", &format!("localhost:{port}")])
        .assert()
        .success();
    sb.assert_cmd()
        .args(["ls"])
        .env("SOCKIT_SERVER", &srv.addr)
        .assert()
        .success()
        .stdout(predicate::str::contains("a.txt"));
    sb.assert_cmd()
        .args(["ls", "--server", "127.0.0.1:notaport"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'notaport' is not a port"));

    // Echo over IPv6 loopback in brackets.
    let (echo, found) = start_listeners(&sb, &["echo", "serve", "--tcp", "[::1]:0"], 1);
    let _echo = KillOnDrop(echo);
    sb.assert_cmd()
        .args(["echo", &found[0].1, "v6"])
        .assert()
        .success()
        .stdout("v6\n");
}

#[test]
fn file_commands_take_the_server_first_unless_it_is_set_once() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--allow-exec"]);
    let addr = srv.addr.as_str();
    write(&sb.path("work/a.txt"), b"abc");
    let ok = |args: &[&str]| sb.assert_cmd().args(args).assert().success();
    ok(&["put", addr, "a.txt", "albums/"]);
    ok(&["mkdir", addr, "empty"]);
    ok(&["stat", addr, "albums/a.txt"]).stdout(predicate::str::contains("albums/a.txt"));
    ok(&["ls", "-r", addr]).stdout(predicate::str::contains("albums/a.txt").and(predicate::str::contains("empty/")));
    ok(&["ls", addr, "albums"]).stdout(predicate::str::contains("a.txt"));
    ok(&["get", addr, "albums/a.txt", "-o", "back.txt"]);
    assert_eq!(std::fs::read(sb.path("work/back.txt")).unwrap(), b"abc");
    ok(&["exec", addr, "echo", "-n", "hi"]).stdout("hi");
    ok(&["rm", addr, "empty"]);
    // Set once, every operand is a path: even one that looks like a host.
    write(&sb.path("work/localhost"), b"a file named like a host");
    sb.assert_cmd()
        .args(["put", "localhost"])
        .env("SOCKIT_SERVER", addr)
        .assert()
        .success();
    ok(&["stat", "-s", addr, "localhost"]);
    ok(&["exec", "-s", addr, "echo", "-n", "set"]).stdout("set");

    // No server anywhere: a usage error, not a guess.
    for args in [&["ls"][..], &["get", "albums/a.txt"], &["rm", "x"], &["exec"]] {
        sb.assert_cmd()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("HOST[:PORT]"));
    }
    // One operand too many once the server is set: refused before connecting.
    sb.assert_cmd()
        .args(["get", "-s", addr, "x", "y"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("usage: sockit get HOST[:PORT] REMOTE"));
    // The old grammar's `put LOCAL REMOTE` names a local file as the server.
    sb.assert_cmd()
        .args(["put", "a.txt", "copy.txt"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("a.txt is a local file, not a server"));
    sb.assert_cmd()
        .args(["ls", "--partials", addr, "albums"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("takes no PATH"));
}

#[test]
fn o_creates_its_folder_and_a_trailing_slash_means_into() {
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--root", "served"]);
    let s = ["--server", srv.addr.as_str()];
    write(&sb.path("work/a.jpg"), b"jpeg");
    // put LOCAL REMOTE/: into the folder, keeping the name.
    sb.assert_cmd()
        .args(["put", "a.jpg", "albums/"])
        .args(s)
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/served/albums/a.jpg")).unwrap(), b"jpeg");
    // get -o DIR/ into a folder not there yet.
    sb.assert_cmd()
        .args(["get", "albums/a.jpg", "-o", "dl/"])
        .args(s)
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/dl/a.jpg")).unwrap(), b"jpeg");
    // get -o PATH names the file, its folders created.
    sb.assert_cmd()
        .args(["get", "albums/a.jpg", "-o", "x/y/renamed.jpg"])
        .args(s)
        .assert()
        .success();
    assert_eq!(std::fs::read(sb.path("work/x/y/renamed.jpg")).unwrap(), b"jpeg");
    // An existing folder without the slash is read as "into" too.
    sb.assert_cmd()
        .args(["get", "albums/a.jpg", "-o", "dl"])
        .args(s)
        .assert()
        .success();
}

#[test]
fn exit_codes_say_whose_problem_it_is() {
    let sb = Sandbox::new();
    // A key problem is the user's to fix: 2, named or defaulted.
    sb.assert_cmd()
        .args(["ls", "127.0.0.1:1", "--key-file", "missing.key"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with("sockit: cannot load the key"));
    sb.assert_cmd()
        .args(["ls", "127.0.0.1:1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no key at"));
    // A time server refusing a format: stderr, exit 1, nothing on stdout.
    let (time, found) = start_listeners(&sb, &["time", "serve", "--udp", "127.0.0.1:0"], 1);
    let _time = KillOnDrop(time);
    sb.assert_cmd()
        .args(["time", &found[0].1, "%Q"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("refused the format: invalid strftime format"));
    // A root that is a file is named as such.
    write(&sb.path("work/afile"), b"");
    sb.assert_cmd()
        .args(["tftp", "serve", "--listen", "127.0.0.1:0", "--root", "afile"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not a folder").and(predicate::str::contains("below 1024").not()));
    // A port in use gets the hint that fits.
    let (echo, found) = start_listeners(&sb, &["echo", "serve", "--tcp", "127.0.0.1:0"], 1);
    let _echo = KillOnDrop(echo);
    sb.assert_cmd()
        .args(["echo", "serve", "--tcp", &found[0].1])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("another program"));
}

/// Runs `serve ARGS`, uploads one file through it, stops it, and returns
/// the server's stderr and the client's.
fn serve_one_upload(sb: &Sandbox, args: &[&str]) -> (String, String) {
    let mut serve = sb
        .cmd()
        .env_remove("SOCKIT_LOG")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(serve.stdout.take().unwrap());
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut out, &mut banner).unwrap();
    let mut err_pipe = serve.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut err_pipe, &mut text).unwrap();
        text
    });
    let addr = banner.split(' ').nth(3).unwrap().to_owned();
    write(&sb.path("work/a.txt"), b"abc");
    let put = sb
        .assert_cmd()
        .env_remove("SOCKIT_LOG")
        .args(["put", "a.txt", "--server", &addr])
        .assert()
        .success();
    let client_err = String::from_utf8_lossy(&put.get_output().stderr).into_owned();
    let status = Server {
        child: serve,
        addr,
        banner,
        web_url: None,
    }
    .signal("TERM");
    assert!(status.success());
    (stderr.join().unwrap(), client_err)
}

#[test]
fn stderr_is_for_people_and_logs_wait_for_v_or_a_log_file() {
    let sb = Sandbox::new();
    // Without -v: one human line about the new key, no log lines; the
    // log file gets the timestamped log.
    let (server_err, client_err) = serve_one_upload(&sb, &["--log-file", "serve.log"]);
    assert!(server_err.starts_with("sockit: created a new key at "), "{server_err}");
    assert_eq!(server_err.lines().count(), 1, "{server_err}");
    assert_eq!(client_err, "");
    let log = std::fs::read_to_string(sb.path("work/serve.log")).unwrap();
    assert!(log.contains("INFO") && log.contains("upload stored"), "{log}");
    // With -v the same log is on stderr, and the key is not new any more.
    let (server_err, _) = serve_one_upload(&sb, &["-v"]);
    assert!(!server_err.contains("created a new key"), "{server_err}");
    assert!(
        server_err.contains("INFO") && server_err.contains("upload stored"),
        "{server_err}"
    );
    // A log file that cannot be opened is a usage error.
    sb.assert_cmd()
        .args(["ls", "--log-file", "no/such/dir/x.log"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot open the log file"));
}

#[test]
fn serve_runs_the_default_config_file_unless_flags_say_otherwise() {
    let sb = Sandbox::new();
    let config = "[[service]]\nkind = \"echo\"\nlisten = \"127.0.0.1:0\"\n\n\
                  [[service]]\nkind = \"tftp\"\nlisten = \"127.0.0.1:0\"\nroot = \"t\"\n";
    write(&sb.path("config/sockit/sockit.toml"), config.as_bytes());
    // No flags: the default file's services.
    let (serve, found) = start_listeners(&sb, &["serve"], 3);
    let _serve = KillOnDrop(serve);
    let services: Vec<&str> = found.iter().map(|f| f.2.split(',').next().unwrap()).collect();
    assert_eq!(services, ["echo", "echo", "tftp"]);
    // A flag for the file service, or --no-config: the flags win.
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["serve", "--no-config", "--listen", "127.0.0.1:0"],
    ] {
        let (serve, found) = start_listeners(&sb, args, 1);
        let _serve = KillOnDrop(serve);
        assert!(found[0].2.starts_with("files,"), "{args:?}: {found:?}");
    }

    // --print-config shows every key with the value it runs with, and
    // reads back as the same configuration.
    let printed = sb.assert_cmd().args(["serve", "--print-config"]).assert().success();
    let printed = String::from_utf8(printed.get_output().stdout.clone()).unwrap();
    for key in [
        "upper = false",
        "idle_timeout = 300",
        "max_transfers = 256",
        "allow_write = false",
    ] {
        assert!(printed.contains(key), "{key}: {printed}");
    }
    write(&sb.path("work/printed.toml"), printed.as_bytes());
    let again = sb
        .assert_cmd()
        .args(["serve", "--config", "printed.toml", "--print-config"])
        .assert()
        .success();
    assert_eq!(String::from_utf8(again.get_output().stdout.clone()).unwrap(), printed);
}

#[test]
fn a_keyed_chat_join_to_a_keyless_room_is_told_not_shown_half_a_welcome() {
    let sb = Sandbox::new();
    write(&sb.path("work/k"), b"a key the room does not use\n");
    let (room, found) = start_listeners(
        &sb,
        &["chat", "serve", "--listen", "127.0.0.1:0", "--insecure-no-auth"],
        1,
    );
    let _room = KillOnDrop(room);
    sb.assert_cmd()
        .args(["chat", "join", &found[0].1, "--key-file", "k", "--timeout", "5"])
        .write_stdin("")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("runs without a key"));
}

#[test]
fn a_privileged_port_without_privilege_gets_the_hint() {
    // Run as nobody (needs root to switch; skipped otherwise).
    let is_root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !is_root || !support::peer_available("setpriv", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_sockit"))
        .args(["echo", "serve", "--tcp", "127.0.0.1:80"])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ports below 1024 need root"), "{err}");
}

#[test]
fn progress_bars_fit_an_80_column_terminal() {
    // `script` gives the upload a terminal 80 columns wide.
    if !support::peer_available("script", &["--version"]) {
        return;
    }
    let sb = Sandbox::new();
    let srv = Server::start(&sb, &["--root", "served"]);
    write(&sb.path("work/big.bin"), &vec![1u8; 64 << 20]);
    let line = format!(
        "stty cols 80 rows 24; exec {} put big.bin -s {}",
        env!("CARGO_BIN_EXE_sockit"),
        srv.addr
    );
    let run = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(sb.path("work"))
        .env("XDG_CONFIG_HOME", sb.path("config"))
        .env("HOME", sb.path("home"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let text = String::from_utf8_lossy(&run.stdout).replace("\u{1b}[2K", "");
    let frames: Vec<&str> = text.split(['\r', '\n']).filter(|f| f.contains("big.bin")).collect();
    assert!(frames.iter().any(|f| f.contains('[')), "no bar drawn: {text:?}");
    for frame in &frames {
        assert!(
            frame.chars().count() <= 80,
            "{} columns: {frame:?}",
            frame.chars().count()
        );
    }
}
