//! The seeds' one-shot download (seed 002 §4.5): the client sends a file
//! name, the server sends the file's bytes and closes. A name that cannot be
//! served gets nothing and a close, as in the seed; the reason goes to the
//! log. Names pass through the same Sandbox as the file service.

use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use sockit_proto::path::RelPath;

use crate::Error;
use crate::disk::DiskReader;
use crate::error::deadline;
use crate::sandbox::Sandbox;
use crate::server::{ConnContext, Service};

/// The seed reads the name with one `recv(1024)`.
pub const MAX_NAME: usize = 1024;

#[derive(Debug)]
pub struct Download {
    sandbox: Sandbox,
}

impl Download {
    pub fn new(root: &Path) -> Result<Self, Error> {
        let sandbox = Sandbox::open(root).map_err(Error::file("cannot open root folder", root))?;
        Ok(Self { sandbox })
    }

    pub fn root(&self) -> &Path {
        self.sandbox.root()
    }
}

impl Service for Download {
    async fn serve<S>(&self, mut stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut name = vec![0u8; MAX_NAME];
        let n = deadline(ctx.idle_timeout, "waiting for a file name", async {
            stream.read(&mut name).await.map_err(Error::io("reading the file name"))
        })
        .await?;
        let raw = String::from_utf8_lossy(name.get(..n).unwrap_or_default()).into_owned();
        // A name typed into nc arrives with its newline.
        let wanted = raw.trim_end_matches(['\r', '\n']);
        let opened = match RelPath::parse(wanted) {
            Ok(path) => self.sandbox.open_file(&path).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let (file, size) = match opened {
            Ok(o) => o,
            Err(why) => {
                tracing::info!(peer = %ctx.peer, name = %wanted, reason = %why, "download refused");
                return Ok(());
            }
        };
        tracing::info!(peer = %ctx.peer, name = %wanted, size, "download");
        let mut reader = DiskReader::spawn(file, 0, size);
        while let Some(chunk) = reader.next().await {
            let chunk = chunk.map_err(Error::io("reading the file"))?;
            deadline(ctx.idle_timeout, "sending to the peer", async {
                stream.write_all(&chunk).await.map_err(Error::io("sending to the peer"))
            })
            .await?;
            reader.recycle(chunk);
        }
        let _ = stream.shutdown().await;
        Ok(())
    }
}
