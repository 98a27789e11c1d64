//! The agent's client: one request per connection (`keyward agent get|status|lock`,
//! `keyward exec`).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::AgentError;
use crate::protocol::{self, Op, Refusal, Request, Response};

/// How long a client waits for an answer: a re-open may ask a TPM, a token or peers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// The key, as the agent handed it.
#[derive(Debug)]
pub struct GivenKey {
    /// Its bytes.
    pub key: Zeroizing<Vec<u8>>,
    /// Its fingerprint, as the agent says.
    pub fingerprint: String,
}

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
        let key = protocol::read_frame(&mut stream).map_err(|e| self.gone(&e))?;
        if key.len() != len {
            return Err(AgentError::Protocol("a key of another length than announced".into()));
        }
        let fingerprint = answer.fingerprint.unwrap_or_default();
        Ok(GivenKey { key, fingerprint })
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
        stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| self.gone(&e))?;
        protocol::write_message(&mut stream, &Request::new(op)).map_err(|e| self.gone(&e))?;
        let frame = protocol::read_frame(&mut stream).map_err(|e| self.gone(&e))?;
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
