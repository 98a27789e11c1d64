//! A secret in a call or an answer.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use zeroize::Zeroizing;

/// Bytes that are a secret (a key-encryption key, a PIN's digest, a volume key): base64 in the
/// frame, wiped when dropped, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, kept wiped on drop.
    pub fn into_inner(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        SecretBytes(Zeroizing::new(bytes.to_vec()))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(STANDARD.encode(self.expose()));
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Borrowed from the frame (which is wiped) rather than copied into a String of its own.
        struct Base64;
        impl de::Visitor<'_> for Base64 {
            type Value = SecretBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("base64")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<SecretBytes, E> {
                let mut bytes = Zeroizing::new(Vec::with_capacity(text.len()));
                STANDARD
                    .decode_vec(text, &mut bytes)
                    .map_err(|_| E::custom("a secret that is not base64"))?;
                Ok(SecretBytes(bytes))
            }
        }
        d.deserialize_str(Base64)
    }
}
