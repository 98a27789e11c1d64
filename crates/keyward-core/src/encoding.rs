//! Text encodings of bytes inside stored JSON: standard base64 with padding for binary fields.
//! Decoding is strict (canonical padding, no whitespace) so a stored value has one spelling.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Whether `text` is a UUID in canonical form (as LUKS2 headers hold volume UUIDs): 36
/// characters, hex digits of either case with hyphens after the 8th, 12th, 16th and 20th.
pub fn is_canonical_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Encodes bytes as standard padded base64.
pub fn to_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard padded base64, rejecting any non-canonical spelling.
pub fn from_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(text).ok()?;
    // The engine accepts non-zero trailing bits in some configurations; insist on one spelling.
    (STANDARD.encode(&bytes) == text).then_some(bytes)
}

/// Serde adapter for `Vec<u8>` fields stored as base64.
pub mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serializes as base64.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_base64(bytes))
    }

    /// Deserializes from canonical base64.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::from_base64(&text).ok_or_else(|| D::Error::custom("invalid base64"))
    }
}

/// Lower-case hex without separators.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes lower-case hex (upper case is not canonical and is refused).
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2)
        || !text.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}
