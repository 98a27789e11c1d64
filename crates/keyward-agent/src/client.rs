//! The agent's client: one request per connection (`keyward agent get|status|lock`,
//! `keyward exec`).

#![allow(unsafe_code)] // geteuid, to check who serves the socket

use std::os::unix::net::UnixStream;

use keyward_core::DataKey;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::callers::peer_uid;
use crate::error::AgentError;
use crate::protocol::{self, Op, Refusal, Request, Response};

/// The longest key keyward keeps (and so the most a client takes: `keyward exec` writes it
/// into a pipe, which holds at least a page).
const MAX_KEY_LEN: usize = 4096;

/// How long a client waits for an answer: a re-open may ask a TPM, a token or peers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The key, as the agent handed it; its fingerprint is computed here, not taken from the agent.
pub type GivenKey = DataKey;

/// A client of the agent at one socket.
#[derive(Debug, Clone)]
pub struct AgentClient {
    socket: PathBuf,
}

impl AgentClient {
    /// A client of the agent at `socket`.
    pub fn new(socket: &Path) -> Self {
        AgentClient { socket: socket.to_path_buf() }
    }

    /// The key.
    pub fn get(&self) -> Result<GivenKey, AgentError> {
        let (answer, mut stream) = self.ask(Op::Get)?;
        let len = answer.key_len.ok_or_else(|| AgentError::Protocol("no key length".into()))?;
        if len > MAX_KEY_LEN {
            return Err(AgentError::Protocol(format!("a key of {len} bytes")));
        }
        let key = protocol::read_frame(&mut stream).map_err(|e| self.gone(&e))?;
        if key.len() != len {
            return Err(AgentError::Protocol("a key of another length than announced".into()));
        }
        DataKey::import(key).map_err(|e| AgentError::Protocol(e.to_string()))
    }

    /// The agent's status.
    pub fn status(&self) -> Result<Response, AgentError> {
        Ok(self.ask(Op::Status)?.0)
    }

    /// Wipes the agent's key now.
    pub fn lock(&self) -> Result<(), AgentError> {
        self.ask(Op::Lock).map(|_| ())
    }

    fn ask(&self, op: Op) -> Result<(Response, UnixStream), AgentError> {
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| self.gone(&e))?;
        self.check_server(&stream)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| self.gone(&e))?;
        // An agent that refuses this caller answers on connecting, without reading the request
        // (the write may then fail): its answer is read either way.
        let sent = protocol::write_message(&mut stream, &Request::new(op));
        let frame = match (protocol::read_frame(&mut stream), sent) {
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
            Some(Refusal::BadRequest) | None => AgentError::Protocol(message),
        })
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
        let reason = match error.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "it closed the connection without an answer".into()
            }
            _ => error.to_string(),
        };
        AgentError::NotRunning { path: self.socket.clone(), reason }
    }
}
