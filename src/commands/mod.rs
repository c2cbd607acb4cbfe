//! One module per group of subcommands; each turns parsed arguments into
//! library calls and output.

mod bench;
mod broadcast;
mod chat;
mod explain;
mod files;
mod ipmsg;
mod lab;
mod lifecycle;
mod manual;
mod nc;
mod netfacts;
mod serve;
mod services;
mod tftp;
mod udpchat;

use std::process::ExitCode;

use sockit::auth::{self, Auth};
use sockit::clients::Dial;
use sockit::tls::{Acceptor, Identity, Trust};
use sockit_proto::auth::Digest;

use crate::UsageError;
use crate::cli::{AuthArgs, ClientTlsArgs, Command, DigestArg, ServerTlsArgs};

pub async fn run(command: Command, verbose: u8) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(a) => serve::run(a).await,
        Command::Put(a) => files::put(a).await,
        Command::Get(a) => files::get(a).await,
        Command::Ls(a) => files::ls(a).await,
        Command::Stat(a) => files::stat(a).await,
        Command::Rm(a) => files::rm(a).await,
        Command::Mkdir(a) => files::mkdir(a).await,
        Command::Exec(a) => files::exec(a).await,
        Command::Echo(a) => services::echo(a).await,
        Command::Time(a) => services::time(a).await,
        Command::Download(a) => services::download(a).await,
        Command::Nc(a) => nc::run(a, verbose).await,
        Command::Ipcalc(a) => netfacts::ipcalc(&a),
        Command::Resolve(a) => netfacts::resolve(&a).await,
        Command::Tftp(c) => tftp::run(c).await,
        Command::Lab(c) => lab::run(c).await,
        Command::Explain(a) => explain::run(a).await,
        Command::Chat(c) => chat::run(c).await,
        Command::Broadcast(c) => broadcast::run(c).await,
        Command::Udpchat(a) => udpchat::run(a).await,
        Command::Ipmsg(a) => ipmsg::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Completions { shell } => manual::completions(shell),
        Command::Man(a) => manual::man(&a),
        Command::WebUrl(a) => web_url(&a),
    }
}

fn digest(arg: DigestArg) -> Digest {
    match arg {
        DigestArg::Sha256 => Digest::Sha256,
        DigestArg::Md5 => Digest::Md5,
    }
}

/// The client's key: `--key-file`, else the per-user default, which must
/// already exist (a server creates it; a client never invents a secret).
fn client_auth(args: &AuthArgs) -> anyhow::Result<Option<Auth>> {
    if args.insecure_no_auth {
        return Ok(None);
    }
    let path = match &args.key_file {
        Some(p) => p.clone(),
        None => {
            let path = auth::default_key_path().ok_or_else(|| {
                UsageError("no HOME or XDG_CONFIG_HOME to find the default key in; pass --key-file".into())
            })?;
            if !path.exists() {
                return Err(UsageError(format!(
                    "no key at {}: run `sockit serve` once on this machine, or pass --key-file (or --insecure-no-auth)",
                    path.display()
                ))
                .into());
            }
            path
        }
    };
    let key = load_key(&path)?;
    Ok(Some(Auth {
        key,
        digest: digest(args.auth_digest),
    }))
}

/// A key file's secret. A missing or unreadable key is the user's to fix
/// (exit 2), whichever way it was named.
fn load_key(path: &std::path::Path) -> anyhow::Result<sockit_proto::auth::Key> {
    auth::load_key(path).map_err(|e| UsageError(format!("cannot load the key: {e}")).into())
}

/// How a client reaches its server: its key and, with `--tls`, how the
/// server's certificate is trusted (the key proves it; else a CA; else a
/// pin on first use).
fn client_dial(auth: &AuthArgs, tls: &ClientTlsArgs) -> anyhow::Result<Dial> {
    let auth = client_auth(auth)?;
    let tls = if !tls.tls {
        None
    } else if let Some(ca) = &tls.tls_ca {
        Some(Trust::Ca(ca.clone()))
    } else if auth.is_some() {
        Some(Trust::KeyProves)
    } else {
        let file = sockit::tls::default_known_servers()
            .ok_or_else(|| UsageError("no HOME or XDG_CONFIG_HOME for known_servers; pass --tls-ca".into()))?;
        Some(Trust::Pinned(file))
    };
    Ok(Dial { auth, tls })
}

/// A server's TLS side with `--tls`: the given certificate, or the one
/// kept beside the key (generated on first start).
fn server_tls(tls: &ServerTlsArgs, key_file: Option<&std::path::Path>) -> anyhow::Result<Option<Acceptor>> {
    if !tls.tls {
        return Ok(None);
    }
    let identity = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => Identity::load(cert, key)?,
        _ => {
            let dir = key_file
                .and_then(std::path::Path::parent)
                .map(std::path::Path::to_path_buf)
                .or_else(|| auth::default_key_path().and_then(|k| k.parent().map(std::path::Path::to_path_buf)))
                .ok_or_else(|| {
                    UsageError("no HOME or XDG_CONFIG_HOME for the TLS certificate; pass --tls-cert".into())
                })?;
            let (identity, created) = Identity::load_or_create(&dir)?;
            if created {
                eprintln!("sockit: created a TLS certificate in {}", dir.display());
            }
            identity
        }
    };
    Ok(Some(identity.acceptor()?))
}

/// A server's key: `--key-file`, or the per-user default key, created on
/// first start; `None` only with `--insecure-no-auth`.
fn server_auth(args: &AuthArgs) -> anyhow::Result<Option<Auth>> {
    if args.insecure_no_auth {
        eprintln!("sockit: warning: authentication is off: anyone who can connect can use this service");
        return Ok(None);
    }
    server_key(args)
}

/// The services that only answer (echo, time, daytime, RFC 868) follow
/// their RFCs: no key unless `--key-file` names one, as the classic
/// upper-case echo wants.
pub(crate) fn key_only_if_named(args: &AuthArgs) -> AuthArgs {
    AuthArgs {
        key_file: args.key_file.clone(),
        insecure_no_auth: args.insecure_no_auth || args.key_file.is_none(),
        auth_digest: args.auth_digest,
    }
}

/// A server's key for a service where auth is opt-in: no warning when off.
fn server_auth_if_named(args: &AuthArgs) -> anyhow::Result<Option<Auth>> {
    match args.key_file {
        Some(_) if !args.insecure_no_auth => server_key(args),
        _ => Ok(None),
    }
}

fn server_key(args: &AuthArgs) -> anyhow::Result<Option<Auth>> {
    let key = match &args.key_file {
        Some(path) => load_key(path)?,
        None => {
            let path = auth::default_key_path()
                .ok_or_else(|| UsageError("no HOME or XDG_CONFIG_HOME for the default key; pass --key-file".into()))?;
            let (key, created) = auth::load_or_create_key(&path)
                .map_err(|e| UsageError(format!("cannot set up the default key at {}: {e}", path.display())))?;
            if created {
                eprintln!(
                    "sockit: created a new key at {}; clients on this machine use it by default",
                    path.display()
                );
            }
            key
        }
    };
    Ok(Some(Auth {
        key,
        digest: digest(args.auth_digest),
    }))
}

/// Where a download goes, read as cp and curl read `-o`: nothing means
/// NAME here; an existing folder or a path ending in `/` means NAME inside
/// it; anything else is the local name itself. Missing folders on the way
/// are created.
pub(crate) fn output_path(output: Option<&std::path::Path>, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let Some(out) = output else {
        return Ok(std::path::PathBuf::from(name));
    };
    let into_folder = out.as_os_str().to_string_lossy().ends_with('/') || out.is_dir();
    let (folder, path) = if into_folder {
        (Some(out), out.join(name))
    } else {
        (out.parent().filter(|p| !p.as_os_str().is_empty()), out.to_path_buf())
    };
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder).map_err(|e| UsageError(format!("cannot create {}: {e}", folder.display())))?;
    }
    Ok(path)
}

/// Reads stdin line by line on a thread of its own (interactive input must
/// not block the runtime), handing each line, without its ending, to
/// `each` until it returns false or stdin ends.
pub(crate) fn read_stdin_lines(mut each: impl FnMut(&str) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut line = String::new();
        loop {
            line.clear();
            match std::io::BufRead::read_line(&mut stdin, &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if !each(line.trim_end_matches(['\n', '\r'])) {
                        break;
                    }
                }
            }
        }
    });
}

/// `sockit web-url`: the page's address with the token of the server's
/// key, as `serve` prints it.
fn web_url(args: &crate::cli::WebUrlArgs) -> anyhow::Result<ExitCode> {
    let auth = client_auth(&AuthArgs {
        key_file: args.key_file.clone(),
        insecure_no_auth: false,
        auth_digest: DigestArg::Sha256,
    })?;
    let scheme = if args.tls { "https" } else { "http" };
    let url = sockit::web::web_url(scheme, args.web, auth.as_ref().map(|a| &a.key));
    crate::outln!("{url}")?;
    if args.qr {
        crate::output::write_str(&lifecycle::qr_code(&url))?;
    }
    Ok(ExitCode::SUCCESS)
}
