//! `sockit serve`: the services a config file names, or the zero-config
//! file service the flags describe. Both go through one `Config`, so
//! `--print-config` shows exactly what would run.

use std::process::ExitCode;
use std::time::Duration;

use sockit::auth::Auth;
use sockit::clock::{TimeProtocol, TimeService};
use sockit::download::Download;
use sockit::echo::Echo;
use sockit::exec::{DEFAULT_EXEC_TIMEOUT, DEFAULT_MAX_OUTPUT, ExecLimits};
use std::sync::Arc;

use sockit::files::object::{ObjectRoot, StoreConfig};
use sockit::files::staging::PartialLimits;
use sockit::files::storage::ServedRoot;
use sockit::files::{Access, FileService, FileServiceConfig, FileStore, ObjectFileService};
use sockit::server::{
    DEFAULT_BACKLOG, DEFAULT_DRAIN_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_PEER, DEFAULT_MIN_RATE, DEFAULT_REQUEST_TIMEOUT, ServerConfig,
};
use sockit::tftp::server::TftpConfig;
use sockit::tls::Acceptor;
use sockit::web::{WebConfig, WebService};
use sockit_proto::files::object::StoreUrl;
use sockit_proto::frame::{DEFAULT_MAX_HEADER_LEN, FrameLimits};
use sockit_proto::tftp::options::Rollover;

use super::lifecycle::Listeners;
use super::{server_auth, server_auth_if_named, server_tls};

use crate::UsageError;
use crate::cli::{AuthArgs, ServeArgs, ServerTlsArgs};
use crate::config::{self, Config, Kind, Section, Settings};

/// The web listener's port beside the file service's 8080.
pub const DEFAULT_WEB_PORT: u16 = 8081;
/// Where zero-config `serve` keeps its files.
const DEFAULT_ROOT: &str = "sockit-data";

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match (&args.config, default_config(&args)) {
        (Some(path), _) => config::load(path)?,
        (None, Some(path)) => {
            eprintln!("sockit: using {} (--no-config ignores it)", path.display());
            config::load(&path)?
        }
        (None, None) => from_flags(&args),
    };
    let mut config = config.effective();
    for section in &mut config.services {
        fill_defaults(section);
    }
    if args.print_config {
        crate::output::write_str(&config.to_toml())?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.print_web_url {
        return print_web_urls(&config, args.qr);
    }
    let mut listeners = Listeners::new(&args.run_as)?;
    let mut stores = Stores::open(&config, listeners.stats())?;
    stores.room = shared_room(&config).await?;
    if let Some(every) = args.stats {
        listeners.report_stats(Duration::from_secs(every));
    }
    for section in &config.services {
        start(section, &mut listeners, &mut stores, args.qr).await?;
    }
    listeners.serve().await
}

/// The daemon's room on a bus, when a chat or web section names one: every
/// such section shares the one room, so they must agree on it.
async fn shared_room(config: &Config) -> anyhow::Result<Option<sockit::chat::Room>> {
    let mut wanted: Option<(&str, Option<&str>)> = None;
    for section in &config.services {
        let chats = match section.kind() {
            Kind::Chat => true,
            Kind::Web => section.chat.unwrap_or(true),
            _ => false,
        };
        if !chats {
            continue;
        }
        let this = match (&section.bus, &section.room) {
            (Some(bus), room) => (bus.as_str(), room.as_deref()),
            (None, Some(_)) => return Err(UsageError("`room` names a room on a bus: set `bus` too".into()).into()),
            (None, None) => continue,
        };
        if wanted.is_some_and(|w| w != this) {
            return Err(UsageError(
                "the chat and web sections share one room: give them the same `bus` and `room`".into(),
            )
            .into());
        }
        wanted = Some(this);
    }
    match wanted {
        Some((bus, room)) => Ok(Some(super::chat::room_on_bus(bus, room).await?)),
        None => Ok(None),
    }
}

/// `serve --print-web-url`: each web listener's address with its token.
fn print_web_urls(config: &Config, qr: bool) -> anyhow::Result<ExitCode> {
    let webs: Vec<&Section> = config.services.iter().filter(|s| s.kind() == Kind::Web).collect();
    if webs.is_empty() {
        return Err(UsageError("no web listener would run (--no-web, or none in the config)".into()).into());
    }
    for web in webs {
        let listen = web
            .listen
            .ok_or_else(|| UsageError("a web service needs `listen`".into()))?;
        let key = auth_of(&web.settings)?.map(|a| a.key);
        let scheme = if web.settings.tls.unwrap_or(false) {
            "https"
        } else {
            "http"
        };
        let url = sockit::web::web_url(scheme, listen, key.as_ref());
        crate::outln!("{url}")?;
        if qr {
            crate::output::write_str(&super::lifecycle::qr_code(&url))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the services of one daemon share: one [`FileStore`] per served
/// folder, for every front end on it (the files service, the web), so an
/// upload through one is a conflict in the other; and one chat room, for
/// TCP members and browsers alike.
struct Stores {
    by_root: Vec<(std::path::PathBuf, Arc<FileStore>)>,
    /// One per `s3://` root, shared like a folder's store: an upload
    /// through one front end is a conflict in the other.
    by_url: Vec<(StoreUrl, Arc<ObjectRoot>)>,
    room: Option<sockit::chat::Room>,
    stats: sockit::stats::Stats,
    /// Where the `s3://` roots are, and who sockit is to the store.
    store: StoreConfig,
}

impl Stores {
    /// Opens the store of each files service first, with its settings
    /// (exec, limits, fsync), whatever order the sections come in.
    fn open(config: &Config, stats: sockit::stats::Stats) -> anyhow::Result<Self> {
        let mut stores = Self {
            by_root: Vec::new(),
            by_url: Vec::new(),
            room: None,
            stats,
            store: store_config(config.store.as_ref())?,
        };
        for section in config.services.iter().filter(|s| s.kind() == Kind::Files) {
            if store_url(section)?.is_none() {
                stores.for_section(section, || files_config(section))?;
            }
        }
        Ok(stores)
    }

    /// The object-store root at `url`: the one already connected, or a
    /// new connection with these bounds on kept uploads, proven to answer.
    async fn object_root(&mut self, url: &StoreUrl, limits: PartialLimits) -> anyhow::Result<Arc<ObjectRoot>> {
        if let Some((_, root)) = self.by_url.iter().find(|(u, _)| u == url) {
            return Ok(Arc::clone(root));
        }
        let root = ObjectRoot::open(url, &self.store, limits)?;
        root.check().await?;
        self.by_url.push((url.clone(), Arc::clone(&root)));
        // Kept uploads go by the same bounds as a local folder's partials
        // (7 days, 1,000, 16 GiB): at start, then hourly, and the count
        // each time an upload is kept.
        let sweeper = Arc::downgrade(&root);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let Some(root) = sweeper.upgrade() else { return };
                let swept = root.sweep(true).await;
                if swept > 0 {
                    tracing::info!(swept, "abandoned kept uploads past their bounds");
                }
            }
        });
        Ok(root)
    }

    /// The daemon's chat room, opened on first use.
    fn room(&mut self) -> sockit::chat::Room {
        self.room.get_or_insert_with(sockit::chat::Room::spawn).clone()
    }

    /// The store for a section's root: the one already open (its access
    /// must agree), or a new one.
    fn for_section(
        &mut self,
        section: &Section,
        config: impl FnOnce() -> FileServiceConfig,
    ) -> anyhow::Result<Arc<FileStore>> {
        let root = section.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into());
        let key = std::path::absolute(&root).unwrap_or_else(|_| root.clone());
        let access = access_of(section);
        if let Some((_, store)) = self.by_root.iter().find(|(r, _)| *r == key) {
            if store.config().access != access {
                return Err(UsageError(format!(
                    "the services on {} disagree on read_only / upload_only",
                    root.display()
                ))
                .into());
            }
            return Ok(Arc::clone(store));
        }
        let mut config = config();
        config.stats = self.stats.clone();
        let store = Arc::new(FileStore::open(config)?);
        self.by_root.push((key, Arc::clone(&store)));
        Ok(store)
    }
}

fn access_of(section: &Section) -> Access {
    match (section.read_only, section.upload_only) {
        (Some(true), _) => Access::ReadOnly,
        (_, Some(true)) => Access::UploadOnly,
        _ => Access::ReadWrite,
    }
}

/// The section's root when it is an object store (`s3://bucket/prefix`).
fn store_url(section: &Section) -> anyhow::Result<Option<StoreUrl>> {
    let Some(root) = section.root.as_ref().and_then(|r| r.to_str()) else {
        return Ok(None);
    };
    if !StoreUrl::is_store(root) {
        return Ok(None);
    }
    let url = StoreUrl::parse(root).map_err(|e| UsageError(format!("root {root}: {e}")))?;
    Ok(Some(url))
}

/// `[store]` as the driver takes it; its secret read from its file.
fn store_config(section: Option<&config::StoreSection>) -> anyhow::Result<StoreConfig> {
    let Some(s) = section else {
        return Ok(StoreConfig::default());
    };
    let secret_access_key = match &s.secret_access_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| UsageError(format!("cannot read secret_access_key_file {}: {e}", path.display())))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    Ok(StoreConfig {
        endpoint: s.endpoint.clone(),
        region: s.region.clone(),
        access_key_id: s.access_key_id.clone(),
        secret_access_key,
        allow_http: s.allow_http,
    })
}

/// A files service's store settings, from its section.
fn files_config(section: &Section) -> FileServiceConfig {
    let root = section.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into());
    let mut files = FileServiceConfig::new(&root);
    files.frame_limits = FrameLimits {
        max_header_len: section.max_header.unwrap_or(DEFAULT_MAX_HEADER_LEN),
    };
    if let Some(max) = section.max_partial_bytes {
        files.partials.max_bytes = max;
    }
    files.fsync = section.fsync.unwrap_or(false);
    if section.allow_exec.unwrap_or(false) {
        files.exec = Some(ExecLimits {
            timeout: section.exec_timeout.map_or(DEFAULT_EXEC_TIMEOUT, Duration::from_secs),
            max_output: section.exec_max_output.unwrap_or(DEFAULT_MAX_OUTPUT),
        });
    }
    files.access = access_of(section);
    files
}

/// The assistant page's sessions, with the per-user quick sends
/// (`~/.config/sockit/assistant.toml`) as its buttons.
fn assistant_desk() -> anyhow::Result<sockit::nc::desk::Desk> {
    let profile = super::nc::user_profile()?;
    Ok(sockit::nc::desk::Desk::new(
        sockit::nc::desk::DEFAULT_MAX_SESSIONS,
        profile,
    ))
}

/// The config file `serve` runs when given no flags at all:
/// `$XDG_CONFIG_HOME/sockit/sockit.toml` (or `~/.config/...`), then
/// `/etc/sockit/sockit.toml`. Any flag for the file service means the
/// flags describe what to run instead.
fn default_config(args: &ServeArgs) -> Option<std::path::PathBuf> {
    if args.no_config || args.flags_given {
        return None;
    }
    let user = sockit::auth::config_dir().map(|d| d.join("sockit.toml"));
    user.into_iter()
        .chain(std::iter::once(std::path::PathBuf::from("/etc/sockit/sockit.toml")))
        .find(|p| p.is_file())
}

/// Every key a service uses, with the value it runs with: what
/// `--print-config` shows, so the file documents the defaults too.
fn fill_defaults(section: &mut Section) {
    let kind = section.kind();
    let has_tcp = match kind {
        Kind::Files | Kind::Download | Kind::Chat | Kind::Web => true,
        Kind::Echo | Kind::Daytime | Kind::Rfc868 => section.tcp.is_some() || section.listen.is_some(),
        Kind::Time | Kind::Tftp | Kind::Broadcast | Kind::Ipmsg => false,
    };
    if matches!(kind, Kind::Files | Kind::Download | Kind::Tftp | Kind::Web) {
        section.root.get_or_insert_with(|| DEFAULT_ROOT.into());
    }
    if matches!(kind, Kind::Files | Kind::Web) {
        section.read_only.get_or_insert(false);
        section.upload_only.get_or_insert(false);
    }
    if kind == Kind::Web {
        section.chat.get_or_insert(true);
        section.assistant.get_or_insert(false);
    }
    match kind {
        Kind::Files => {
            section.allow_exec.get_or_insert(false);
            section.exec_timeout.get_or_insert(DEFAULT_EXEC_TIMEOUT.as_secs());
            section.exec_max_output.get_or_insert(DEFAULT_MAX_OUTPUT);
            section.max_header.get_or_insert(DEFAULT_MAX_HEADER_LEN);
            section
                .max_partial_bytes
                .get_or_insert(sockit::files::staging::DEFAULT_MAX_PARTIAL_BYTES);
            section.fsync.get_or_insert(false);
        }
        Kind::Echo => {
            section.upper.get_or_insert(false);
        }
        Kind::Tftp => {
            section.allow_write.get_or_insert(false);
            section.allow_create.get_or_insert(false);
            section
                .max_blksize
                .get_or_insert(sockit_proto::tftp::options::MAX_BLKSIZE);
            section
                .max_transfers
                .get_or_insert(sockit::tftp::server::DEFAULT_MAX_TRANSFERS);
        }
        _ => {}
    }
    if !has_tcp {
        return;
    }
    let keyed_by_default = matches!(kind, Kind::Files | Kind::Download | Kind::Chat | Kind::Web);
    let s = &mut section.settings;
    if keyed_by_default || s.key_file.is_some() {
        s.auth_digest.get_or_insert(config::Digest::Sha256);
    }
    if keyed_by_default {
        s.insecure_no_auth.get_or_insert(false);
    }
    s.max_connections.get_or_insert(DEFAULT_MAX_CONNECTIONS);
    s.max_per_peer.get_or_insert(DEFAULT_MAX_PER_PEER);
    s.request_timeout.get_or_insert(DEFAULT_REQUEST_TIMEOUT.as_secs());
    s.min_rate.get_or_insert(DEFAULT_MIN_RATE);
    s.backlog.get_or_insert(DEFAULT_BACKLOG);
    s.handshake_timeout.get_or_insert(DEFAULT_HANDSHAKE_TIMEOUT.as_secs());
    let idle = if kind == Kind::Chat {
        CHAT_IDLE_TIMEOUT
    } else {
        DEFAULT_IDLE_TIMEOUT
    };
    s.idle_timeout.get_or_insert(idle.as_secs());
    s.drain_timeout.get_or_insert(DEFAULT_DRAIN_TIMEOUT.as_secs());
    s.reuse_address.get_or_insert(true);
    s.tls.get_or_insert(false);
}

/// Zero-config `serve`: one files service, as the flags say.
fn from_flags(args: &ServeArgs) -> Config {
    let mut files = Section::new(Kind::Files);
    files.listen = Some(args.listen);
    files.root = Some(args.root.clone());
    files.allow_exec = Some(args.allow_exec);
    files.exec_timeout = Some(args.exec_timeout);
    files.exec_max_output = Some(args.exec_max_output);
    files.max_header = Some(args.max_header);
    files.max_partial_bytes = Some(args.max_partial_bytes);
    files.fsync = Some(args.fsync);
    files.read_only = Some(args.read_only);
    files.upload_only = Some(args.upload_only);
    files.settings = Settings {
        key_file: args.auth.key_file.clone(),
        auth_digest: Some(match args.auth.auth_digest {
            crate::cli::DigestArg::Sha256 => config::Digest::Sha256,
            crate::cli::DigestArg::Md5 => config::Digest::Md5,
        }),
        insecure_no_auth: Some(args.auth.insecure_no_auth),
        max_connections: Some(args.max_connections),
        max_per_peer: Some(args.max_per_peer),
        request_timeout: Some(args.request_timeout),
        min_rate: Some(args.min_rate),
        backlog: Some(args.backlog),
        handshake_timeout: Some(args.handshake_timeout),
        idle_timeout: Some(args.idle_timeout),
        drain_timeout: Some(args.drain_timeout),
        reuse_address: Some(!args.no_reuse_address),
        tls: Some(args.tls.tls),
        tls_cert: args.tls.tls_cert.clone(),
        tls_key: args.tls.tls_key.clone(),
    };
    let mut services = Vec::new();
    if !args.no_web {
        // The page over the same folder, with the same key and TLS.
        let mut web = Section::new(Kind::Web);
        web.listen = Some(args.web.unwrap_or_else(|| {
            // Beside the files: on the same address, sockit's web port.
            let port = if args.listen.port() == 0 { 0 } else { DEFAULT_WEB_PORT };
            std::net::SocketAddr::new(args.listen.ip(), port)
        }));
        web.root = files.root.clone();
        web.read_only = Some(args.read_only);
        web.upload_only = Some(args.upload_only);
        web.assistant = Some(args.web_assistant);
        web.settings = files.settings.clone();
        services.push(web);
    }
    services.insert(0, files);
    Config {
        defaults: Settings::default(),
        services,
        store: None,
    }
}

fn auth_of(s: &Settings) -> anyhow::Result<Option<Auth>> {
    server_auth(&auth_args(s))
}

/// For echo and the time services: no key unless `key_file` names one.
fn auth_if_named(s: &Settings) -> anyhow::Result<Option<Auth>> {
    server_auth_if_named(&auth_args(s))
}

fn auth_args(s: &Settings) -> AuthArgs {
    AuthArgs {
        key_file: s.key_file.clone(),
        insecure_no_auth: s.insecure_no_auth.unwrap_or(false),
        auth_digest: s.auth_digest.map(Into::into).unwrap_or_default(),
    }
}

/// How long a chat member may stay silent, unless the config says otherwise.
pub const CHAT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// A TCP service's TLS side, when its settings ask for it.
fn tls_of(s: &Settings) -> anyhow::Result<Option<Acceptor>> {
    let args = ServerTlsArgs {
        tls: s.tls.unwrap_or(false),
        tls_cert: s.tls_cert.clone(),
        tls_key: s.tls_key.clone(),
    };
    if args.tls && args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err(UsageError("tls_cert and tls_key go together".into()).into());
    }
    server_tls(&args, s.key_file.as_deref())
}

fn server_config(addr: std::net::SocketAddr, s: &Settings, auth: Option<Auth>) -> anyhow::Result<ServerConfig> {
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let mut c = ServerConfig::new(addr, auth);
    c.max_connections = s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    c.max_per_peer = s.max_per_peer.unwrap_or(DEFAULT_MAX_PER_PEER);
    c.request_timeout = secs(s.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    c.min_rate = s.min_rate.unwrap_or(DEFAULT_MIN_RATE);
    c.backlog = s.backlog.unwrap_or(DEFAULT_BACKLOG);
    c.handshake_timeout = secs(s.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
    c.idle_timeout = secs(s.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    c.drain_timeout = secs(s.drain_timeout, DEFAULT_DRAIN_TIMEOUT);
    c.reuse_address = s.reuse_address.unwrap_or(true);
    c.tls = tls_of(s)?;
    Ok(c)
}

/// Binds one service's listeners; each announces itself as
/// `listening on tcp|udp ADDR (KIND, auth: …, …)`.
async fn start(section: &Section, listeners: &mut Listeners, stores: &mut Stores, qr: bool) -> anyhow::Result<()> {
    let s = &section.settings;
    let reuse = s.reuse_address.unwrap_or(true);
    if !matches!(section.kind(), Kind::Files | Kind::Web) && store_url(section)?.is_some() {
        return Err(UsageError(format!(
            "the {} service serves a local folder; an s3:// root is for the files and web services",
            format!("{:?}", section.kind()).to_lowercase(),
        ))
        .into());
    }
    match section.kind() {
        Kind::Broadcast => start_broadcast(section, listeners)?,
        Kind::Ipmsg => start_ipmsg(section, listeners).await?,
        Kind::Files => {
            let listen = section
                .listen
                .ok_or_else(|| UsageError("a files service needs `listen`".into()))?;
            let auth = auth_of(s)?;
            let allow_exec = section.allow_exec.unwrap_or(false);
            if allow_exec && auth.is_none() && !listen.ip().is_loopback() {
                return Err(UsageError(format!(
                    "refusing --allow-exec with --insecure-no-auth on {listen}: anyone who can connect could run \
                     commands; use a key, or listen on a loopback address"
                ))
                .into());
            }
            if let Some(url) = store_url(section)? {
                if allow_exec {
                    return Err(UsageError(format!(
                        "refusing allow_exec on {url}: an object store has no folder to run commands in"
                    ))
                    .into());
                }
                let mut files = files_config(section);
                files.stats = listeners.stats();
                let details = format!("root: {url}{}", access_note(files.access));
                let root = stores.object_root(&url, files.partials).await?;
                let service = ObjectFileService::new(root, files);
                let config = server_config(listen, s, auth)?;
                listeners.tcp(config, service, "files", &details)?;
                return Ok(());
            }
            let service = FileService::on(stores.for_section(section, || files_config(section))?);
            let shown_root = service.root().display().to_string();
            let details = format!(
                "root: {shown_root}{}{}",
                access_note(service.store().config().access),
                if allow_exec { ", exec: on" } else { "" }
            );
            let config = server_config(listen, s, auth)?;
            listeners.tcp(config, service, "files", &details)?;
        }
        Kind::Web => {
            let listen = section
                .listen
                .ok_or_else(|| UsageError("a web service needs `listen`".into()))?;
            let files_of = || {
                let mut files = FileServiceConfig::new(section.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into()));
                files.access = access_of(section);
                files
            };
            let store = match store_url(section)? {
                Some(url) => {
                    let mut config = files_of();
                    config.stats = listeners.stats();
                    ServedRoot::Object {
                        root: stores.object_root(&url, config.partials).await?,
                        config: Arc::new(config),
                    }
                }
                None => ServedRoot::Local(stores.for_section(section, files_of)?),
            };
            let key = auth_of(s)?.map(|a| a.key);
            let details = format!("root: {}{}", store.shown(), access_note(store.config().access));
            // The web has its own login; the framed handshake is off.
            let config = server_config(listen, s, None)?;
            let mut web = WebConfig::new(key.clone());
            web.tls = config.tls.is_some();
            if section.chat.unwrap_or(true) {
                web.room = Some(stores.room());
            }
            web.stats = listeners.stats();
            if section.assistant.unwrap_or(false) {
                web.assistant = Some(assistant_desk()?);
            }
            listeners.web(config, WebService::new(web, store), &details, key.as_ref(), qr)?;
        }
        Kind::Download => {
            let listen = section
                .listen
                .ok_or_else(|| UsageError("a download service needs `listen`".into()))?;
            let root = section.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into());
            let service = Download::new(&root)?;
            let root = format!("root: {}", service.root().display());
            listeners.tcp(server_config(listen, s, auth_of(s)?)?, service, "download", &root)?;
        }
        Kind::Echo => {
            let upper = section.upper.unwrap_or(false);
            let echo = Echo { upper };
            let name = if upper { "echo, upper" } else { "echo" };
            for tcp in section.tcp.into_iter().chain(section.listen) {
                listeners.tcp(server_config(tcp, s, auth_if_named(s)?)?, echo, name, "")?;
            }
            for udp in section.udp.into_iter().chain(section.listen) {
                listeners.udp(udp, reuse, echo, name)?;
            }
        }
        Kind::Chat => {
            let listen = section
                .listen
                .ok_or_else(|| UsageError("a chat service needs `listen`".into()))?;
            let service = sockit::chat::ChatService::in_room(stores.room(), sockit::chat::DEFAULT_MEMBER_BACKLOG);
            let mut config = server_config(listen, s, auth_of(s)?)?;
            if s.idle_timeout.is_none() {
                // Members read more than they write: an hour, as `chat serve`.
                config.idle_timeout = CHAT_IDLE_TIMEOUT;
            }
            listeners.tcp(config, service, "chat", "")?;
        }
        Kind::Tftp => {
            let udp = section
                .udp
                .or(section.listen)
                .ok_or_else(|| UsageError("a tftp service needs `listen`".into()))?;
            let mut config = TftpConfig::new(section.root.clone().unwrap_or_else(|| DEFAULT_ROOT.into()));
            config.allow_write = section.allow_write.unwrap_or(false);
            config.allow_create = section.allow_create.unwrap_or(false);
            if let Some(max) = section.max_blksize {
                config.max_blksize = max;
            }
            if let Some(max) = section.max_transfers {
                config.max_transfers = max;
            }
            if let Some(max) = s.max_per_peer {
                config.max_per_peer = max;
            }
            config.single_port = section.single_port.unwrap_or(false);
            config.allow_fragments = section.allow_fragments.unwrap_or(false);
            config.rollover = match section.rollover {
                None | Some(0) => Rollover::Zero,
                Some(1) => Rollover::One,
                Some(n) => return Err(UsageError(format!("tftp: rollover = {n}: expected 0 or 1")).into()),
            };
            config.remap = section
                .map_file
                .as_deref()
                .map(super::tftp::load_map_file)
                .transpose()?;
            let note = tftp_note(&config);
            listeners.tftp(udp, config, note)?;
        }
        kind @ (Kind::Time | Kind::Daytime | Kind::Rfc868) => {
            let (protocol, name) = match kind {
                Kind::Time => (TimeProtocol::Strftime, "time"),
                Kind::Daytime => (TimeProtocol::Daytime, "daytime"),
                _ => (TimeProtocol::Rfc868, "rfc868"),
            };
            let service = TimeService { protocol };
            // The course's time service is UDP only; daytime and RFC 868
            // take `listen` on both protocols.
            let tcp_listen = if kind == Kind::Time { None } else { section.listen };
            for tcp in section.tcp.into_iter().chain(tcp_listen) {
                listeners.tcp(server_config(tcp, s, auth_if_named(s)?)?, service, name, "")?;
            }
            for udp in section.udp.into_iter().chain(section.listen) {
                listeners.udp(udp, reuse, service, name)?;
            }
        }
    }
    Ok(())
}

/// A broadcast listener whose datagrams go to the log (`-v`, `--log-file`).
fn start_broadcast(section: &Section, listeners: &mut Listeners) -> anyhow::Result<()> {
    let listen = section
        .listen
        .ok_or_else(|| UsageError("a broadcast service needs `listen`".into()))?;
    let socket = sockit::broadcast::listener(listen)?;
    Listeners::announce("udp", socket.local_addr()?, "broadcast")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(std::net::SocketAddr, bytes::Bytes)>(256);
    listeners.task(
        async move {
            tokio::spawn(sockit::broadcast::listen(socket, tx));
            while let Some((from, data)) = rx.recv().await {
                let text = String::from_utf8_lossy(&data);
                tracing::info!(%from, bytes = data.len(), text = %sockit_proto::display::escape(&text, false), "broadcast");
            }
        },
        async {},
    );
    Ok(())
}

/// An IPMSG node: in peers' lists, acknowledging and logging messages, and
/// saving offered files when `inbox` is set. It says goodbye on shutdown.
async fn start_ipmsg(section: &Section, listeners: &mut Listeners) -> anyhow::Result<()> {
    let listen = section
        .listen
        .ok_or_else(|| UsageError("an ipmsg service needs `listen`".into()))?;
    let user = super::ipmsg::login_name();
    let options = sockit::ipmsg::IpmsgOptions {
        bind: listen,
        nick: section.nick.clone().unwrap_or_else(|| user.clone()),
        user,
        host: super::ipmsg::host_name(),
        group: section.group.clone().unwrap_or_default(),
        peers: Vec::new(),
        broadcast: true,
        broadcast_port: listen.port(),
        legacy: sockit_proto::assist::text::TextEncoding::Gbk,
        force_encoding: None,
        retry_interval: Duration::from_secs(1),
        max_attempts: sockit_proto::ipmsg::node::DEFAULT_MAX_ATTEMPTS,
    };
    let inbox = match &section.inbox {
        Some(dir) => Some(std::sync::Arc::new(sockit::ipmsg::Inbox::open(dir, 4 << 30)?)),
        None => None,
    };
    let (node, mut events) = sockit::ipmsg::start(options)
        .await
        .map_err(|e| anyhow::anyhow!(e).context(format!("starting ipmsg on {listen}")))?;
    let local = node.local_addr();
    Listeners::announce("udp", local, "ipmsg")?;
    Listeners::announce("tcp", local, "ipmsg files")?;
    let leaving = node.clone();
    listeners.task(
        async move {
            while let Some(event) = events.recv().await {
                tracing::info!(?event, "ipmsg");
                if let (Some(inbox), sockit::ipmsg::NodeEvent::Ipmsg(sockit_proto::ipmsg::node::Event::Message(m))) =
                    (&inbox, &event)
                {
                    for file in &m.files {
                        match node.download(m.from, m.packet_no, file, inbox).await {
                            Ok(got) => tracing::info!(from = %m.from, path = %got.path.display(), bytes = got.bytes, "ipmsg file saved"),
                            Err(e) => tracing::warn!(from = %m.from, name = %file.name, error = %e, "ipmsg file not saved"),
                        }
                    }
                }
            }
        },
        async move {
            let _ = leaving.leave().await;
        },
    );
    Ok(())
}

/// `, read-only`, `, upload-only` or nothing, for a banner.
fn access_note(access: Access) -> &'static str {
    match access {
        Access::ReadWrite => "",
        Access::ReadOnly => ", read-only",
        Access::UploadOnly => ", upload-only",
    }
}

/// `read-only`, `read-write` or `read-write, create` for a TFTP banner.
pub fn tftp_note(config: &TftpConfig) -> &'static str {
    match (config.allow_write, config.allow_create) {
        (false, _) => "read-only",
        (true, false) => "read-write",
        (true, true) => "read-write, create",
    }
}
