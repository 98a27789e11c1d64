//! How the agent meets its callers: one thread, which never waits on any of them.
//!
//! Every socket is non-blocking and watched with `poll(2)`:
//! - a connection is checked as it is accepted (its kernel credentials, before anything is read
//!   from it): a caller the agent does not serve, or one over its share of connections, is
//!   answered at once and closed, and only counted ([`crate::tally`]);
//! - a request frame is gathered as it arrives, with one deadline for the whole frame, so half a
//!   frame holds nothing but its slot;
//! - `status` and `lock` are answered at once, and so is a `get` while a key is held; a `get`
//!   with no key held asks the re-opener (a thread of its own) and waits, with a deadline, while
//!   everything else goes on. Nothing here ever waits behind a re-open.

#![allow(unsafe_code)] // poll(2) and the wake-up pipe; SAFETY notes at the calls

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::callers::{Caller, NotAllowed};
use crate::protocol::{self, FrameProgress, Op, Refusal, RequestFrame, Response, State};
use crate::server::Agent;

/// Most connections open at once (reading their request, or waiting for a re-open).
pub const MAX_OPEN: usize = 256;
/// Most of them from one uid: a caller holding half-sent frames takes only its own share.
pub const MAX_PER_UID: usize = 16;
/// How long a connection has to send its whole request frame.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(2);
/// How long a `get` waits for a re-open before it is answered `busy`.
pub const REOPEN_WAIT: Duration = Duration::from_secs(30);
/// Most connections accepted in one turn of the loop: a flood that refills the queue as fast as
/// it is emptied must not keep the loop from the connections it has.
const ACCEPTS_PER_TURN: usize = 32;

/// A connection being served.
struct Connection {
    stream: UnixStream,
    caller: Caller,
    /// Its executable, read while it was surely the caller (for the audit line).
    exe: Option<std::path::PathBuf>,
    deadline: Instant,
    stage: Stage,
}

/// Where a connection is.
enum Stage {
    /// Its request frame is arriving.
    Reading(RequestFrame),
    /// A `get` waiting for the re-open of `round`, asked when `wipes` wipes had been asked for.
    AwaitingKey { round: u64, wipes: u64 },
}

/// What became of a connection after one look at it.
enum Next {
    Keep(Connection),
    Done,
}

/// Serves `listener` until the process ends; `wake` says a re-open finished.
pub(crate) fn serve(
    agent: &Arc<Agent>,
    listener: &UnixListener,
    wake: &OwnedFd,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut open: Vec<Connection> = Vec::new();
    let mut relook = false;
    loop {
        let now = Instant::now();
        let next_deadline = open
            .iter()
            .map(|c| c.deadline)
            .chain(std::iter::once(agent.tally_due()))
            .min()
            .unwrap_or(now);
        let mut watched = vec![
            poll_for(listener.as_raw_fd(), libc::POLLIN),
            poll_for(wake.as_raw_fd(), libc::POLLIN),
        ];
        watched.extend(open.iter().map(|c| {
            let events = if matches!(c.stage, Stage::Reading(_)) { libc::POLLIN } else { 0 };
            poll_for(c.stream.as_raw_fd(), events)
        }));
        let timeout =
            if relook { Duration::ZERO } else { next_deadline.saturating_duration_since(now) };
        wait_for_events(&mut watched, timeout)?;
        let now = Instant::now();
        let woken = watched[1].revents != 0;
        if woken {
            drain(wake);
        }
        let finished = woken.then(|| agent.reopened());
        let ready: Vec<libc::c_short> = watched[2..].iter().map(|w| w.revents).collect();
        let wipes = agent.wipes();
        open = open
            .into_iter()
            .zip(ready)
            .filter_map(|(connection, revents)| {
                match look_at(agent, connection, revents, finished.as_ref(), now) {
                    Next::Keep(connection) => Some(connection),
                    Next::Done => None,
                }
            })
            .collect();
        if watched[0].revents != 0 {
            accept_all(agent, listener, &mut open);
        }
        let waiting = open.iter().filter(|c| matches!(c.stage, Stage::AwaitingKey { .. })).count();
        agent.waiting.store(waiting as u64, Ordering::SeqCst);
        agent.audit_refusals(false);
        // A `lock` answered in this turn refuses the `get`s waiting: those looked at before it
        // are looked at again at once rather than at their deadline.
        relook = agent.wipes() != wipes;
    }
}

/// One look at a connection: its new bytes, a re-open that finished, its deadline.
fn look_at(
    agent: &Agent,
    mut connection: Connection,
    revents: libc::c_short,
    finished: Option<&(u64, Option<String>)>,
    now: Instant,
) -> Next {
    match &mut connection.stage {
        Stage::Reading(frame) if revents != 0 => match read_more(&mut connection.stream, frame) {
            Ok(FrameProgress::Partial) => {}
            Ok(FrameProgress::Complete(body)) => return answer(agent, connection, &body, now),
            Ok(FrameProgress::TooLong) => {
                let why = "a request frame is at most 1 024 bytes";
                return refuse(
                    agent,
                    connection,
                    None,
                    Refusal::BadRequest,
                    why,
                    "request too long",
                );
            }
            Err(e) => {
                let why = format!("no request: {e}");
                agent.refused(&connection.caller, None, "no request (closed)", &why);
                return Next::Done;
            }
        },
        Stage::AwaitingKey { wipes, .. } if *wipes != agent.wipes() => {
            let why = "locked: a lock came while the get waited for the keybox to be opened";
            return refuse(agent, connection, Some(Op::Get), Refusal::Locked, why, "locked");
        }
        Stage::AwaitingKey { round, .. } => {
            if let Some((done, failure)) = finished
                && *done >= *round
            {
                return match agent.send_held(&mut connection.stream) {
                    Some(sent) => taken(agent, &connection, Op::Get, sent),
                    None => {
                        let failure = failure.as_deref().unwrap_or("the key was wiped");
                        let why = format!("locked: {failure}");
                        refuse(agent, connection, Some(Op::Get), Refusal::Locked, &why, "locked")
                    }
                };
            }
            // Watched for nothing, but poll reports a hang-up regardless: a caller that left
            // is dropped now, or every turn would wake for it until its deadline.
            if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                let why = "the caller left before the keybox was opened";
                agent.refused(&connection.caller, Some(Op::Get), "left while waiting", why);
                return Next::Done;
            }
        }
        Stage::Reading(_) => {}
    }
    if now < connection.deadline {
        return Next::Keep(connection);
    }
    match connection.stage {
        Stage::Reading(_) => {
            let why = format!("no whole request within {} s", FRAME_DEADLINE.as_secs());
            agent.refused(&connection.caller, None, "no request in time", &why);
            Next::Done
        }
        Stage::AwaitingKey { .. } => {
            let why = "busy: the keybox is still being opened; try again";
            refuse(agent, connection, Some(Op::Get), Refusal::Busy, why, "busy: re-open too slow")
        }
    }
}

/// A whole request: answered now, or (a `get` with no key held) left waiting for a re-open.
fn answer(agent: &Agent, mut connection: Connection, body: &[u8], now: Instant) -> Next {
    let op = match protocol::parse_request(body) {
        Ok(request) => request.op,
        Err(e) => {
            let why = e.to_string();
            return refuse(agent, connection, None, Refusal::BadRequest, &why, "bad request");
        }
    };
    match op {
        Op::Status => {
            let sent = protocol::write_message(&mut connection.stream, &agent.status());
            taken(agent, &connection, op, sent)
        }
        Op::Lock => {
            agent.wipe();
            let done = Response { state: Some(State::Locked), ..Response::granted() };
            let sent = protocol::write_message(&mut connection.stream, &done);
            taken(agent, &connection, op, sent)
        }
        Op::Get => match agent.send_held(&mut connection.stream) {
            Some(sent) => taken(agent, &connection, op, sent),
            None => {
                let round = agent.ask_reopen();
                connection.stage = Stage::AwaitingKey { round, wipes: agent.wipes() };
                connection.deadline = now + REOPEN_WAIT;
                Next::Keep(connection)
            }
        },
    }
}

/// An answer sent (or not taken): audited or counted.
fn taken(agent: &Agent, connection: &Connection, op: Op, sent: std::io::Result<()>) -> Next {
    match sent {
        Ok(()) => agent.record_granted(&connection.caller, connection.exe.as_deref(), op),
        Err(e) => {
            let why = format!("the caller did not take the answer ({e})");
            agent.refused(&connection.caller, Some(op), "did not take the answer", &why);
        }
    }
    Next::Done
}

/// A refusal sent (if the caller takes it at once) and counted under `reason` (the audit's
/// `message` for the first of its kind); the connection closed.
fn refuse(
    agent: &Agent,
    connection: Connection,
    op: Option<Op>,
    why: Refusal,
    message: &str,
    reason: &'static str,
) -> Next {
    let mut frame = Vec::with_capacity(128);
    if protocol::push_message(&mut frame, &Response::refusal(why, message)).is_ok() {
        // SAFETY: a valid buffer of `frame.len()` bytes; MSG_DONTWAIT: a caller that does not
        // take it loses it, the agent never waits (the socket itself may still be blocking).
        unsafe {
            libc::send(
                connection.stream.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    }
    agent.refused(&connection.caller, op, reason, message);
    Next::Done
}

/// Accepts the connections waiting (at most [`ACCEPTS_PER_TURN`]), checking each caller before
/// anything is read from it.
fn accept_all(agent: &Agent, listener: &UnixListener, open: &mut Vec<Connection>) {
    let mut per_uid: HashMap<u32, usize> = HashMap::new();
    for connection in open.iter() {
        *per_uid.entry(connection.caller.uid).or_default() += 1;
    }
    for _ in 0..ACCEPTS_PER_TURN {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // WouldBlock: none left; anything else (out of descriptors): the next poll tries
            // again.
            Err(_) => return,
        };
        let mut caller = match Caller::of(&stream) {
            Ok(caller) => caller,
            Err(e) => {
                let why = format!("no credentials ({e})");
                agent.refused(&Caller::unknown(), None, "no credentials", &why);
                continue;
            }
        };
        if agent.allow.reads_process() {
            caller.look_at_process(&stream);
        }
        let connection = Connection {
            stream,
            caller,
            exe: None,
            deadline: Instant::now() + FRAME_DEADLINE,
            stage: Stage::Reading(RequestFrame::default()),
        };
        if let Err(not_allowed) = agent.allow.check(&connection.caller) {
            let (message, reason) = (not_allowed.to_string(), not_allowed_reason(&not_allowed));
            refuse(agent, connection, None, Refusal::Refused, &message, reason);
            continue;
        }
        let mine = per_uid.entry(connection.caller.uid).or_default();
        if *mine >= MAX_PER_UID || open.len() >= MAX_OPEN {
            let why = "too many connections at once; try again";
            refuse(agent, connection, None, Refusal::Busy, why, "busy: too many connections");
            continue;
        }
        *mine += 1;
        let mut connection = connection;
        if connection.stream.set_nonblocking(true).is_err() {
            continue;
        }
        connection.caller.look_at_process(&connection.stream);
        connection.exe = connection.caller.exe();
        open.push(connection);
    }
}

fn not_allowed_reason(why: &NotAllowed) -> &'static str {
    match why {
        NotAllowed::Identity { .. } => "uid or gid not allowed",
        NotAllowed::ExeUnreadable => "executable unreadable",
        NotAllowed::Exe(_) => "executable not allowed",
    }
}

/// Reads what has arrived of a request frame (never more than the frame can hold).
fn read_more(stream: &mut UnixStream, frame: &mut RequestFrame) -> std::io::Result<FrameProgress> {
    let mut buffer = [0u8; 256];
    loop {
        let room = frame.room().min(buffer.len());
        match stream.read(&mut buffer[..room]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => match frame.push(&buffer[..n]) {
                FrameProgress::Partial => {}
                done => return Ok(done),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(FrameProgress::Partial),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn poll_for(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

/// Waits until one of `watched` has an event, or `timeout` passes.
fn wait_for_events(watched: &mut [libc::pollfd], timeout: Duration) -> std::io::Result<()> {
    // Rounded up, so a deadline a fraction of a millisecond away is not polled for in a loop.
    let millis = timeout.as_micros().div_ceil(1000);
    let millis = libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX);
    let count = libc::nfds_t::try_from(watched.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `watched` is a valid array of `count` pollfd structures for the call.
    let done = unsafe { libc::poll(watched.as_mut_ptr(), count, millis) };
    if done < 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() != ErrorKind::Interrupted {
            return Err(error);
        }
    }
    Ok(())
}

/// A non-blocking pipe: its read end for [`serve`] to watch, its write end for the re-opener.
pub(crate) fn wake_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is valid for two descriptors; pipe2 fills both on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made by pipe2 and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Tells [`serve`] a re-open finished (a full pipe already says so).
pub(crate) fn wake_up(wake: &OwnedFd) {
    // SAFETY: one byte from a valid buffer to the pipe's non-blocking write end.
    unsafe {
        libc::write(wake.as_raw_fd(), [1u8].as_ptr().cast(), 1);
    }
}

fn drain(wake: &OwnedFd) {
    let mut buffer = [0u8; 64];
    // SAFETY: `buffer` is valid for 64 bytes; the descriptor is the pipe's non-blocking read end.
    while unsafe { libc::read(wake.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {}
}
