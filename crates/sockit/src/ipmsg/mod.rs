//! The IP Messenger / FeiQ node: one owner task runs the protocol machine
//! of `sockit_proto::ipmsg` over a UDP socket; file attachments travel over
//! TCP on the same port (GETFILEDATA), served from what was offered and
//! received through the Sandbox.

mod node;
mod transfer;

pub use node::{IpmsgHandle, IpmsgOptions, NodeEvent, start};
pub use transfer::{Inbox, Received};
