//! The teaching lab: the course's echo server written once per concurrency
//! model, each in its own small module whose comments map it to the
//! course's Python. They are the course's designs on purpose, limits
//! included (an iterative server serves one client, select stops at
//! FD_SETSIZE), so a student can measure what the notes describe.
//!
//! Every model echoes what it reads, in order, and closes when the client
//! does. The blocking models run on threads of their own, never on the
//! async runtime; `async` is the tokio version.

pub mod asynchronous;
pub mod capture;
pub mod epoll;
pub mod iterative;
pub mod measure;
pub mod nonblocking;
pub mod poll;
pub mod pool;
pub mod process;
pub mod select;
pub mod sticky;
pub mod thread;

use std::io::{self, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

/// Bytes read at a time: the course's `recv(1024)`, times four.
pub const BUF: usize = 4096;

/// How long a model that writes on a non-blocking socket waits for a
/// client that does not read before it gives up on that client.
pub const WRITE_PATIENCE: Duration = Duration::from_secs(5);

/// The server designs of the course, in the order it teaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Iterative,
    Process,
    Thread,
    Pool,
    Nonblocking,
    Select,
    Poll,
    Epoll,
    EpollEt,
    Async,
}

impl Model {
    pub const ALL: [Model; 10] = [
        Model::Iterative,
        Model::Process,
        Model::Thread,
        Model::Pool,
        Model::Nonblocking,
        Model::Select,
        Model::Poll,
        Model::Epoll,
        Model::EpollEt,
        Model::Async,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::Iterative => "iterative",
            Model::Process => "process",
            Model::Thread => "thread",
            Model::Pool => "pool",
            Model::Nonblocking => "nonblocking",
            Model::Select => "select",
            Model::Poll => "poll",
            Model::Epoll => "epoll",
            Model::EpollEt => "epoll-et",
            Model::Async => "async",
        }
    }

    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The course's Python this model mirrors.
    pub fn course(self) -> &'static str {
        match self {
            Model::Iterative => "while True: conn = sock.accept(); while data := conn.recv(1024): conn.send(data)",
            Model::Process => "Process(target=dealWithClient, args=(newSocket, destAddr)).start()",
            Model::Thread => "Thread(target=dealWithClient, args=(newSocket, destAddr)).start()",
            Model::Pool => "socketserver.ThreadingTCPServer, with a fixed pool and a queue",
            Model::Nonblocking => "sock.setblocking(False); poll every conn in conn_que in a loop",
            Model::Select => "readable, _, _ = select.select(inputs, [], [])",
            Model::Poll => "select.poll(): register(fd, POLLIN), poll()",
            Model::Epoll => "select.epoll(): register(fd, EPOLLIN), poll()",
            Model::EpollEt => "epoll.register(fd, EPOLLIN | EPOLLET): read until EAGAIN",
            Model::Async => "gevent / asyncio coroutines: tokio tasks",
        }
    }

    /// Whether each connection costs a process or thread (a PID of the
    /// system's limited supply).
    pub fn task_per_connection(self) -> bool {
        matches!(self, Model::Process | Model::Thread)
    }

    /// Where the model stops scaling, as the course explains it.
    pub fn limit(self) -> &'static str {
        match self {
            Model::Iterative => "serves one client at a time; the rest wait in the backlog",
            Model::Process => "a process per connection: memory and a fork/exec per client",
            Model::Thread => "a thread per connection: a stack per client",
            Model::Pool => "at most POOL clients at once; the rest queue",
            Model::Nonblocking => "polls every connection on every pass, busy or not",
            Model::Select => "FD_SETSIZE: no descriptor at or above 1024; scans every descriptor",
            Model::Poll => "scans every descriptor on every call",
            Model::Epoll => "level-triggered: a wake-up per readable event",
            Model::EpollEt => "edge-triggered: must read until EAGAIN or a client stalls",
            Model::Async => "one task per connection on a few threads",
        }
    }
}

/// Echoes one connection with blocking reads and writes until the client
/// closes: the body of the course's `dealWithClient`.
pub fn echo_blocking(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(buf.get(..n).unwrap_or_default())?;
    }
}

/// One read from a ready non-blocking connection, echoed back; false when
/// the client has gone (or stopped reading).
pub fn echo_once(conn: &mut TcpStream, buf: &mut [u8]) -> bool {
    match conn.read(buf) {
        Ok(0) => false,
        Ok(n) => write_all_nonblocking(conn, buf.get(..n).unwrap_or_default()).is_ok(),
        Err(e) => matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted),
    }
}

/// Echoes once on each connection marked ready (`ready[i]` for
/// `conns[i]`) and drops the ones whose client left: the body of the
/// course's select and poll loops.
pub fn echo_ready(conns: &mut Vec<TcpStream>, ready: &[bool], buf: &mut [u8]) {
    let mut index = 0;
    conns.retain_mut(|conn| {
        let is_ready = ready.get(index).copied().unwrap_or(false);
        index += 1;
        !is_ready || echo_once(conn, buf)
    });
}

/// Accepts every connection waiting on a non-blocking listener, made
/// non-blocking too; `admit` may refuse one (it is closed).
pub fn accept_waiting(
    listener: &TcpListener,
    conns: &mut Vec<TcpStream>,
    admit: impl Fn(&TcpStream) -> bool,
) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, _)) if admit(&stream) => {
                stream.set_nonblocking(true)?;
                conns.push(stream);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || transient(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `data` to a non-blocking socket. When the client's
/// receive window is full this waits (up to [`WRITE_PATIENCE`]) for room,
/// as the course's blocking `send` would: the whole loop waits with it,
/// which is part of what these models teach.
pub fn write_all_nonblocking(stream: &mut TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(&*stream, WRITE_PATIENCE)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn wait_writable(fd: impl AsFd, patience: Duration) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
    let timeout = Timespec::try_from(patience).unwrap_or(Timespec { tv_sec: 5, tv_nsec: 0 });
    match rustix::event::poll(&mut fds, Some(&timeout))? {
        0 => Err(io::Error::new(io::ErrorKind::TimedOut, "the client does not read")),
        _ => Ok(()),
    }
}

/// Accept errors that concern one connection (or a passing shortage), not
/// the listener: the loop goes on. Out of descriptors, it pauses first, so
/// it does not spin while every slot is taken.
pub fn transient(e: &io::Error) -> bool {
    use rustix::io::Errno;
    let Some(errno) = Errno::from_io_error(e) else {
        return e.kind() == io::ErrorKind::WouldBlock;
    };
    if [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&errno) {
        std::thread::sleep(Duration::from_millis(50));
        return true;
    }
    [Errno::CONNABORTED, Errno::INTR, Errno::PROTO, Errno::PERM, Errno::AGAIN].contains(&errno)
}

/// Runs a blocking model on the calling thread until the process ends.
/// `Process` needs the path of a program that echoes its stdin (see
/// [`process`]); `Async` is not blocking (see [`asynchronous::serve`]).
pub fn serve_blocking(model: Model, listener: TcpListener, child: &process::Child) -> io::Result<()> {
    match model {
        Model::Iterative => iterative::serve(listener),
        Model::Process => process::serve(listener, child),
        Model::Thread => thread::serve(listener),
        Model::Pool => pool::serve(listener, pool::DEFAULT_WORKERS),
        Model::Nonblocking => nonblocking::serve(listener),
        Model::Select => select::serve(listener),
        Model::Poll => poll::serve(listener),
        Model::Epoll => epoll::serve(listener, false),
        Model::EpollEt => epoll::serve(listener, true),
        Model::Async => Err(io::Error::new(io::ErrorKind::Unsupported, "async runs on the runtime")),
    }
}
