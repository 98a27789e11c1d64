//! Random bytes from the operating system. One place, so a failing RNG is one error everywhere.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Fills a fresh buffer of `N` bytes.
pub fn array<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| Error::Random(e.to_string()))?;
    Ok(out)
}

/// A fresh secret buffer of `len` bytes, zeroized on drop.
pub fn secret_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut out).map_err(|e| Error::Random(e.to_string()))?;
    Ok(out)
}

/// A uniformly random integer in `0..bound` (rejection sampling, no modulo bias).
pub fn below(bound: u32) -> Result<u32> {
    debug_assert!(bound > 0);
    // The largest multiple of `bound` that fits in u32; values at or above it are redrawn.
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let v = getrandom::u32().map_err(|e| Error::Random(e.to_string()))?;
        if v < zone {
            return Ok(v % bound);
        }
    }
}
