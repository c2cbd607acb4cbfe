//! TLS for every TCP service: the server's identity (a certificate and its
//! key, given or generated on first start), and how a client decides to
//! trust a server.
//!
//! How a client trusts a server ([`Trust`]):
//! - With the shared key, the certificate needs no trust at all: the auth
//!   handshake runs inside TLS, both ways, over a TLS exporter value
//!   (docs/protocol.md §2.1), so a man in the middle with a certificate of
//!   its own fails the handshake. No pinning, no CA.
//! - Without a key, the client pins the server's certificate on first use,
//!   in a known-servers file (as ssh does), and refuses a changed one.
//! - Or it verifies against a CA file (`--tls-ca`), as browsers do.
//! - `nc --ssl` checks nothing unless asked (as ncat), for debugging
//!   arbitrary TLS servers.
//!
//! rustls, with the ring provider: no OpenSSL, TLS 1.2 and 1.3 only.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::Error;
use crate::stream::Stream;

/// File names of a generated identity, beside the key file.
pub const CERT_FILE: &str = "tls-cert.pem";
pub const KEY_FILE: &str = "tls-key.pem";
/// The known-servers file, in the config folder.
pub const KNOWN_SERVERS_FILE: &str = "known_servers";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &'static str) -> impl FnOnce(rustls::Error) -> Error {
    move |e| Error::Tls(format!("{what}: {e}"))
}

/// A server's certificate chain and private key.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads a PEM certificate chain and a PEM private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, Error> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Tls(format!("cannot read the certificate {}: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(Error::Tls(format!("no certificate in {}", cert.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| Error::Tls(format!("cannot read the TLS key {}: {e}", key.display())))?;
        Ok(Self { chain, key })
    }

    /// The identity kept in `dir` ([`CERT_FILE`], [`KEY_FILE`]), generated
    /// (self-signed, key mode 0600) on first start. Returns whether it was
    /// created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), Error> {
        let (cert, key) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert.exists() && key.exists() {
            return Ok((Self::load(&cert, &key)?, false));
        }
        std::fs::create_dir_all(dir).map_err(Error::file("cannot create", dir))?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let host = host.trim();
            if !host.is_empty() && host != "localhost" {
                names.push(host.to_owned());
            }
        }
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| Error::Tls(format!("cannot generate a certificate: {e}")))?;
        write_new(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&cert, made.cert.pem().as_bytes(), 0o644)?;
        Ok((Self::load(&cert, &key)?, true))
    }

    /// `sha256:` and the hex SHA-256 of the certificate, as clients pin it.
    pub fn fingerprint(&self) -> String {
        self.chain.first().map(|c| fingerprint(c)).unwrap_or_default()
    }

    /// The acceptor a server wraps each connection in.
    pub fn acceptor(&self) -> Result<Acceptor, Error> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("TLS versions"))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_error("the certificate and key do not fit"))?;
        Ok(Acceptor {
            inner: TlsAcceptor::from(Arc::new(config)),
            fingerprint: self.fingerprint(),
        })
    }
}

/// A server's TLS side, shared by its connections.
#[derive(Clone)]
pub struct Acceptor {
    inner: TlsAcceptor,
    fingerprint: String,
}

impl Acceptor {
    /// The certificate's fingerprint, for the banner (clients pin it).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(Error::file("cannot write", path))
}

/// `sha256:` and the hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    format!("sha256:{}", sockit_proto::checksum::hex(&digest))
}

/// How a client decides that a server's certificate is acceptable.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Any certificate: the shared key, bound to the channel, proves the
    /// server (the auth handshake refuses a man in the middle).
    KeyProves,
    /// Pin on first use in this known-servers file; refuse a change.
    Pinned(PathBuf),
    /// A chain to a root in this PEM file, for the name dialed.
    Ca(PathBuf),
    /// Nothing at all (`nc --ssl`, as ncat): encryption against passive
    /// eavesdroppers only.
    Anyone,
}

/// Starts TLS over `tcp` to `host_port` (as the user wrote it, which is
/// what pins are kept under).
pub async fn connect(tcp: TcpStream, host_port: &str, trust: &Trust) -> Result<Stream, Error> {
    let host = host_of(host_port);
    let server_name =
        ServerName::try_from(host.to_owned()).map_err(|_| Error::Tls(format!("{host} is not a name TLS can check")))?;
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Ca(roots) => {
            let mut store = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(roots)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .map_err(|e| Error::Tls(format!("cannot read {}: {e}", roots.display())))?;
            for c in certs {
                store.add(c).map_err(tls_error("a CA certificate is not usable"))?;
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(store), Arc::clone(&provider))
                .build()
                .map_err(|e| Error::Tls(format!("cannot use {}: {e}", roots.display())))?
        }
        other => Arc::new(Lenient {
            algorithms: provider.signature_verification_algorithms,
            pin: match other {
                Trust::Pinned(file) => Some((file.clone(), host_port.to_owned())),
                _ => None,
            },
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error("TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| Error::Tls(format!("TLS handshake with {host_port} failed: {e}")))?;
    Ok(Stream::TlsClient(Box::new(tls)))
}

/// Accepts TLS on a server's connection.
pub async fn accept(tcp: TcpStream, acceptor: &Acceptor) -> Result<Stream, Error> {
    let tls = acceptor
        .inner
        .accept(tcp)
        .await
        .map_err(|e| Error::Tls(format!("TLS handshake failed: {e}")))?;
    Ok(Stream::TlsServer(Box::new(tls)))
}

/// Whether `bytes` are what a TLS server sends a client that did not speak
/// TLS: one alert record (type 21, version 3.x). Lets a plain client say
/// "add --tls" instead of showing the bytes.
pub fn is_tls_alert(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15, 0x03, 0..=4, 0x00, 0x02, _, _])
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => host_port,
    }
}

/// The default known-servers file: beside the default key.
pub fn default_known_servers() -> Option<PathBuf> {
    crate::auth::default_key_path().and_then(|k| k.parent().map(|d| d.join(KNOWN_SERVERS_FILE)))
}

/// Checks a server's signatures (it holds its certificate's key) and, when
/// pinning, that its certificate is the one seen before.
#[derive(Debug)]
struct Lenient {
    algorithms: WebPkiSupportedAlgorithms,
    /// The known-servers file and the name the server is kept under.
    pin: Option<(PathBuf, String)>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some((file, name)) = &self.pin {
            check_pin(file, name, &fingerprint(end_entity)).map_err(rustls::Error::General)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Trust on first use: an unknown server's fingerprint is recorded; a
/// known server must present the same one.
fn check_pin(file: &Path, name: &str, seen: &str) -> Result<(), String> {
    let known = std::fs::read_to_string(file).unwrap_or_default();
    let pinned = known.lines().find_map(|line| {
        let (who, print) = line.split_once(' ')?;
        (who == name).then(|| print.trim().to_owned())
    });
    match pinned {
        Some(p) if p == seen => Ok(()),
        Some(p) => Err(format!(
            "the certificate of {name} has changed (pinned {p}, now {seen}): someone may be in the middle; \
             if the change is expected, remove its line from {}",
            file.display()
        )),
        None => {
            if let Some(dir) = file.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(file)
                .and_then(|mut f| writeln!(f, "{name} {seen}"));
            match appended {
                Ok(()) => {
                    tracing::warn!(server = name, fingerprint = seen, file = %file.display(), "trusting a new server on first use");
                    Ok(())
                }
                Err(e) => Err(format!("cannot record {name} in {}: {e}", file.display())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hosts_are_cut_from_what_the_user_dialed() {
        assert_eq!(host_of("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_of("[::1]:8080"), "::1");
        assert_eq!(host_of("example.org:443"), "example.org");
        assert_eq!(host_of("example.org"), "example.org");
        assert_eq!(host_of("::1"), "::1");
    }

    #[test]
    fn a_pin_is_kept_on_first_use_and_a_change_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known");
        check_pin(&file, "h:1", "sha256:aa").unwrap();
        check_pin(&file, "h:1", "sha256:aa").unwrap();
        check_pin(&file, "h:2", "sha256:bb").unwrap();
        let err = check_pin(&file, "h:1", "sha256:cc").unwrap_err();
        assert!(err.contains("has changed") && err.contains("sha256:aa"), "{err}");
    }

    #[test]
    fn an_identity_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = Identity::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (again, created) = Identity::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.fingerprint(), again.fingerprint());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(first.acceptor().is_ok());
    }
}
