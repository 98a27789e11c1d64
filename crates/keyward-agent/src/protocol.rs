//! The agent's wire protocol, version 1 (docs/formats/agent.md): over a Unix stream socket,
//! frames of a 4-byte big-endian length and that many bytes. The client sends one request frame
//! (JSON); the agent answers with one response frame (JSON) and, for a granted `get`, a second
//! frame holding exactly the key's bytes, raw. One request per connection.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The protocol's name, in every message.
pub const FORMAT: &str = "keyward-agent";
/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The longest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// The longest request frame the agent reads (a request is a few dozen bytes).
pub const MAX_REQUEST: usize = 1024;

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The key.
    Get,
    /// Locked or unlocked, time left, callers served.
    Status,
    /// Wipe the key now.
    Lock,
}

impl Op {
    /// Its name, as on the wire and in the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Status => "status",
            Op::Lock => "lock",
        }
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// What is asked.
    pub op: Op,
}

impl Request {
    /// A request of this version.
    pub fn new(op: Op) -> Self {
        Request { format: FORMAT.into(), version: VERSION, op }
    }
}

/// Why a request was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// The caller is not allowed.
    Refused,
    /// No key is held and none could be opened unattended.
    Locked,
    /// The request is not one of this version.
    BadRequest,
    /// The agent is too busy to take the request now (its caller's share of connections is
    /// taken, or a re-open did not finish in time): try again.
    Busy,
}

/// Whether a key is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A key is held.
    Unlocked,
    /// No key is held.
    Locked,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// Whether the request was granted.
    pub ok: bool,
    /// When not: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
    /// When not: a line for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For `get`: the length of the key frame that follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_len: Option<usize>,
    /// The key's fingerprint (not secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// For `status`: the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// For `status`: seconds until the key is wiped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<u64>,
    /// For `status`: the TTL in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// For `status`: `get` requests granted since the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<u64>,
    /// For `status`: requests refused since the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<u64>,
    /// For `status`: `get`s waiting for the keybox to be opened again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<u64>,
    /// For `status`: what the next request re-opens the keybox through once the key is wiped
    /// (the slots that open with nobody there, or the one named), or why nothing can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopen: Option<Reopen>,
}

/// How the agent would open the keybox again, with nobody there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reopen {
    /// Through these slots, tried in turn.
    Through(Vec<String>),
    /// Through these, but the last attempt failed, for this reason.
    LastFailed {
        /// The slots it tries.
        through: Vec<String>,
        /// Why the last attempt failed.
        failure: String,
    },
    /// It cannot: the next request after the key is wiped is refused.
    Cannot(String),
}

impl Response {
    /// A granted answer with nothing else yet.
    pub fn granted() -> Self {
        Response {
            format: FORMAT.into(),
            version: VERSION,
            ok: true,
            error: None,
            message: None,
            key_len: None,
            fingerprint: None,
            state: None,
            seconds_left: None,
            ttl: None,
            served: None,
            refused: None,
            waiting: None,
            reopen: None,
        }
    }

    /// A refusal.
    pub fn refusal(why: Refusal, message: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(why),
            message: Some(message.into()),
            ..Response::granted()
        }
    }
}

/// Appends one frame to `out` (so that a message and the key frame after it go out in one
/// write: one wake-up of the reader, not four).
pub fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|_| bytes.len() <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes one frame.
pub fn write_frame(to: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 4));
    push_frame(&mut out, bytes)?;
    to.write_all(&out)?;
    to.flush()
}

/// A JSON message as a frame, appended to `out`.
pub fn push_message(out: &mut Vec<u8>, message: &impl Serialize) -> io::Result<()> {
    let bytes =
        serde_json::to_vec(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    push_frame(out, &bytes)
}

/// Reads one frame into wiped memory (a key frame is secret).
pub fn read_frame(from: &mut impl Read) -> io::Result<Zeroizing<Vec<u8>>> {
    read_frame_of_at_most(from, MAX_FRAME)
}

/// Reads one request frame (at most [`MAX_REQUEST`] bytes).
pub fn read_request_frame(from: &mut impl Read) -> io::Result<Zeroizing<Vec<u8>>> {
    read_frame_of_at_most(from, MAX_REQUEST)
}

fn read_frame_of_at_most(from: &mut impl Read, max: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len)?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too long"));
    }
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    from.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A request frame arriving in pieces, as a non-blocking read gives them: sans-I/O, so a
/// connection that sends half a frame holds no thread.
#[derive(Debug, Default)]
pub struct RequestFrame {
    bytes: Zeroizing<Vec<u8>>,
}

/// Where a request frame is.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameProgress {
    /// More bytes are needed.
    Partial,
    /// The whole frame: its body.
    Complete(Zeroizing<Vec<u8>>),
    /// It declares more than [`MAX_REQUEST`] bytes, or bytes follow it.
    TooLong,
}

impl RequestFrame {
    /// How many more bytes the frame can take at most (so a read never takes more).
    pub fn room(&self) -> usize {
        (4 + MAX_REQUEST).saturating_sub(self.bytes.len()).max(1)
    }

    /// Adds bytes read.
    pub fn push(&mut self, read: &[u8]) -> FrameProgress {
        self.bytes.extend_from_slice(read);
        let Some(head) = self.bytes.get(..4) else { return FrameProgress::Partial };
        let mut len = [0u8; 4];
        len.copy_from_slice(head);
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_REQUEST {
            return FrameProgress::TooLong;
        }
        match self.bytes.len().cmp(&(4 + len)) {
            std::cmp::Ordering::Less => FrameProgress::Partial,
            std::cmp::Ordering::Equal => {
                FrameProgress::Complete(Zeroizing::new(self.bytes[4..].to_vec()))
            }
            std::cmp::Ordering::Greater => FrameProgress::TooLong,
        }
    }
}

/// A JSON message as a frame.
pub fn write_message(to: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let bytes =
        serde_json::to_vec(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    write_frame(to, &bytes)
}

/// Why a frame is no request.
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// Not JSON at all.
    #[error("not JSON ({0})")]
    NotJson(serde_json::Error),
    /// Another protocol or version.
    #[error("not a {} version {} request", FORMAT, VERSION)]
    OtherVersion,
    /// This version's envelope, but not its fields.
    #[error("not a request ({0})")]
    Fields(serde_json::Error),
}

/// Parses a request frame: anything else than a request of this version is refused.
pub fn parse_request(frame: &[u8]) -> Result<Request, BadRequest> {
    let value: serde_json::Value = serde_json::from_slice(frame).map_err(BadRequest::NotJson)?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    let format = value.get("format").and_then(serde_json::Value::as_str);
    if format != Some(FORMAT) || version != Some(u64::from(VERSION)) {
        return Err(BadRequest::OtherVersion);
    }
    serde_json::from_value(value).map_err(BadRequest::Fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_and_others_are_refused_by_reason() {
        let mut wire = Vec::new();
        write_message(&mut wire, &Request::new(Op::Get)).expect("write");
        let frame = read_frame(&mut wire.as_slice()).expect("frame");
        assert_eq!(parse_request(&frame).expect("parses"), Request::new(Op::Get));
        assert!(parse_request(br#"{"format":"keyward-agent","version":2,"op":"get"}"#).is_err());
        assert!(parse_request(br#"{"format":"keyward-agent","version":1,"op":"dump"}"#).is_err());
        assert!(parse_request(br#"{"format":"x","version":1,"op":"get"}"#).is_err());
        assert!(parse_request(b"\xff").is_err());
        let mut long = (u32::try_from(MAX_FRAME + 1).expect("fits")).to_be_bytes().to_vec();
        long.extend([0; 8]);
        assert!(read_frame(&mut long.as_slice()).is_err());
    }

    #[test]
    fn a_request_frame_comes_together_from_any_pieces() {
        let mut wire = Vec::new();
        write_message(&mut wire, &Request::new(Op::Status)).expect("write");
        for cut in 0..wire.len() {
            let mut frame = RequestFrame::default();
            let first = frame.push(&wire[..cut]);
            assert_eq!(first, FrameProgress::Partial, "cut at {cut}");
            match frame.push(&wire[cut..]) {
                FrameProgress::Complete(body) => assert_eq!(body.as_slice(), &wire[4..]),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        let mut frame = RequestFrame::default();
        let declared = u32::try_from(MAX_REQUEST + 1).expect("fits").to_be_bytes();
        assert_eq!(frame.push(&declared), FrameProgress::TooLong);
        let mut frame = RequestFrame::default();
        let mut extra = wire.clone();
        extra.push(0);
        assert_eq!(frame.push(&extra), FrameProgress::TooLong);
    }
}
