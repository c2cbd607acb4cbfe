//! sockit's wire formats and protocol logic, with no I/O.
//!
//! # Layout
//! - [`assist`]: the network debugging assistant's encodings, hex, checksums
//!   and message splitting (`nc`).
//! - [`frame`]: the framed protocol of the seeds (length prefix, JSON header,
//!   body), decoded incrementally from a caller-owned buffer.
//! - [`files`]: the file service's requests and replies on top of frames.
//! - [`broadcast`]: which broadcast addresses a bind address covers.
//! - [`chat`]: the chat room's line protocol, commands and nicks.
//! - [`ipmsg`]: IP Messenger / FeiQ packets and the node state machine
//!   (peer list, acknowledged messages, file offers).
//! - [`auth`]: the HMAC challenge/response handshake and the shared key.
//! - [`hostport`]: `HOST[:PORT]` as people type a server.
//! - [`path`]: peer-supplied names parsed into safe relative paths.
//! - [`checksum`]: the streaming hashes that verify transfers end to end.
//! - [`echo`]: the upper-case echo, streaming and per datagram.
//! - [`explain`]: captures (pcap, pcapng) read back as conversations, each
//!   packet with what it means (handshake, close, frames, TFTP, IPMSG).
//! - [`exec`]: remote exec's replies and spotting the classic raw-command client.
//! - [`clock`]: the time services' formats (seed strftime, RFC 867, RFC 868).
//! - [`display`]: peers' text made safe to show on a terminal.
//! - [`lab`]: the teaching lab's logic (the sticky-packet lesson).
//! - [`subnet`]: IPv4/IPv6 subnet maths for `ipcalc`.
//! - [`tftp`]: TFTP packets, option negotiation, netascii and the transfer
//!   state machine.
//! - [`web`]: the web front end's token, session cookies, byte ranges and
//!   JSON messages.
//!
//! Nothing here reads a clock, a socket, a file or a random source: callers
//! pass bytes, time and randomness in. That keeps every decoder total and
//! testable without a runtime.
#![forbid(unsafe_code)]

pub mod assist;
pub mod auth;
pub mod broadcast;
pub mod chat;
pub mod checksum;
pub mod clock;
pub mod display;
pub mod echo;
pub mod exec;
pub mod explain;
pub mod files;
pub mod frame;
pub mod hostport;
pub mod ipmsg;
pub mod lab;
pub mod path;
pub mod subnet;
pub mod tftp;
pub mod web;
