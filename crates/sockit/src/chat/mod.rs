//! The TCP chat room (`sockit chat serve`): every line a member sends goes
//! to every other member, prefixed with the sender's nick.
//!
//! - [`room`]: the room, one owner task holding every member, fed by a
//!   channel (no shared locks).
//! - [`client`]: `sockit chat join`.
//! - [`member`]: one connection as a [`crate::server::Service`], so the room
//!   sits behind the server skeleton's limits, deadlines and auth layer.
//!
//! A slow member never stalls the room: each member has a bounded queue of
//! lines. A member whose queue is full when the room has a line for it is
//! told it fell behind and is disconnected; the others carry on.

pub mod client;
pub mod member;
pub mod room;

pub use member::ChatService;
pub use room::{DEFAULT_MEMBER_QUEUE, Room};
