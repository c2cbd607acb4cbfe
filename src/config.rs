//! `sockit serve --config FILE`: which services run, where, and with what
//! auth and limits. Zero-config `serve` is the same thing with one files
//! service built from the flags, so `--print-config` shows either.
//!
//! Every key is checked: an unknown key, a bad address or a setting that
//! does not apply to a service's kind is an error naming the file and line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::UsageError;
use crate::cli::DigestArg;
use crate::limits::{self, Limit};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings every service inherits unless it sets its own.
    #[serde(default, skip_serializing_if = "Settings::is_empty")]
    pub defaults: Settings,
    #[serde(default, rename = "service")]
    pub services: Vec<Section>,
    /// The object store behind any `root = "s3://bucket/prefix"`. Unset
    /// keys come from the usual `AWS_*` environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreSection>,
}

/// `[store]`: where the S3-compatible store is, and who sockit is to it.
/// The secret is read from a file, so the config itself can be shown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
}

/// Auth and limits: in `[defaults]` and in any service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_no_auth: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_peer: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_address: Option<bool>,
    /// TCP services: encrypt with TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

impl Settings {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Every numeric setting present, with the limit it must respect.
    fn limited(&self) -> Vec<(&'static Limit, u64)> {
        let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        [
            self.max_connections.map(|v| (&limits::MAX_CONNECTIONS, as_u64(v))),
            self.max_per_peer.map(|v| (&limits::MAX_PER_PEER, as_u64(v))),
            self.backlog.map(|v| (&limits::BACKLOG, u64::from(v))),
            self.handshake_timeout.map(|v| (&limits::HANDSHAKE_TIMEOUT, v)),
            self.idle_timeout.map(|v| (&limits::IDLE_TIMEOUT, v)),
            self.request_timeout.map(|v| (&limits::REQUEST_TIMEOUT, v)),
            self.min_rate.map(|v| (&limits::MIN_RATE, v)),
            self.drain_timeout.map(|v| (&limits::DRAIN_TIMEOUT, v)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Digest {
    Sha256,
    Md5,
}

impl From<Digest> for DigestArg {
    fn from(d: Digest) -> Self {
        match d {
            Digest::Sha256 => DigestArg::Sha256,
            Digest::Md5 => DigestArg::Md5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The framed file service (and remote exec, if allowed).
    Files,
    /// Echo on `tcp` and/or `udp`.
    Echo,
    /// The classic strftime time service (`udp`).
    Time,
    /// RFC 867 on `tcp` and/or `udp`.
    Daytime,
    /// RFC 868 on `tcp` and/or `udp`.
    Rfc868,
    /// The one-shot download service.
    Download,
    /// TFTP (`udp`, `root`, `allow_write`, `allow_create`, `max_blksize`).
    Tftp,
    /// The chat room (`listen`).
    Chat,
    /// A UDP broadcast listener that logs what arrives (`listen`).
    Broadcast,
    /// An IP Messenger / FeiQ node (`listen`, `nick`, `group`, `inbox`):
    /// it shows up in peers' lists, acknowledges and logs their messages,
    /// and with `inbox` saves the files they offer.
    Ipmsg,
    /// The web front end (`listen`, `root`): the page and the HTTP API over
    /// the same files as a files service with that root.
    Web,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Echo => "echo",
            Self::Time => "time",
            Self::Daytime => "daytime",
            Self::Rfc868 => "rfc868",
            Self::Download => "download",
            Self::Tftp => "tftp",
            Self::Chat => "chat",
            Self::Broadcast => "broadcast",
            Self::Ipmsg => "ipmsg",
            Self::Web => "web",
        }
    }
}

/// One `[[service]]` table. Which keys apply depends on `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub kind: Spanned<Kind>,
    /// files, download: the TCP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// echo, daytime, rfc868: TCP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<SocketAddr>,
    /// echo, time, daytime, rfc868: UDP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<SocketAddr>,
    /// files, download: the folder served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// echo: answer in upper case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper: Option<bool>,
    /// files: allow remote exec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_exec: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_max_output: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_header: Option<u32>,
    /// tftp: accept uploads (over existing files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_write: Option<bool>,
    /// tftp: uploads may create new files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_create: Option<bool>,
    /// tftp: the largest block size granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_blksize: Option<u16>,
    /// tftp: transfers at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_transfers: Option<usize>,
    /// tftp: every transfer answers from the listening port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_port: Option<bool>,
    /// tftp: the block number after 65535, 0 or 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollover: Option<u8>,
    /// tftp: grant blocks larger than the route's MTU when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_fragments: Option<bool>,
    /// tftp: tftpd-hpa remap rules for requested names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_file: Option<PathBuf>,
    /// files: bytes of interrupted uploads kept for a resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_partial_bytes: Option<u64>,
    /// files: flush each upload to disk before confirming it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync: Option<bool>,
    /// ipmsg: the name shown in peers' lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    /// ipmsg: the group shown in peers' lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// ipmsg: save offered files here (none: files are not fetched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<PathBuf>,
    /// files, web: serve for reading only; nothing is written or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// files, web: a drop box: uploads only, never replacing a file;
    /// nothing is listed or read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_only: Option<bool>,
    /// web: the chat room at /chat (the daemon's one room, shared with its
    /// chat listeners).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<bool>,
    /// web: the assistant page, which opens sockets from this host for the
    /// browser (off unless asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assistant: Option<bool>,
    /// chat, web: share the daemon's room with other servers over NATS
    /// (`nats://HOST:4222`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// chat, web: the room's name on the bus (default `lobby`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(flatten)]
    pub settings: Settings,
}

impl Section {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind: Spanned::new(0..0, kind),
            listen: None,
            tcp: None,
            udp: None,
            root: None,
            upper: None,
            allow_exec: None,
            exec_timeout: None,
            exec_max_output: None,
            max_header: None,
            allow_write: None,
            allow_create: None,
            max_blksize: None,
            max_transfers: None,
            single_port: None,
            rollover: None,
            allow_fragments: None,
            map_file: None,
            max_partial_bytes: None,
            fsync: None,
            nick: None,
            group: None,
            inbox: None,
            read_only: None,
            upload_only: None,
            chat: None,
            assistant: None,
            bus: None,
            room: None,
            settings: Settings::default(),
        }
    }

    pub fn kind(&self) -> Kind {
        *self.kind.get_ref()
    }

    /// The keys set in this section that its kind does not use.
    fn stray_keys(&self) -> Vec<&'static str> {
        let kind = self.kind();
        let allowed: &[&str] = match kind {
            Kind::Files => &[
                "listen",
                "root",
                "allow_exec",
                "exec_timeout",
                "exec_max_output",
                "max_header",
                "max_partial_bytes",
                "fsync",
                "read_only",
                "upload_only",
            ],
            Kind::Web => &[
                "listen",
                "root",
                "read_only",
                "upload_only",
                "chat",
                "assistant",
                "bus",
                "room",
            ],
            Kind::Download => &["listen", "root"],
            Kind::Chat => &["listen", "bus", "room"],
            Kind::Broadcast => &["listen"],
            Kind::Ipmsg => &["listen", "nick", "group", "inbox"],
            // `listen` is the same address on every protocol the service
            // speaks, as the `--listen` flag.
            Kind::Echo => &["listen", "tcp", "udp", "upper"],
            Kind::Time => &["listen", "udp"],
            Kind::Daytime | Kind::Rfc868 => &["listen", "tcp", "udp"],
            Kind::Tftp => &[
                "listen",
                "udp",
                "root",
                "allow_write",
                "allow_create",
                "max_blksize",
                "max_transfers",
                "single_port",
                "rollover",
                "allow_fragments",
                "map_file",
            ],
        };
        let set = [
            ("listen", self.listen.is_some()),
            ("tcp", self.tcp.is_some()),
            ("udp", self.udp.is_some()),
            ("root", self.root.is_some()),
            ("upper", self.upper.is_some()),
            ("allow_exec", self.allow_exec.is_some()),
            ("exec_timeout", self.exec_timeout.is_some()),
            ("exec_max_output", self.exec_max_output.is_some()),
            ("max_header", self.max_header.is_some()),
            ("allow_write", self.allow_write.is_some()),
            ("allow_create", self.allow_create.is_some()),
            ("max_blksize", self.max_blksize.is_some()),
            ("max_transfers", self.max_transfers.is_some()),
            ("single_port", self.single_port.is_some()),
            ("rollover", self.rollover.is_some()),
            ("allow_fragments", self.allow_fragments.is_some()),
            ("map_file", self.map_file.is_some()),
            ("max_partial_bytes", self.max_partial_bytes.is_some()),
            ("fsync", self.fsync.is_some()),
            ("nick", self.nick.is_some()),
            ("group", self.group.is_some()),
            ("inbox", self.inbox.is_some()),
            ("read_only", self.read_only.is_some()),
            ("upload_only", self.upload_only.is_some()),
            ("chat", self.chat.is_some()),
            ("assistant", self.assistant.is_some()),
            ("bus", self.bus.is_some()),
            ("room", self.room.is_some()),
        ];
        set.into_iter()
            .filter(|(key, present)| *present && !allowed.contains(key))
            .map(|(key, _)| key)
            .collect()
    }

    /// Every numeric setting present, with the limit it must respect.
    fn limited(&self) -> Vec<(&'static Limit, u64)> {
        let mut out = self.settings.limited();
        let as_u64 = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        out.extend(self.exec_timeout.map(|v| (&limits::EXEC_TIMEOUT, v)));
        out.extend(self.exec_max_output.map(|v| (&limits::EXEC_MAX_OUTPUT, as_u64(v))));
        out.extend(self.max_header.map(|v| (&limits::MAX_HEADER, u64::from(v))));
        out.extend(self.max_transfers.map(|v| (&limits::MAX_TRANSFERS, as_u64(v))));
        out.extend(self.max_partial_bytes.map(|v| (&limits::MAX_PARTIAL_BYTES, v)));
        out
    }

    fn has_listener(&self) -> bool {
        self.listen.is_some() || self.tcp.is_some() || self.udp.is_some()
    }
}

/// Reads and checks a config file. Errors name the file and the line.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        // Inside a service table serde reports an unknown key at the
        // table's start; point at the key's own line instead.
        let line = unknown_key(e.message())
            .and_then(|key| key_line(&text, key))
            .or_else(|| e.span().map(|s| line_of(&text, s.start)));
        let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
        UsageError(format!("{}{at}: {}", path.display(), e.message()))
    })?;
    // The same limits as the flags, checked the same way.
    let sections = std::iter::once(config.defaults.limited()).chain(config.services.iter().map(Section::limited));
    for limited in sections {
        for (limit, value) in limited {
            if let Err(e) = limit.check(value) {
                let at = key_line(&text, limit.key)
                    .map(|l| format!(", line {l}"))
                    .unwrap_or_default();
                return Err(UsageError(format!("{}{at}: {e}", path.display())).into());
            }
        }
    }
    if config.services.is_empty() {
        return Err(UsageError(format!("{}: no [[service]] tables; nothing to run", path.display())).into());
    }
    for section in &config.services {
        let line = line_of(&text, section.kind.span().start);
        let kind = section.kind();
        if let Some(key) = section.stray_keys().first() {
            return Err(UsageError(format!(
                "{}, line {line}: key `{key}` does not apply to a service of kind \"{}\"",
                path.display(),
                kind.name()
            ))
            .into());
        }
        if section.read_only == Some(true) && section.upload_only == Some(true) {
            return Err(UsageError(format!(
                "{}, line {line}: read_only and upload_only exclude each other",
                path.display()
            ))
            .into());
        }
        if !section.has_listener() {
            let wants = match kind {
                Kind::Files | Kind::Download | Kind::Chat | Kind::Broadcast | Kind::Ipmsg | Kind::Web => "`listen`",
                Kind::Time | Kind::Tftp => "`listen` (or `udp`)",
                Kind::Echo | Kind::Daytime | Kind::Rfc868 => "`listen`, `tcp` or `udp`",
            };
            return Err(UsageError(format!(
                "{}, line {line}: a service of kind \"{}\" needs {wants}",
                path.display(),
                kind.name()
            ))
            .into());
        }
    }
    Ok(config)
}

impl Config {
    /// Every service with `[defaults]` folded in, for `--print-config` and
    /// for starting the services.
    pub fn effective(&self) -> Config {
        let services = self
            .services
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.settings = merge(&s.settings, &self.defaults);
                s
            })
            .collect();
        Config {
            defaults: Settings::default(),
            services,
            store: self.store.clone(),
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

fn merge(own: &Settings, defaults: &Settings) -> Settings {
    Settings {
        key_file: own.key_file.clone().or_else(|| defaults.key_file.clone()),
        auth_digest: own.auth_digest.or(defaults.auth_digest),
        insecure_no_auth: own.insecure_no_auth.or(defaults.insecure_no_auth),
        max_connections: own.max_connections.or(defaults.max_connections),
        max_per_peer: own.max_per_peer.or(defaults.max_per_peer),
        request_timeout: own.request_timeout.or(defaults.request_timeout),
        min_rate: own.min_rate.or(defaults.min_rate),
        backlog: own.backlog.or(defaults.backlog),
        handshake_timeout: own.handshake_timeout.or(defaults.handshake_timeout),
        idle_timeout: own.idle_timeout.or(defaults.idle_timeout),
        drain_timeout: own.drain_timeout.or(defaults.drain_timeout),
        reuse_address: own.reuse_address.or(defaults.reuse_address),
        tls: own.tls.or(defaults.tls),
        tls_cert: own.tls_cert.clone().or_else(|| defaults.tls_cert.clone()),
        tls_key: own.tls_key.clone().or_else(|| defaults.tls_key.clone()),
    }
}

/// The key named in serde's "unknown field `KEY`" message.
fn unknown_key(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The 1-based line where `key = ...` is first set.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |t| t.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sockit.toml");
        std::fs::write(&path, text)?;
        load(&path)
    }

    #[test]
    fn a_full_config_parses_and_defaults_fold_in() {
        let c = parse(
            r#"
[defaults]
key_file = "/etc/sockit/key"
idle_timeout = 60

[[service]]
kind = "files"
listen = "127.0.0.1:8080"
root = "/srv/drop"
allow_exec = true

[[service]]
kind = "echo"
tcp = "127.0.0.1:7"
udp = "127.0.0.1:7"
upper = true
idle_timeout = 5
"#,
        )
        .unwrap();
        let e = c.effective();
        assert_eq!(e.services.len(), 2);
        assert_eq!(e.services[0].settings.idle_timeout, Some(60));
        assert_eq!(e.services[1].settings.idle_timeout, Some(5));
        assert_eq!(
            e.services[1].settings.key_file.as_deref(),
            Some(Path::new("/etc/sockit/key"))
        );
        let printed = e.to_toml();
        assert!(
            printed.contains("kind = \"echo\"") && printed.contains("upper = true"),
            "{printed}"
        );
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let err = parse("[[service]]\nkind = \"files\"\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sockit.toml, line 4"), "{err}");
        assert!(err.contains("lisen"), "{err}");

        let err = parse("[[service]]\nkind = \"files\"\nlisten = \"not an address\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("sockit.toml"), "{err}");

        let err = parse("[[service]]\nkind = \"echo\"\ntcp = \"127.0.0.1:1\"\nroot = \"/\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("`root`"), "{err}");

        let err = parse("[[service]]\nkind = \"gopher\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("gopher"), "{err}");

        let err = parse("[[service]]\nkind = \"echo\"\n").unwrap_err().to_string();
        assert!(err.contains("needs `listen`, `tcp` or `udp`"), "{err}");

        let err = parse("[[service]]\nkind = \"files\"\nlisten = \"127.0.0.1:1\"\nmax_connections = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 4") && err.contains("max_connections must be at least 1"),
            "{err}"
        );
        let err = parse("[defaults]\nidle_timeout = 0\n[[service]]\nkind = \"echo\"\ntcp = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("idle_timeout must be at least 1"),
            "{err}"
        );

        let err = parse("[defaults]\nidle_timeot = 3\n[[service]]\nkind = \"time\"\nudp = \"127.0.0.1:1\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("idle_timeot"), "{err}");
    }
}
