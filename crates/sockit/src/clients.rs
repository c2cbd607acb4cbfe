//! Clients for the small classic services: echo, time, one-shot download.
//! (The file service's client, exec included, is `files::client`.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket, lookup_host};

use crate::Error;
use crate::auth::{self, Auth};
use crate::error::deadline;
use crate::partial::partial_path;
use crate::stream::Stream;
use crate::tls::Trust;
use crate::udp::MAX_DATAGRAM;

/// Largest reply accepted from a daytime or RFC 868 server over TCP: a
/// line of text, or 4 bytes.
pub const MAX_TIME_REPLY: u64 = 4096;

/// Largest reply accepted from an echo server for `sent` bytes: upper-case
/// echo may lengthen text (`ß` becomes `SS`, up to three times the bytes).
pub fn max_echo_reply(sent: usize) -> u64 {
    (sent as u64).saturating_mul(3).saturating_add(4096)
}

/// How a client reaches a server: its auth, TLS and patience.
#[derive(Debug, Clone, Default)]
pub struct Dial {
    pub auth: Option<Auth>,
    /// TLS, and how to trust the server's certificate.
    pub tls: Option<Trust>,
}

/// Connects, starts TLS when asked, and answers the auth challenge when
/// configured (inside TLS, the server proves the key too). Each step has
/// `timeout`.
pub async fn connect(addr: &str, dial: &Dial, timeout: Duration) -> Result<Stream, Error> {
    let tcp = deadline(timeout, "connecting", async {
        TcpStream::connect(addr).await.map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    let mut stream = match &dial.tls {
        Some(trust) => deadline(timeout, "starting TLS", crate::tls::connect(tcp, addr, trust)).await?,
        None => Stream::Plain(tcp),
    };
    if let Some(a) = &dial.auth {
        deadline(timeout, "authenticating", auth::answer_on(&mut stream, a))
            .await
            .map_err(|e| match e {
                Error::Timeout { after, .. } => Error::NoChallenge(after),
                e => e,
            })?;
    }
    Ok(stream)
}

/// Sends `payload`, half-closes, and returns everything the server sends
/// back until it closes (TCP echo; TCP daytime and time with an empty
/// payload), at most `max_reply` bytes: a server that sends more is
/// refused, not buffered. The whole exchange has `timeout`.
pub async fn tcp_exchange(
    addr: &str,
    dial: &Dial,
    payload: &[u8],
    max_reply: u64,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let stream = connect(addr, dial, timeout).await?;
    let authenticated = dial.auth.is_some();
    deadline(timeout, "talking to the server", async {
        let (rd, mut wr) = tokio::io::split(stream);
        let send = async {
            wr.write_all(payload).await?;
            wr.shutdown().await
        };
        let mut reply = Vec::new();
        // One byte past the cap tells "exactly the cap" from "more".
        let mut capped = rd.take(max_reply.saturating_add(1));
        let (sent, read) = tokio::join!(send, capped.read_to_end(&mut reply));
        if crate::tls::is_tls_alert(&reply) {
            return Err(Error::Tls("the server speaks TLS: add --tls".into()));
        }
        if !authenticated && sockit_proto::auth::looks_like_challenge(&reply) {
            return Err(Error::AuthWanted);
        }
        if reply.len() as u64 > max_reply {
            return Err(Error::Protocol(format!("the server sent more than {max_reply} bytes")));
        }
        sent.map_err(Error::io("sending"))?;
        match read {
            Ok(_) => Ok(reply),
            // A server that rejected our auth answer resets the connection.
            Err(_) if authenticated && reply.is_empty() => Err(Error::AuthRejected),
            Err(e) => Err(Error::Io {
                op: "reading the reply",
                source: e,
            }),
        }
    })
    .await
}

/// One datagram out, one back (UDP echo and the time services).
pub async fn udp_exchange(addr: &str, payload: &[u8], timeout: Duration) -> Result<Vec<u8>, Error> {
    let target: SocketAddr = lookup_host(addr)
        .await
        .map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| Error::Usage(format!("{addr} resolves to no address")))?;
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(Error::io("binding a UDP socket"))?;
    socket.connect(target).await.map_err(|source| Error::Connect {
        addr: addr.to_owned(),
        source,
    })?;
    socket.send(payload).await.map_err(Error::io("sending"))?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = deadline(timeout, "waiting for a reply", async {
        socket
            .recv(&mut buf)
            .await
            .map_err(Error::io("receiving (is the port open?)"))
    })
    .await?;
    buf.truncate(n);
    Ok(buf)
}

/// The seeds' one-shot download: send the name, receive bytes until the
/// server closes. The file lands at `dest` only if bytes arrived (the
/// seed's rule: nothing received, no file). The protocol carries no size or
/// checksum, so the server's close is taken as the end of the file.
/// Largest file the one-shot download client accepts unless told: the
/// protocol sends no size, so a server that never stops would otherwise
/// fill the disk.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 4 * 1024 * 1024 * 1024;

/// The seeds' one-shot download, as above, refusing more than `max` bytes
/// (the partial is removed).
pub async fn download(
    addr: &str,
    dial: &Dial,
    name: &str,
    dest: &Path,
    max: u64,
    timeout: Duration,
) -> Result<u64, Error> {
    let mut stream = connect(addr, dial, timeout).await?;
    deadline(timeout, "sending the name", async {
        stream
            .write_all(name.as_bytes())
            .await
            .map_err(Error::io("sending the name"))
    })
    .await?;
    let partial = partial_path(dest);
    let at = partial.clone();
    let file = tokio::task::spawn_blocking(move || crate::partial::create_fresh(&at))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?
        .map_err(Error::file("cannot create", &partial))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let received: Result<(), Error> = async {
        loop {
            let n = deadline(timeout, "waiting for data", async {
                stream.read(&mut buf).await.map_err(Error::io("receiving"))
            })
            .await?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                return Ok(());
            };
            total += n as u64;
            if total > max {
                return Err(Error::Protocol(format!(
                    "the server sent more than {max} bytes (--max-size)"
                )));
            }
            file.write_all(chunk).await.map_err(Error::file("writing", &partial))?;
        }
    }
    .await;
    let flushed = file.flush().await;
    drop(file);
    if let Err(e) = received.and(flushed.map_err(Error::file("writing", &partial))) {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    if total == 0 {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(Error::NothingSent);
    }
    tokio::fs::rename(&partial, dest)
        .await
        .map_err(Error::file("cannot move into place", dest))?;
    Ok(total)
}
