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

use sockit_proto::chat::{HELP, Input, Nick, Output};

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
}

impl Room {
    /// Starts the room's owner task; it ends when every handle is gone.
    pub fn spawn() -> Room {
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let (present_tx, present) = watch::channel(Vec::new());
        tokio::spawn(run(rx, present_tx));
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

async fn run(mut rx: mpsc::Receiver<Command>, present: watch::Sender<Vec<String>>) {
    let mut state = State {
        present: Some(present),
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
                // Lines batched before this join go to those already here:
                // a newcomer's first line is its welcome.
                state.flush();
                state.next_id += 1;
                let id = state.next_id;
                let nick = state.free_guest_nick(id);
                state.by_nick.insert(nick.key(), id);
                state.members.insert(
                    id,
                    Member {
                        nick: nick.clone(),
                        queue,
                        kick,
                    },
                );
                let _ = reply.send(id);
                tracing::debug!(%peer, %nick, "joined the room");
                let count = state.members.len();
                state.tell(
                    id,
                    &Output::Notice(&format!(
                        "welcome, {nick}: {count} here; /nick NAME to rename, /help for more"
                    )),
                );
                if !state.history.is_empty() {
                    let earlier = format!("the last {} lines said here:", state.history.len());
                    state.tell(id, &Output::Notice(&earlier));
                    let lines: String = state.history.iter().map(String::as_str).collect();
                    state.tell_raw(id, Bytes::from(lines));
                }
                state.broadcast(Some(id), &Output::Notice(&format!("{nick} joined")));
            }
            Command::Input { id, input } => state.input(id, input),
            Command::Tell { id, line } => state.tell(id, &Output::Error(&line)),
            Command::Leave { id } => {
                if let Some(member) = state.remove(id) {
                    state.broadcast(None, &Output::Notice(&format!("{} left", member.nick)));
                }
            }
        }
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
                Ok(new) => {
                    let key = new.key();
                    if self.by_nick.get(&key).is_some_and(|&owner| owner != id) {
                        self.tell(id, &Output::Error(&format!("{new} is taken")));
                        return;
                    }
                    self.by_nick.remove(&nick.key());
                    self.by_nick.insert(key, id);
                    if let Some(m) = self.members.get_mut(&id) {
                        m.nick = new.clone();
                    }
                    self.broadcast(None, &Output::Notice(&format!("{nick} is now known as {new}")));
                }
            },
            Input::Who => {
                let mut nicks: Vec<&str> = self.members.values().map(|m| m.nick.as_str()).collect();
                nicks.sort_unstable();
                let line = format!("{} here: {}", nicks.len(), nicks.join(", "));
                self.tell(id, &Output::Notice(&line));
            }
            Input::Msg { to, text } => {
                let target = Nick::parse(&to).ok().and_then(|n| self.by_nick.get(&n.key()).copied());
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
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(format!("{output}\n"));
        self.broadcast(Some(from), output);
    }

    /// Publishes who is here, if that changed.
    fn publish_presence(&self) {
        let Some(present) = &self.present else { return };
        let mut nicks: Vec<String> = self.members.values().map(|m| m.nick.to_string()).collect();
        nicks.sort_unstable();
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
        let line = format!("{output}\n");
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

    fn remove(&mut self, id: MemberId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        self.by_nick.remove(&member.nick.key());
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
