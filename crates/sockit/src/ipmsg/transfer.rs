//! File attachments over TCP: serving the files this node offered to the
//! peer they were offered to (GETFILEDATA), and downloading a peer's file
//! into a Sandbox through a staged partial, renamed into place only whole.

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::BytesMut;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncSeekExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use sockit_proto::assist::text::TextEncoding;
use sockit_proto::ipmsg::extra::decode_text;
use sockit_proto::ipmsg::{FileEntry, FileRequest, Mode, Packet};
use sockit_proto::path::RelPath;

use super::node::{NodeEvent, WeakHandle};
use crate::Error;
use crate::disk::{DiskWriter, WriteOptions};
use crate::error::deadline;
use crate::files::staging::{PartialLimits, Staging};
use crate::sandbox::Sandbox;
use crate::server::{ConnContext, Service};

/// Files served at once; each holds a socket and a file open.
pub const MAX_TRANSFERS: usize = 16;

/// Longest silence in a transfer, either way, before it is abandoned.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A GETFILEDATA request is one short packet; more is not a request.
const MAX_REQUEST: usize = 1024;

/// Chunk size for streaming files: 64 KiB reaches loopback's ceiling
/// without holding much per transfer.
const CHUNK: usize = 64 * 1024;

/// Names tried when a received file's name is taken (`name`, `name.1`, ...).
const MAX_NAME_SUFFIX: u32 = 1000;

/// One file this node offered: what the peer was told and where it is.
#[derive(Debug, Clone)]
pub struct Offered {
    pub entry: FileEntry,
    pub path: PathBuf,
}

/// A file received whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Where received files go: a Sandbox and its staging folder, shared by
/// every download into it so two of the same name cannot collide.
#[derive(Debug)]
pub struct Inbox {
    sandbox: Sandbox,
    staging: Staging,
    max_file: u64,
}

impl Inbox {
    /// Files offered larger than `max_file` bytes are refused before any
    /// byte is fetched: a peer's offer is only a claim.
    pub fn open(dir: &std::path::Path, max_file: u64) -> Result<Inbox, Error> {
        let sandbox = Sandbox::open(dir).map_err(Error::file("opening", dir))?;
        let staging_dir = sandbox
            .tree()
            .private_dir("ipmsg-partial")
            .map_err(Error::file("creating", sandbox.root().join(".sockit/ipmsg-partial")))?;
        let staging = Staging::new(staging_dir, PartialLimits::default(), false);
        Ok(Inbox {
            sandbox,
            staging,
            max_file,
        })
    }

    pub fn root(&self) -> &std::path::Path {
        self.sandbox.root()
    }
}

#[derive(Clone)]
pub(super) struct OfferService {
    node: WeakHandle,
    events: mpsc::Sender<NodeEvent>,
}

impl OfferService {
    pub(super) fn new(node: WeakHandle, events: mpsc::Sender<NodeEvent>) -> Self {
        Self { node, events }
    }
}

impl Service for OfferService {
    async fn serve<S>(&self, mut stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let outcome = async {
            let request = deadline(IDLE_TIMEOUT, "reading a file request", read_request(&mut stream)).await?;
            let offered = self.node.find_offer(ctx.peer.ip(), request).await.ok_or_else(|| {
                Error::Protocol(format!(
                    "no file {} offered in packet {}",
                    request.file_id, request.packet_no
                ))
            })?;
            let sent = send_file(&mut stream, &offered, request.offset).await?;
            Ok::<_, Error>((offered.entry.name, sent))
        }
        .await;
        let event = match outcome {
            Ok((name, bytes)) => NodeEvent::FileServed {
                to: ctx.peer,
                name,
                bytes,
            },
            // Nothing is written back on a refusal: the protocol has no
            // error reply, and closing tells the peer enough.
            Err(e) => NodeEvent::FileServeFailed {
                to: ctx.peer,
                reason: format!("{e:#}"),
            },
        };
        let _ = self.events.send(event).await;
        Ok(())
    }
}

/// Reads one GETFILEDATA packet: up to its NUL, or the peer's half-close.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Result<FileRequest, Error> {
    let mut buf = Vec::with_capacity(128);
    let mut byte = [0u8; 256];
    loop {
        let n = stream
            .read(&mut byte)
            .await
            .map_err(Error::io("reading a file request"))?;
        let piece = byte.get(..n).unwrap_or_default();
        buf.extend_from_slice(piece);
        if n == 0 || piece.contains(&0) {
            break;
        }
        if buf.len() > MAX_REQUEST {
            return Err(Error::Protocol(format!("file request longer than {MAX_REQUEST} bytes")));
        }
    }
    let packet = Packet::decode(&buf).map_err(|e| Error::Protocol(format!("bad file request: {e}")))?;
    if packet.command.mode != Mode::GetFileData {
        return Err(Error::Protocol(format!("{} is not a file request", packet.command)));
    }
    let parts = packet.extra_parts();
    let text = decode_text(
        parts.first().copied().unwrap_or_default(),
        packet.command,
        TextEncoding::Gb18030,
    );
    FileRequest::parse(&text).map_err(|e| Error::Protocol(e.to_string()))
}

/// Streams the offered file from `offset` up to the size that was offered;
/// a file that shrank since is an error, not a short success.
async fn send_file<S: AsyncWrite + Unpin>(stream: &mut S, offered: &Offered, offset: u64) -> Result<u64, Error> {
    let size = offered.entry.size;
    if offset > size {
        return Err(Error::Protocol(format!(
            "offset {offset} is past the end ({size} bytes)"
        )));
    }
    let path = &offered.path;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(Error::file("opening", path))?;
    file.seek(SeekFrom::Start(offset))
        .await
        .map_err(Error::file("seeking in", path))?;
    let mut left = size - offset;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = file.read(chunk).await.map_err(Error::file("reading", path))?;
        if n == 0 {
            return Err(Error::File {
                op: "reading (it shrank after it was offered)",
                path: path.clone(),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        let piece = chunk.get(..n).unwrap_or_default();
        deadline(IDLE_TIMEOUT, "sending a file", async {
            stream.write_all(piece).await.map_err(Error::io("sending a file"))
        })
        .await?;
        left -= n as u64;
    }
    stream.flush().await.map_err(Error::io("sending a file"))?;
    Ok(size - offset)
}

/// Fetches `file` from the peer at `from` with the GETFILEDATA `packet`,
/// writing it to a partial under the Sandbox's private folder and renaming
/// it into place once exactly the offered size arrived.
/// The connection leaves from `local`'s address when it has one: the peer
/// serves only the address it offered the file to.
pub(super) async fn download(
    local: SocketAddr,
    from: SocketAddr,
    packet: &[u8],
    file: &FileEntry,
    inbox: &Inbox,
) -> Result<Received, Error> {
    let name =
        RelPath::parse(&file.name).map_err(|e| Error::Protocol(format!("refused file name {:?}: {e}", file.name)))?;
    if name.components().count() != 1 {
        return Err(Error::Protocol(format!(
            "refused file name {:?}: not a plain name",
            file.name
        )));
    }
    if file.size > inbox.max_file {
        return Err(Error::Usage(format!(
            "refused {}: {} bytes is over the {}-byte limit (--max-file)",
            file.name, file.size, inbox.max_file
        )));
    }
    let claim = inbox
        .staging
        .claim(&name)
        .ok_or_else(|| Error::Usage(format!("{} is already being received", file.name)))?;
    let mut stream = deadline(IDLE_TIMEOUT, "connecting for a file", connect_from(local, from)).await?;
    stream.write_all(packet).await.map_err(Error::io("asking for a file"))?;
    let (staging, size) = (inbox.staging.clone(), file.size);
    let (upload, part) = inbox
        .sandbox
        .run(move |_| Ok(staging.begin(claim, size)?))
        .await
        .map_err(|e| Error::Protocol(format!("cannot stage {}: {e}", file.name)))?;
    // Dropped on any early return below: the partial goes with it.
    let options = WriteOptions {
        md5: false,
        fsync: true,
    };
    let mut writer = DiskWriter::open(part, 0, options)
        .await
        .map_err(Error::file("writing", inbox.root().join(".sockit/ipmsg-partial")))?;
    let mut left = file.size;
    while left > 0 {
        let mut chunk = BytesMut::with_capacity(CHUNK);
        let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let n = deadline(IDLE_TIMEOUT, "receiving a file", async {
            (&mut stream)
                .take(want as u64)
                .read_buf(&mut chunk)
                .await
                .map_err(Error::io("receiving a file"))
        })
        .await?;
        if n == 0 {
            return Err(Error::Closed {
                op: "sending the file (it arrived short)",
            });
        }
        left -= n as u64;
        if !writer.write(chunk.freeze()).await {
            break; // the error comes from finish()
        }
    }
    writer
        .finish()
        .await
        .map_err(Error::file("writing", inbox.root().join(file.name.as_str())))?;
    let taken = inbox
        .sandbox
        .run(move |tree| Ok(upload.commit_unique(tree, free_names(&name))?))
        .await
        .map_err(|e| Error::Protocol(format!("cannot store {}: {e}", file.name)))?;
    let path = taken.components().fold(inbox.root().to_owned(), |p, c| p.join(c));
    Ok(Received { path, bytes: file.size })
}

async fn connect_from(local: SocketAddr, to: SocketAddr) -> Result<TcpStream, Error> {
    let connect_err = |source| Error::Connect {
        addr: to.to_string(),
        source,
    };
    let socket = if to.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(connect_err)?;
    if !local.ip().is_unspecified() && local.is_ipv4() == to.is_ipv4() {
        socket.bind(SocketAddr::new(local.ip(), 0)).map_err(connect_err)?;
    }
    socket.connect(to).await.map_err(connect_err)
}

/// `name`, `name.1`, `name.2`, ...: where a received file may land.
fn free_names(name: &RelPath) -> impl Iterator<Item = RelPath> + '_ {
    (0..MAX_NAME_SUFFIX).filter_map(move |n| {
        if n == 0 {
            Some(name.clone())
        } else {
            RelPath::parse(&format!("{}.{n}", name.file_name())).ok()
        }
    })
}
