//! HPKE (RFC 9180) base mode, X25519-HKDF-SHA256 + HKDF-SHA256 + ChaCha20-Poly1305: how a share
//! travels. The owner seals each share to its peer's key (stored so); the peer opens it only to
//! seal it again to the one-time key of a requester that proved itself. Each use has its own
//! `info` string and binds what the share is for in the associated data.

use std::fmt;
use std::str::FromStr;

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use keyward_core::encoding::{from_base64, to_base64};
use keyward_core::memory::LockedBytes;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

const PUBLIC_PREFIX: &str = "x25519:";
/// Largest sealed payload accepted (a share of the largest key is 4097 bytes).
const MAX_SEALED: usize = 8 * 1024;

/// What a sealed payload is for; each is its own HPKE `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A share at rest at its peer, sealed by the owner to the peer's key.
    StoredShare,
    /// A share on its way back, sealed by the peer to a requester's one-time key.
    Release,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::StoredShare => b"keyward-peer-share-v1",
            Purpose::Release => b"keyward-peer-release-v1",
        }
    }
}

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A key is not 32 bytes of base64 after `x25519:`.
    #[error("not an X25519 public key (`x25519:` and 32 bytes of base64)")]
    BadKey,
    /// The sealed payload is not well formed.
    #[error("a sealed share is malformed")]
    Malformed,
    /// It does not open with this key for this purpose and binding.
    #[error("a sealed share does not open (wrong key, or it was changed)")]
    DoesNotOpen,
    /// The recipient's key cannot be used (a low-order point).
    #[error("cannot seal to this key")]
    Unsealable,
    /// The key could not be kept in locked memory (the memlock limit).
    #[error("cannot lock the key in memory; raise the memlock limit (LimitMEMLOCK=)")]
    Unlockable,
}

/// An X25519 key that shares are sealed to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SealPublicKey([u8; 32]);

impl fmt::Display for SealPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", to_base64(&self.0))
    }
}

impl fmt::Debug for SealPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for SealPublicKey {
    type Err = SealError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s.strip_prefix(PUBLIC_PREFIX).ok_or(SealError::BadKey)?;
        let bytes = from_base64(b64).ok_or(SealError::BadKey)?;
        Ok(SealPublicKey(bytes.try_into().map_err(|_| SealError::BadKey)?))
    }
}

impl Serialize for SealPublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SealPublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The secret half: a peer's long-term key, or a requester's one-time key. Kept in locked,
/// non-dumpable memory (keyward-core's [`LockedBytes`]) and wiped on drop.
pub struct SealSecret(LockedBytes);

impl fmt::Debug for SealSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealSecret(<secret>)")
    }
}

/// Why a secret key could not be kept.
fn unlockable(e: std::io::Error) -> keyward_core::Error {
    keyward_core::Error::io("cannot lock in memory", "a sealing key", e)
}

impl SealSecret {
    /// A fresh key from the system's random source (through HKDF, as RFC 9180 `DeriveKeyPair`).
    pub fn generate() -> keyward_core::Result<Self> {
        let seed = keyward_core::random::secret_bytes(32)?;
        let (secret, _) = Kem::derive_keypair(&seed);
        let mut bytes = secret.to_bytes();
        let locked = LockedBytes::copy_of(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes[..]);
        Ok(SealSecret(locked.map_err(unlockable)?))
    }

    /// Its public key.
    pub fn public(&self) -> SealPublicKey {
        let secret = self.private();
        let public = Kem::sk_to_pk(&secret);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        SealPublicKey(bytes)
    }

    fn private(&self) -> <Kem as hpke::Kem>::PrivateKey {
        // 32 bytes always parse: X25519 clamps any value.
        <Kem as hpke::Kem>::PrivateKey::from_bytes(self.0.as_slice())
            .unwrap_or_else(|_| Kem::derive_keypair(self.0.as_slice()).0)
    }

    /// The key file's contents: one line of base64 (the file is written 0600).
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let text = Zeroizing::new(to_base64(self.0.as_slice()));
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len() + 1));
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        bytes
    }

    /// Reads a key file.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SealError::BadKey)?;
        let raw = Zeroizing::new(from_base64(text.trim()).ok_or(SealError::BadKey)?);
        if raw.len() != 32 {
            return Err(SealError::BadKey);
        }
        LockedBytes::copy_of(&raw).map(SealSecret).map_err(|_| SealError::Unlockable)
    }
}

/// A sealed payload: the HPKE encapsulated key and the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// The sender's encapsulated (ephemeral) key, base64.
    pub enc: String,
    /// Ciphertext and tag, base64.
    pub ct: String,
}

/// Seals `plaintext` to `to` for `purpose`, bound to `binding` (associated data).
pub fn seal(
    to: &SealPublicKey,
    purpose: Purpose,
    binding: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, SealError> {
    let recipient =
        <Kem as hpke::Kem>::PublicKey::from_bytes(&to.0).map_err(|_| SealError::BadKey)?;
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
        &OpModeS::Base,
        &recipient,
        purpose.info(),
        plaintext,
        binding,
    )
    .map_err(|_| SealError::Unsealable)?;
    Ok(Sealed { enc: to_base64(&enc.to_bytes()), ct: to_base64(&ct) })
}

/// Opens what [`seal`] made for `with`'s public key, the same purpose and binding.
pub fn open(
    with: &SealSecret,
    purpose: Purpose,
    binding: &[u8],
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.ct.len() > MAX_SEALED * 4 / 3 + 4 {
        return Err(SealError::Malformed);
    }
    let enc = from_base64(&sealed.enc).ok_or(SealError::Malformed)?;
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).map_err(|_| SealError::Malformed)?;
    let ct = from_base64(&sealed.ct).ok_or(SealError::Malformed)?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &with.private(),
        &enc,
        purpose.info(),
        &ct,
        binding,
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::DoesNotOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_purpose_and_binding() {
        let peer = SealSecret::generate().expect("rng");
        let sealed = seal(&peer.public(), Purpose::StoredShare, b"set-1", b"share").expect("seal");
        let opened = open(&peer, Purpose::StoredShare, b"set-1", &sealed).expect("open");
        assert_eq!(opened.as_slice(), b"share");
        let other = SealSecret::generate().expect("rng");
        assert_eq!(
            open(&other, Purpose::StoredShare, b"set-1", &sealed),
            Err(SealError::DoesNotOpen)
        );
        assert_eq!(open(&peer, Purpose::Release, b"set-1", &sealed), Err(SealError::DoesNotOpen));
        assert_eq!(
            open(&peer, Purpose::StoredShare, b"set-2", &sealed),
            Err(SealError::DoesNotOpen)
        );
        let mut changed = sealed.clone();
        changed.ct = to_base64(&{
            let mut ct = from_base64(&sealed.ct).expect("b64");
            ct[0] ^= 1;
            ct
        });
        assert_eq!(
            open(&peer, Purpose::StoredShare, b"set-1", &changed),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn keys_round_trip_through_text_and_files() {
        let secret = SealSecret::generate().expect("rng");
        let again = SealSecret::from_file_bytes(&secret.to_file_bytes()).expect("file");
        assert_eq!(again.public(), secret.public());
        let text = secret.public().to_string();
        assert_eq!(text.parse::<SealPublicKey>().expect("parse"), secret.public());
        assert!("x25519:AAAA".parse::<SealPublicKey>().is_err());
        assert!(text.trim_start_matches("x25519:").parse::<SealPublicKey>().is_err());
    }
}
