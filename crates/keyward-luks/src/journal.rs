//! The rotation journal, read from the header: what keyward's tokens say about where an
//! enrollment, a rotation or a removal stopped. A pure function of the [`Header`]; what to do
//! about each state is in `workflow.rs`.
//!
//! A rotation from pair n (keyslot a) to n+1 (keyslot b) writes, in order: the token for n+1,
//! `pending` (1); keyslot b (2); the token committed and assigned to b (3); then wipes keyslot a
//! (4) and removes its token (5). An enrollment is steps 1–3 with no pair before it; a removal
//! is 4–5. After a stop at any point the header is in exactly one of the states below.

use crate::header::Header;
use crate::token::{KeywardToken, TokenError, TokenState};

/// A keyward token and its id in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The token's number.
    pub token: u32,
    /// What it says.
    pub record: KeywardToken,
}

/// Where keyward's pair is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journal {
    /// No keyward token: not enrolled.
    Empty,
    /// One committed pair, its keyslot present and assigned to its token.
    Settled(Entry),
    /// An enrollment or rotation stopped after step 1 or 2: the pending token is written, and
    /// its keyslot added or not. `committed` is the pair being rotated from, if any.
    Pending {
        /// The pair before (none for an enrollment).
        committed: Option<Entry>,
        /// The new pair's token.
        pending: Entry,
        /// Whether the new pair's keyslot exists (step 2 done).
        keyslot_added: bool,
    },
    /// A rotation stopped after step 3 or 4: the new pair is committed, the old one is still
    /// to be wiped (its keyslot, if still there, then its token).
    Superseded {
        /// The pair rotated from.
        old: Entry,
        /// The pair rotated to.
        new: Entry,
        /// Whether the old keyslot still exists (step 4 not done).
        old_keyslot_present: bool,
    },
    /// A committed token whose keyslot is gone: a removal stopped after step 4, or the keyslot
    /// was killed by hand. The token opens nothing.
    Orphaned(Entry),
}

/// A header that no step of keyward's leaves: reported, and nothing in it used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Anomaly {
    /// A token of keyward's type that cannot be read.
    #[error(
        "token {token} is of type keyward but {source}; keyward uses nothing until it is repaired or removed (`cryptsetup token remove --token-id {token}`)"
    )]
    Unreadable {
        /// The token.
        token: u32,
        /// Why.
        source: TokenError,
    },
    /// keyward tokens that no enrollment, rotation or removal leaves together.
    #[error("tokens {} are all keyward's, and no keyward step leaves them together; keyward uses none of them. Compare them with `cryptsetup token export --token-id N`, keep the one whose keyslot opens (`keyward luks status`), and remove the others with `cryptsetup token remove`", list(.tokens))]
    Conflicting {
        /// The tokens.
        tokens: Vec<u32>,
    },
    /// A committed token whose keyslot exists but is not (only) assigned to it.
    #[error("token {token} names keyslot {keyslot}, but LUKS2 assigns it to keyslots [{}]; the header was edited outside keyward. Assign it back with `cryptsetup token assign --token-id {token} --key-slot {keyslot}` or remove it", list(.assigned))]
    Unassigned {
        /// The token.
        token: u32,
        /// The keyslot it names.
        keyslot: u32,
        /// The keyslots LUKS2 assigns it to.
        assigned: Vec<u32>,
    },
    /// A token LUKS2 assigns to keyslots other than the one it names — one that does not exist,
    /// say. No keyward step leaves that: taking it for a token whose keyslot is gone would
    /// delete the name of a keyslot that is there.
    #[error("token {token} names keyslot {keyslot}, but LUKS2 assigns it to keyslots [{}]; the header was edited outside keyward, and keyward changes nothing in it. Compare it with `cryptsetup token export --token-id {token}`, then repair or remove it", list(.assigned))]
    AssignedElsewhere {
        /// The token.
        token: u32,
        /// The keyslot it names.
        keyslot: u32,
        /// The keyslots LUKS2 assigns it to.
        assigned: Vec<u32>,
    },
    /// A token's keyslot exists and is someone else's: it does not open with the passphrase
    /// derived for it.
    #[error(
        "token {token} names keyslot {keyslot}, which does not open with keyward's passphrase for it; it is not keyward's keyslot and keyward leaves it alone. Remove the token with `cryptsetup token remove --token-id {token}`"
    )]
    NotOurKeyslot {
        /// The token.
        token: u32,
        /// The keyslot.
        keyslot: u32,
    },
}

fn list(numbers: &[u32]) -> String {
    numbers.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

impl Journal {
    /// Reads the journal from `header`.
    pub fn read(header: &Header) -> Result<Journal, Anomaly> {
        let mut entries = Vec::new();
        for (token, record) in header.keyward_tokens() {
            match record {
                Ok(record) => entries.push(Entry { token, record: record.clone() }),
                Err(source) => return Err(Anomaly::Unreadable { token, source: source.clone() }),
            }
        }
        entries.sort_by_key(|e| e.record.sequence);
        // LUKS2 assigns a token to keyslots that exist, and keyward assigns its token to its own
        // keyslot only: every state below has each token assigned to its keyslot or to none.
        if let Some(odd) =
            entries.iter().find(|e| e.record.assigned.iter().any(|k| *k != e.record.keyslot))
        {
            return Err(Anomaly::AssignedElsewhere {
                token: odd.token,
                keyslot: odd.record.keyslot,
                assigned: odd.record.assigned.clone(),
            });
        }
        let present = |e: &Entry| header.keyslots.contains(&e.record.keyslot);
        let conflicting = |entries: &[Entry]| Anomaly::Conflicting {
            tokens: {
                let mut tokens: Vec<u32> = entries.iter().map(|e| e.token).collect();
                tokens.sort();
                tokens
            },
        };
        match entries.as_slice() {
            [] => Ok(Journal::Empty),
            [only] => match only.record.state {
                TokenState::Pending => Ok(Journal::Pending {
                    committed: None,
                    pending: only.clone(),
                    keyslot_added: present(only),
                }),
                TokenState::Committed if !present(only) => Ok(Journal::Orphaned(only.clone())),
                TokenState::Committed => {
                    settled(only)?;
                    Ok(Journal::Settled(only.clone()))
                }
            },
            [old, new] => {
                let follows = new.record.sequence == old.record.sequence.wrapping_add(1)
                    && new.record.keyslot != old.record.keyslot
                    && new.record.fingerprint == old.record.fingerprint
                    && new.record.keybox == old.record.keybox
                    && new.record.enrollment == old.record.enrollment
                    && old.record.state == TokenState::Committed
                    && present(old) == old.record.assigned.contains(&old.record.keyslot);
                if !follows {
                    return Err(conflicting(&entries));
                }
                match new.record.state {
                    TokenState::Pending if present(old) => Ok(Journal::Pending {
                        committed: Some(old.clone()),
                        pending: new.clone(),
                        keyslot_added: present(new),
                    }),
                    TokenState::Committed if present(new) => {
                        settled(new)?;
                        Ok(Journal::Superseded {
                            old: old.clone(),
                            new: new.clone(),
                            old_keyslot_present: present(old),
                        })
                    }
                    _ => Err(conflicting(&entries)),
                }
            }
            _ => Err(conflicting(&entries)),
        }
    }

    /// The pair that opens the volume now, if the journal is settled.
    pub fn settled(&self) -> Option<&Entry> {
        match self {
            Journal::Settled(entry) => Some(entry),
            _ => None,
        }
    }
}

/// Checks that a committed token whose keyslot exists is assigned to that keyslot only.
fn settled(entry: &Entry) -> Result<(), Anomaly> {
    if entry.record.assigned == [entry.record.keyslot] {
        Ok(())
    } else {
        Err(Anomaly::Unassigned {
            token: entry.token,
            keyslot: entry.record.keyslot,
            assigned: entry.record.assigned.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::Fingerprint;
    use proptest::prelude::*;

    use super::*;
    use crate::header::TokenEntry;

    fn record(state: TokenState, sequence: u64, keyslot: u32) -> KeywardToken {
        let token = KeywardToken {
            state: TokenState::Pending,
            sequence,
            keyslot,
            enrollment: "00112233445566778899aabbccddeeff".into(),
            keybox: "kb".into(),
            fingerprint: Fingerprint::from_bytes([1; 32]),
            assigned: vec![],
        };
        if state == TokenState::Committed { token.committed() } else { token }
    }

    fn header(keyslots: &[u32], tokens: &[(u32, KeywardToken)]) -> Header {
        Header {
            keyslots: keyslots.iter().copied().collect(),
            tokens: tokens
                .iter()
                .map(|(id, t)| (*id, TokenEntry::Keyward(Ok(t.clone()))))
                .collect(),
        }
    }

    /// What LUKS2 does to tokens when a keyslot is destroyed: they are unassigned from it.
    fn destroy(header: &mut Header, keyslot: u32) {
        header.keyslots.remove(&keyslot);
        for entry in header.tokens.values_mut() {
            if let TokenEntry::Keyward(Ok(t)) = entry {
                t.assigned.retain(|k| *k != keyslot);
            }
        }
    }

    #[test]
    fn every_stop_of_a_rotation_reads_as_its_own_state() {
        use TokenState::*;
        let old = record(Committed, 4, 1);
        let entry = |token, record: &KeywardToken| Entry { token, record: record.clone() };
        // Settled before.
        let mut h = header(&[0, 1], &[(0, old.clone())]);
        assert_eq!(Journal::read(&h), Ok(Journal::Settled(entry(0, &old))));
        // 1: the pending token.
        let pending = record(Pending, 5, 2);
        h.tokens.insert(1, TokenEntry::Keyward(Ok(pending.clone())));
        assert_eq!(
            Journal::read(&h),
            Ok(Journal::Pending {
                committed: Some(entry(0, &old)),
                pending: entry(1, &pending),
                keyslot_added: false
            })
        );
        // 2: its keyslot.
        h.keyslots.insert(2);
        assert_eq!(
            Journal::read(&h),
            Ok(Journal::Pending {
                committed: Some(entry(0, &old)),
                pending: entry(1, &pending),
                keyslot_added: true
            })
        );
        // 3: committed.
        let new = pending.committed();
        h.tokens.insert(1, TokenEntry::Keyward(Ok(new.clone())));
        assert_eq!(
            Journal::read(&h),
            Ok(Journal::Superseded {
                old: entry(0, &old),
                new: entry(1, &new),
                old_keyslot_present: true
            })
        );
        // 4: the old keyslot wiped.
        destroy(&mut h, 1);
        let mut unassigned = old.clone();
        unassigned.assigned.clear();
        assert_eq!(
            Journal::read(&h),
            Ok(Journal::Superseded {
                old: entry(0, &unassigned),
                new: entry(1, &new),
                old_keyslot_present: false
            })
        );
        // 5: its token removed.
        h.tokens.remove(&0);
        assert_eq!(Journal::read(&h), Ok(Journal::Settled(entry(1, &new))));
        // A removal, stopped between its keyslot and its token.
        destroy(&mut h, 2);
        let mut orphan = new.clone();
        orphan.assigned.clear();
        assert_eq!(Journal::read(&h), Ok(Journal::Orphaned(entry(1, &orphan))));
    }

    #[test]
    fn hand_made_headers_are_anomalies() {
        use TokenState::*;
        let one = record(Committed, 1, 1);
        // The same token twice.
        assert_eq!(
            Journal::read(&header(&[0, 1], &[(0, one.clone()), (3, one.clone())])),
            Err(Anomaly::Conflicting { tokens: vec![0, 3] })
        );
        // Two pairs of another key, a gap in the sequence, two pending, three tokens.
        let mut other_key = record(Committed, 2, 2);
        other_key.fingerprint = Fingerprint::from_bytes([2; 32]);
        for tokens in [
            vec![(0, one.clone()), (1, other_key)],
            vec![(0, one.clone()), (1, record(Committed, 3, 2))],
            vec![(0, record(Pending, 1, 1)), (1, record(Pending, 2, 2))],
            vec![(0, one.clone()), (1, record(Committed, 2, 2)), (2, record(Pending, 3, 3))],
        ] {
            assert!(matches!(
                Journal::read(&header(&[0, 1, 2], &tokens)),
                Err(Anomaly::Conflicting { .. })
            ));
        }
        // A committed token not assigned to its keyslot (`cryptsetup token unassign`).
        let mut unassigned = one.clone();
        unassigned.assigned.clear();
        assert_eq!(
            Journal::read(&header(&[0, 1], &[(0, unassigned)])),
            Err(Anomaly::Unassigned { token: 0, keyslot: 1, assigned: vec![] })
        );
        // A token naming a keyslot that is not there, while LUKS2 assigns it to the live one:
        // not an orphan whose token may go (that would leak the live keyslot).
        for missing in [2, 31, 32, 1000] {
            let mut elsewhere = record(Committed, 1, missing);
            elsewhere.assigned = vec![1];
            assert_eq!(
                Journal::read(&header(&[0, 1], &[(0, elsewhere)])),
                Err(Anomaly::AssignedElsewhere { token: 0, keyslot: missing, assigned: vec![1] }),
                "keyslot {missing}"
            );
        }
        // The same beside a genuine pair, in either role.
        let mut forged = record(Committed, 2, 31);
        forged.assigned = vec![1];
        assert!(matches!(
            Journal::read(&header(&[0, 1], &[(0, one.clone()), (1, forged)])),
            Err(Anomaly::AssignedElsewhere { token: 1, .. })
        ));
        // An unreadable keyward token.
        let mut h = header(&[0, 1], &[(0, one)]);
        h.tokens.insert(1, TokenEntry::Keyward(Err(TokenError::Version { found: 2 })));
        assert!(matches!(Journal::read(&h), Err(Anomaly::Unreadable { token: 1, .. })));
    }

    proptest! {
        /// Whatever tokens a header holds, the journal is one state or one anomaly, and a
        /// settled pair is always a committed token assigned to a keyslot that exists.
        #[test]
        fn any_header_reads_to_one_state_or_an_anomaly(
            keyslots in proptest::collection::btree_set(0u32..6, 0..6),
            tokens in proptest::collection::vec((0u32..6, any::<bool>(), 1u64..5, 0u32..6, any::<bool>()), 0..4),
        ) {
            let mut h = Header { keyslots: keyslots.clone(), ..Header::default() };
            for (id, committed, sequence, keyslot, assigned) in tokens {
                let mut t = record(if committed { TokenState::Committed } else { TokenState::Pending }, sequence, keyslot);
                if !assigned { t.assigned.clear(); }
                h.tokens.insert(id, TokenEntry::Keyward(Ok(t)));
            }
            if let Ok(Journal::Settled(entry)) = Journal::read(&h) {
                prop_assert_eq!(entry.record.state, TokenState::Committed);
                prop_assert!(keyslots.contains(&entry.record.keyslot));
                prop_assert_eq!(entry.record.assigned.clone(), vec![entry.record.keyslot]);
                prop_assert_eq!(h.keyward_tokens().count(), 1);
            }
        }
    }
}
