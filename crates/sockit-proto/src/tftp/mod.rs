//! TFTP (RFC 1350) with option negotiation (RFC 2347, 2348, 2349) and
//! windowsize (RFC 7440). See docs/rfc/ for the rules followed.
//!
//! - [`packet`]: the six packets, decoded totally and encoded.
//! - [`options`]: negotiation, server and client side.
//! - [`netascii`]: CR LF / CR NUL translation, streaming across blocks.
//! - [`transfer`]: one transfer as a sans-IO state machine.

pub mod netascii;
pub mod options;
pub mod packet;
pub mod remap;
pub mod transfer;
