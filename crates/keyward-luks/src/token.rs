//! keyward's LUKS2 token: the record, in the volume header itself, of which keyslot is
//! keyward's, for which key, at which rotation. A token in state `pending` is also the journal
//! entry of a rotation (or an enrollment) under way: it is written before its keyslot exists,
//! so a keyslot keyward added is never one nobody can name. Spec: docs/formats/luks2-token.md.

use keyward_core::Fingerprint;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The token's LUKS2 `type`.
pub const TOKEN_TYPE: &str = "keyward";
/// The version of the token's fields that this keyward writes and reads.
pub const TOKEN_VERSION: u32 = 1;

/// Where a keyward pair (keyslot and token) is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    /// Written before its keyslot; the keyslot may or may not exist yet.
    Pending,
    /// Its keyslot exists, opens with the passphrase of its sequence, and is assigned to it.
    Committed,
}

/// One keyward token, as read from or written to a LUKS2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywardToken {
    /// Pending or committed.
    pub state: TokenState,
    /// The rotation's number: 1 at enrollment, one more at each rotation. The keyslot's
    /// passphrase is derived with it.
    pub sequence: u64,
    /// The keyslot this pair is made of (also while pending, when LUKS2 cannot yet assign it).
    pub keyslot: u32,
    /// A random id (32 hex digits) made at enrollment and kept through rotations; the keyslot's
    /// passphrase is derived with it.
    pub enrollment: String,
    /// The id of the keybox whose key opens the keyslot.
    pub keybox: String,
    /// That key's fingerprint: checked before anything is derived from the key.
    pub fingerprint: Fingerprint,
    /// The keyslots LUKS2 has assigned the token to (its own `keyslots` field).
    pub assigned: Vec<u32>,
}

/// Why a token of type `keyward` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Written by a keyward that knows another version of the fields.
    #[error(
        "it is version {found} of keyward's token, and this keyward reads version {TOKEN_VERSION}; use the keyward that wrote it"
    )]
    Version {
        /// The version found (0 when the field is missing).
        found: u64,
    },
    /// A field is missing, unknown, or of the wrong shape.
    #[error("its fields are not keyward's ({0})")]
    Fields(String),
}

/// The token's JSON, as LUKS2 stores it. LUKS2's own fields (`type`, `keyslots`) are first.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    #[serde(rename = "type")]
    kind: String,
    keyslots: Vec<String>,
    keyward_version: u32,
    state: TokenState,
    sequence: u64,
    keyslot: u32,
    enrollment: String,
    keybox: String,
    fingerprint: String,
}

impl KeywardToken {
    /// Whether `json` is a token of keyward's type (readable or not).
    pub fn is_keyward(json: &Value) -> bool {
        json.get("type").and_then(Value::as_str) == Some(TOKEN_TYPE)
    }

    /// Reads a token of keyward's type; the version is checked before any other field.
    pub fn from_json(json: &Value) -> Result<Self, TokenError> {
        let version = json.get("keyward_version").and_then(Value::as_u64).unwrap_or(0);
        if version != u64::from(TOKEN_VERSION) {
            return Err(TokenError::Version { found: version });
        }
        let stored: Stored =
            serde_json::from_value(json.clone()).map_err(|e| TokenError::Fields(e.to_string()))?;
        if stored.kind != TOKEN_TYPE {
            return Err(TokenError::Fields(format!("type {:?}", stored.kind)));
        }
        let fingerprint = stored
            .fingerprint
            .parse::<Fingerprint>()
            .map_err(|e| TokenError::Fields(format!("fingerprint: {e}")))?;
        let assigned = stored
            .keyslots
            .iter()
            .map(|k| k.parse::<u32>().map_err(|_| TokenError::Fields(format!("keyslot {k:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if stored.enrollment.len() != 32
            || !stored.enrollment.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(TokenError::Fields("enrollment: not 32 hex digits".into()));
        }
        Ok(KeywardToken {
            state: stored.state,
            sequence: stored.sequence,
            keyslot: stored.keyslot,
            enrollment: stored.enrollment,
            keybox: stored.keybox,
            fingerprint,
            assigned,
        })
    }

    /// The token's JSON. A pending token is assigned to no keyslot (LUKS2 refuses an assignment
    /// to a keyslot that does not exist yet); a committed one to its own keyslot only.
    pub fn to_json(&self) -> Value {
        let keyslots = match self.state {
            TokenState::Pending => vec![],
            TokenState::Committed => vec![self.keyslot.to_string()],
        };
        let stored = Stored {
            kind: TOKEN_TYPE.into(),
            keyslots,
            keyward_version: TOKEN_VERSION,
            state: self.state,
            sequence: self.sequence,
            keyslot: self.keyslot,
            enrollment: self.enrollment.clone(),
            keybox: self.keybox.clone(),
            fingerprint: self.fingerprint.to_string(),
        };
        // A struct of strings and numbers always serialises.
        serde_json::to_value(stored).unwrap_or(Value::Null)
    }

    /// The same pair, committed: assigned to its keyslot.
    pub fn committed(&self) -> Self {
        KeywardToken { state: TokenState::Committed, assigned: vec![self.keyslot], ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn token(state: TokenState, sequence: u64, keyslot: u32) -> KeywardToken {
        let assigned = if state == TokenState::Committed { vec![keyslot] } else { vec![] };
        KeywardToken {
            state,
            sequence,
            keyslot,
            enrollment: "00112233445566778899aabbccddeeff".into(),
            keybox: "kb-1".into(),
            fingerprint: Fingerprint::from_bytes([7; 32]),
            assigned,
        }
    }

    #[test]
    fn a_token_reads_back_as_written_with_luks2_fields_first() {
        for t in [token(TokenState::Pending, 2, 3), token(TokenState::Committed, 1, 1)] {
            let json = t.to_json();
            assert!(KeywardToken::is_keyward(&json));
            let text = json.to_string();
            assert!(text.starts_with(r#"{"type":"keyward","keyslots":["#), "{text}");
            assert_eq!(KeywardToken::from_json(&json), Ok(t));
        }
        assert_eq!(
            token(TokenState::Pending, 2, 3).committed(),
            token(TokenState::Committed, 2, 3)
        );
    }

    #[test]
    fn another_version_a_missing_or_unknown_field_is_refused_by_name() {
        let good = token(TokenState::Committed, 1, 1).to_json();
        let mut later = good.clone();
        later["keyward_version"] = json!(2);
        assert_eq!(KeywardToken::from_json(&later), Err(TokenError::Version { found: 2 }));
        let mut unversioned = good.clone();
        unversioned.as_object_mut().map(|o| o.remove("keyward_version"));
        assert_eq!(KeywardToken::from_json(&unversioned), Err(TokenError::Version { found: 0 }));
        let mut extra = good.clone();
        extra["passphrase"] = json!("x");
        assert!(matches!(KeywardToken::from_json(&extra), Err(TokenError::Fields(_))));
        let mut missing = good.clone();
        missing.as_object_mut().map(|o| o.remove("fingerprint"));
        assert!(matches!(KeywardToken::from_json(&missing), Err(TokenError::Fields(_))));
        let mut bad_enrollment = good.clone();
        bad_enrollment["enrollment"] = json!("xyz");
        assert!(matches!(KeywardToken::from_json(&bad_enrollment), Err(TokenError::Fields(_))));
        let mut bad_slot = good;
        bad_slot["keyslots"] = json!(["one"]);
        assert!(matches!(KeywardToken::from_json(&bad_slot), Err(TokenError::Fields(_))));
    }

    proptest! {
        #[test]
        fn any_token_round_trips(committed: bool, sequence: u64, keyslot in 0u32..32, fp: [u8; 32], keybox in "[a-z0-9-]{1,40}") {
            let state = if committed { TokenState::Committed } else { TokenState::Pending };
            let t = KeywardToken { keybox, fingerprint: Fingerprint::from_bytes(fp), ..token(state, sequence, keyslot) };
            prop_assert_eq!(KeywardToken::from_json(&t.to_json()), Ok(t));
        }

        #[test]
        fn no_json_makes_the_reader_panic(text in ".{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = KeywardToken::from_json(&value);
            }
        }
    }
}
