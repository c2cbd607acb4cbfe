//! sockit's tokio layer: listeners, framed connections, the auth layer, the
//! file sandbox, and one driver per service.
//!
//! # Layout
//! - [`server`]: the one TCP server skeleton every TCP service runs in
//!   (connection permits, deadlines, graceful shutdown).
//! - [`udp`]: the one UDP server skeleton, which bounds every reply.
//! - [`exec`]: running a remote command under a time limit and output cap.
//! - [`auth`]: the HMAC handshake as a layer in front of any service, and
//!   where keys come from.
//! - [`conn`]: a framed connection over any `AsyncRead + AsyncWrite`.
//! - [`stream`]: one connection type, plain TCP or TLS on either side.
//! - [`tls`]: server identities (given or generated) and how a client
//!   trusts a server (the key, a pin, a CA).
//! - [`disk`]: per-transfer file threads that read or write and hash.
//! - [`sandbox`]: the only way from a peer-supplied name to the filesystem.
//! - [`partial`]: a download's partial file beside its target, never
//!   written through a planted link.
//! - [`privileges`]: giving up root after binding (`--user`).
//! - [`lab`]: the teaching lab's echo server in each concurrency model.
//! - [`activation`]: listening sockets from the service manager (systemd
//!   socket activation) and the readiness report.
//! - [`files`]: the file service (server side) and its client.
//! - [`web`]: the web front end: the page and an HTTP API over the file
//!   service's store.
//! - [`echo`], [`clock`], [`download`]: the small classic services;
//!   [`clients`]: their clients.
//! - [`broadcast`]: UDP broadcast to the interfaces a bind address covers.
//! - [`udpchat`]: two-way UDP chat with one peer.
//! - [`ipmsg`]: the IP Messenger / FeiQ node (owner task over the protocol
//!   machine) and its file attachments over TCP.
//! - [`nc`]: the network debugging assistant (client, listener, UDP peer,
//!   port checks, name lookups).
//! - [`bench`]: load generators for `sockit bench` (echo load, idle holders).
//! - [`stats`]: the figures every service reports to (connections, bytes,
//!   transfers in progress), for the dashboard and `serve --stats`.
//! - [`error`]: the library's error type.
//!
//! This crate never prints; it logs through `tracing`. Protocol rules live
//! in `sockit-proto`; this crate moves bytes between them and the world.
#![forbid(unsafe_code)]

pub mod activation;
pub mod auth;
pub mod bench;
pub mod broadcast;
pub mod chat;
pub mod clients;
pub mod clock;
pub mod conn;
pub mod disk;
pub mod download;
pub mod echo;
pub mod error;
pub mod exec;
pub mod files;
pub mod ipmsg;
pub mod lab;
pub mod nc;
pub mod partial;
pub mod privileges;
pub mod sandbox;
pub mod server;
pub mod stats;
pub mod stream;
pub mod tftp;
pub mod tls;
pub mod udp;
pub mod udpchat;
pub mod web;

pub use error::Error;
