//! Ed25519 signing identities: an operator's key, a box's key. The secret half lives in a small
//! JSON file (mode 0600, written by the caller through keyward-core's atomic writer); the public
//! half is shown and passed around as `ed25519:<base64>`.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::AuthError;

const PUBLIC_PREFIX: &str = "ed25519:";
const FILE_FORMAT: &str = "keyward-signing-key";
const FILE_VERSION: u32 = 1;

/// A public key that verifies signatures.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Checks `signature` over `message`, strictly (RFC 8032 with ed25519-dalek's
    /// `verify_strict`: weak keys and non-canonical signatures are refused, so one message has
    /// one valid signature under one key and a signature cannot be made to verify under a
    /// small-order key for many messages).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), AuthError> {
        let signature =
            Signature::from_slice(signature).map_err(|_| AuthError::Malformed("signature"))?;
        self.0.verify_strict(message, &signature).map_err(|_| AuthError::BadSignature)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", keyward_core::encoding::to_base64(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = AuthError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let encoded =
            text.trim().strip_prefix(PUBLIC_PREFIX).ok_or(AuthError::Malformed("public key"))?;
        let bytes: [u8; 32] = keyward_core::encoding::from_base64(encoded)
            .and_then(|b| b.try_into().ok())
            .ok_or(AuthError::Malformed("public key"))?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| AuthError::Malformed("public key"))?;
        // A small-order key "verifies" forged signatures under non-strict checks; no real
        // identity is one, so none is accepted as a name.
        if key.is_weak() {
            return Err(AuthError::Malformed("public key (a weak, small-order key)"));
        }
        Ok(PublicKey(key))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A secret signing key. Zeroized on drop (ed25519-dalek's `zeroize`); never printed.
pub struct SigningIdentity(SigningKey);

/// The identity file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    format: String,
    version: u32,
    public: PublicKey,
    secret: String,
}

impl SigningIdentity {
    /// A fresh random identity.
    pub fn generate() -> keyward_core::Result<Self> {
        let seed = Zeroizing::new(keyward_core::random::array::<32>()?);
        Ok(SigningIdentity(SigningKey::from_bytes(&seed)))
    }

    /// The identity with this 32-byte seed. For benchmarks and tests that need many known
    /// identities; real identities come from [`SigningIdentity::generate`].
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningIdentity(SigningKey::from_bytes(seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The identity file's bytes (secret: write it 0600).
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let secret = Zeroizing::new(keyward_core::encoding::to_base64(self.0.as_bytes()));
        let file = IdentityFile {
            format: FILE_FORMAT.into(),
            version: FILE_VERSION,
            public: self.public(),
            secret: secret.to_string(),
        };
        let mut bytes = Zeroizing::new(Vec::with_capacity(256));
        if serde_json::to_writer_pretty(&mut *bytes, &file).is_ok() {
            bytes.push(b'\n');
        }
        let IdentityFile { secret, .. } = file;
        drop(Zeroizing::new(secret));
        bytes
    }

    /// Reads an identity file, checking that its public half matches its secret.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, AuthError> {
        let file: IdentityFile =
            serde_json::from_slice(bytes).map_err(|_| AuthError::Malformed("identity file"))?;
        let secret = Zeroizing::new(file.secret);
        if file.format != FILE_FORMAT || file.version != FILE_VERSION {
            return Err(AuthError::Malformed("identity file format or version"));
        }
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            keyward_core::encoding::from_base64(&secret)
                .and_then(|b| b.try_into().ok())
                .ok_or(AuthError::Malformed("identity secret"))?,
        );
        let identity = SigningIdentity(SigningKey::from_bytes(&seed));
        if identity.public() != file.public {
            return Err(AuthError::Malformed("identity file (public and secret halves differ)"));
        }
        Ok(identity)
    }
}

impl fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningIdentity({}, secret redacted)", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_signatures() {
        let id = SigningIdentity::generate().expect("rng");
        let again = SigningIdentity::from_file_bytes(&id.to_file_bytes()).expect("reads back");
        assert_eq!(again.public(), id.public());
        let sig = id.sign(b"message");
        assert!(id.public().verify(b"message", &sig).is_ok());
        assert_eq!(id.public().verify(b"massage", &sig), Err(AuthError::BadSignature));
        let text = id.public().to_string();
        assert_eq!(text.parse::<PublicKey>().expect("parses"), id.public());
        assert!(!format!("{id:?}").contains(&keyward_core::encoding::to_base64(&id.0.to_bytes())));
    }

    #[test]
    fn weak_keys_are_refused_as_names() {
        // The identity point: order 1, so any signature whose R is the identity "verifies".
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let text = format!("{PUBLIC_PREFIX}{}", keyward_core::encoding::to_base64(&identity_point));
        assert!(text.parse::<PublicKey>().is_err());
    }
}
