//! What keyward reads of a LUKS2 header: which keyslots exist, and every token with the
//! keyslots LUKS2 assigns it to, keyward's own parsed. Built from the header's JSON metadata
//! (what `cryptsetup luksDump --dump-json-metadata` prints), so it is a pure function of it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::token::{KeywardToken, TokenError};

/// One token of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEntry {
    /// A token of keyward's type, read (or not).
    Keyward(Result<KeywardToken, TokenError>),
    /// Anyone else's token (systemd's, clevis's, …), which keyward leaves alone.
    Other {
        /// Its LUKS2 type.
        kind: String,
        /// The keyslots it is assigned to.
        assigned: Vec<u32>,
    },
}

/// The keyslots and tokens of a LUKS2 header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The keyslots that exist.
    pub keyslots: BTreeSet<u32>,
    /// The tokens, by id.
    pub tokens: BTreeMap<u32, TokenEntry>,
}

/// Why JSON is not LUKS2 metadata keyward can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// An object LUKS2 metadata always has is missing.
    #[error("the LUKS2 metadata has no {0:?} object")]
    Missing(&'static str),
    /// A keyslot or token id that is not a number below the limit.
    #[error("{0:?} is not a LUKS2 keyslot or token number")]
    BadNumber(String),
}

/// LUKS2's limit on keyslots (and on tokens).
pub const MAX_KEYSLOTS: u32 = 32;

impl Header {
    /// Reads the header's JSON metadata. Fails only if it is not LUKS2 metadata at all.
    pub fn from_metadata(metadata: &Value) -> Result<Header, MetadataError> {
        let keyslots = object(metadata, "keyslots")?
            .keys()
            .map(|k| number(k))
            .collect::<Result<BTreeSet<u32>, MetadataError>>()?;
        let mut tokens = BTreeMap::new();
        for (id, token) in object(metadata, "tokens")? {
            let entry = if KeywardToken::is_keyward(token) {
                TokenEntry::Keyward(KeywardToken::from_json(token))
            } else {
                let kind = token.get("type").and_then(Value::as_str).unwrap_or("").to_string();
                let assigned = token
                    .get("keyslots")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter().filter_map(Value::as_str).filter_map(|k| k.parse().ok()).collect()
                    })
                    .unwrap_or_default();
                TokenEntry::Other { kind, assigned }
            };
            tokens.insert(number(id)?, entry);
        }
        Ok(Header { keyslots, tokens })
    }

    /// keyward's tokens, by id.
    pub fn keyward_tokens(&self) -> impl Iterator<Item = (u32, &Result<KeywardToken, TokenError>)> {
        self.tokens.iter().filter_map(|(id, entry)| match entry {
            TokenEntry::Keyward(token) => Some((*id, token)),
            TokenEntry::Other { .. } => None,
        })
    }

    /// The keyslots no token is assigned to: a passphrase typed by a person, or a keyslot
    /// whose token was removed. keyward never uses one of these.
    pub fn keyslots_without_token(&self) -> Vec<u32> {
        let assigned: BTreeSet<u32> = self
            .tokens
            .values()
            .flat_map(|entry| match entry {
                TokenEntry::Keyward(Ok(t)) => t.assigned.clone(),
                TokenEntry::Keyward(Err(_)) => vec![],
                TokenEntry::Other { assigned, .. } => assigned.clone(),
            })
            .collect();
        self.keyslots.iter().copied().filter(|k| !assigned.contains(k)).collect()
    }

    /// The lowest keyslot number that is neither in use nor named by a keyward token (a
    /// pending token names its keyslot before the keyslot exists).
    pub fn free_keyslot(&self) -> Option<u32> {
        let named: BTreeSet<u32> =
            self.keyward_tokens().filter_map(|(_, t)| t.as_ref().ok().map(|t| t.keyslot)).collect();
        (0..MAX_KEYSLOTS).find(|k| !self.keyslots.contains(k) && !named.contains(k))
    }
}

fn object<'a>(
    metadata: &'a Value,
    field: &'static str,
) -> Result<&'a serde_json::Map<String, Value>, MetadataError> {
    metadata.get(field).and_then(Value::as_object).ok_or(MetadataError::Missing(field))
}

fn number(id: &str) -> Result<u32, MetadataError> {
    id.parse::<u32>()
        .ok()
        .filter(|n| *n < MAX_KEYSLOTS)
        .ok_or_else(|| MetadataError::BadNumber(id.into()))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn keyslots_tokens_and_the_free_keyslot_are_read_from_the_metadata() {
        let metadata = json!({
            "keyslots": {"0": {}, "1": {}, "3": {}},
            "tokens": {
                "0": {"type": "systemd-tpm2", "keyslots": ["3"]},
                "1": {"type": "keyward", "keyslots": []},
            },
            "segments": {}, "digests": {}, "config": {}
        });
        let header = Header::from_metadata(&metadata).expect("metadata");
        assert_eq!(header.keyslots, BTreeSet::from([0, 1, 3]));
        assert_eq!(header.keyslots_without_token(), vec![0, 1]);
        assert_eq!(header.free_keyslot(), Some(2));
        assert!(matches!(header.tokens[&1], TokenEntry::Keyward(Err(_))));
        assert!(Header::from_metadata(&json!({"keyslots": {}})).is_err());
        assert!(Header::from_metadata(&json!({"keyslots": {"40": {}}, "tokens": {}})).is_err());
    }

    proptest! {
        #[test]
        fn no_metadata_makes_the_reader_panic(text in ".{0,300}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = Header::from_metadata(&value);
            }
        }
    }
}
