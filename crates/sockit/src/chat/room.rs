//! The room's owner task. Members join with a queue to write to; lines and
//! commands arrive on one channel, in order, and each is handled whole:
//! so every member sees every sender's lines in the order they were sent.
//!
//! Lines for everyone are batched: the room handles whatever commands are
//! waiting (up to `MAX_BATCH`), then sends each member one chunk holding
//! all of the batch's lines meant for it. Under load that is one queue
//! push and one socket write per member per batch, not per line, the way a
//! raw relay forwards a whole read at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use sockit_proto::chat::bus::{BusLine, Envelope, Event, Member as BusMember, gone_notices};
use sockit_proto::chat::{HELP, Input, Nick, Output};

use super::bus::{Bus, ClaimError, Link};
use super::queue::{Full, QueueTx};

/// Bytes queued for a member before it counts as fallen behind and is
/// disconnected. Chunks are shared between members, so this bounds what a
/// slow member holds on to, not a copy per member. It must absorb bursts:
/// 1,000 members joining send every member 1,000 notices (25 KiB), and 10
/// members talking at full speed outrun any one member's writer for a
/// while on a busy machine (1 MiB is some 30,000 short lines).
pub const DEFAULT_MEMBER_BACKLOG: usize = 1 << 20;

/// Commands handled in one batch before the room sends and yields, so
/// members' writers drain their queues during a burst, not after it.
const MAX_BATCH: usize = 256;

/// A batch is sent early once its lines reach this size, bounding a chunk.
const MAX_CHUNK: usize = 64 * 1024;

/// Commands queued for the room: members wait (backpressure) beyond this.
const ROOM_QUEUE: usize = 4096;

/// Lines of conversation the room keeps to show whoever joins: enough to
/// catch up on the topic, and a bound on what a join costs (100 lines of
/// at most 5 KiB).
pub const HISTORY: usize = 100;

pub type MemberId = u64;

#[derive(Debug)]
pub(crate) enum Command {
    Join {
        peer: SocketAddr,
        queue: QueueTx,
        kick: CancellationToken,
        reply: oneshot::Sender<MemberId>,
    },
    Input {
        id: MemberId,
        input: Input,
    },
    /// Sent back to the member only (an error about its own line).
    Tell {
        id: MemberId,
        line: String,
    },
    Leave {
        id: MemberId,
    },
    /// An event from another server of the room (with a bus).
    Remote(Envelope),
    /// Time to beat and to look for servers gone quiet (with a bus).
    Tick,
    /// A nick's claim on the bus came back.
    Claimed(Claimed),
    /// Members of a server gone quiet, their nicks released: to announce.
    Gone(Vec<BusMember>),
}

/// The outcome of claiming a nick on the bus, for a join or a rename.
#[derive(Debug)]
pub(crate) struct Claimed {
    pub id: MemberId,
    pub join: bool,
    pub outcome: Result<(Nick, u64), ClaimError>,
}

/// A member waiting for its guest nick's claim before it joins.
#[derive(Debug)]
struct Joining {
    peer: SocketAddr,
    queue: QueueTx,
    kick: CancellationToken,
    reply: oneshot::Sender<MemberId>,
}

/// A handle to the room; cheap to clone.
#[derive(Debug, Clone)]
pub struct Room {
    tx: mpsc::Sender<Command>,
    present: watch::Receiver<Vec<String>>,
}

#[derive(Debug)]
struct Member {
    nick: Nick,
    /// The revision of the nick's claim on the bus (0 without one).
    claim: u64,
    queue: QueueTx,
    kick: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    members: HashMap<MemberId, Member>,
    by_nick: HashMap<String, MemberId>,
    next_id: MemberId,
    /// Lines for everyone (but their sender) not sent yet, in order.
    batch: Vec<(Option<MemberId>, String)>,
    batch_bytes: usize,
    /// The last [`HISTORY`] lines said or acted, each with its newline.
    history: VecDeque<String>,
    /// Who is here, sorted: published when it changes.
    present: Option<watch::Sender<Vec<String>>>,
    /// The other servers sharing the room, when it is on a bus.
    link: Option<Link>,
    joining: HashMap<MemberId, Joining>,
}

impl Room {
    /// Starts the room's owner task; it ends when every handle is gone.
    pub fn spawn() -> Room {
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let (present_tx, present) = watch::channel(Vec::new());
        tokio::spawn(run(rx, present_tx, None));
        Room { tx, present }
    }

    /// Starts a room shared over a bus with every other server on the
    /// same bus and room name. It lives as long as the process.
    pub fn spawn_on(bus: Bus) -> Room {
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let (present_tx, present) = watch::channel(Vec::new());
        let link = bus.start(&tx);
        tokio::spawn(run(rx, present_tx, Some(link)));
        Room { tx, present }
    }

    /// Who is in the room, as it changes (joins, leaves, new nicks).
    pub fn present(&self) -> watch::Receiver<Vec<String>> {
        self.present.clone()
    }

    pub(crate) async fn send(&self, command: Command) -> bool {
        self.tx.send(command).await.is_ok()
    }
}

async fn run(mut rx: mpsc::Receiver<Command>, present: watch::Sender<Vec<String>>, link: Option<Link>) {
    let mut state = State {
        present: Some(present),
        link,
        ..State::default()
    };
    while let Some(first) = rx.recv().await {
        state.handle(first);
        let mut handled = 1;
        while handled < MAX_BATCH {
            let Ok(command) = rx.try_recv() else { break };
            state.handle(command);
            handled += 1;
        }
        state.flush();
        if let Some(link) = &mut state.link {
            link.send().await;
        }
        state.publish_presence();
        if handled > 1 {
            tokio::task::yield_now().await;
        }
    }
}

impl State {
    fn handle(&mut self, command: Command) {
        let state = self;
        match command {
            Command::Join {
                peer,
                queue,
                kick,
                reply,
            } => {
                state.next_id += 1;
                let id = state.next_id;
                let joining = Joining {
                    peer,
                    queue,
                    kick,
                    reply,
                };
                match &state.link {
                    // The guest nick must be free on every server: the bus
                    // says which, and the join goes on when it does.
                    Some(link) => {
                        link.claim_guest(id);
                        state.joining.insert(id, joining);
                    }
                    None => {
                        let nick = state.free_guest_nick(id);
                        state.admit(id, nick, 0, joining);
                    }
                }
            }
            Command::Input { id, input } => state.input(id, input),
            Command::Tell { id, line } => state.tell(id, &Output::Error(&line)),
            Command::Leave { id } => {
                if let Some(member) = state.remove(id) {
                    state.broadcast(None, &Output::Notice(&format!("{} left", member.nick)));
                }
            }
            Command::Remote(envelope) => state.remote(envelope),
            Command::Tick => state.tick(),
            Command::Claimed(claimed) => state.claimed(claimed),
            Command::Gone(members) => {
                let nicks: Vec<Nick> = members.into_iter().map(|m| m.nick).collect();
                for notice in gone_notices(&nicks) {
                    state.deliver(format!("{}\n", Output::Notice(&notice)), false);
                }
            }
        }
    }

    /// A member in, under its nick: welcomed, shown the history, announced.
    fn admit(&mut self, id: MemberId, nick: Nick, claim: u64, joining: Joining) {
        let Joining {
            peer,
            queue,
            kick,
            reply,
        } = joining;
        // Lines batched before this join go to those already here: a
        // newcomer's first line is its welcome.
        self.flush();
        self.by_nick.insert(nick.key(), id);
        self.members.insert(
            id,
            Member {
                nick: nick.clone(),
                claim,
                queue,
                kick,
            },
        );
        let _ = reply.send(id);
        tracing::debug!(%peer, %nick, "joined the room");
        if let Some(link) = &mut self.link {
            link.publish(Event::Joined(BusMember {
                member: id,
                nick: nick.clone(),
                claim,
            }));
        }
        let count = self.count();
        self.tell(
            id,
            &Output::Notice(&format!(
                "welcome, {nick}: {count} here; /nick NAME to rename, /help for more"
            )),
        );
        if !self.history.is_empty() {
            let earlier = format!("the last {} lines said here:", self.history.len());
            self.tell(id, &Output::Notice(&earlier));
            let lines: String = self.history.iter().map(String::as_str).collect();
            self.tell_raw(id, Bytes::from(lines));
        }
        self.broadcast(Some(id), &Output::Notice(&format!("{nick} joined")));
    }

    /// Members here and on every other server.
    fn count(&self) -> usize {
        self.members.len() + self.link.as_ref().map_or(0, |l| l.directory.members().count())
    }

    /// Every nick in the room, sorted.
    fn nicks(&self) -> Vec<String> {
        let mut nicks: Vec<String> = self.members.values().map(|m| m.nick.to_string()).collect();
        if let Some(link) = &self.link {
            nicks.extend(link.directory.members().map(|m| m.nick.to_string()));
        }
        nicks.sort_unstable();
        nicks
    }

    /// Whether someone other than `id` holds `nick`, here or elsewhere.
    fn taken(&self, nick: &Nick, id: MemberId) -> bool {
        self.by_nick.get(&nick.key()).is_some_and(|&owner| owner != id)
            || self.link.as_ref().is_some_and(|l| l.directory.find(nick).is_some())
    }

    /// An event from another server.
    fn remote(&mut self, envelope: Envelope) {
        let Some(link) = &mut self.link else { return };
        let Some(received) = link.directory.receive(std::time::Instant::now(), envelope) else {
            return;
        };
        if received.first && !matches!(received.event, Event::Roster { .. } | Event::Hello) {
            // A server heard of only now (or again after it went quiet):
            // ask for its members.
            link.publish(Event::Hello);
        }
        match received.event {
            Event::Hello => {
                let members = self.roster();
                if let Some(link) = &mut self.link {
                    link.publish(Event::Roster { members });
                }
            }
            Event::Lines { lines } => {
                for BusLine { text, said } in lines {
                    self.deliver(format!("{text}\n"), said);
                }
            }
            Event::Private { server, member, line } if &server == link.me() => {
                self.tell_raw(member, Bytes::from(format!("{line}\n")));
            }
            Event::Private { .. }
            | Event::Roster { .. }
            | Event::Beat
            | Event::Joined(_)
            | Event::Renamed(_)
            | Event::Left { .. } => {}
        }
    }

    /// The beat: this server is alive; servers gone quiet are gone, their
    /// nicks released, then their members announced as left here.
    fn tick(&mut self) {
        let Some(link) = &mut self.link else { return };
        link.publish(Event::Beat);
        for (server, members) in link.directory.expire(std::time::Instant::now()) {
            tracing::warn!(%server, members = members.len(), "a chat server went quiet; its members are gone");
            link.release_gone(members);
        }
    }

    fn claimed(&mut self, Claimed { id, join, outcome }: Claimed) {
        if join {
            let Some(joining) = self.joining.remove(&id) else {
                return;
            };
            match outcome {
                Ok((nick, claim)) => self.admit(id, nick, claim, joining),
                Err(e) => {
                    let why = match e {
                        ClaimError::Taken(_) => "no free guest nick".to_string(),
                        ClaimError::Bus(why) => why,
                    };
                    tracing::warn!(error = %why, "a join failed: the chat bus did not give a nick");
                    // Dropping the queue after this line ends the member.
                    let line = Output::Error(&format!("cannot join: the chat bus failed ({why})")).to_string();
                    let _ = joining.queue.push(Bytes::from(format!("{line}\n")));
                    let _ = joining.reply.send(id);
                }
            }
            return;
        }
        match outcome {
            Ok((new, claim)) => {
                let Some(old) = self.members.get(&id).map(|m| (m.nick.clone(), m.claim)) else {
                    // Left while the claim was made: let it go again.
                    if let Some(link) = &self.link {
                        link.release(&new, claim);
                    }
                    return;
                };
                if let Some(link) = &self.link {
                    link.release(&old.0, old.1);
                }
                self.rename(id, &old.0, new, claim);
            }
            Err(ClaimError::Taken(nick)) => self.tell(id, &Output::Error(&format!("{nick} is taken"))),
            Err(ClaimError::Bus(why)) => {
                self.tell(
                    id,
                    &Output::Error(&format!("cannot rename: the chat bus failed ({why})")),
                );
            }
        }
    }

    fn rename(&mut self, id: MemberId, old: &Nick, new: Nick, claim: u64) {
        self.by_nick.remove(&old.key());
        self.by_nick.insert(new.key(), id);
        if let Some(m) = self.members.get_mut(&id) {
            m.nick = new.clone();
            m.claim = claim;
        }
        if let Some(link) = &mut self.link {
            link.publish(Event::Renamed(BusMember {
                member: id,
                nick: new.clone(),
                claim,
            }));
        }
        self.broadcast(None, &Output::Notice(&format!("{old} is now known as {new}")));
    }

    /// This server's members, as the bus describes them.
    fn roster(&self) -> Vec<BusMember> {
        self.members
            .iter()
            .map(|(&id, m)| BusMember {
                member: id,
                nick: m.nick.clone(),
                claim: m.claim,
            })
            .collect()
    }

    fn input(&mut self, id: MemberId, input: Input) {
        let Some(nick) = self.members.get(&id).map(|m| m.nick.clone()) else {
            return;
        };
        match input {
            Input::Nothing => {}
            Input::Say(text) => self.say(
                id,
                &Output::Said {
                    from: &nick,
                    text: &text,
                },
            ),
            Input::Me(text) => self.say(
                id,
                &Output::Action {
                    from: &nick,
                    text: &text,
                },
            ),
            Input::Nick(wanted) => match Nick::parse(&wanted) {
                Err(e) => self.tell(id, &Output::Error(&e.to_string())),
                Ok(new) if new == nick => {}
                Ok(new) if self.taken(&new, id) => self.tell(id, &Output::Error(&format!("{new} is taken"))),
                // Only a case change: the claim (case-blind) stays.
                Ok(new) if new.key() == nick.key() => {
                    let claim = self.members.get(&id).map_or(0, |m| m.claim);
                    self.rename(id, &nick, new, claim);
                }
                // Free here as far as this server knows; the bus decides.
                Ok(new) => match &self.link {
                    Some(link) => link.claim(id, new),
                    None => self.rename(id, &nick, new, 0),
                },
            },
            Input::Who => {
                let nicks = self.nicks();
                let line = format!("{} here: {}", nicks.len(), nicks.join(", "));
                self.tell(id, &Output::Notice(&line));
            }
            Input::Msg { to, text } => {
                let wanted = Nick::parse(&to).ok();
                let target = wanted.as_ref().and_then(|n| self.by_nick.get(&n.key()).copied());
                let elsewhere = wanted.as_ref().and_then(|n| {
                    let link = self.link.as_ref()?;
                    let (server, m) = link.directory.find(n)?;
                    Some((server.clone(), m.member, m.nick.clone()))
                });
                if let (None, Some((server, member, target_nick))) = (target, elsewhere) {
                    let line = Output::Private {
                        from: &nick,
                        text: &text,
                    }
                    .to_string();
                    if let Some(link) = &mut self.link {
                        link.publish(Event::Private { server, member, line });
                    }
                    self.tell(
                        id,
                        &Output::PrivateSent {
                            to: &target_nick,
                            text: &text,
                        },
                    );
                    return;
                }
                match target.and_then(|t| self.members.get(&t).map(|m| (t, m.nick.clone()))) {
                    Some((target, target_nick)) => {
                        self.tell(
                            target,
                            &Output::Private {
                                from: &nick,
                                text: &text,
                            },
                        );
                        self.tell(
                            id,
                            &Output::PrivateSent {
                                to: &target_nick,
                                text: &text,
                            },
                        );
                    }
                    None => self.tell(id, &Output::Error(&format!("no one here is called {to}"))),
                }
            }
            Input::Quit => {
                // Dropping its queue lets its writer finish what is queued,
                // say bye and close.
                if let Some(member) = self.remove(id) {
                    self.broadcast(None, &Output::Notice(&format!("{} left", member.nick)));
                }
            }
            Input::Help => {
                for line in HELP {
                    self.tell(id, &Output::Notice(line));
                }
            }
            Input::Bad(why) => self.tell(id, &Output::Error(&why)),
        }
    }

    /// A line of conversation: to every other member, and into the history.
    fn say(&mut self, from: MemberId, output: &Output<'_>) {
        self.remember(format!("{output}\n"));
        self.share(Some(from), output, true);
    }

    fn remember(&mut self, line: String) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(line);
    }

    /// A line for everyone from another server: to every member here.
    fn deliver(&mut self, line: String, said: bool) {
        if said {
            self.remember(line.clone());
        }
        self.batch_line(None, line);
    }

    /// Publishes who is here, if that changed.
    fn publish_presence(&self) {
        let Some(present) = &self.present else { return };
        let nicks = self.nicks();
        present.send_if_modified(|now| {
            let changed = *now != nicks;
            if changed {
                *now = nicks;
            }
            changed
        });
    }

    /// Adds a line for every member but `except` to the batch.
    fn broadcast(&mut self, except: Option<MemberId>, output: &Output<'_>) {
        self.share(except, output, false);
    }

    /// A line for every member but `except`, here and on every other
    /// server; `said` lines go into each server's history.
    fn share(&mut self, except: Option<MemberId>, output: &Output<'_>, said: bool) {
        let text = output.to_string();
        let line = format!("{text}\n");
        if let Some(link) = &mut self.link {
            link.line(text, said);
        }
        self.batch_line(except, line);
    }

    fn batch_line(&mut self, except: Option<MemberId>, line: String) {
        self.batch_bytes += line.len();
        self.batch.push((except, line));
        if self.batch_bytes >= MAX_CHUNK {
            self.flush();
        }
    }

    /// Sends the batch: one shared chunk for members who sent none of its
    /// lines, a chunk of their own for those who did. Members whose queue
    /// is full are dropped, and the others hear that they left.
    fn flush(&mut self) {
        while !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.batch_bytes = 0;
            let senders: HashSet<MemberId> = batch.iter().filter_map(|(except, _)| *except).collect();
            let shared = lines_for(&batch, None);
            let mut slow = Vec::new();
            for (&id, member) in &self.members {
                let chunk = if senders.contains(&id) {
                    lines_for(&batch, Some(id))
                } else {
                    shared.clone()
                };
                if !chunk.is_empty() && member.queue.push(chunk) == Err(Full) {
                    slow.push(id);
                }
            }
            for id in slow {
                self.drop_slow(id);
            }
        }
    }

    /// Sends a line to one member, after everything before it.
    fn tell(&mut self, id: MemberId, output: &Output<'_>) {
        self.flush();
        let full = self
            .members
            .get(&id)
            .is_some_and(|m| m.queue.push(Bytes::from(format!("{output}\n"))) == Err(Full));
        if full {
            self.drop_slow(id);
            self.flush();
        }
    }

    /// Sends lines already formatted to one member, after everything before.
    fn tell_raw(&mut self, id: MemberId, lines: Bytes) {
        self.flush();
        let full = self.members.get(&id).is_some_and(|m| m.queue.push(lines) == Err(Full));
        if full {
            self.drop_slow(id);
            self.flush();
        }
    }

    fn drop_slow(&mut self, id: MemberId) {
        if let Some(member) = self.remove(id) {
            // The member's task tells it why, past its full queue.
            member.kick.cancel();
            tracing::info!(nick = %member.nick, "dropped: fell too far behind");
            self.broadcast(
                None,
                &Output::Notice(&format!("{} left (fell too far behind)", member.nick)),
            );
        }
    }

    /// A member out: its nick free again here and, on a bus, everywhere.
    fn remove(&mut self, id: MemberId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        self.by_nick.remove(&member.nick.key());
        if let Some(link) = &mut self.link {
            link.release(&member.nick, member.claim);
            link.publish(Event::Left { member: id });
        }
        Some(member)
    }

    /// `guest1`, `guest2`, ... skipping any a member renamed themselves to.
    fn free_guest_nick(&self, id: MemberId) -> Nick {
        let mut n = id;
        loop {
            if let Ok(nick) = Nick::parse(&format!("guest{n}")) {
                if !self.by_nick.contains_key(&nick.key()) {
                    return nick;
                }
            }
            n += 1;
        }
    }
}

/// The batch's lines for one member: all of them, or all but `member`'s own.
fn lines_for(batch: &[(Option<MemberId>, String)], member: Option<MemberId>) -> Bytes {
    let mine = |except: &Option<MemberId>| member.is_some() && *except == member;
    let len = batch.iter().filter(|(e, _)| !mine(e)).map(|(_, l)| l.len()).sum();
    let mut out = BytesMut::with_capacity(len);
    for (except, line) in batch {
        if !mine(except) {
            out.extend_from_slice(line.as_bytes());
        }
    }
    out.freeze()
}
