//! IP Messenger (IPMSG) and FeiQ, the LAN messenger protocol of H. Shirouzu:
//! commands, the datagram format, extra sections, and the node state machine.

pub mod command;
pub mod extra;
pub mod node;
pub mod packet;

pub use command::{Command, Mode, opt};
pub use extra::{FileEntry, FileRequest};
pub use node::{Config, Event, Message, Node, Peer, SendError, Transmit};
pub use packet::{DEFAULT_PORT, Packet, PacketError, Version};
