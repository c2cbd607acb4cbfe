//! A room shared by several servers over NATS (`chat serve --bus`,
//! docs/protocol.md §6.3). Each server's room stays the one owner of its
//! own members; this module is its link to the others: it connects,
//! listens, beats, publishes the room's events in order, and claims and
//! releases nicks in the room's JetStream key-value bucket, the one
//! authority on who holds a nick across servers.
//!
//! What each event means and when the room sends it is the room's
//! ([`super::room`]) and the directory's (`sockit_proto::chat::bus`).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::sync::mpsc;

use sockit_proto::chat::Nick;
use sockit_proto::chat::bus::{
    BEAT_EVERY, BusLine, Directory, Envelope, Event, GUEST_COUNTER_KEY, MAX_EVENT, Member as BusMember, RoomName,
    ServerId, nick_key,
};

use super::room::{Claimed, Command, MemberId};
use crate::Error;

/// How long connecting to the bus may take before `chat serve` gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a nick's claim may take: a join or rename waits this long for
/// the bus at most, then is refused.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for the bus to take one event: past it the bus counts as
/// down for as long again, and events meanwhile are dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Guest numbers tried before a join gives up: each comes from the
/// counter, so only members who renamed themselves `guestN` collide.
const GUEST_TRIES: usize = 8;

/// Lines gathered into one bus event before it is sent: a room batch's
/// worth (64 KiB), far below a NATS message's 1 MiB.
const MAX_EVENT_LINES_BYTES: usize = 64 * 1024;

/// Messages from the bus buffered for this server: past it NATS counts
/// the server as a slow consumer. A room handles tens of thousands of
/// events a second, so this is seconds of stall.
const SUBSCRIPTION_CAPACITY: usize = 64 * 1024;

/// A connection to the bus for one room, ready to be given to
/// [`super::Room::spawn_on`].
#[derive(Debug)]
pub struct Bus {
    client: async_nats::Client,
    kv: kv::Store,
    subject: String,
    subscriber: async_nats::Subscriber,
    me: ServerId,
}

impl Bus {
    /// Connects to NATS at `url` (`nats://HOST:4222`), opens the room's
    /// nick bucket (creating it: in memory, one revision a key) and
    /// subscribes to the room's subject.
    pub async fn connect(url: &str, room: &RoomName) -> Result<Bus, Error> {
        let fail = |op: &'static str| {
            move |e: &dyn std::fmt::Display| Error::Bus {
                op,
                detail: e.to_string(),
            }
        };
        let client = async_nats::ConnectOptions::new()
            .name("sockit chat")
            // A server's own events come back only to be dropped.
            .no_echo()
            .connection_timeout(CONNECT_TIMEOUT)
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .connect(url)
            .await
            .map_err(|e| fail("connecting")(&e))?;
        let js = jetstream::new(client.clone());
        let kv = nick_bucket(&js, room)
            .await
            .map_err(|e| fail("opening the nick bucket (is JetStream on? nats-server -js)")(&e))?;
        let subject = room.subject();
        let subscriber = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| fail("subscribing")(&e))?;
        Ok(Bus {
            client,
            kv,
            subject,
            subscriber,
            me: ServerId::from_random(rand::random()),
        })
    }

    pub fn me(&self) -> &ServerId {
        &self.me
    }

    /// Starts the tasks that feed the room: events from the bus, and the
    /// beat. Both end when the room does.
    pub(crate) fn start(self, room: &mpsc::Sender<Command>) -> Link {
        tokio::spawn(listen(self.subscriber, room.clone()));
        tokio::spawn(beat(room.clone()));
        let mut link = Link {
            client: self.client,
            kv: self.kv,
            subject: self.subject,
            directory: Directory::new(self.me),
            seq: 0,
            outbox: Vec::new(),
            lines: Vec::new(),
            lines_bytes: 0,
            room: room.downgrade(),
            down: None,
        };
        // Ask the servers already here who they have.
        link.publish(Event::Hello);
        link
    }
}

/// The room's end of the bus: what it publishes, what it knows of the
/// other servers, and its nick claims.
#[derive(Debug)]
pub(crate) struct Link {
    client: async_nats::Client,
    kv: kv::Store,
    subject: String,
    pub directory: Directory,
    seq: u64,
    /// Events waiting for [`Link::send`], in the order the room made them.
    outbox: Vec<Event>,
    /// Lines for everyone not yet put into an event.
    lines: Vec<BusLine>,
    lines_bytes: usize,
    room: mpsc::WeakSender<Command>,
    /// Since when the bus has been unreachable or stuck, if it is.
    down: Option<std::time::Instant>,
}

/// Why a claim did not give the nick.
#[derive(Debug)]
pub(crate) enum ClaimError {
    Taken(Nick),
    Bus(String),
}

impl Link {
    pub fn me(&self) -> &ServerId {
        self.directory.me()
    }

    /// Queues an event, after the lines said before it.
    pub fn publish(&mut self, event: Event) {
        self.close_lines();
        self.outbox.push(event);
    }

    /// Queues a line for every member of every other server.
    pub fn line(&mut self, text: String, said: bool) {
        self.lines_bytes += text.len();
        self.lines.push(BusLine { text, said });
        if self.lines_bytes >= MAX_EVENT_LINES_BYTES || self.lines.len() >= sockit_proto::chat::bus::MAX_LINES {
            self.close_lines();
        }
    }

    fn close_lines(&mut self) {
        if !self.lines.is_empty() {
            self.lines_bytes = 0;
            let lines = std::mem::take(&mut self.lines);
            self.outbox.push(Event::Lines { lines });
        }
    }

    /// Publishes what is queued, in order. Waits while the connection's
    /// own queue is full: the room slows down rather than lose a line. But
    /// while the bus is unreachable, the events are dropped (their sequence
    /// numbers spent, so the others count them as lost): the client would
    /// hold them only until its queue filled, and then the room would
    /// stall, with its own members unable to talk among themselves.
    pub async fn send(&mut self) {
        self.close_lines();
        let events = std::mem::take(&mut self.outbox);
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if !connected || self.down.is_some_and(|since| since.elapsed() < PUBLISH_TIMEOUT) {
            if self.down.is_none() {
                tracing::warn!(
                    "the chat bus is unreachable: this server's members talk among themselves until it is back"
                );
                self.down = Some(std::time::Instant::now());
            }
            self.seq += events.len() as u64;
            return;
        }
        if self.down.take().is_some() {
            tracing::info!("the chat bus is back");
        }
        let mut events = events.into_iter();
        for event in events.by_ref() {
            self.seq += 1;
            let envelope = Envelope {
                from: self.me().clone(),
                seq: self.seq,
                event,
            };
            let bytes = envelope.encode();
            if bytes.len() > MAX_EVENT {
                tracing::warn!(bytes = bytes.len(), "bus event too big; not sent");
                continue;
            }
            let publish = self.client.publish(self.subject.clone(), Bytes::from(bytes));
            match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot publish to the chat bus"),
                Err(_) => {
                    tracing::warn!(
                        "the chat bus took no event for {}s; dropping events for a while",
                        PUBLISH_TIMEOUT.as_secs()
                    );
                    self.down = Some(std::time::Instant::now());
                    break;
                }
            }
        }
        self.seq += events.count() as u64;
    }

    /// Claims a fresh `guestN` for a joining member; the room hears back.
    pub fn claim_guest(&self, id: MemberId) {
        let kv = self.kv.clone();
        let owner = format!("{} {id}", self.me());
        self.claim_with(id, true, async move {
            for _ in 0..GUEST_TRIES {
                let n = kv.put(GUEST_COUNTER_KEY, Bytes::new()).await.map_err(bus_error)?;
                let Ok(nick) = Nick::parse(&format!("guest{n}")) else {
                    continue;
                };
                match create(&kv, &nick, &owner).await {
                    Err(ClaimError::Taken(_)) => continue,
                    other => return other.map(|claim| (nick, claim)),
                }
            }
            Err(ClaimError::Bus("no free guest nick".into()))
        });
    }

    /// Claims `nick` for a member renaming itself; the room hears back.
    pub fn claim(&self, id: MemberId, nick: Nick) {
        let kv = self.kv.clone();
        let owner = format!("{} {id}", self.me());
        self.claim_with(id, false, async move {
            let claim = create(&kv, &nick, &owner).await?;
            Ok((nick, claim))
        });
    }

    fn claim_with(
        &self,
        id: MemberId,
        join: bool,
        claim: impl Future<Output = Result<(Nick, u64), ClaimError>> + Send + 'static,
    ) {
        let Some(room) = self.room.upgrade() else { return };
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(CLAIM_TIMEOUT, claim).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ClaimError::Bus(format!("no answer in {}s", CLAIM_TIMEOUT.as_secs()))),
            };
            let _ = room.send(Command::Claimed(Claimed { id, join, outcome })).await;
        });
    }

    /// Releases a nick's claim, if it is still the one made: a later owner's
    /// claim has a later revision, and is left alone.
    pub fn release(&self, nick: &Nick, claim: u64) {
        tokio::spawn(release(self.kv.clone(), nick_key(nick), claim));
    }

    /// Releases the nicks of a server gone quiet, then gives its members
    /// back to the room to announce: once they are announced as left,
    /// their nicks are free. Every server that saw it go does this; the
    /// first release of each claim wins, the others find it done.
    pub fn release_gone(&self, members: Vec<BusMember>) {
        let Some(room) = self.room.upgrade() else { return };
        let kv = self.kv.clone();
        tokio::spawn(async move {
            for m in &members {
                release(kv.clone(), nick_key(&m.nick), m.claim).await;
            }
            let _ = room.send(Command::Gone(members)).await;
        });
    }
}

async fn release(kv: kv::Store, key: String, claim: u64) {
    let released = tokio::time::timeout(CLAIM_TIMEOUT, kv.delete_expect_revision(&key, Some(claim))).await;
    if let Ok(Err(e)) = released {
        tracing::debug!(error = %e, key, "nick claim not released (already released or taken again)");
    }
}

/// The room's nick bucket, made as a key-value bucket is (one revision a
/// key, deletes as markers), in memory: claims matter only while servers
/// run. The stream is made directly rather than through
/// `create_key_value`, whose account check cannot read the replies of
/// NATS 2.9 (Debian's).
async fn nick_bucket(js: &jetstream::Context, room: &RoomName) -> Result<kv::Store, async_nats::Error> {
    let bucket = room.bucket();
    js.get_or_create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(format!("nicks in sockit chat room {room}")),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: jetstream::stream::StorageType::Memory,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await?;
    Ok(js.get_key_value(bucket).await?)
}

async fn create(kv: &kv::Store, nick: &Nick, owner: &str) -> Result<u64, ClaimError> {
    match kv.create(nick_key(nick), Bytes::from(owner.to_string())).await {
        Ok(revision) => Ok(revision),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Err(ClaimError::Taken(nick.clone())),
        Err(e) => Err(bus_error(e)),
    }
}

fn bus_error(e: impl std::fmt::Display) -> ClaimError {
    ClaimError::Bus(e.to_string())
}

/// Feeds the room every event from the bus, in the order NATS delivers
/// them (each server's in the order it published).
async fn listen(mut subscriber: async_nats::Subscriber, room: mpsc::Sender<Command>) {
    while let Some(message) = subscriber.next().await {
        match Envelope::decode(&message.payload) {
            Ok(envelope) => {
                if room.send(Command::Remote(envelope)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignored a bad event on the chat bus"),
        }
    }
    tracing::warn!("the chat bus subscription ended");
}

async fn beat(room: mpsc::Sender<Command>) {
    let mut every = tokio::time::interval(BEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if room.send(Command::Tick).await.is_err() {
            return;
        }
    }
}
