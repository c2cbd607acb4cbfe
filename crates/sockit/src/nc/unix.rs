//! `nc -U PATH`: a Unix-domain stream socket, connected to or listened on,
//! carrying bytes both ways as plain `nc` does (no display modes).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::Error;

pub async fn connect(path: &Path) -> Result<UnixStream, Error> {
    UnixStream::connect(path).await.map_err(|source| Error::Connect {
        addr: path.display().to_string(),
        source,
    })
}

/// A listening socket at `path`, removed again when dropped. An existing
/// file there is left alone and refused: it may be another program's.
#[derive(Debug)]
pub struct Listener {
    pub listener: UnixListener,
    path: PathBuf,
}

impl Listener {
    pub fn bind(path: &Path) -> Result<Self, Error> {
        if path.symlink_metadata().is_ok() {
            return Err(Error::Usage(format!(
                "{} exists; remove it first (it may be another program's socket)",
                path.display()
            )));
        }
        let listener = UnixListener::bind(path).map_err(|source| Error::Io {
            op: "creating the socket",
            source,
        })?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    pub async fn accept(&self) -> Result<UnixStream, Error> {
        let (stream, _) = self.listener.accept().await.map_err(Error::io("accepting"))?;
        Ok(stream)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes what arrives on `input` to the socket while copying what the peer
/// sends to `output`. Each direction ends on its own, as in the TCP
/// session: the peer's end-of-stream stops only the receiving side, and
/// input's end half-closes the socket (unless `half_close` is off; then the
/// peer's close ends the session).
pub async fn pump<O: AsyncWrite + Unpin>(
    stream: UnixStream,
    mut input: mpsc::Receiver<Bytes>,
    mut output: O,
    half_close: bool,
) -> Result<(), Error> {
    let (mut rd, mut wr) = stream.into_split();
    let sending = async {
        while let Some(chunk) = input.recv().await {
            wr.write_all(&chunk).await.map_err(Error::io("sending"))?;
        }
        if half_close {
            wr.shutdown().await.map_err(Error::io("closing the write side"))?;
        }
        Ok::<(), Error>(())
    };
    let receiving = copy_out(&mut rd, &mut output);
    if half_close {
        let (sent, received) = tokio::join!(sending, receiving);
        return sent.and(received);
    }
    // The write side stays open after input ends: the peer's close ends it.
    let sending_then_wait = async {
        sending.await?;
        std::future::pending::<Result<(), Error>>().await
    };
    tokio::select! {
        received = receiving => received,
        sent = sending_then_wait => sent,
    }
}

async fn copy_out<R: AsyncRead + Unpin, O: AsyncWrite + Unpin>(rd: &mut R, output: &mut O) -> Result<(), Error> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = rd.read(&mut buf).await.map_err(Error::io("reading"))?;
        if n == 0 {
            return Ok(());
        }
        output
            .write_all(buf.get(..n).unwrap_or_default())
            .await
            .map_err(Error::io("writing output"))?;
        output.flush().await.map_err(Error::io("writing output"))?;
    }
}
