//! Tasks on an async runtime (tokio), where the course shows gevent
//! coroutines:
//!
//! ```python
//! from gevent import monkey; monkey.patch_all()
//! while True:
//!     conn, addr = server.accept()
//!     gevent.spawn(handle, conn)
//! ```
//!
//! A task per connection, epoll underneath, and as many threads as cores.

use std::io;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

pub async fn serve(listener: TcpListener) -> io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) if super::transient(&e) => continue,
            Err(e) => return Err(e),
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; super::BUF];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
