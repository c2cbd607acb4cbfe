//! `sockit chat join`: typed lines to the room, the room's lines back.
//! The room speaks UTF-8; the binary converts for GBK terminals.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

use sockit_proto::chat::Nick;

use crate::Error;
use crate::auth::Auth;
use crate::clients::connect;

/// Connects, takes `nick` if given, then relays: each line from `input`
/// goes to the room, each line from the room to `output`. Returns when the
/// room closes the connection; input ending sends `/quit`.
pub async fn join(
    addr: &str,
    auth: Option<&Auth>,
    nick: Option<&Nick>,
    mut input: mpsc::Receiver<String>,
    output: mpsc::Sender<String>,
    timeout: Duration,
) -> Result<(), Error> {
    let stream = connect(addr, auth, timeout).await?;
    let (reader, mut writer) = stream.into_split();
    if let Some(nick) = nick {
        writer
            .write_all(format!("/nick {nick}\n").as_bytes())
            .await
            .map_err(Error::io("sending the nick"))?;
    }
    let mut lines = BufReader::new(reader).lines();
    let mut input_open = true;
    let mut welcomed = false;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    welcomed = true;
                    if output.send(line).await.is_err() {
                        return Ok(());
                    }
                }
                // Closed before the welcome: the handshake was refused.
                Ok(None) if !welcomed && auth.is_some() => return Err(Error::AuthRejected),
                Ok(None) if !welcomed => return Err(Error::Closed { op: "joining the room" }),
                Ok(None) => return Ok(()),
                Err(e) => return Err(Error::Io { op: "reading from the room", source: e }),
            },
            typed = input.recv(), if input_open => match typed {
                Some(text) => writer.write_all(format!("{text}\n").as_bytes()).await.map_err(Error::io("sending"))?,
                None => {
                    input_open = false;
                    writer.write_all(b"/quit\n").await.map_err(Error::io("sending /quit"))?;
                }
            },
        }
    }
}
