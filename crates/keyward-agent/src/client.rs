//! The agent's client: one request per connection (`keyward agent get|status|lock`,
//! `keyward exec`), each with a deadline for the whole exchange — an agent too busy to answer in
//! time is said to be busy (exit 8), never waited on for good.

#![allow(unsafe_code)] // geteuid, to check who serves the socket

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyward_core::DataKey;

use crate::callers::peer_uid;
use crate::error::AgentError;
use crate::protocol::{self, Op, Refusal, Request, Response};

/// The longest key keyward keeps (and so the most a client takes: `keyward exec` writes it
/// into a pipe, which holds at least a page).
const MAX_KEY_LEN: usize = 4096;

/// How long `get` waits for its whole answer: a re-open may ask a TPM, a token or peers, and the
/// agent itself answers `busy` after 30 s of one.
pub const GET_DEADLINE: Duration = Duration::from_secs(35);
/// How long `status` and `lock` wait: any agent that runs answers them at once.
pub const QUICK_DEADLINE: Duration = Duration::from_secs(5);

/// The key, as the agent handed it; its fingerprint is computed here, not taken from the agent.
pub type GivenKey = DataKey;

/// A client of the agent at one socket.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
    /// How long a whole exchange may take, if not the operation's default.
    timeout: Option<Duration>,
}

impl AgentClient {
    /// A client of the agent at `socket`.
    pub fn new(socket: &Path) -> Self {
        AgentClient { socket: socket.to_path_buf(), timeout: None }
    }

    /// The same client, waiting `timeout` (if given) for each whole exchange instead of the
    /// operation's default ([`GET_DEADLINE`], [`QUICK_DEADLINE`]).
    pub fn with_timeout(self, timeout: Option<Duration>) -> Self {
        AgentClient { timeout, ..self }
    }

    fn deadline(&self, default: Duration) -> Instant {
        Instant::now() + self.timeout.unwrap_or(default)
    }

    /// The key.
    pub fn get(&self) -> Result<GivenKey, AgentError> {
        let deadline = self.deadline(GET_DEADLINE);
        let (answer, mut stream) = self.ask(Op::Get, deadline)?;
        let len = answer.key_len.ok_or_else(|| AgentError::Protocol("no key length".into()))?;
        if len > MAX_KEY_LEN {
            return Err(AgentError::Protocol(format!("a key of {len} bytes")));
        }
        let key = protocol::read_frame(&mut Before { stream: &mut stream, deadline })
            .map_err(|e| self.gone(&e))?;
        if key.len() != len {
            return Err(AgentError::Protocol("a key of another length than announced".into()));
        }
        DataKey::import(key).map_err(|e| AgentError::Protocol(e.to_string()))
    }

    /// The agent's status.
    pub fn status(&self) -> Result<Response, AgentError> {
        Ok(self.ask(Op::Status, self.deadline(QUICK_DEADLINE))?.0)
    }

    /// Wipes the agent's key now.
    pub fn lock(&self) -> Result<(), AgentError> {
        self.ask(Op::Lock, self.deadline(QUICK_DEADLINE)).map(|_| ())
    }

    fn ask(&self, op: Op, deadline: Instant) -> Result<(Response, UnixStream), AgentError> {
        let mut stream = self.connect(deadline)?;
        self.check_server(&stream)?;
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        stream.set_write_timeout(Some(left)).map_err(|e| self.gone(&e))?;
        // An agent that refuses this caller answers on connecting, without reading the request
        // (the write may then fail): its answer is read either way.
        let sent = protocol::write_message(&mut stream, &Request::new(op));
        let read = protocol::read_frame(&mut Before { stream: &mut stream, deadline });
        let frame = match (read, sent) {
            (Ok(frame), _) => frame,
            (Err(_), Err(e)) | (Err(e), Ok(())) => return Err(self.gone(&e)),
        };
        let answer: Response =
            serde_json::from_slice(&frame).map_err(|e| AgentError::Protocol(e.to_string()))?;
        if answer.format != protocol::FORMAT || answer.version != protocol::VERSION {
            return Err(AgentError::Protocol(format!(
                "{} version {}",
                answer.format, answer.version
            )));
        }
        if answer.ok {
            return Ok((answer, stream));
        }
        let message = answer.message.unwrap_or_default();
        Err(match answer.error {
            Some(Refusal::Refused) => AgentError::Refused(message),
            Some(Refusal::Locked) => AgentError::Locked(message),
            Some(Refusal::Busy) => AgentError::Busy { path: self.socket.clone(), reason: message },
            Some(Refusal::BadRequest) | None => AgentError::Protocol(message),
        })
    }

    /// Connects by `deadline`. While the agent's queue of connections is full (a flood of other
    /// callers may keep it so), the connect waits in the kernel's queue for room — its send
    /// timeout bounds that wait — so callers get in in turn, not by who polls fastest.
    fn connect(&self, deadline: Instant) -> Result<UnixStream, AgentError> {
        let address = socket2::SockAddr::unix(&self.socket).map_err(|e| self.gone(&e))?;
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .map_err(|e| self.gone(&e))?;
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        socket.set_write_timeout(Some(left)).map_err(|e| self.gone(&e))?;
        match socket.connect(&address) {
            Ok(()) => Ok(socket.into()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(self.busy()),
            Err(e) => Err(self.gone(&e)),
        }
    }

    fn busy(&self) -> AgentError {
        AgentError::Busy { path: self.socket.clone(), reason: "it did not answer in time".into() }
    }

    /// The socket must be served by this user or root: anyone else who could bind the path (a
    /// shared folder while the agent is down) could hand out a key of their choosing.
    fn check_server(&self, stream: &UnixStream) -> Result<(), AgentError> {
        let server = peer_uid(stream).map_err(|e| self.gone(&e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if server == me || server == 0 {
            return Ok(());
        }
        Err(AgentError::Impostor { socket: self.socket.clone(), uid: server })
    }

    fn gone(&self, error: &std::io::Error) -> AgentError {
        if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            return self.busy();
        }
        if error.kind() == std::io::ErrorKind::PermissionDenied {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            return AgentError::NotServed { path: self.socket.clone(), uid };
        }
        let reason = match error.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "it closed the connection without an answer".into()
            }
            _ => error.to_string(),
        };
        AgentError::NotRunning { path: self.socket.clone(), reason }
    }
}

/// A stream read with one deadline for the whole answer, not one per read.
struct Before<'a> {
    stream: &'a mut UnixStream,
    deadline: Instant,
}

impl Read for Before<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}
