//! Shamir secret sharing over GF(256), byte by byte, through `vsss-rs` (constant time, no lookup
//! tables). A share is its x coordinate (1–255) and one y byte per secret byte. Combining does
//! not know whether a share is honest: any k shares give *some* bytes, so the caller must check
//! the result (keyward checks the key's fingerprint and names the share that does not fit).

use rand::SeedableRng;
use rand::rngs::StdRng;
use zeroize::Zeroizing;

/// Most shares one secret is split into.
pub const MAX_SHARES: u8 = 16;

/// Why a split or a combination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Threshold below 2 (one share would be the secret) or above the number of shares, or more
    /// shares than keyward spreads a key over.
    #[error(
        "a threshold must be at least 2 and at most the number of shares ({shares}, at most {MAX_SHARES}); {threshold} was asked"
    )]
    BadThreshold {
        /// The threshold asked.
        threshold: u8,
        /// The number of shares asked.
        shares: u8,
    },
    /// The shares given cannot be combined: too few, of different lengths, or two with one x.
    #[error("these shares cannot be combined: {0}")]
    Unusable(&'static str),
    /// The secret is empty.
    #[error("an empty secret cannot be shared")]
    EmptySecret,
}

impl ShareError {
    /// Which kind of failure it is: shares that do not combine are damage; the rest, asking.
    pub fn class(&self) -> crate::ErrorClass {
        match self {
            ShareError::Unusable(_) => crate::ErrorClass::Integrity,
            ShareError::BadThreshold { .. } | ShareError::EmptySecret => crate::ErrorClass::Usage,
        }
    }
}

/// One share of a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    /// The x coordinate, 1–255; distinct within one split.
    pub x: u8,
    /// f(x), one byte per secret byte.
    pub y: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share {{ x: {}, y: <{} bytes> }}", self.x, self.y.len())
    }
}

impl Share {
    /// `x ‖ y`, the form that is sealed and sent.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(self.y.len() + 1));
        bytes.push(self.x);
        bytes.extend_from_slice(&self.y);
        bytes
    }

    /// Reads `x ‖ y`; `None` if it is too short or x is 0 (the secret's own coordinate).
    pub fn from_bytes(bytes: &[u8]) -> Option<Share> {
        let (&x, y) = bytes.split_first()?;
        (x != 0 && !y.is_empty()).then(|| Share { x, y: Zeroizing::new(y.to_vec()) })
    }
}

/// Splits `secret` into `shares` shares, any `threshold` of which give it back.
pub fn split(secret: &[u8], threshold: u8, shares: u8) -> crate::Result<Vec<Share>> {
    if threshold < 2 || threshold > shares || shares > MAX_SHARES {
        return Err(ShareError::BadThreshold { threshold, shares }.into());
    }
    if secret.is_empty() {
        return Err(ShareError::EmptySecret.into());
    }
    // One OS draw seeds a ChaCha12 generator for the polynomial coefficients (vsss-rs draws a
    // word per coefficient; a system call each would be slow for long keys).
    let mut rng = StdRng::from_seed(crate::random::array::<32>()?);
    let raw =
        vsss_rs::Gf256::split_bytes(usize::from(threshold), usize::from(shares), secret, &mut rng)
            .map_err(|_| ShareError::Unusable("the split was refused"))?;
    let split: Vec<Share> = raw
        .into_iter()
        .filter_map(|bytes| {
            let bytes = Zeroizing::new(bytes);
            Share::from_bytes(&bytes)
        })
        .collect();
    // Every peer must get its share: a short split would record peers that hold nothing.
    if split.len() != usize::from(shares) {
        return Err(ShareError::Unusable("the split gave too few shares").into());
    }
    Ok(split)
}

/// Combines shares (at least the threshold; more are fine if all are honest). The result is
/// whatever the polynomial through them gives: check it before use.
pub fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    if shares.len() < 2 {
        return Err(ShareError::Unusable("fewer than two shares"));
    }
    let raw: Vec<Zeroizing<Vec<u8>>> = shares.iter().map(Share::to_bytes).collect();
    let plain: Vec<Vec<u8>> = raw.iter().map(|bytes| bytes.to_vec()).collect();
    let result = vsss_rs::Gf256::combine_bytes(&plain);
    // The copies handed to vsss-rs are plain Vecs: wipe them ourselves.
    for bytes in plain {
        drop(Zeroizing::new(bytes));
    }
    result.map(Zeroizing::new).map_err(|e| {
        ShareError::Unusable(match e {
            vsss_rs::Error::SharingDuplicateIdentifier => "two shares have the same x",
            vsss_rs::Error::SharingInvalidIdentifier => "a share has x = 0",
            _ => "their lengths differ",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn any_threshold_subset_gives_the_secret_back() {
        let shares = split(SECRET, 3, 5).expect("split");
        assert_eq!(shares.len(), 5);
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let subset = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
                    assert_eq!(combine(&subset).expect("combine").as_slice(), SECRET);
                }
            }
        }
        assert_eq!(combine(&shares).expect("all five").as_slice(), SECRET);
    }

    #[test]
    fn fewer_than_the_threshold_or_a_changed_share_give_something_else() {
        let shares = split(SECRET, 3, 5).expect("split");
        assert_ne!(combine(&shares[..2]).expect("two combine").as_slice(), SECRET);
        let mut bad = shares[..3].to_vec();
        bad[1].y[0] ^= 1;
        assert_ne!(combine(&bad).expect("combines").as_slice(), SECRET);
        // Shares of two splits of the same secret do not mix.
        let other = split(SECRET, 3, 5).expect("split");
        let mixed = [shares[0].clone(), shares[1].clone(), other[2].clone()];
        assert_ne!(combine(&mixed).expect("combines").as_slice(), SECRET);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any secret, any k-of-n, any k shares (in any order) give it back; the bytes form of
        /// every share reads back to the same share.
        #[test]
        fn splits_combine_back(
            secret in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
            n in 2u8..=MAX_SHARES,
            k_seed in proptest::prelude::any::<u8>(),
            pick_seed in proptest::prelude::any::<u64>(),
        ) {
            let k = 2 + k_seed % (n - 1);
            let shares = split(&secret, k, n).expect("split");
            proptest::prop_assert_eq!(shares.len(), usize::from(n));
            for share in &shares {
                proptest::prop_assert_eq!(&Share::from_bytes(&share.to_bytes()).expect("parse"), share);
            }
            // A pseudo-random choice of k of them, in a scrambled order.
            let mut order: Vec<usize> = (0..usize::from(n)).collect();
            let mut state = pick_seed;
            for i in (1..order.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            let chosen: Vec<Share> = order[..usize::from(k)].iter().map(|&i| shares[i].clone()).collect();
            let combined = combine(&chosen).expect("combine");
            proptest::prop_assert_eq!(combined.as_slice(), secret.as_slice());
        }
    }

    #[test]
    fn bad_parameters_and_shares_are_refused() {
        for (k, n) in [(1, 3), (4, 3), (2, MAX_SHARES + 1), (0, 0)] {
            assert!(split(SECRET, k, n).is_err(), "{k}-of-{n}");
        }
        assert!(split(b"", 2, 3).is_err());
        let shares = split(SECRET, 2, 3).expect("split");
        assert!(combine(&[shares[0].clone(), shares[0].clone()]).is_err());
        assert!(combine(&shares[..1]).is_err());
        assert_eq!(Share::from_bytes(&[0, 1, 2]), None);
        assert_eq!(Share::from_bytes(&[1]), None);
        let again = Share::from_bytes(&shares[1].to_bytes()).expect("parse");
        assert_eq!(again, shares[1]);
    }
}
