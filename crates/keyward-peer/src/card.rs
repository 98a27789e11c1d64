//! The peer card: what a node needs to use a peer — where it listens, its signing identity, the
//! key shares are sealed to, and the hash of its TLS certificate (clients pin it). Not secret;
//! `keyward peer init` writes it, and the owner passes it to `enroll peers --peer CARD`.

use crate::slot::PeerRecord;
use keyward_service::PublicKey;
use serde::{Deserialize, Serialize};

use crate::seal::SealPublicKey;

/// The card format's name and version.
pub const CARD_FORMAT: &str = "keyward-peer-card";
/// The card format version this build writes and reads.
pub const CARD_VERSION: u32 = 1;
/// Largest card file read.
pub const MAX_CARD_BYTES: usize = 4096;

/// Why a card was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Not JSON of the card's shape.
    #[error("not a keyward peer card: {0}")]
    Malformed(String),
    /// Another format version.
    #[error("peer card version {0} is not supported by this keyward")]
    Version(u32),
}

impl CardError {
    /// A card that cannot be used is the wrong file given: a usage error.
    pub fn class(&self) -> keyward_core::ErrorClass {
        match self {
            CardError::Malformed(_) | CardError::Version(_) => keyward_core::ErrorClass::Usage,
        }
    }
}

/// A peer card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerCard {
    /// Always [`CARD_FORMAT`].
    pub format: String,
    /// [`CARD_VERSION`].
    pub version: u32,
    /// `https://HOST:PORT`.
    pub url: String,
    /// The peer's Ed25519 identity.
    pub identity: PublicKey,
    /// The X25519 key shares are sealed to.
    pub seal_key: SealPublicKey,
    /// SHA-256 of its TLS certificate, colon hex.
    pub certificate: String,
}

impl PeerCard {
    /// A card for a new peer.
    pub fn new(
        url: &str,
        identity: PublicKey,
        seal_key: SealPublicKey,
        certificate: String,
    ) -> Self {
        PeerCard {
            format: CARD_FORMAT.into(),
            version: CARD_VERSION,
            url: url.trim_end_matches('/').to_string(),
            identity,
            seal_key,
            certificate,
        }
    }

    /// Reads a card file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, CardError> {
        if bytes.len() > MAX_CARD_BYTES {
            return Err(CardError::Malformed("too large".into()));
        }
        let card: PeerCard =
            serde_json::from_slice(bytes).map_err(|e| CardError::Malformed(e.to_string()))?;
        if card.format != CARD_FORMAT {
            return Err(CardError::Malformed(format!("format is `{}`", card.format)));
        }
        if card.version != CARD_VERSION {
            return Err(CardError::Version(card.version));
        }
        if !card.url.starts_with("https://") {
            return Err(CardError::Malformed("the url is not https://".into()));
        }
        card.pin()?;
        Ok(card)
    }

    /// The card as a file (pretty JSON and a newline).
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text.into_bytes()
    }

    /// The certificate hash as bytes, for pinning.
    pub fn pin(&self) -> Result<[u8; 32], CardError> {
        keyward_service::tls::parse_pin(&self.certificate)
            .ok_or_else(|| CardError::Malformed("the certificate is not a SHA-256 hash".into()))
    }

    /// What a keybox's peers slot records of this peer.
    pub fn to_record(&self) -> PeerRecord {
        PeerRecord {
            url: self.url.clone(),
            identity: self.identity.to_string(),
            seal_key: self.seal_key.to_string(),
            certificate: self.certificate.clone(),
        }
    }

    /// The card a peers slot recorded.
    pub fn from_record(record: &PeerRecord) -> Result<Self, CardError> {
        let bad = |what: &str| CardError::Malformed(format!("the slot's {what}"));
        let card = PeerCard::new(
            &record.url,
            record.identity.parse().map_err(|_| bad("peer identity"))?,
            record.seal_key.parse().map_err(|_| bad("peer seal key"))?,
            record.certificate.clone(),
        );
        card.pin()?;
        Ok(card)
    }

    /// A short name for messages: the URL.
    pub fn name(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::SealSecret;
    use keyward_service::SigningIdentity;

    fn card() -> PeerCard {
        PeerCard::new(
            "https://127.0.0.1:7001/",
            SigningIdentity::generate().expect("rng").public(),
            SealSecret::generate().expect("rng").public(),
            keyward_core::fingerprint::colon_hex(&[7u8; 32]),
        )
    }

    #[test]
    fn round_trips_through_its_file_and_the_slot_record() {
        let card = card();
        assert_eq!(card.url, "https://127.0.0.1:7001");
        assert_eq!(PeerCard::parse(&card.to_file_bytes()).expect("parse"), card);
        assert_eq!(PeerCard::from_record(&card.to_record()).expect("record"), card);
    }

    #[test]
    fn other_versions_formats_and_plain_http_are_refused() {
        let card = card();
        let text = String::from_utf8(card.to_file_bytes()).expect("utf8");
        for (from, to) in [
            ("\"version\": 1", "\"version\": 2"),
            ("keyward-peer-card", "keyward-hub"),
            ("https://", "http://"),
            ("\"url\"", "\"extra\": 1, \"url\""),
        ] {
            let changed = text.replace(from, to);
            assert!(PeerCard::parse(changed.as_bytes()).is_err(), "{from} → {to}");
        }
    }
}
