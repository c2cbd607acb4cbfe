//! The benchmark baseline: the smallest reasonable tokio echo server, with
//! none of sockit's service layer (no permits, deadlines, spans or auth).
//!   cargo run --release --example minimal_echo -- 127.0.0.1:0
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (mut socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = socket.read(&mut buf).await {
                let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else {
                    break;
                };
                if socket.write_all(data).await.is_err() {
                    break;
                }
            }
        });
    }
}
