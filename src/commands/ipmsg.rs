//! `sockit ipmsg`: the IP Messenger / FeiQ node, interactive, as an event
//! listener (`listen`), or as a one-shot sender (`send`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use sockit::ipmsg::{self, Inbox, IpmsgHandle, IpmsgOptions, NodeEvent};
use sockit_proto::assist::text::TextEncoding;
use sockit_proto::ipmsg::{Event, Message, Peer};

use crate::UsageError;
use crate::cli::{IpmsgArgs, IpmsgCommand, IpmsgNodeArgs};
use crate::exit;
use crate::output::json_line;

pub async fn run(args: IpmsgArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        None => interactive(&args.node).await,
        Some(IpmsgCommand::Listen { json, accept_files }) => listen(&args.node, json, accept_files).await,
        Some(IpmsgCommand::Send {
            to,
            file,
            serve_secs,
            json,
            words,
        }) => {
            let (to, text) = match (to, words.as_slice()) {
                (Some(to), [text]) => (to, text),
                (None, [peer, text]) => (crate::cli::parse_ipmsg_addr(peer).map_err(UsageError)?, text),
                _ => return Err(UsageError("give the peer and the text: ipmsg send HOST[:PORT] TEXT".into()).into()),
            };
            send(&args.node, to, &file, Duration::from_secs(serve_secs), json, text).await
        }
    }
}

fn options(node: &IpmsgNodeArgs, broadcast: bool, peers: Vec<SocketAddr>) -> IpmsgOptions {
    let user = node.user.clone().unwrap_or_else(login_name);
    IpmsgOptions {
        bind: node.bind,
        nick: node.nick.clone().unwrap_or_else(|| user.clone()),
        user,
        host: node.host.clone().unwrap_or_else(host_name),
        group: node.group.clone(),
        peers,
        broadcast: broadcast && !node.no_broadcast,
        broadcast_port: node.bind.port(),
        legacy: TextEncoding::Gbk,
        force_encoding: node.encoding.0,
        retry_interval: Duration::from_millis(node.retry_ms.max(1)),
        max_attempts: node.attempts.max(1),
    }
}

pub(crate) fn login_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "sockit".into())
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

async fn start(options: IpmsgOptions, json: bool) -> anyhow::Result<(IpmsgHandle, mpsc::Receiver<NodeEvent>)> {
    let bind = options.bind;
    let (node, events) = ipmsg::start(options)
        .await
        .with_context(|| format!("starting ipmsg on {bind}"))?;
    let local = node.local_addr();
    if json {
        json_line(&json!({"event": "listening", "addr": local.to_string()}))?;
    } else {
        eprintln!("ipmsg on udp+tcp {local}");
    }
    Ok((node, events))
}

async fn listen(args: &IpmsgNodeArgs, json: bool, accept_files: bool) -> anyhow::Result<ExitCode> {
    let inbox = if accept_files {
        Some(Arc::new(Inbox::open(&args.inbox, args.max_file)?))
    } else {
        None
    };
    let (node, mut events) = start(options(args, true, args.peer.clone()), json).await?;
    let (saved_tx, mut saved) = mpsc::channel::<Value>(64);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                show(&event, json);
                if crate::output::stdout_closed() {
                    return Ok(ExitCode::SUCCESS);
                }
                if let (Some(inbox), NodeEvent::Ipmsg(Event::Message(m))) = (&inbox, &event) {
                    fetch_all(&node, inbox, m, saved_tx.clone());
                }
            }
            Some(line) = saved.recv() => print_value(&line, json),
            _ = tokio::signal::ctrl_c() => {
                let _ = node.leave().await;
                return Ok(ExitCode::from(exit::INTERRUPTED));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send(
    args: &IpmsgNodeArgs,
    to: SocketAddr,
    files: &[PathBuf],
    serve_for: Duration,
    json: bool,
    text: &str,
) -> anyhow::Result<ExitCode> {
    let mut peers = args.peer.clone();
    peers.push(to);
    let (node, mut events) = start(options(args, false, peers), json).await?;
    // Give the peer one retry interval to answer our entry, so that text
    // goes out in the encoding it advertises.
    let answer_wait = tokio::time::sleep(Duration::from_millis(args.retry_ms.max(1)));
    tokio::pin!(answer_wait);
    loop {
        tokio::select! {
            () = &mut answer_wait => break,
            event = events.recv() => match event {
                Some(event) => {
                    show(&event, json);
                if crate::output::stdout_closed() {
                    return Ok(ExitCode::SUCCESS);
                }
                    if matches!(&event, NodeEvent::Ipmsg(Event::Entry { peer, .. }) if peer.addr.ip() == to.ip()) {
                        break;
                    }
                }
                None => anyhow::bail!("the ipmsg node stopped"),
            },
        }
    }
    let packet_no = node.send(to, text, files).await?;
    let mut unfetched: HashSet<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let mut delivered = false;
    let serving = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(serving);
    let code = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break exit::FAILED };
                show(&event, json);
                if crate::output::stdout_closed() {
                    return Ok(ExitCode::SUCCESS);
                }
                match event {
                    NodeEvent::Ipmsg(Event::Delivered { packet_no: n, .. }) if n == packet_no => {
                        delivered = true;
                        if unfetched.is_empty() {
                            break 0;
                        }
                        serving.as_mut().reset(tokio::time::Instant::now() + serve_for);
                    }
                    NodeEvent::Ipmsg(Event::Undelivered { packet_no: n, attempts, .. }) if n == packet_no => {
                        eprintln!("sockit: {to} did not acknowledge the message after {attempts} sends");
                        break exit::FAILED;
                    }
                    NodeEvent::FileServed { name, .. } => {
                        unfetched.remove(&name);
                        if delivered && unfetched.is_empty() {
                            break 0;
                        }
                    }
                    _ => {}
                }
            }
            () = &mut serving => {
                eprintln!("sockit: {to} did not fetch {} within {}s", unfetched.len(), serve_for.as_secs());
                break exit::FAILED;
            }
            _ = tokio::signal::ctrl_c() => break exit::INTERRUPTED,
        }
    };
    let _ = node.leave().await;
    Ok(ExitCode::from(code))
}

const HELP: &str = "commands:
  /list                      who is on the LAN (numbered)
  /msg WHO TEXT              send TEXT; WHO is a number from /list, a nick or an address
  /file WHO PATH [TEXT]      offer a file
  /get [N]                   download the files of message N (default: the last with files)
  /away [on|off]             tell peers you are away, or back
  /announce                  announce again
  /quit                      say goodbye and leave
  TEXT                       send to whoever you last messaged or heard from";

async fn interactive(args: &IpmsgNodeArgs) -> anyhow::Result<ExitCode> {
    let inbox = Arc::new(Inbox::open(&args.inbox, args.max_file)?);
    let (node, mut events) = start(options(args, true, args.peer.clone()), false).await?;
    eprintln!("type /help for commands");
    let (lines_tx, mut lines) = mpsc::channel::<String>(64);
    super::read_stdin_lines(move |line| lines_tx.blocking_send(line.to_string()).is_ok());
    let mut state = Interactive::default();
    let (saved_tx, mut saved) = mpsc::channel::<Value>(64);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let NodeEvent::Ipmsg(Event::Message(m)) = &event {
                    state.reply_to = Some(m.from);
                    state.messages.push(m.clone());
                    let n = state.messages.len();
                    print_text(&format!("#{n} {}", message_text(m)));
                    if !m.files.is_empty() {
                        print_text(&format!("   /get {n} to download into {}", inbox.root().display()));
                    }
                } else {
                    show(&event, false);
                }
            }
            Some(value) = saved.recv() => print_value(&value, false),
            line = lines.recv() => {
                let Some(line) = line else { break };
                if !state.command(&node, &inbox, &line, &saved_tx).await {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = node.leave().await;
                return Ok(ExitCode::from(exit::INTERRUPTED));
            }
        }
    }
    let _ = node.leave().await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Default)]
struct Interactive {
    reply_to: Option<SocketAddr>,
    list: Vec<Peer>,
    messages: Vec<Message>,
}

impl Interactive {
    /// Runs one typed line; false means leave.
    async fn command(
        &mut self,
        node: &IpmsgHandle,
        inbox: &Arc<Inbox>,
        line: &str,
        saved: &mpsc::Sender<Value>,
    ) -> bool {
        let (word, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let rest = rest.trim();
        // Ok(false): the user asked to leave.
        let result: anyhow::Result<bool> = async {
            match word {
                "" => {}
                "/quit" => return Ok(false),
                "/help" => print_text(HELP),
                "/list" => {
                    self.list = node.peers().await?;
                    if self.list.is_empty() {
                        print_text("nobody yet");
                    }
                    for (i, p) in self.list.iter().enumerate() {
                        print_text(&format!("{:>3}  {}", i + 1, peer_text(p)));
                    }
                }
                "/msg" => {
                    let (who, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    let to = self.resolve(node, who).await?;
                    self.reply_to = Some(to);
                    node.send(to, text, &[]).await?;
                }
                "/file" => {
                    let mut parts = rest.splitn(3, ' ');
                    let who = parts.next().unwrap_or_default();
                    let path = parts
                        .next()
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| anyhow::anyhow!("usage: /file WHO PATH [TEXT]"))?;
                    let to = self.resolve(node, who).await?;
                    self.reply_to = Some(to);
                    node.send(to, parts.next().unwrap_or_default(), &[PathBuf::from(path)])
                        .await?;
                }
                "/get" => {
                    let message = match rest {
                        "" => self.messages.iter().rev().find(|m| !m.files.is_empty()),
                        n => n
                            .parse::<usize>()
                            .ok()
                            .and_then(|n| n.checked_sub(1))
                            .and_then(|i| self.messages.get(i)),
                    }
                    .ok_or_else(|| anyhow::anyhow!("no such message with files"))?;
                    fetch_all(node, inbox, message, saved.clone());
                }
                "/away" => node.set_absent(rest != "off").await?,
                "/announce" => node.announce().await?,
                w if w.starts_with('/') => anyhow::bail!("unknown command {w} (/help lists them)"),
                _ => {
                    let to = self
                        .reply_to
                        .ok_or_else(|| anyhow::anyhow!("to whom? /msg WHO TEXT first"))?;
                    node.send(to, line.trim(), &[]).await?;
                }
            }
            Ok(true)
        }
        .await;
        result.unwrap_or_else(|e| {
            eprintln!("sockit: {e:#}");
            true
        })
    }

    /// A number from the last /list, a nick, or an address.
    async fn resolve(&mut self, node: &IpmsgHandle, who: &str) -> anyhow::Result<SocketAddr> {
        if let Some(p) = who
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.list.get(i))
        {
            return Ok(p.addr);
        }
        if let Ok(addr) = who.parse::<SocketAddr>() {
            return Ok(addr);
        }
        if let Ok(ip) = who.parse::<std::net::IpAddr>() {
            return Ok(SocketAddr::new(ip, sockit_proto::ipmsg::DEFAULT_PORT));
        }
        node.peers()
            .await?
            .into_iter()
            .find(|p| p.nick == who || p.user == who)
            .map(|p| p.addr)
            .ok_or_else(|| anyhow::anyhow!("no peer called {who:?} (/list shows who is here)"))
    }
}

/// Downloads every file of `message` in the background, reporting each as
/// a `file-received` or `error` value.
fn fetch_all(node: &IpmsgHandle, inbox: &Arc<Inbox>, message: &Message, report: mpsc::Sender<Value>) {
    for file in message.files.iter().filter(|f| f.is_regular()).cloned() {
        let (node, inbox, report) = (node.clone(), Arc::clone(inbox), report.clone());
        let (from, packet_no) = (message.from, message.packet_no);
        tokio::spawn(async move {
            let value = match node.download(from, packet_no, &file, &inbox).await {
                Ok(got) => json!({"event": "file-received", "from": from.to_string(), "name": file.name,
                                  "path": got.path.display().to_string(), "bytes": got.bytes}),
                Err(e) => json!({"event": "error", "from": from.to_string(), "name": file.name,
                                 "message": format!("{:#}", anyhow::Error::from(e))}),
            };
            let _ = report.send(value).await;
        });
    }
}

fn show(event: &NodeEvent, json: bool) {
    if json {
        if let Some(value) = event_json(event) {
            let _ = json_line(&value);
        }
    } else if let Some(line) = event_text(event) {
        print_text(&line);
    }
}

fn print_value(value: &Value, json: bool) {
    if json {
        let _ = json_line(value);
        return;
    }
    let field = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    match field("event").as_str() {
        "file-received" => print_text(&format!(
            "saved {} ({} bytes) from {}",
            shown(&field("path")),
            value.get("bytes").cloned().unwrap_or_default(),
            field("from")
        )),
        _ => eprintln!(
            "sockit: {} from {}: {}",
            shown(&field("name")),
            field("from"),
            shown(&field("error"))
        ),
    }
}

/// A line for the user; a closed stdout is noticed by the event loops
/// (`output::stdout_closed`), which then end quietly.
fn print_text(line: &str) {
    let _ = crate::outln!("{line}");
}

fn time() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// A peer's word made safe for the terminal: no escape sequence, no line
/// break that could fake a line of our own.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    sockit_proto::display::escape(text, false)
}

fn peer_text(p: &Peer) -> String {
    let away = if p.absent { " (away)" } else { "" };
    let group = if p.group.is_empty() {
        String::new()
    } else {
        format!(" [{}]", shown(&p.group))
    };
    format!(
        "{}{group}{away}  {}@{}  {}",
        shown(&p.nick),
        shown(&p.user),
        shown(&p.host),
        p.addr
    )
}

fn message_text(m: &Message) -> String {
    let text = sockit_proto::display::escape_lines(&m.text, "    ");
    let mut line = format!("[{}] {} ({}): {text}", time(), shown(&m.nick), m.from);
    for f in &m.files {
        line.push_str(&format!("\n   file: {} ({} bytes)", shown(&f.name), f.size));
    }
    line
}

fn event_text(event: &NodeEvent) -> Option<String> {
    Some(match event {
        NodeEvent::Ipmsg(e) => match e {
            Event::Entry { peer, new: true } => format!("[{}] + {}", time(), peer_text(peer)),
            Event::Entry { .. } => return None,
            Event::Absence { peer } => format!("[{}] ~ {}", time(), peer_text(peer)),
            Event::Exit { addr, nick } => format!("[{}] - {} {addr} left", time(), shown(nick)),
            Event::Message(m) => message_text(m),
            Event::Delivered { to, packet_no } => format!("[{}] {to} received message {packet_no}", time()),
            Event::Undelivered {
                to,
                packet_no,
                attempts,
            } => {
                format!(
                    "[{}] {to} did not acknowledge message {packet_no} after {attempts} sends",
                    time()
                )
            }
            Event::Malformed { .. } => return None,
        },
        NodeEvent::FileServed { to, name, bytes } => {
            format!("[{}] {to} fetched {} ({bytes} bytes)", time(), shown(name))
        }
        NodeEvent::FileServeFailed { to, reason } => {
            format!("[{}] file request from {to} failed: {}", time(), shown(reason))
        }
    })
}

fn peer_json(event: &str, p: &Peer) -> Value {
    json!({"event": event, "from": p.addr.to_string(), "user": p.user, "host": p.host, "nick": p.nick,
           "group": p.group, "absent": p.absent, "utf8": p.utf8, "version": p.version.to_string()})
}

fn event_json(event: &NodeEvent) -> Option<Value> {
    Some(match event {
        NodeEvent::Ipmsg(e) => match e {
            Event::Entry { peer, new } => {
                let mut v = peer_json("entry", peer);
                if let Some(fields) = v.as_object_mut() {
                    fields.insert("new".into(), json!(new));
                }
                v
            }
            Event::Absence { peer } => peer_json("absence", peer),
            Event::Exit { addr, nick } => json!({"event": "exit", "from": addr.to_string(), "nick": nick}),
            Event::Message(m) => json!({
                "event": "message", "from": m.from.to_string(), "packet_no": m.packet_no, "user": m.user,
                "host": m.host, "nick": m.nick, "text": m.text, "broadcast": m.broadcast, "auto_reply": m.auto_reply,
                "files": m.files.iter().map(|f| json!({"id": f.id, "name": f.name, "size": f.size})).collect::<Vec<_>>(),
            }),
            Event::Delivered { to, packet_no } => {
                json!({"event": "delivered", "to": to.to_string(), "packet_no": packet_no})
            }
            Event::Undelivered {
                to,
                packet_no,
                attempts,
            } => {
                json!({"event": "undelivered", "to": to.to_string(), "packet_no": packet_no, "attempts": attempts})
            }
            Event::Malformed { from, reason } => {
                json!({"event": "malformed", "from": from.to_string(), "reason": reason})
            }
        },
        NodeEvent::FileServed { to, name, bytes } => {
            json!({"event": "file-served", "to": to.to_string(), "name": name, "bytes": bytes})
        }
        NodeEvent::FileServeFailed { to, reason } => json!({"event": "error", "to": to.to_string(), "message": reason}),
    })
}
