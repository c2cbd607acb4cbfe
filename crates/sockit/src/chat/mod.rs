//! The TCP chat room (`sockit chat serve`): every line a member sends goes
//! to every other member, prefixed with the sender's nick.
//!
//! - [`room`]: the room, one owner task holding every member, fed by a
//!   channel (no shared locks).
//! - [`client`]: `sockit chat join`.
//! - [`member`]: one connection as a [`crate::server::Service`], so the room
//!   sits behind the server skeleton's limits, deadlines and auth layer.
//!
//! - [`queue`]: a member's outgoing queue, bounded in bytes.
//!
//! A slow member never stalls the room: each member's queue is bounded in
//! bytes. A member whose queue is full when the room has lines for it is
//! told it fell behind and is disconnected; the others carry on.

pub mod bus;
pub mod client;
pub mod member;
pub mod queue;
pub mod room;

pub use member::ChatService;
pub use room::{DEFAULT_MEMBER_BACKLOG, Room};
