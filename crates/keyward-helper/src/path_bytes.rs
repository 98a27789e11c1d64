//! Serde adapter for a path in a call: the path's bytes as base64, as a Unix path is bytes
//! (not necessarily UTF-8) and the helper must reach exactly the file the caller named.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Serializes the path's bytes as base64.
pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&STANDARD.encode(path.as_os_str().as_bytes()))
}

/// Deserializes a path from its bytes as base64.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let text = <&str>::deserialize(d)?;
    let bytes = STANDARD.decode(text).map_err(|_| D::Error::custom("a path that is not base64"))?;
    Ok(PathBuf::from(OsStr::from_bytes(&bytes)))
}
