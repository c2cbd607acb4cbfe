//! TLS on the file service, tried as someone on the path would: a tap that
//! records every byte, a relay that flips one, and a man in the middle that
//! terminates TLS with a certificate of its own. With the shared key the
//! auth handshake is bound to the channel, so the last one fails with no
//! pinning; without a key the client pins on first use; with a CA it
//! verifies the chain.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use common::{Options, TestServer, random_bytes};
use sockit::Error;
use sockit::files::{ClientConfig, FileClient, NoProgress};
use sockit::tls::{Identity, Trust};
use sockit_proto::auth::Digest;
use sockit_proto::path::RelPath;

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).unwrap()
}

fn keyed_tls() -> Options {
    Options {
        auth: Some(Digest::Sha256),
        tls: true,
        ..Options::default()
    }
}

/// A TCP relay to `target` that records what the client sends and, with
/// `flip_at`, flips that byte of it.
async fn relay(target: SocketAddr, flip_at: Option<usize>) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let start = {
                        let mut seen = record.lock().unwrap();
                        let start = seen.len();
                        seen.extend_from_slice(&buf[..n]);
                        start
                    };
                    if let Some(at) = flip_at {
                        if (start..start + n).contains(&at) {
                            buf[at - start] ^= 0x40;
                        }
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            });
        }
    });
    (addr, seen)
}

/// A man in the middle: TLS with its own certificate towards the client,
/// TLS (trusting anything) towards the server, plaintext relayed between.
async fn man_in_the_middle(target: SocketAddr) -> SocketAddr {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = Identity::load_or_create(dir.path()).unwrap();
    let acceptor = identity.acceptor().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _keep = dir;
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(client) = sockit::tls::accept(client, &acceptor).await else {
                    return;
                };
                let tcp = TcpStream::connect(target).await.unwrap();
                let Ok(server) = sockit::tls::connect(tcp, &target.to_string(), &Trust::Anyone).await else {
                    return;
                };
                let (mut cr, mut cw) = tokio::io::split(client);
                let (mut sr, mut sw) = tokio::io::split(server);
                let up = async {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    let _ = sw.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

fn via(srv: &TestServer, addr: SocketAddr) -> ClientConfig {
    let mut c = srv.client_config();
    c.server = addr.to_string();
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tap_on_the_path_sees_no_file_no_header_and_no_name() {
    let srv = TestServer::start(keyed_tls()).await;
    let (tap, seen) = relay(srv.addr, None).await;
    let marker = b"THE-SECRET-PAYLOAD-".repeat(5000);
    let src = srv.local("secret-name.txt");
    std::fs::write(&src, &marker).unwrap();
    let mut c = FileClient::connect(&via(&srv, tap)).await.unwrap();
    c.put(&src, &rel("secret-name.txt"), false, &mut NoProgress)
        .await
        .unwrap();
    let back = srv.local("back.txt");
    c.get(&rel("secret-name.txt"), &back, false, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), marker);
    let seen = seen.lock().unwrap();
    assert!(seen.len() > marker.len(), "the upload went through the tap");
    let contains = |needle: &[u8]| seen.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"THE-SECRET-PAYLOAD"), "file bytes in the clear");
    assert!(!contains(b"secret-name"), "file name in the clear");
    assert!(!contains(b"\"cmd\""), "header in the clear");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_byte_changed_in_transit_breaks_the_connection_and_stores_nothing() {
    let srv = TestServer::start(keyed_tls()).await;
    // Well into the body, past the handshakes.
    let (tap, _) = relay(srv.addr, Some(200_000)).await;
    let src = srv.local("f.bin");
    std::fs::write(&src, random_bytes(1_000_000, 7)).unwrap();
    let mut c = FileClient::connect(&via(&srv, tap)).await.unwrap();
    let r = c.put(&src, &rel("f.bin"), false, &mut NoProgress).await;
    assert!(r.is_err(), "a tampered upload must fail: {r:?}");
    assert!(!srv.root.join("f.bin").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_man_in_the_middle_with_its_own_certificate_fails_the_bound_handshake() {
    let srv = TestServer::start(keyed_tls()).await;
    let mitm = man_in_the_middle(srv.addr).await;
    // The client trusts any certificate (the key is its proof), yet the
    // relay cannot pass: each TLS session has its own exporter value.
    let err = FileClient::connect(&via(&srv, mitm)).await.unwrap_err();
    assert!(matches!(err, Error::AuthRejected | Error::ServerUnproven), "{err}");
    // Straight to the server, the same client is fine.
    let mut c = srv.client().await;
    c.ls(&RelPath::root(), false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_the_certificate_is_pinned_on_first_use() {
    let srv = TestServer::start(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    let mut c = srv.client().await;
    c.ls(&RelPath::root(), false).await.unwrap();
    let known = std::fs::read_to_string(srv.dir.path().join("known_servers")).unwrap();
    assert!(known.starts_with(&format!("{} sha256:", srv.addr)), "{known}");
    // The same name, another certificate: refused.
    let mitm = man_in_the_middle(srv.addr).await;
    let mut config = srv.client_config();
    config.server = mitm.to_string();
    let pinned = srv.dir.path().join("known_servers");
    std::fs::write(&pinned, known.replace(&srv.addr.to_string(), &mitm.to_string())).unwrap();
    let err = FileClient::connect(&config).await.unwrap_err();
    assert!(err.to_string().contains("has changed"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_verifies_the_server_and_another_ca_does_not() {
    // A CA, and a server certificate it signed for 127.0.0.1.
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), server_key.serialize_pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(dir.path().join("other.pem"), other.cert.pem()).unwrap();

    let identity = Identity::load(&dir.path().join("cert.pem"), &dir.path().join("key.pem")).unwrap();
    let service =
        sockit::files::FileService::new(sockit::files::FileServiceConfig::new(dir.path().join("root"))).unwrap();
    let mut config = sockit::server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), None);
    config.tls = Some(identity.acceptor().unwrap());
    let server = sockit::server::TcpServer::bind(config).unwrap();
    let addr = server.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(server.run(Arc::new(service), stop.clone()));

    let mut client = ClientConfig::new(addr.to_string(), None);
    client.tls = Some(Trust::Ca(dir.path().join("ca.pem")));
    let mut c = FileClient::connect(&client).await.unwrap();
    c.ls(&RelPath::root(), false).await.unwrap();
    client.tls = Some(Trust::Ca(dir.path().join("other.pem")));
    let err = FileClient::connect(&client).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_client_is_told_the_server_speaks_tls() {
    // The plain client waits for a challenge, the TLS server for a hello:
    // the server's handshake deadline ends it, and the client says why.
    let srv = TestServer::start(Options {
        handshake_timeout: std::time::Duration::from_millis(300),
        ..keyed_tls()
    })
    .await;
    let mut config = srv.client_config();
    config.tls = None;
    let err = FileClient::connect(&config).await.unwrap_err();
    assert!(err.to_string().contains("--tls"), "{err}");
}
