//! The frames that cross a helper's pipes (docs/formats/helper.md): a 4-byte big-endian length,
//! then that many bytes of JSON, `{"v": 1, "body": …}`. One frame per call and one per answer.
//! The buffers a frame is read into and written from are wiped, as calls and answers carry
//! secrets (a key to seal, one unsealed).

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The version of the frame format and of every kind's calls: a helper from another build of
/// keyward is refused rather than misread.
pub const VERSION: u32 = 1;

/// The longest frame either side reads (a LUKS2 header's metadata is at most 4 MiB of JSON).
pub const MAX_FRAME: usize = 16 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The pipe closed before a whole frame came.
    #[error("the pipe closed")]
    Closed,
    /// Reading or writing the pipe failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A length over [`MAX_FRAME`].
    #[error("a frame of {0} bytes, more than any call or answer")]
    TooLong(usize),
    /// Not the JSON of the expected call or answer.
    #[error("an unreadable frame: {0}")]
    Unreadable(serde_json::Error),
    /// A call or answer that does not make JSON (this side's fault, not the other's).
    #[error("cannot write a frame: {0}")]
    Unwritable(serde_json::Error),
    /// Another version of the format.
    #[error("frame version {0}, not {VERSION}")]
    Version(u32),
}

#[derive(Serialize)]
struct Outgoing<'a, T> {
    v: u32,
    body: &'a T,
}

#[derive(Deserialize)]
struct Incoming<T> {
    v: u32,
    body: Option<T>,
}

/// The version alone, read when the body does not parse: a frame of another version is named as
/// such rather than as unreadable.
#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// Writes `body` as one frame and flushes it.
pub fn write<T: Serialize>(to: &mut impl Write, body: &T) -> Result<(), FrameError> {
    // Room for a typical call, so the JSON is not moved (and a copy of a secret left behind)
    // while it grows.
    let mut json = Zeroizing::new(Vec::with_capacity(16 * 1024));
    serde_json::to_writer(&mut *json, &Outgoing { v: VERSION, body })
        .map_err(FrameError::Unwritable)?;
    if json.len() > MAX_FRAME {
        return Err(FrameError::TooLong(json.len()));
    }
    let len = u32::try_from(json.len()).map_err(|_| FrameError::TooLong(json.len()))?;
    to.write_all(&len.to_be_bytes())?;
    to.write_all(&json)?;
    to.flush()?;
    Ok(())
}

/// Reads one frame: `Ok(None)` when the pipe closed cleanly before it began.
pub fn read<T: DeserializeOwned>(from: &mut impl Read) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match read_all(from, &mut len)? {
        Filled::Nothing => return Ok(None),
        Filled::Part => return Err(FrameError::Closed),
        Filled::All => {}
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    let mut json = Zeroizing::new(vec![0u8; len]);
    if !matches!(read_all(from, &mut json)?, Filled::All) {
        return Err(FrameError::Closed);
    }
    parse(&json).map(Some)
}

/// A frame's JSON, checked for its version.
pub fn parse<T: DeserializeOwned>(json: &[u8]) -> Result<T, FrameError> {
    match serde_json::from_slice::<Incoming<T>>(json) {
        Ok(Incoming { v: VERSION, body: Some(body) }) => Ok(body),
        Ok(Incoming { v: VERSION, body: None }) => {
            Err(FrameError::Unreadable(serde::de::Error::missing_field("body")))
        }
        Ok(Incoming { v, .. }) => Err(FrameError::Version(v)),
        Err(error) => match serde_json::from_slice::<VersionOnly>(json) {
            Ok(VersionOnly { v }) if v != VERSION => Err(FrameError::Version(v)),
            _ => Err(FrameError::Unreadable(error)),
        },
    }
}

enum Filled {
    Nothing,
    Part,
    All,
}

fn read_all(from: &mut impl Read, buf: &mut [u8]) -> io::Result<Filled> {
    let mut filled = 0;
    while filled < buf.len() {
        match from.read(&mut buf[filled..]) {
            Ok(0) => return Ok(if filled == 0 { Filled::Nothing } else { Filled::Part }),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Filled::All)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SecretBytes;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Call {
        Seal { secret: SecretBytes, pcrs: Vec<u8> },
        Close,
    }

    #[test]
    fn a_frame_reads_back_to_what_was_written_and_a_clean_close_is_none() {
        let calls =
            [Call::Seal { secret: SecretBytes::from(vec![1, 2, 3]), pcrs: vec![7] }, Call::Close];
        let mut pipe = Vec::new();
        for call in &calls {
            write(&mut pipe, call).unwrap();
        }
        let mut from = pipe.as_slice();
        for call in &calls {
            assert_eq!(read::<Call>(&mut from).unwrap().as_ref(), Some(call));
        }
        assert!(read::<Call>(&mut from).unwrap().is_none());
    }

    #[test]
    fn a_cut_frame_another_version_and_an_overlong_length_are_refused() {
        let mut pipe = Vec::new();
        write(&mut pipe, &Call::Close).unwrap();
        for cut in 1..pipe.len() {
            assert!(matches!(read::<Call>(&mut &pipe[..cut]), Err(FrameError::Closed)), "{cut}");
        }
        let other = br#"{"v":2,"body":"Close"}"#;
        let mut framed = (other.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(other);
        assert!(matches!(read::<Call>(&mut framed.as_slice()), Err(FrameError::Version(2))));
        let other = br#"{"v":2,"body":{"NewCall":{}}}"#;
        assert!(matches!(parse::<Call>(other), Err(FrameError::Version(2))));
        let long = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(read::<Call>(&mut long.as_slice()), Err(FrameError::TooLong(_))));
        assert!(matches!(
            parse::<Call>(br#"{"v":1,"body":"Open"}"#),
            Err(FrameError::Unreadable(_))
        ));
    }
}
