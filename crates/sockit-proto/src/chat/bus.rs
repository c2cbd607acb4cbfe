//! What the servers sharing a room tell each other over a message bus
//! (NATS, docs/protocol.md §6.3), and the [`Directory`] each keeps of the
//! other servers and their members.
//!
//! Each server publishes its own members' joins, renames and leaves, the
//! lines they say (batched, as the room batches them), private lines for
//! a member elsewhere, and a heartbeat. Every event carries its server's
//! id and a sequence number, so a receiver drops a duplicate, counts a gap
//! and keeps each server's events in the order they were sent.
//!
//! No I/O here: the driver (`sockit::chat::bus`) publishes, subscribes and
//! passes the time in.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{MAX_ROOM_LINE, Nick};

/// Largest event a server accepts: NATS' default largest message.
pub const MAX_EVENT: usize = 1 << 20;

/// Lines in one [`Event::Lines`]: a room batch is at most 64 KiB of lines,
/// so this only bounds what a hostile publisher could make a room do.
pub const MAX_LINES: usize = 4096;

/// How often a server says it is alive.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// Silence after which a server counts as gone and its members as left.
/// Five beats: a busy machine may delay one or two, never five.
pub const GONE_AFTER: Duration = Duration::from_secs(5);

/// A server gone with more members than this is announced in one line,
/// not one line each: a server of 100,000 members going down would
/// otherwise cost every other member 100,000 lines.
pub const MAX_NAMED_LEAVES: usize = 20;

/// What the room says when a server's members are gone: a line each, or,
/// past [`MAX_NAMED_LEAVES`], one line naming the first of them.
pub fn gone_notices(nicks: &[Nick]) -> Vec<String> {
    if nicks.len() <= MAX_NAMED_LEAVES {
        return nicks
            .iter()
            .map(|n| format!("{n} left (their server is gone)"))
            .collect();
    }
    let named: Vec<&str> = nicks.iter().take(MAX_NAMED_LEAVES).map(Nick::as_str).collect();
    vec![format!(
        "{} members left (their server is gone): {} and {} more",
        nicks.len(),
        named.join(", "),
        nicks.len() - MAX_NAMED_LEAVES
    )]
}

/// Longest room name: it becomes a NATS subject token and a bucket name.
pub const MAX_ROOM_NAME: usize = 32;

/// A room's name on the bus: 1-32 of `A-Z a-z 0-9 _ -`, so it is a valid
/// NATS subject token and key-value bucket name as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    #[error("a room name cannot be empty")]
    Empty,
    #[error("a room name is at most {MAX_ROOM_NAME} characters")]
    TooLong,
    #[error("'{0}' is not allowed in a room name (letters, digits, _ and - are)")]
    BadChar(char),
}

impl RoomName {
    pub fn parse(text: &str) -> Result<RoomName, RoomNameError> {
        if text.is_empty() {
            return Err(RoomNameError::Empty);
        }
        if text.len() > MAX_ROOM_NAME {
            return Err(RoomNameError::TooLong);
        }
        match text
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            Some(bad) => Err(RoomNameError::BadChar(bad)),
            None => Ok(RoomName(text.to_string())),
        }
    }

    /// The subject every server of the room publishes on and listens to.
    pub fn subject(&self) -> String {
        format!("sockit.chat.{}", self.0)
    }

    /// The key-value bucket holding the room's nick claims.
    pub fn bucket(&self) -> String {
        format!("sockit-chat-{}", self.0)
    }
}

impl Default for RoomName {
    fn default() -> Self {
        RoomName("lobby".into())
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key claiming a nick in the room's bucket: nicks collide ignoring
/// case, and a key allows only `[-/_=.a-zA-Z0-9]`, so the lower-cased
/// nick goes in as hex.
pub fn nick_key(nick: &Nick) -> String {
    let mut key = String::from("nick.");
    for byte in nick.key().bytes() {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The key whose revisions number guests: a fresh revision each join, so
/// two servers never hand out the same `guestN`.
pub const GUEST_COUNTER_KEY: &str = "guests";

/// One server of the room, as its events name it: 16 hex digits, random
/// at each start, so a restarted server is a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a server id is 16 hex digits")]
pub struct ServerIdError;

impl ServerId {
    pub fn from_random(bits: u64) -> ServerId {
        ServerId(format!("{bits:016x}"))
    }
}

impl TryFrom<String> for ServerId {
    type Error = ServerIdError;

    fn try_from(text: String) -> Result<ServerId, ServerIdError> {
        if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(ServerId(text))
        } else {
            Err(ServerIdError)
        }
    }
}

impl From<ServerId> for String {
    fn from(id: ServerId) -> String {
        id.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event on the bus, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub from: ServerId,
    /// 1, 2, 3... for each event its server publishes.
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// A member of a server's room: its id there, its nick, and the revision
/// of its nick's claim (so whoever releases the claim releases that one
/// and never a later owner's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member: u64,
    pub nick: Nick,
    pub claim: u64,
}

/// A line for everyone, as the room renders it (no newline). `said` lines
/// (talk and actions) go into each server's history for newcomers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusLine {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub said: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A server started: every other server answers with its roster.
    Hello,
    /// All of the sender's members (replacing what was known of them).
    Roster {
        members: Vec<Member>,
    },
    /// The sender is alive.
    Beat,
    Joined(Member),
    Renamed(Member),
    Left {
        member: u64,
    },
    /// Lines for everyone, in the order the sender's room handled them.
    Lines {
        lines: Vec<BusLine>,
    },
    /// A line for one member of one server (`/msg`).
    Private {
        server: ServerId,
        member: u64,
        line: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus event of {0} bytes (at most {MAX_EVENT})")]
    TooBig(usize),
    #[error("bus event is not valid: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("bus event has {0} lines (at most {MAX_LINES})")]
    TooManyLines(usize),
    #[error("bus event has a line that is too long or not one line")]
    BadLine,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        // A derived Serialize of strings, numbers and enums cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Any bytes give an envelope or an error: the bus is shared, and a
    /// bad publisher must not crash or corrupt the rooms listening to it.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, BusError> {
        if bytes.len() > MAX_EVENT {
            return Err(BusError::TooBig(bytes.len()));
        }
        let envelope: Envelope = serde_json::from_slice(bytes)?;
        let one_line = |text: &str| text.len() <= MAX_ROOM_LINE && !text.contains(['\n', '\r']);
        match &envelope.event {
            Event::Lines { lines } if lines.len() > MAX_LINES => return Err(BusError::TooManyLines(lines.len())),
            Event::Lines { lines } if !lines.iter().all(|l| one_line(&l.text)) => return Err(BusError::BadLine),
            Event::Private { line, .. } if !one_line(line) => return Err(BusError::BadLine),
            _ => {}
        }
        Ok(envelope)
    }
}

/// What one server knows of the others: when each was last heard, the
/// next sequence number expected from it, and its members.
#[derive(Debug)]
pub struct Directory {
    me: ServerId,
    servers: HashMap<ServerId, Server>,
    /// Events lost between servers (sequence gaps), for the log.
    pub missed: u64,
}

#[derive(Debug)]
struct Server {
    last_heard: Instant,
    next_seq: u64,
    members: BTreeMap<u64, Member>,
}

/// An event to act on, from another server.
#[derive(Debug, PartialEq, Eq)]
pub struct Received {
    pub from: ServerId,
    pub event: Event,
    /// The first event heard from this server (since it was last gone): if
    /// it is not a roster, ask for one.
    pub first: bool,
}

impl Directory {
    pub fn new(me: ServerId) -> Directory {
        Directory {
            me,
            servers: HashMap::new(),
            missed: 0,
        }
    }

    pub fn me(&self) -> &ServerId {
        &self.me
    }

    /// Takes in one event. `None` for one's own event (an echo) or a
    /// duplicate; otherwise the event, with the directory already updated
    /// for joins, renames, leaves and rosters.
    pub fn receive(&mut self, now: Instant, envelope: Envelope) -> Option<Received> {
        let Envelope { from, seq, event } = envelope;
        if from == self.me {
            return None;
        }
        let first = !self.servers.contains_key(&from);
        let server = self.servers.entry(from.clone()).or_insert_with(|| Server {
            last_heard: now,
            next_seq: seq,
            members: BTreeMap::new(),
        });
        if seq < server.next_seq {
            return None;
        }
        self.missed += seq - server.next_seq;
        server.next_seq = seq.saturating_add(1);
        server.last_heard = now;
        match &event {
            Event::Roster { members } => {
                server.members = members.iter().map(|m| (m.member, m.clone())).collect();
            }
            Event::Joined(m) | Event::Renamed(m) => {
                server.members.insert(m.member, m.clone());
            }
            Event::Left { member } => {
                server.members.remove(member);
            }
            Event::Hello | Event::Beat | Event::Lines { .. } | Event::Private { .. } => {}
        }
        Some(Received { from, event, first })
    }

    /// Servers not heard from for [`GONE_AFTER`], removed, with the members
    /// they had.
    pub fn expire(&mut self, now: Instant) -> Vec<(ServerId, Vec<Member>)> {
        let dead: Vec<ServerId> = self
            .servers
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_heard) >= GONE_AFTER)
            .map(|(id, _)| id.clone())
            .collect();
        dead.into_iter()
            .filter_map(|id| {
                let server = self.servers.remove(&id)?;
                Some((id, server.members.into_values().collect()))
            })
            .collect()
    }

    /// Every member of every other server.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.servers.values().flat_map(|s| s.members.values())
    }

    /// The server and member holding a nick (compared ignoring case).
    pub fn find(&self, nick: &Nick) -> Option<(&ServerId, &Member)> {
        let key = nick.key();
        self.servers
            .iter()
            .find_map(|(id, s)| s.members.values().find(|m| m.nick.key() == key).map(|m| (id, m)))
    }

    /// Other servers heard from and not gone.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn id(n: u64) -> ServerId {
        ServerId::from_random(n)
    }

    fn member(n: u64, nick: &str) -> Member {
        Member {
            member: n,
            nick: Nick::parse(nick).unwrap(),
            claim: 100 + n,
        }
    }

    fn env(from: u64, seq: u64, event: Event) -> Envelope {
        Envelope {
            from: id(from),
            seq,
            event,
        }
    }

    #[test]
    fn envelopes_round_trip_and_read_as_documented() {
        let events = [
            Event::Hello,
            Event::Roster {
                members: vec![member(1, "alice"), member(2, "小明")],
            },
            Event::Beat,
            Event::Joined(member(3, "bob")),
            Event::Renamed(member(3, "bobby")),
            Event::Left { member: 3 },
            Event::Lines {
                lines: vec![
                    BusLine {
                        text: "<alice> hi".into(),
                        said: true,
                    },
                    BusLine {
                        text: "*** bob joined".into(),
                        said: false,
                    },
                ],
            },
            Event::Private {
                server: id(9),
                member: 4,
                line: "*alice* psst".into(),
            },
        ];
        for (seq, event) in events.into_iter().enumerate() {
            let e = env(7, seq as u64, event);
            assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        }
        // docs/protocol.md §6.3 gives this event as an example.
        let wire = br#"{"from":"00000000000000ab","seq":5,"event":"lines","lines":[{"text":"<alice> hi","said":true},{"text":"*** bob joined"}]}"#;
        let e = Envelope::decode(wire).unwrap();
        assert_eq!(e.from, id(0xab));
        assert!(matches!(&e.event, Event::Lines { lines } if lines.len() == 2 && !lines[1].said));
    }

    #[test]
    fn bad_events_are_refused_whole() {
        let bad: &[&[u8]] = &[
            b"",
            b"{}",
            br#"{"from":"xyz","seq":1,"event":"beat"}"#,
            br#"{"from":"00000000000000ab","seq":-1,"event":"beat"}"#,
            br#"{"from":"00000000000000ab","seq":1,"event":"dance"}"#,
            br#"{"from":"00000000000000ab","seq":1,"event":"joined","member":1,"nick":"1bad","claim":2}"#,
            br#"{"from":"00000000000000ab","seq":1,"event":"lines","lines":[{"text":"a\nb"}]}"#,
            br#"{"from":"00000000000000ab","seq":1,"event":"private","server":"00000000000000ab","member":1,"line":"\r"}"#,
        ];
        for bytes in bad {
            assert!(Envelope::decode(bytes).is_err(), "{}", String::from_utf8_lossy(bytes));
        }
        assert!(matches!(
            Envelope::decode(&vec![b' '; MAX_EVENT + 1]),
            Err(BusError::TooBig(_))
        ));
    }

    #[test]
    fn a_big_server_gone_is_one_line_a_small_one_a_line_each() {
        let nicks = |n: usize| {
            (0..n)
                .map(|i| Nick::parse(&format!("m{i}")).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            gone_notices(&nicks(2)),
            ["m0 left (their server is gone)", "m1 left (their server is gone)"]
        );
        assert_eq!(gone_notices(&nicks(MAX_NAMED_LEAVES)).len(), MAX_NAMED_LEAVES);
        let big = gone_notices(&nicks(1000));
        assert_eq!(big.len(), 1);
        assert!(
            big[0].starts_with("1000 members left (their server is gone): m0, m1, "),
            "{}",
            big[0]
        );
        assert!(big[0].ends_with(", m19 and 980 more"), "{}", big[0]);
    }

    #[test]
    fn room_names_are_subject_tokens() {
        assert_eq!(RoomName::parse("lab-2_b").unwrap().subject(), "sockit.chat.lab-2_b");
        assert_eq!(RoomName::parse("x").unwrap().bucket(), "sockit-chat-x");
        assert_eq!(RoomName::parse(""), Err(RoomNameError::Empty));
        assert_eq!(RoomName::parse("a.b"), Err(RoomNameError::BadChar('.')));
        assert_eq!(RoomName::parse("a>"), Err(RoomNameError::BadChar('>')));
        assert_eq!(RoomName::parse(&"r".repeat(33)), Err(RoomNameError::TooLong));
    }

    #[test]
    fn nick_keys_ignore_case_and_stay_valid_keys() {
        let a = nick_key(&Nick::parse("Alice").unwrap());
        assert_eq!(a, nick_key(&Nick::parse("aLICE").unwrap()));
        assert_eq!(a, "nick.616c696365");
        let cjk = nick_key(&Nick::parse("小明[x]").unwrap());
        assert!(cjk.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    }

    #[test]
    fn own_events_and_duplicates_are_dropped_gaps_counted() {
        let t = Instant::now();
        let mut d = Directory::new(id(1));
        assert_eq!(d.receive(t, env(1, 1, Event::Beat)), None);
        let r = d.receive(t, env(2, 10, Event::Joined(member(5, "bob")))).unwrap();
        assert!(r.first);
        assert!(!d.receive(t, env(2, 11, Event::Beat)).unwrap().first);
        assert_eq!(d.receive(t, env(2, 11, Event::Beat)), None);
        assert_eq!(d.receive(t, env(2, 3, Event::Beat)), None);
        assert_eq!(d.missed, 0);
        assert!(d.receive(t, env(2, 15, Event::Beat)).is_some());
        assert_eq!(d.missed, 3);
    }

    #[test]
    fn members_follow_joins_renames_leaves_and_rosters() {
        let t = Instant::now();
        let mut d = Directory::new(id(1));
        d.receive(t, env(2, 1, Event::Joined(member(5, "bob"))));
        d.receive(t, env(3, 1, Event::Joined(member(5, "carol"))));
        assert_eq!(d.find(&Nick::parse("BOB").unwrap()).unwrap().0, &id(2));
        d.receive(t, env(2, 2, Event::Renamed(member(5, "robert"))));
        assert!(d.find(&Nick::parse("bob").unwrap()).is_none());
        assert!(d.find(&Nick::parse("robert").unwrap()).is_some());
        d.receive(t, env(3, 2, Event::Left { member: 5 }));
        assert_eq!(d.members().count(), 1);
        d.receive(
            t,
            env(
                3,
                3,
                Event::Roster {
                    members: vec![member(1, "x"), member(2, "y")],
                },
            ),
        );
        assert_eq!(d.members().count(), 3);
        assert_eq!(d.servers(), 2);
    }

    #[test]
    fn a_silent_server_is_gone_with_its_members() {
        let t = Instant::now();
        let mut d = Directory::new(id(1));
        d.receive(t, env(2, 1, Event::Joined(member(5, "bob"))));
        d.receive(t, env(3, 1, Event::Joined(member(6, "carol"))));
        d.receive(t + GONE_AFTER, env(3, 2, Event::Beat));
        assert!(d.expire(t + GONE_AFTER - Duration::from_millis(1)).is_empty());
        let gone = d.expire(t + GONE_AFTER);
        assert_eq!(gone, vec![(id(2), vec![member(5, "bob")])]);
        assert_eq!(d.servers(), 1);
        // Heard again after counting as gone: a new server, to ask a roster of.
        assert!(d.receive(t + GONE_AFTER, env(2, 2, Event::Beat)).unwrap().first);
        assert!(d.find(&Nick::parse("bob").unwrap()).is_none());
    }
}
