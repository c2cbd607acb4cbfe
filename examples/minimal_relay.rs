//! The fan-out ceiling: the least a relay can do to pass every member's
//! lines to every other member, with none of a chat room's work (no
//! parsing, nicks, history, limits or auth). Each read's whole lines are
//! shared, not copied, with every other member's writer, which sends what
//! is queued in vectored writes. What is left is the kernel's copy into
//! each socket.
//!   cargo run --release --example minimal_relay -- 127.0.0.1:0
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

type Members = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Bytes>>>>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let members: Members = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
        members.lock().unwrap().insert(id, tx);
        let (mut read, mut write) = socket.into_split();
        tokio::spawn(async move {
            let mut queued = Vec::new();
            while let Some(first) = rx.recv().await {
                queued.push(first);
                while queued.len() < 64 {
                    let Ok(more) = rx.try_recv() else { break };
                    queued.push(more);
                }
                let mut at = 0;
                let mut offset = 0;
                while at < queued.len() {
                    let slices: Vec<IoSlice<'_>> = std::iter::once(&queued[at][offset..])
                        .chain(queued[at + 1..].iter().map(|b| &b[..]))
                        .map(IoSlice::new)
                        .collect();
                    let Ok(mut n) = write.write_vectored(&slices).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    while n > 0 {
                        let left = queued[at].len() - offset;
                        if n >= left {
                            n -= left;
                            at += 1;
                            offset = 0;
                        } else {
                            offset += n;
                            n = 0;
                        }
                    }
                }
                queued.clear();
            }
        });
        let members = Arc::clone(&members);
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                buf.reserve(64 * 1024);
                match read.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // Whole lines only: two senders' halves of lines
                        // must not meet in a member's stream.
                        let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
                            continue;
                        };
                        let chunk = buf.split_to(end + 1).freeze();
                        for (&other, tx) in members.lock().unwrap().iter() {
                            if other != id {
                                let _ = tx.send(chunk.clone());
                            }
                        }
                    }
                }
            }
            members.lock().unwrap().remove(&id);
        });
    }
}
