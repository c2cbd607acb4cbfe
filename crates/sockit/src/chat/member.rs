//! One member's connection: lines in (capped, UTF-8 checked) to the room,
//! the member's queue out to the socket, and the goodbye when the room
//! drops it for falling behind.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use sockit_proto::chat::{Input, Line as ReadLine, LineReader, MAX_LINE};
use sockit_proto::display::first_control;

use super::queue::{QueueRx, queue};
use super::room::{Command, MemberId, Room};
use crate::Error;
use crate::server::{ConnContext, Service};

/// How long the goodbye to a dropped member may take: it is not reading,
/// so this must not wait on it for long.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a member that has half-closed (sent its last line and EOF, as
/// `printf '/who\n' | nc -N` does) is given to receive what it is owed:
/// the replies to its last lines, then the goodbye.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Chunks gathered into one vectored write: a backlog goes out in a few
/// system calls, straight from the shared chunks, with no copy into a
/// write buffer first.
const MAX_IOV: usize = 64;

#[derive(Debug, Clone)]
pub struct ChatService {
    room: Room,
    backlog: usize,
}

impl ChatService {
    /// A room where a member may have `backlog` bytes waiting for it
    /// before it counts as fallen behind.
    pub fn new(backlog: usize) -> Self {
        Self::in_room(Room::spawn(), backlog)
    }

    /// TCP members for a room shared with other front ends (the web).
    pub fn in_room(room: Room, backlog: usize) -> Self {
        Self {
            room,
            backlog: backlog.max(1),
        }
    }
}

impl Service for ChatService {
    async fn serve<S>(&self, stream: S, ctx: ConnContext) -> Result<(), Error>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (queue_tx, queue) = queue(self.backlog);
        let kick = CancellationToken::new();
        let (reply_tx, reply) = oneshot::channel();
        let join = Command::Join {
            peer: ctx.peer,
            queue: queue_tx,
            kick: kick.clone(),
            reply: reply_tx,
        };
        if !self.room.send(join).await {
            return Ok(());
        }
        let Ok(id) = reply.await else { return Ok(()) };
        let (mut reader, writer) = tokio::io::split(stream);
        // Writing runs beside reading: a member that does not read blocks
        // only its own writer, and the room's kick still reaches it.
        let done = CancellationToken::new();
        let mut writing = tokio::spawn(write_lines(
            writer,
            queue,
            [kick.clone(), ctx.shutdown.clone(), done.clone()],
        ));
        let mut lines = LineReader::default();
        let mut buf = vec![0u8; 4096];
        let mut pending: Vec<Command> = Vec::new();
        let idle = tokio::time::sleep(ctx.idle_timeout);
        tokio::pin!(idle);
        let mut writer_finished = false;
        // The member sent end-of-stream: it is done talking, not listening.
        let mut half_closed = false;
        let outcome = loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) => {
                        half_closed = true;
                        break Ok(());
                    }
                    Err(_) => break Ok(()),
                    Ok(n) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + ctx.idle_timeout);
                        lines.push(buf.get(..n).unwrap_or_default(), |line| pending.push(command_for(id, line)));
                        for command in pending.drain(..) {
                            if !self.room.send(command).await {
                                break;
                            }
                        }
                    }
                },
                // The writer ended: /quit, dropped, shutdown, or the peer is gone.
                _ = &mut writing => {
                    writer_finished = true;
                    break Ok(());
                }
                () = &mut idle => break Err(Error::Timeout { op: "waiting for the member", after: ctx.idle_timeout }),
            }
        };
        // The room handles commands in order: it answers every line sent
        // before this, then closes the member's queue, and the writer sends
        // what is queued and the goodbye before it ends.
        let _ = self.room.send(Command::Leave { id }).await;
        if half_closed && !writer_finished && tokio::time::timeout(DRAIN_TIMEOUT, &mut writing).await.is_ok() {
            writer_finished = true;
        }
        done.cancel();
        if !writer_finished {
            let _ = writing.await;
        }
        outcome
    }
}

/// What a member's line asks of the room: the same rules for every kind
/// of member (TCP or web).
pub(crate) fn command_for(id: MemberId, line: ReadLine) -> Command {
    match line {
        ReadLine::Text(text) => {
            // A CRLF client's line ends in \r: not part of the text.
            let text = text.strip_suffix('\r').unwrap_or(&text);
            match first_control(text) {
                // Escape sequences would act on every member's terminal.
                Some(c) => Command::Tell {
                    id,
                    line: format!("line has a control character (U+{:04X}); not sent", u32::from(c)),
                },
                None => Command::Input {
                    id,
                    input: Input::parse(text),
                },
            }
        }
        ReadLine::TooLong => Command::Tell {
            id,
            line: format!("line longer than {MAX_LINE} bytes; not sent"),
        },
        ReadLine::NotUtf8 => Command::Tell {
            id,
            line: "line is not UTF-8; not sent".into(),
        },
    }
}

/// Writes the member's queue to the socket until the room lets go (queue
/// closed: /quit), the room drops the member (kick: it fell behind), the
/// server shuts down, or the socket fails.
async fn write_lines<W: AsyncWrite + Unpin>(writer: W, mut queue: QueueRx, stops: [CancellationToken; 3]) {
    // kick: the room dropped the member; shutdown: the server stops;
    // done: the member's side ended (no one left to tell).
    let [kick, shutdown, done] = stops;
    let mut writer = writer;
    let goodbye = loop {
        let line = tokio::select! {
            line = queue.recv() => line,
            () = kick.cancelled() => break Some("!!! you fell too far behind; disconnected\n"),
            () = shutdown.cancelled() => break Some("*** the server is shutting down\n"),
            () = done.cancelled() => break None,
        };
        let Some(line) = line else { break Some("*** bye\n") };
        tokio::select! {
            written = write_batch(&mut writer, &mut queue, line) => if written.is_err() { break None },
            // A write stuck on a member that does not read is abandoned.
            () = kick.cancelled() => break Some("\n!!! you fell too far behind; disconnected\n"),
            () = shutdown.cancelled() => break Some("\n*** the server is shutting down\n"),
            () = done.cancelled() => break None,
        }
    };
    if let Some(text) = goodbye {
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            writer.write_all(text.as_bytes()).await?;
            writer.flush().await
        })
        .await;
    }
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, writer.shutdown()).await;
}

/// Writes `first` and whatever else is queued, in vectored writes.
async fn write_batch<W: AsyncWrite + Unpin>(writer: &mut W, queue: &mut QueueRx, first: Bytes) -> std::io::Result<()> {
    let mut chunks = VecDeque::from([first]);
    loop {
        while chunks.len() < MAX_IOV {
            let Some(chunk) = queue.try_recv() else { break };
            chunks.push_back(chunk);
        }
        if chunks.is_empty() {
            return writer.flush().await;
        }
        let slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
        let written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        crate::disk::consume(&mut chunks, written);
    }
}
