//! Putting K together from peers' answers, robustly: any `threshold` shares give *some* bytes,
//! so a candidate counts only if its fingerprint is the expected one. With more answers than
//! needed, subsets are searched until one fits, and every share that does not fit that key is
//! named — a peer that lies (or whose row was edited) is found, and recovery still succeeds
//! while `threshold` honest shares remain.

use keyward_core::shamir::{self, Share};
use keyward_core::{DataKey, ExpectedFingerprint};

/// One share and the peer it came from.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The peer (its URL), for messages.
    pub peer: String,
    /// The share.
    pub share: Share,
}

/// What reconstruction found.
#[derive(Debug)]
pub struct Reconstructed {
    /// The key, with the expected fingerprint.
    pub key: DataKey,
    /// Peers whose shares do not fit it.
    pub misfits: Vec<String>,
}

/// Why no key came out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconstructError {
    /// Fewer answers than the threshold.
    #[error("{got} of the {needed} shares needed")]
    TooFew {
        /// Answers with a share.
        got: usize,
        /// The threshold.
        needed: usize,
    },
    /// No subset of the answers gives a key with the expected fingerprint.
    #[error("no {needed} of the {got} shares give the key with the expected fingerprint")]
    NoFit {
        /// Answers with a share.
        got: usize,
        /// The threshold.
        needed: usize,
    },
}

/// The next k-subset of 0..n in lexicographic order, in place; `false` after the last.
fn next_subset(indices: &mut [usize], n: usize) -> bool {
    let k = indices.len();
    for i in (0..k).rev() {
        if indices[i] < n - k + i {
            indices[i] += 1;
            for j in i + 1..k {
                indices[j] = indices[j - 1] + 1;
            }
            return true;
        }
    }
    false
}

fn candidate(shares: &[&Share], expected: &ExpectedFingerprint) -> Option<DataKey> {
    let owned: Vec<Share> = shares.iter().map(|s| (*s).clone()).collect();
    let bytes = shamir::combine(&owned).ok()?;
    let key = DataKey::import(bytes).ok()?;
    // Either of the key's fingerprints names it (a Proxmox Backup key's owner may have
    // recorded PBS's).
    keyward_pbs::KeyFingerprints::of(key.expose()).named_by(expected).is_some().then_some(key)
}

/// Finds the key among `answers` (threshold `k`) whose fingerprint is `expected`.
pub fn reconstruct(
    answers: &[Answer],
    k: usize,
    expected: &ExpectedFingerprint,
) -> Result<Reconstructed, ReconstructError> {
    let n = answers.len();
    if n < k || k < 2 {
        return Err(ReconstructError::TooFew { got: n, needed: k });
    }
    let mut indices: Vec<usize> = (0..k).collect();
    loop {
        let subset: Vec<&Share> = indices.iter().map(|&i| &answers[i].share).collect();
        if let Some(key) = candidate(&subset, expected) {
            // Each share outside the subset fits if it stands in for one inside and the key
            // stays the same.
            let base = &subset[..k - 1];
            let misfits = (0..n)
                .filter(|i| !indices.contains(i))
                .filter(|&i| {
                    let mut trial = base.to_vec();
                    trial.push(&answers[i].share);
                    candidate(&trial, expected).is_none()
                })
                .map(|i| answers[i].peer.clone())
                .collect();
            return Ok(Reconstructed { key, misfits });
        }
        if !next_subset(&mut indices, n) {
            return Err(ReconstructError::NoFit { got: n, needed: k });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::Fingerprint;

    fn answers(key: &[u8], k: u8, n: u8) -> Vec<Answer> {
        shamir::split(key, k, n)
            .expect("split")
            .into_iter()
            .enumerate()
            .map(|(i, share)| Answer { peer: format!("peer-{i}"), share })
            .collect()
    }

    /// Issue 23.5: the owner of a Proxmox Backup key may have recorded its PBS fingerprint.
    #[test]
    fn the_key_is_found_by_its_pbs_fingerprint_too() {
        let key = [42u8; 32];
        let pbs = keyward_pbs::pbs_fingerprint(&key);
        let short: ExpectedFingerprint = pbs.short().parse().expect("short form");
        let mut all = answers(&key, 2, 3);
        all[0].share.y = answers(&[9u8; 32], 2, 3)[0].share.y.clone();
        let found = reconstruct(&all, 2, &short).expect("found by PBS's fingerprint");
        assert_eq!(found.key.expose(), key);
        assert_eq!(found.misfits, ["peer-0"]);
    }

    #[test]
    fn a_lying_peer_is_named_and_the_key_still_comes_out() {
        let key = [42u8; 32];
        let expected = ExpectedFingerprint::Full(Fingerprint::of(&key));
        let mut all = answers(&key, 3, 5);
        // A liar answers a share of some other key, at its own x.
        let lies = answers(&[9u8; 32], 3, 5);
        let lie = |all: &mut Vec<Answer>, i: usize| all[i].share.y = lies[i].share.y.clone();
        lie(&mut all, 1);
        let found = reconstruct(&all, 3, &expected).expect("three honest shares remain");
        assert_eq!(found.key.expose(), key);
        assert_eq!(found.misfits, ["peer-1"]);
        // Two liars of five, threshold 3: still three honest.
        lie(&mut all, 4);
        let found = reconstruct(&all, 3, &expected).expect("still");
        assert_eq!(found.misfits, ["peer-1", "peer-4"]);
        // Three liars: no three shares fit.
        lie(&mut all, 0);
        assert_eq!(
            reconstruct(&all, 3, &expected).map(|r| r.misfits),
            Err(ReconstructError::NoFit { got: 5, needed: 3 })
        );
        // A single flipped bit is caught as well.
        let mut flipped = answers(&key, 3, 5);
        flipped[2].share.y[31] ^= 0x01;
        assert_eq!(reconstruct(&flipped, 3, &expected).expect("fits").misfits, ["peer-2"]);
    }

    #[test]
    fn fewer_than_the_threshold_never_give_the_key() {
        let key = [7u8; 32];
        let expected = ExpectedFingerprint::Full(Fingerprint::of(&key));
        let all = answers(&key, 3, 5);
        for a in 0..5 {
            for b in a + 1..5 {
                let two = [all[a].clone(), all[b].clone()];
                assert!(reconstruct(&two, 3, &expected).is_err());
                // Combined as if two were enough, they give another key.
                assert!(candidate(&[&all[a].share, &all[b].share], &expected).is_none());
            }
        }
    }

    #[test]
    fn subsets_are_enumerated_in_order() {
        let mut s = vec![0, 1];
        let mut seen = vec![s.clone()];
        while next_subset(&mut s, 4) {
            seen.push(s.clone());
        }
        assert_eq!(seen, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]);
    }
}
