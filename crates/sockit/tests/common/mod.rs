//! The one harness every end-to-end test starts servers through: a real
//! server on 127.0.0.1:0 in a temporary root, plus raw-frame helpers for
//! speaking the protocol the way hostile or classic peers do.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use sockit::auth::{self, Auth};
use sockit::files::{ClientConfig, FileClient, FileService, FileServiceConfig};
use sockit::server::{ServerConfig, TcpServer};
use sockit_proto::auth::{Digest, Key};
use sockit_proto::frame::Header;

/// Longest any test waits for the server before calling it hung.
pub const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct Options {
    pub auth: Option<Digest>,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub request_timeout: Duration,
    /// Bytes/s a body must average, over `rate_window`.
    pub min_rate: u64,
    pub rate_window: Duration,
    /// Serve over TLS with a certificate generated for the test.
    pub tls: bool,
    /// Flush every upload (file and folder) before confirming it.
    pub fsync: bool,
    /// Serve this folder instead of a fresh temporary one.
    pub root: Option<PathBuf>,
    /// Allow remote exec with these limits.
    pub exec: Option<sockit::exec::ExecLimits>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth: None,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(5),
            max_connections: sockit::server::DEFAULT_MAX_CONNECTIONS,
            max_per_peer: sockit::server::DEFAULT_MAX_PER_PEER,
            request_timeout: sockit::server::DEFAULT_REQUEST_TIMEOUT,
            min_rate: sockit::server::DEFAULT_MIN_RATE,
            rate_window: sockit::server::RATE_WINDOW,
            tls: false,
            fsync: false,
            root: None,
            exec: None,
        }
    }
}

#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub auth: Option<Auth>,
    pub tls: bool,
    pub shutdown: CancellationToken,
    handle: Option<JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

pub fn key() -> Key {
    Key::from_file_text(b"linhaifeng bang bang bang").unwrap()
}

impl TestServer {
    pub async fn start(opts: Options) -> Self {
        // SOCKIT_LOG=debug shows the server's log in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("SOCKIT_LOG"))
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let root = opts.root.clone().unwrap_or_else(|| dir.path().join("root"));
        let auth = opts.auth.map(|digest| Auth { key: key(), digest });
        let mut files = FileServiceConfig::new(&root);
        files.exec = opts.exec.clone();
        files.fsync = opts.fsync;
        let service = FileService::new(files).unwrap();
        let root = service.root().to_owned();
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), auth.clone());
        config.handshake_timeout = opts.handshake_timeout;
        config.idle_timeout = opts.idle_timeout;
        config.drain_timeout = opts.drain_timeout;
        config.max_connections = opts.max_connections;
        config.max_per_peer = opts.max_per_peer;
        config.request_timeout = opts.request_timeout;
        config.min_rate = opts.min_rate;
        config.rate_window = opts.rate_window;
        if opts.tls {
            let (identity, _) = sockit::tls::Identity::load_or_create(&dir.path().join("tls")).unwrap();
            config.tls = Some(identity.acceptor().unwrap());
        }
        let tls = opts.tls;
        let server = TcpServer::bind(config).unwrap();
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server.run(Arc::new(service), shutdown.clone()));
        Self {
            addr,
            root,
            auth,
            tls,
            shutdown,
            handle: Some(handle),
            dir,
        }
    }

    pub async fn plain() -> Self {
        Self::start(Options::default()).await
    }

    /// A client for this server: with TLS, the key proves the server, or
    /// without a key, a pin in the test's own known-servers file.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.addr.to_string(), self.auth.clone());
        if self.tls {
            c.tls = Some(match &self.auth {
                Some(_) => sockit::tls::Trust::KeyProves,
                None => sockit::tls::Trust::Pinned(self.dir.path().join("known_servers")),
            });
        }
        c
    }

    pub async fn client(&self) -> FileClient {
        FileClient::connect(&self.client_config()).await.unwrap()
    }

    /// A raw connection, already past the auth handshake if there is one.
    pub async fn raw(&self) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        if let Some(a) = &self.auth {
            auth::answer(&mut s, a).await.unwrap();
        }
        s
    }

    /// A scratch folder for the client side.
    pub fn local(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("local").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }

    /// Cancels and waits for the server to drain and return.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(PATIENCE, h).await.unwrap().unwrap();
        }
    }
}

/// Header bytes as Python's `struct.pack('i', len) + json.dumps(h).encode()`.
pub fn frame(header: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(header).unwrap();
    let mut out = (json.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

pub async fn send(s: &mut TcpStream, header: &Value, body: &[u8]) {
    s.write_all(&frame(header)).await.unwrap();
    s.write_all(body).await.unwrap();
}

/// Reads one reply header (and discards its body), or `None` at EOF.
pub async fn read_reply(s: &mut TcpStream) -> Option<Header> {
    tokio::time::timeout(PATIENCE, async {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let mut json = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut json).await.ok()?;
        let header: Header = serde_json::from_slice(&json).unwrap();
        let body = header
            .get("data_size")
            .or(header.get("filesize"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .saturating_sub(header.get("offset").and_then(Value::as_u64).unwrap_or(0));
        let mut rest = vec![0u8; body as usize];
        s.read_exact(&mut rest).await.ok()?;
        Some(header)
    })
    .await
    .expect("server did not reply in time")
}

/// The reply's error code, or "ok".
pub fn code(reply: &Header) -> String {
    match reply["status"].as_str().unwrap() {
        "ok" => "ok".into(),
        _ => reply["code"].as_str().unwrap().to_owned(),
    }
}

/// Waits for the server to close the connection; true if it did in time.
pub async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: deterministic, fast, good enough to defeat compression.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Any TCP service on 127.0.0.1:0 through the one skeleton; stops when the
/// returned token is cancelled (or dropped with the test's runtime).
pub fn spawn_tcp<S: sockit::server::Service>(service: S, auth: Option<Auth>) -> (SocketAddr, CancellationToken) {
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), auth);
    let server = TcpServer::bind(config).unwrap();
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(Arc::new(service), shutdown.clone()));
    (addr, shutdown)
}

/// Any UDP service on 127.0.0.1:0 through the one skeleton.
pub fn spawn_udp<S: sockit::udp::DatagramService>(service: S) -> (SocketAddr, CancellationToken) {
    let server = sockit::udp::UdpServer::bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(Arc::new(service), shutdown.clone()));
    (addr, shutdown)
}
