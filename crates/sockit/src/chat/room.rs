//! The room's owner task. Members join with a queue to write to; lines and
//! commands arrive on one channel, in order, and each is handled whole:
//! so every member sees every sender's lines in the order they were sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use sockit_proto::chat::{HELP, Input, Nick, Output};

/// Lines queued per member before it counts as fallen behind and is
/// disconnected. Lines are shared between all queues, so a slot costs a
/// pointer, not a line: 8192 slots are 128 KiB per member at most. It must
/// absorb bursts: 1,000 members joining send every member 1,000 notices,
/// and 10 members talking at full speed outrun any one member's writer
/// for a while on a busy machine.
pub const DEFAULT_MEMBER_QUEUE: usize = 8192;

/// Commands handled before the room yields, so members' writers get to
/// drain their queues during a burst instead of after it.
const YIELD_EVERY: u32 = 32;

/// Commands queued for the room: members wait (backpressure) beyond this.
const ROOM_QUEUE: usize = 4096;

pub type MemberId = u64;

/// A line as members receive it (newline included), shared by all queues.
pub type Line = Arc<str>;

#[derive(Debug)]
pub(crate) enum Command {
    Join {
        peer: SocketAddr,
        queue: mpsc::Sender<Line>,
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
}

#[derive(Debug)]
struct Member {
    nick: Nick,
    queue: mpsc::Sender<Line>,
    kick: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    members: HashMap<MemberId, Member>,
    by_nick: HashMap<String, MemberId>,
    next_id: MemberId,
}

impl Room {
    /// Starts the room's owner task; it ends when every handle is gone.
    pub fn spawn() -> Room {
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        tokio::spawn(run(rx));
        Room { tx }
    }

    pub(crate) async fn send(&self, command: Command) -> bool {
        self.tx.send(command).await.is_ok()
    }
}

async fn run(mut rx: mpsc::Receiver<Command>) {
    let mut state = State::default();
    let mut handled = 0u32;
    while let Some(command) = rx.recv().await {
        handled = handled.wrapping_add(1);
        if handled % YIELD_EVERY == 0 {
            tokio::task::yield_now().await;
        }
        match command {
            Command::Join {
                peer,
                queue,
                kick,
                reply,
            } => {
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
}

impl State {
    fn input(&mut self, id: MemberId, input: Input) {
        let Some(nick) = self.members.get(&id).map(|m| m.nick.clone()) else {
            return;
        };
        match input {
            Input::Nothing => {}
            Input::Say(text) => self.broadcast(
                Some(id),
                &Output::Said {
                    from: &nick,
                    text: &text,
                },
            ),
            Input::Me(text) => self.broadcast(
                Some(id),
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

    /// Sends a line to every member but `except`; members whose queue is
    /// full are dropped, and the others hear that they left.
    fn broadcast(&mut self, except: Option<MemberId>, output: &Output<'_>) {
        let line: Line = Arc::from(format!("{output}\n"));
        let mut slow = Vec::new();
        for (&id, member) in &self.members {
            if Some(id) == except {
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = member.queue.try_send(Arc::clone(&line)) {
                slow.push(id);
            }
        }
        for id in slow {
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
    }

    fn tell(&mut self, id: MemberId, output: &Output<'_>) {
        let full = match self.members.get(&id) {
            Some(member) => matches!(
                member.queue.try_send(Arc::from(format!("{output}\n"))),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            None => false,
        };
        if full {
            if let Some(member) = self.remove(id) {
                member.kick.cancel();
                self.broadcast(
                    None,
                    &Output::Notice(&format!("{} left (fell too far behind)", member.nick)),
                );
            }
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
