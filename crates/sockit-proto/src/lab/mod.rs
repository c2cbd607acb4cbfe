//! The teaching lab's protocol logic: how a receiver's reads cut a TCP
//! byte stream into the sender's messages ([`sticky`]).

pub mod sticky;
