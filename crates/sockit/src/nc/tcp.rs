//! TCP sessions: connecting (`sockit nc HOST PORT`) and listening
//! (`-l`, one client; `-l -k`, many at once with input fanned out).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::stream::{self, ConnRules, Link, Stop};
use super::{CLIENT_QUEUE, CloseReason, Control, NcEvent, NcOptions, NcTls, PeerId, Session, Stats, quit_deadline};
use crate::Error;
use crate::server::DEFAULT_BACKLOG;
use crate::stream::Stream;

/// Connects to the first of `addrs` that answers (each within `-w`), then
/// runs the session until the peer closes or a deadline passes.
pub async fn connect(addrs: &[SocketAddr], opts: &NcOptions, mut session: Session) -> Result<CloseReason, Error> {
    let stream = connect_stream(addrs, opts).await?;
    Ok(run_one(stream, opts, &mut session).await)
}

/// A connection to the first of `addrs` that answers, with TLS started
/// when `opts` asks for it.
pub async fn connect_stream(addrs: &[SocketAddr], opts: &NcOptions) -> Result<Stream, Error> {
    let tcp = open(addrs, opts).await?;
    let _ = tcp.set_nodelay(true);
    match &opts.tls {
        Some(NcTls::Client { trust, host }) => {
            let after = opts.timeout.unwrap_or(TLS_HANDSHAKE_TIMEOUT);
            tokio::time::timeout(after, crate::tls::connect(tcp, host, trust))
                .await
                .unwrap_or(Err(Error::Timeout {
                    op: "starting TLS",
                    after,
                }))
        }
        _ => Ok(Stream::Plain(tcp)),
    }
}

/// The first client of a listener (which then stops listening, as
/// netcat does), with TLS started when `opts` asks for it.
pub async fn accept_one(listener: TcpListener, opts: &NcOptions) -> Result<Stream, Error> {
    let (tcp, _) = listener.accept().await.map_err(Error::io("accepting a connection"))?;
    drop(listener);
    let _ = tcp.set_nodelay(true);
    start_tls(tcp, opts).await
}

/// Longest a TLS handshake may take when `-w` sets no limit: a peer that
/// stalls in it would otherwise hold the session (or a listener slot).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's accepted connection, with TLS started when asked.
async fn start_tls(tcp: TcpStream, opts: &NcOptions) -> Result<Stream, Error> {
    match &opts.tls {
        Some(NcTls::Server(acceptor)) => tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, crate::tls::accept(tcp, acceptor))
            .await
            .unwrap_or(Err(Error::Timeout {
                op: "a client's TLS handshake",
                after: TLS_HANDSHAKE_TIMEOUT,
            })),
        _ => Ok(Stream::Plain(tcp)),
    }
}

/// A connected stream to the first address that accepts.
pub async fn open(addrs: &[SocketAddr], opts: &NcOptions) -> Result<TcpStream, Error> {
    let mut last = None;
    for &addr in addrs {
        let attempt = async {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .map_err(Error::io("creating a socket"))?;
            if let Some(source) = opts.source {
                socket.set_reuseaddr(true).map_err(Error::io("setting SO_REUSEADDR"))?;
                socket.bind(source).map_err(|source_err| Error::Bind {
                    addr: source,
                    source: source_err,
                })?;
            }
            socket.connect(addr).await.map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })
        };
        let result = match opts.timeout {
            Some(after) => tokio::time::timeout(after, attempt)
                .await
                .unwrap_or(Err(Error::Timeout {
                    op: "connecting",
                    after,
                })),
            None => attempt.await,
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Usage("no address to connect to".into())))
}

/// Binds a listener with SO_REUSEADDR and a backlog that survives a burst.
/// With `dual`, `[::]` takes IPv4 too, and a host without IPv6 gets
/// `0.0.0.0` instead.
pub fn bind(addr: SocketAddr, dual: bool) -> Result<TcpListener, Error> {
    match bind_one(addr, dual) {
        Err(e) if dual && super::no_ipv6(&e) => bind_one(SocketAddr::from(([0, 0, 0, 0], addr.port())), false),
        bound => bound,
    }
}

fn bind_one(addr: SocketAddr, dual: bool) -> Result<TcpListener, Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(bind_err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(!dual).map_err(bind_err)?;
    }
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.bind(&addr.into()).map_err(bind_err)?;
    let backlog = i32::try_from(DEFAULT_BACKLOG).unwrap_or(1024);
    socket.listen(backlog).map_err(bind_err)?;
    TcpListener::from_std(socket.into()).map_err(bind_err)
}

/// Serves one client (then returns, as netcat does), or with `-k` many
/// clients until input ends and `-q` expires, or forever.
pub async fn serve(listener: TcpListener, opts: &NcOptions, mut session: Session) -> Result<CloseReason, Error> {
    if let Ok(addr) = listener.local_addr() {
        session.emit(NcEvent::Listening(addr)).await;
    }
    if opts.keep_listening {
        return serve_many(listener, opts, session).await;
    }
    // Like netcat, one client per run: stop listening so nobody else queues.
    let stream = accept_one(listener, opts).await?;
    Ok(run_one(stream, opts, &mut session).await)
}

/// A client as the listener's owner loop sees it.
#[derive(Debug)]
struct Client {
    /// None once input has ended: its connection has been half-closed.
    queue: Option<mpsc::Sender<Bytes>>,
    stop: Arc<Stop>,
}

/// A listener's clients, each running in a task of its own. When the
/// listener ends (`-q`, or its session is closed), so do they: a client
/// must not outlive the session that accepted it.
#[derive(Debug, Default)]
struct Clients(HashMap<PeerId, Client>);

impl Drop for Clients {
    fn drop(&mut self) {
        for client in self.0.values() {
            client.stop.disconnect();
        }
    }
}

async fn serve_many(listener: TcpListener, opts: &NcOptions, session: Session) -> Result<CloseReason, Error> {
    let Session {
        mut input,
        events,
        stats,
        mut control,
    } = session;
    let stats: Arc<Stats> = stats;
    let mut clients = Clients::default();
    let mut newest: Vec<PeerId> = Vec::new();
    let (done_tx, mut done_rx) = mpsc::channel::<PeerId>(opts.max_clients.max(1));
    let mut next_id: PeerId = 1;
    let mut input_open = true;
    let mut quit_at: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok((stream, peer)) => (stream, super::canonical(peer)),
                    Err(e) => {
                        // Out of descriptors or a connection reset in the
                        // queue: the listener itself is fine.
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                if clients.0.len() >= opts.max_clients {
                    let _ = events.send(NcEvent::Refused { peer }).await;
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let opts_for_conn = opts.clone();
                let id = next_id;
                next_id += 1;
                let (tx, mut rx) = mpsc::channel::<Bytes>(CLIENT_QUEUE);
                let stop = Arc::new(Stop::default());
                let mut conn_rules = rules(opts);
                // A client that joins after input ended gets nothing to send
                // but is not half-closed: it may still talk to us, and its
                // session ends when it closes.
                let queue = if input_open {
                    Some(tx)
                } else {
                    conn_rules.half_close = false;
                    None
                };
                let (events, stats, done, stopper) =
                    (events.clone(), Arc::clone(&stats), done_tx.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    match start_tls(stream, &opts_for_conn).await {
                        Ok(stream) => {
                            let link = Link { id, events: &events, stats: &stats, rules: &conn_rules };
                            stream::run(stream, link, &mut rx, &stopper).await;
                        }
                        Err(e) => {
                            let _ = events
                                .send(NcEvent::Closed { id, peer, reason: CloseReason::Error(e.to_string()) })
                                .await;
                        }
                    }
                    let _ = done.send(id).await;
                });
                clients.0.insert(id, Client { queue, stop });
                newest.push(id);
            }
            Some(id) = done_rx.recv() => {
                clients.0.remove(&id);
                newest.retain(|&c| c != id);
            }
            chunk = input.recv(), if input_open && !clients.0.is_empty() => match chunk {
                Some(data) => {
                    let targets: Vec<PeerId> = if opts.broadcast_to_all {
                        newest.clone()
                    } else {
                        newest.last().copied().into_iter().collect()
                    };
                    for id in targets {
                        let Some(client) = clients.0.get(&id) else { continue };
                        let Some(queue) = &client.queue else { continue };
                        if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(data.clone()) {
                            // It stopped reading: drop it, keep the others going.
                            client.stop.too_slow();
                        }
                    }
                }
                None => {
                    input_open = false;
                    for client in clients.0.values_mut() {
                        // Closing its queue makes its connection half-close.
                        client.queue = None;
                    }
                    let _ = events.send(NcEvent::InputDone).await;
                    quit_at = opts.quit_after_eof.map(|q| Instant::now() + q);
                }
            },
            order = recv_control(control.as_mut()) => match order {
                Some(Control::SendTo(id, data)) => {
                    if let Some(client) = clients.0.get(&id) {
                        if let Some(queue) = &client.queue {
                            if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(data) {
                                client.stop.too_slow();
                            }
                        }
                    }
                }
                Some(Control::Disconnect(id)) => {
                    if let Some(client) = clients.0.get(&id) {
                        client.stop.disconnect();
                    }
                }
                None => control = None,
            },
            () = quit_deadline(quit_at) => return Ok(CloseReason::QuitAfterEof),
        }
    }
}

/// The next order, or never when there is no control channel.
pub(super) async fn recv_control(control: Option<&mut mpsc::Receiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs a session over a connection already made (the assistant page
/// connects first, to report a failure at once).
pub async fn run_stream(stream: Stream, opts: &NcOptions, session: &mut Session) -> CloseReason {
    run_one(stream, opts, session).await
}

/// The one connection of a client run or a single-client listener.
async fn run_one(stream: Stream, opts: &NcOptions, session: &mut Session) -> CloseReason {
    let _ = stream.tcp().set_nodelay(true);
    let rules = rules(opts);
    let link = Link {
        id: 1,
        events: &session.events,
        stats: &session.stats,
        rules: &rules,
    };
    stream::run(stream, link, &mut session.input, &Stop::default()).await
}

fn rules(opts: &NcOptions) -> ConnRules {
    ConnRules {
        half_close: opts.half_close,
        idle: opts.timeout,
        quit_after_eof: opts.quit_after_eof,
        report_sent: opts.report_sent,
        report_answers: opts.report_answers,
        report_received: opts.report_received,
        auto_reply: opts.auto_reply.clone(),
    }
}
