//! sockit's tokio layer: listeners, framed connections, the auth layer, the
//! file sandbox, and one driver per service.
//!
//! # Layout
//! - [`server`]: the one TCP server skeleton every TCP service runs in
//!   (connection permits, deadlines, graceful shutdown).
//! - [`auth`]: the HMAC handshake as a layer in front of any service, and
//!   where keys come from.
//! - [`conn`]: a framed connection over any `AsyncRead + AsyncWrite`.
//! - [`disk`]: per-transfer file threads that read or write and hash.
//! - [`sandbox`]: the only way from a peer-supplied name to the filesystem.
//! - [`files`]: the file service (server side) and its client.
//! - [`error`]: the library's error type.
//!
//! This crate never prints; it logs through `tracing`. Protocol rules live
//! in `sockit-proto`; this crate moves bytes between them and the world.
#![forbid(unsafe_code)]

pub mod auth;
pub mod conn;
pub mod disk;
pub mod error;
pub mod files;
pub mod sandbox;
pub mod server;

pub use error::Error;
