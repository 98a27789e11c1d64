//! Single-use values that expire, bounded in number: the one table every nonce a service keeps
//! lives in. Two uses, two policies for a full table:
//!
//! - nonces of signed requests the service has *seen* (a second sighting is a replay): a full
//!   table refuses new ones ([`WhenFull::Refuse`]), since forgetting a live nonce would let its
//!   request be replayed. Only verified requests are recorded; where anyone can make a key that
//!   verifies (a peer's owners), a per-source [`Tag`] limit refuses only the source over it;
//! - challenges the service *hands out* (a peer's release nonces), each taken once: a full table
//!   forgets the oldest ([`WhenFull::EvictOldest`]). Each challenge carries tags (the source that
//!   asked, what it is for), and each tag may hold only so many ([`Tag::limit`]), its oldest
//!   pushed out first: a flood from one source only pushes out its own challenges, one against
//!   one owner needs many sources to push out a real requester's — who uses its challenge
//!   within milliseconds of getting it.
//!
//! Nonces are 16 bytes, written as 32 lower-case hex digits.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

/// A nonce's bytes.
pub type Nonce = [u8; 16];

/// What a full table (or a full tag) does with one more nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse it.
    Refuse,
    /// Forget the oldest to make room.
    EvictOldest,
}

/// How many nonces a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceLimits {
    /// Most nonces held at once.
    pub capacity: usize,
    /// What happens when it, or a tag's limit, is reached.
    pub when_full: WhenFull,
}

/// A tag on a nonce, and the most nonces its value may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// The value (`src:10.0.0.1`, `for:box-7`).
    pub value: &'a str,
    /// The most held under it.
    pub limit: usize,
}

/// Why a nonce was not recorded or taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Not 32 hex digits.
    #[error("the nonce is not 32 hex digits")]
    Malformed,
    /// Recorded already (a replay).
    #[error("nonce already seen (a replayed request)")]
    Seen,
    /// The table (or the tag) is full and refuses.
    #[error("too many nonces outstanding; try again shortly")]
    Full,
    /// Not held: never handed out, already used, or pushed out by newer ones.
    #[error("unknown or already used nonce; ask for a new one")]
    Unknown,
    /// Held, but past its expiry.
    #[error("the nonce has expired; ask for a new one")]
    Expired,
    /// The table cannot be used: a thread failed while changing it. Nothing is accepted.
    #[error("the nonce table is unusable after a failure")]
    Broken,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    expires: i64,
    tags: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    entries: HashMap<Nonce, Entry>,
    /// Insertion order, oldest first (seq → nonce).
    order: BTreeMap<u64, Nonce>,
    /// Per tag, its nonces oldest first.
    by_tag: HashMap<String, VecDeque<(u64, Nonce)>>,
}

impl State {
    fn remove(&mut self, nonce: &Nonce) -> Option<Entry> {
        let entry = self.entries.remove(nonce)?;
        self.order.remove(&entry.seq);
        for tag in &entry.tags {
            if let Some(queue) = self.by_tag.get_mut(tag) {
                queue.retain(|(seq, _)| *seq != entry.seq);
                if queue.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
        Some(entry)
    }

    fn remove_oldest(&mut self) {
        if let Some((_, nonce)) = self.order.first_key_value().map(|(s, n)| (*s, *n)) {
            self.remove(&nonce);
        }
    }

    /// Drops expired nonces from the old end (a table's nonces share one lifetime, so the
    /// oldest expire first; one that lives longer only waits a little longer to be dropped).
    fn purge(&mut self, now: i64) {
        while let Some((_, nonce)) = self.order.first_key_value().map(|(s, n)| (*s, *n)) {
            match self.entries.get(&nonce) {
                Some(entry) if entry.expires < now => {
                    self.remove(&nonce);
                }
                _ => break,
            }
        }
    }
}

/// A bounded table of nonces.
#[derive(Debug)]
pub struct NonceTable {
    limits: NonceLimits,
    state: Mutex<State>,
}

/// Parses a nonce's text form.
pub fn parse(text: &str) -> Result<Nonce, NonceError> {
    if text.len() != 32 {
        return Err(NonceError::Malformed);
    }
    keyward_core::encoding::from_hex(text)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(NonceError::Malformed)
}

/// A fresh random nonce and its text form.
pub fn fresh() -> keyward_core::Result<(Nonce, String)> {
    let nonce = keyward_core::random::array::<16>()?;
    Ok((nonce, keyward_core::encoding::to_hex(&nonce)))
}

impl NonceTable {
    /// An empty table.
    pub fn new(limits: NonceLimits) -> Self {
        NonceTable { limits, state: Mutex::new(State::default()) }
    }

    /// Records `nonce` until `expires`, under `tags`. A nonce held already is [`NonceError::Seen`];
    /// a full table or tag refuses ([`NonceError::Full`]) or forgets its oldest, as configured.
    /// A poisoned lock refuses: a nonce is never accepted unchecked.
    pub fn insert(
        &self,
        nonce: Nonce,
        tags: &[Tag<'_>],
        expires: i64,
        now: i64,
    ) -> Result<(), NonceError> {
        let mut state = self.state.lock().map_err(|_| NonceError::Broken)?;
        state.purge(now);
        if let Some(entry) = state.entries.get(&nonce) {
            if entry.expires >= now {
                return Err(NonceError::Seen);
            }
            state.remove(&nonce);
        }
        let evict = self.limits.when_full == WhenFull::EvictOldest;
        for tag in tags {
            let full = state.by_tag.get(tag.value).is_some_and(|q| q.len() >= tag.limit.max(1));
            if full && !evict {
                return Err(NonceError::Full);
            }
            if full
                && let Some((_, oldest)) =
                    state.by_tag.get(tag.value).and_then(|q| q.front().copied())
            {
                state.remove(&oldest);
            }
        }
        if state.entries.len() >= self.limits.capacity {
            if !evict {
                return Err(NonceError::Full);
            }
            state.remove_oldest();
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let tags: Vec<String> = tags.iter().map(|t| t.value.to_string()).collect();
        for tag in &tags {
            state.by_tag.entry(tag.clone()).or_default().push_back((seq, nonce));
        }
        state.order.insert(seq, nonce);
        state.entries.insert(nonce, Entry { seq, expires, tags });
        Ok(())
    }

    /// Uses up `nonce`: its tags, once, and only before it expires.
    pub fn take(&self, nonce: &Nonce, now: i64) -> Result<Vec<String>, NonceError> {
        let mut state = self.state.lock().map_err(|_| NonceError::Broken)?;
        let entry = state.remove(nonce).ok_or(NonceError::Unknown)?;
        if entry.expires < now {
            return Err(NonceError::Expired);
        }
        Ok(entry.tags)
    }

    /// How many nonces are held.
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.entries.len())
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> Nonce {
        let mut nonce = [0u8; 16];
        nonce[..4].copy_from_slice(&i.to_be_bytes());
        nonce
    }

    #[test]
    fn a_seen_table_refuses_replays_and_refuses_when_full() {
        let table = NonceTable::new(NonceLimits { capacity: 3, when_full: WhenFull::Refuse });
        assert_eq!(table.insert(n(1), &[], 110, 100), Ok(()));
        assert_eq!(table.insert(n(1), &[], 110, 101), Err(NonceError::Seen));
        table.insert(n(2), &[], 110, 100).expect("room");
        table.insert(n(3), &[], 110, 100).expect("room");
        assert_eq!(table.insert(n(4), &[], 110, 100), Err(NonceError::Full), "never forgets");
        assert_eq!(table.insert(n(4), &[], 130, 111), Ok(()), "expired ones make room");
        assert_eq!(table.insert(n(1), &[], 130, 111), Ok(()), "an expired nonce is forgotten");
    }

    #[test]
    fn challenges_are_taken_once_and_a_flood_pushes_out_only_its_own() {
        let table =
            NonceTable::new(NonceLimits { capacity: 100, when_full: WhenFull::EvictOldest });
        let tags = |source: &'static str, asked: &'static str| {
            [Tag { value: source, limit: 4 }, Tag { value: asked, limit: 16 }]
        };
        table.insert(n(1), &tags("src:a", "for:owner-1"), 160, 100).expect("insert");
        assert_eq!(table.take(&n(1), 101), Ok(vec!["src:a".into(), "for:owner-1".into()]));
        assert_eq!(table.take(&n(1), 101), Err(NonceError::Unknown), "single use");

        table.insert(n(2), &tags("src:b", "for:owner-1"), 160, 100).expect("the real requester");
        for i in 10..1000 {
            // One source flooding, for the same owner and for another.
            let asked = if i % 2 == 0 { "for:owner-1" } else { "for:owner-2" };
            table.insert(n(i), &tags("src:flood", asked), 160, 100).expect("insert");
        }
        assert!(table.len() <= 100);
        assert!(table.take(&n(2), 101).is_ok(), "the flood did not push out another's nonce");

        table.insert(n(3), &[Tag { value: "src:c", limit: 4 }], 150, 100).expect("insert");
        assert_eq!(table.take(&n(3), 151), Err(NonceError::Expired));
    }

    #[test]
    fn a_full_evicting_table_forgets_its_oldest() {
        let table = NonceTable::new(NonceLimits { capacity: 2, when_full: WhenFull::EvictOldest });
        for i in 1..=3 {
            table.insert(n(i), &[], 200, 100).expect("insert");
        }
        assert_eq!(table.take(&n(1), 100), Err(NonceError::Unknown));
        assert!(table.take(&n(3), 100).is_ok());
    }

    #[test]
    fn text_forms_round_trip() {
        let (nonce, text) = fresh().expect("rng");
        assert_eq!(parse(&text), Ok(nonce));
        assert_eq!(parse("xyz"), Err(NonceError::Malformed));
    }
}
