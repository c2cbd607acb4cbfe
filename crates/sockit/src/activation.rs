//! Listening sockets handed over by a service manager (systemd socket
//! activation, `sd_listen_fds` semantics), and the readiness report.
//!
//! systemd binds the ports (port 69 included) and starts sockit with them
//! as file descriptors 3, 4, … (LISTEN_FDS, LISTEN_PID, and the names of
//! the `.socket` unit's FileDescriptorName= in LISTEN_FDNAMES). Each of
//! sockit's listeners takes the inherited socket meant for it, instead of
//! binding its own:
//! - by name: a socket named after the service (`files`, `web`, `tftp`,
//!   `echo`, `chat`, …) of the right kind (stream for TCP, datagram for
//!   UDP);
//! - else by address: an unnamed socket bound to the configured address.
//!
//! A socket no listener takes is reported and closed. Once everything is
//! bound (and root given up, with `--user`), sockit tells the manager
//! `READY=1` through NOTIFY_SOCKET, so `Type=notify` units start in order.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;

use listenfd::ListenFd;

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

#[derive(Debug)]
struct Slot {
    name: Option<String>,
    addr: Option<SocketAddr>,
    socket: Socket,
}

static INHERITED: Mutex<Vec<Slot>> = Mutex::new(Vec::new());

/// Takes the sockets the service manager passed, if any. Call once, first
/// thing in `main`, before any thread starts: the environment variables
/// are read and removed (a child must not think they are its own).
pub fn take_from_env() {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = ListenFd::from_env();
    let mut slots = Vec::new();
    for index in 0..fds.len() {
        let name = names.get(index).filter(|n| !n.is_empty() && *n != "unknown").cloned();
        let socket = match fds.take_tcp_listener(index) {
            Ok(Some(l)) => Socket::Tcp(l),
            _ => match fds.take_udp_socket(index) {
                Ok(Some(s)) => Socket::Udp(s),
                _ => {
                    tracing::warn!(
                        index,
                        ?name,
                        "an inherited file descriptor is neither a TCP listener nor a UDP socket; ignored"
                    );
                    continue;
                }
            },
        };
        let addr = match &socket {
            Socket::Tcp(l) => l.local_addr().ok(),
            Socket::Udp(s) => s.local_addr().ok(),
        };
        slots.push(Slot { name, addr, socket });
    }
    if let Ok(mut inherited) = INHERITED.lock() {
        *inherited = slots;
    }
}

/// How many inherited sockets no listener has taken yet.
pub fn remaining() -> usize {
    INHERITED.lock().map(|s| s.len()).unwrap_or(0)
}

fn take(matches: impl Fn(&Slot) -> bool, name: &str, addr: SocketAddr) -> Option<Socket> {
    let mut slots = INHERITED.lock().ok()?;
    let index = slots
        .iter()
        .position(|s| matches(s) && s.name.as_deref() == Some(name))
        .or_else(|| {
            slots
                .iter()
                .position(|s| matches(s) && s.name.is_none() && s.addr == Some(addr))
        })?;
    Some(slots.remove(index).socket)
}

/// The inherited TCP listener for service `name` configured on `addr`.
pub fn take_tcp(name: &str, addr: SocketAddr) -> Option<TcpListener> {
    match take(|s| matches!(s.socket, Socket::Tcp(_)), name, addr)? {
        Socket::Tcp(l) => Some(l),
        Socket::Udp(_) => None,
    }
}

/// The inherited UDP socket for service `name` configured on `addr`.
pub fn take_udp(name: &str, addr: SocketAddr) -> Option<UdpSocket> {
    match take(|s| matches!(s.socket, Socket::Udp(_)), name, addr)? {
        Socket::Udp(s) => Some(s),
        Socket::Tcp(_) => None,
    }
}

/// Closes the inherited sockets no listener took, saying which.
pub fn close_unused() {
    let Ok(mut slots) = INHERITED.lock() else { return };
    for slot in slots.drain(..) {
        let addr = slot.addr.map(|a| a.to_string()).unwrap_or_default();
        tracing::warn!(name = ?slot.name, %addr, "an inherited socket matches no service; closed");
    }
}

/// Tells the service manager the server is ready (when it asked, through
/// NOTIFY_SOCKET; otherwise nothing).
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell the service manager we are ready");
    }
}

/// Tells the service manager the server is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
