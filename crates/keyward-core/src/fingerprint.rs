//! The data key's public fingerprint: HKDF-SHA256 of K under a fixed domain string, shown as
//! colon-separated hex (full: 32 bytes, short: the first 8). It names a key without revealing it.

use std::fmt;
use std::str::FromStr;

use hkdf::Hkdf;
use sha2::Sha256;

/// Salt and info for the fingerprint derivation; changing either changes every fingerprint.
const FINGERPRINT_SALT: &[u8] = b"keyward v1";
const FINGERPRINT_INFO: &[u8] = b"keyward key fingerprint";

/// Length of the short form in bytes.
pub const SHORT_LEN: usize = 8;

/// The 32-byte fingerprint of a data key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `key`.
    pub fn of(key: &[u8]) -> Self {
        let mut out = [0u8; 32];
        // Expanding 32 bytes from HKDF-SHA256 cannot fail (the limit is 255 × 32).
        let _ = Hkdf::<Sha256>::new(Some(FINGERPRINT_SALT), key).expand(FINGERPRINT_INFO, &mut out);
        Fingerprint(out)
    }

    /// Builds a fingerprint from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short form: the first 8 bytes as colon-separated hex.
    pub fn short(&self) -> String {
        colon_hex(&self.0[..SHORT_LEN])
    }

    /// Whether `expected` (full or short form, already parsed) names this fingerprint.
    pub fn matches(&self, expected: &ExpectedFingerprint) -> bool {
        match expected {
            ExpectedFingerprint::Full(f) => f == self,
            ExpectedFingerprint::Short(s) => self.0[..SHORT_LEN] == s[..],
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&colon_hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = parse_colon_hex(s)?;
        let arr: [u8; 32] =
            bytes.try_into().map_err(|_| "a full fingerprint has 32 bytes".to_string())?;
        Ok(Fingerprint(arr))
    }
}

/// A fingerprint a user expects, given in full or short form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedFingerprint {
    /// All 32 bytes.
    Full(Fingerprint),
    /// The first 8 bytes.
    Short([u8; SHORT_LEN]),
}

impl FromStr for ExpectedFingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = parse_colon_hex(s)?;
        match bytes.len() {
            32 => Ok(ExpectedFingerprint::Full(Fingerprint(bytes.try_into().unwrap_or([0; 32])))),
            SHORT_LEN => Ok(ExpectedFingerprint::Short(bytes.try_into().unwrap_or([0; SHORT_LEN]))),
            n => Err(format!("a fingerprint has 8 (short) or 32 (full) bytes, not {n}")),
        }
    }
}

impl fmt::Display for ExpectedFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedFingerprint::Full(fp) => fp.fmt(f),
            ExpectedFingerprint::Short(s) => f.write_str(&colon_hex(s)),
        }
    }
}

/// Lower-case hex bytes joined by colons.
pub fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Parses colon-separated hex; colons are optional, case is not significant.
fn parse_colon_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s.trim().chars().filter(|c| *c != ':').collect();
    if !digits.len().is_multiple_of(2) || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{}` is not colon-separated hex", s.trim()));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Stored as the full colon-hex form; any other spelling is refused so a file has one form.
impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let text = String::deserialize(d)?;
        let fp: Fingerprint = text.parse().map_err(D::Error::custom)?;
        if fp.to_string() != text {
            return Err(D::Error::custom("fingerprint is not in canonical form"));
        }
        Ok(fp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_short_forms_parse_and_match() {
        let fp = Fingerprint::of(b"0123456789abcdef0123456789abcdef");
        let full: ExpectedFingerprint = fp.to_string().parse().expect("full form parses");
        let short: ExpectedFingerprint = fp.short().parse().expect("short form parses");
        assert!(fp.matches(&full) && fp.matches(&short));
        assert_eq!(fp.to_string().len(), 32 * 3 - 1);
        let other = Fingerprint::of(b"another key, another fingerprint");
        assert!(!other.matches(&full) && !other.matches(&short));
    }
}
