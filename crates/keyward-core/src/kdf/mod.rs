//! Password-based key derivation, in one place: argon2id for keyward's own slots; scrypt and
//! PBKDF2-HMAC-SHA256 for foreign formats that use them (Proxmox Backup key files). Parameters are validated when they are made or read, so a `KdfParams` that
//! exists is one keyward is willing to run: a hostile work factor read from a file is an
//! integrity error, never a ten-minute stall or an out-of-memory kill.

mod argon2_memory;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::encoding::base64_bytes;
use crate::error::IntegrityFailure;
use crate::random;

/// Length of every derived key-encryption key, in bytes.
pub const KEK_LEN: usize = 32;
/// Length of the salts keyward generates.
pub const SALT_LEN: usize = 32;

/// Most memory a KDF may ask for: 4 GiB (cryptsetup's limit for argon2 in LUKS2).
pub const MAX_MEMORY_KIB: u64 = 4 * 1024 * 1024;
/// Most PBKDF2 iterations: 10 million is a few seconds here (Proxmox Backup writes 65,535).
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Most work one KDF may ask for, in KiB touched: 16 GiB, e.g. 1 GiB × 16 argon2id passes or
/// scrypt N=2^20 r=8 p=16. About ten seconds of one core here; a file asking for more is refused
/// before any work (age's `ExcessiveWork` idea).
pub const MAX_WORK_KIB: u64 = 16 * 1024 * 1024;
const MIN_SALT_LEN: usize = 16;
const MAX_SALT_LEN: usize = 64;

/// Why a KDF did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    /// The parameters are outside keyward's bounds (from a file: damage or a hostile edit).
    #[error(transparent)]
    Params(#[from] IntegrityFailure),
    /// The system would not give the KDF its memory.
    #[error("cannot get {kib} KiB of memory for the KDF")]
    OutOfMemory {
        /// How much was asked for.
        kib: u64,
    },
}

impl KdfError {
    /// Which kind of failure it is: parameters out of bounds are damage (they come from a file).
    pub fn class(&self) -> crate::ErrorClass {
        match self {
            KdfError::Params(_) => crate::ErrorClass::Integrity,
            KdfError::OutOfMemory { .. } => crate::ErrorClass::Internal,
        }
    }
}

/// A key-encryption key derived from a secret; zeroized on drop.
pub type Kek = Zeroizing<[u8; KEK_LEN]>;

/// A KDF and its parameters, as stored in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "alg", rename_all = "kebab-case", deny_unknown_fields)]
pub enum KdfParams {
    /// Argon2id (RFC 9106), version 0x13.
    Argon2id {
        /// Memory in KiB.
        m_kib: u32,
        /// Passes over memory.
        t: u32,
        /// Lanes (parallelism).
        p: u32,
        /// Salt.
        #[serde(with = "base64_bytes")]
        salt: Vec<u8>,
    },
    /// PBKDF2-HMAC-SHA256 (RFC 8018). Only for foreign formats that use it (Proxmox Backup key
    /// files); keyward's own slots use argon2id.
    Pbkdf2Sha256 {
        /// Iterations.
        iter: u32,
        /// Salt.
        #[serde(with = "base64_bytes")]
        salt: Vec<u8>,
    },
    /// scrypt (RFC 7914).
    Scrypt {
        /// log2 of the cost N.
        log_n: u8,
        /// Block size.
        r: u32,
        /// Parallelism.
        p: u32,
        /// Salt.
        #[serde(with = "base64_bytes")]
        salt: Vec<u8>,
    },
}

impl KdfParams {
    /// Argon2id with a fresh salt; checks the bounds.
    pub fn argon2id(m_kib: u32, t: u32, p: u32) -> crate::Result<Self> {
        let params =
            KdfParams::Argon2id { m_kib, t, p, salt: random::array::<SALT_LEN>()?.to_vec() };
        params.validate().map_err(crate::Error::KdfParams)?;
        Ok(params)
    }

    /// Checks every bound; run on parameters read from a file before anything is derived.
    pub fn validate(&self) -> Result<(), IntegrityFailure> {
        let bad = |what: String| Err(IntegrityFailure::KdfOutOfBounds(what));
        match self {
            KdfParams::Argon2id { m_kib, t, p, salt } => {
                if !(1..=16).contains(p) {
                    return bad(format!("argon2id p={p} (allowed 1..16)"));
                }
                if u64::from(*m_kib) < 8 * u64::from(*p) || u64::from(*m_kib) > MAX_MEMORY_KIB {
                    return bad(format!("argon2id m={m_kib} KiB"));
                }
                if *t == 0 || self.work_kib() > MAX_WORK_KIB {
                    return bad(format!("argon2id t={t} at m={m_kib} KiB"));
                }
                check_salt(salt)
            }
            KdfParams::Scrypt { log_n, r, p, salt } => {
                if !(1..=16).contains(p) || !(1..=32).contains(r) || !(1..=24).contains(log_n) {
                    return bad(format!("scrypt log_n={log_n} r={r} p={p}"));
                }
                // scrypt's working memory is 128 × r × N bytes; p runs it p times.
                let kib = (128u64 * u64::from(*r)) << log_n >> 10;
                if kib > MAX_MEMORY_KIB || self.work_kib() > MAX_WORK_KIB {
                    return bad(format!("scrypt needs {kib} KiB, {} KiB of work", self.work_kib()));
                }
                check_salt(salt)
            }
            KdfParams::Pbkdf2Sha256 { iter, salt } => {
                if !(1..=MAX_PBKDF2_ITERATIONS).contains(iter) {
                    return bad(format!("pbkdf2 iter={iter} (allowed 1..{MAX_PBKDF2_ITERATIONS})"));
                }
                check_salt(salt)
            }
        }
    }

    /// How much memory the KDF touches in all, in KiB (memory × passes, or × p for scrypt): the
    /// measure of work the bounds use. PBKDF2 touches none; its iterations are bounded apart.
    pub fn work_kib(&self) -> u64 {
        match self {
            KdfParams::Argon2id { m_kib, t, .. } => u64::from(*m_kib).saturating_mul(u64::from(*t)),
            KdfParams::Scrypt { log_n, r, p, .. } => {
                let kib =
                    (128u64 * u64::from(*r)).checked_shl(u32::from(*log_n)).unwrap_or(u64::MAX)
                        >> 10;
                kib.saturating_mul(u64::from(*p))
            }
            KdfParams::Pbkdf2Sha256 { .. } => 0,
        }
    }

    /// Derives a key-encryption key from `secret`.
    pub fn derive(&self, secret: &[u8]) -> Result<Kek, KdfError> {
        self.validate()?;
        let mut out = Zeroizing::new([0u8; KEK_LEN]);
        self.derive_into(secret, out.as_mut_slice())?;
        Ok(out)
    }

    /// Derives `out.len()` bytes from `secret` (used for foreign formats with other lengths).
    pub fn derive_into(&self, secret: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
        self.validate()?;
        let fail = |e: String| KdfError::Params(IntegrityFailure::KdfOutOfBounds(e));
        match self {
            KdfParams::Argon2id { m_kib, t, p, salt } => {
                let params = argon2::Params::new(*m_kib, *t, *p, Some(out.len()))
                    .map_err(|e| fail(e.to_string()))?;
                let mut memory = argon2_memory::Argon2Memory::new(params.block_count())
                    .ok_or(KdfError::OutOfMemory { kib: u64::from(*m_kib) })?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into_with_memory(secret, salt, out, memory.as_mut_slice())
                    .map_err(|e| fail(e.to_string()))
            }
            KdfParams::Scrypt { log_n, r, p, salt } => {
                let params =
                    scrypt::Params::new(*log_n, *r, *p).map_err(|e| fail(e.to_string()))?;
                scrypt::scrypt(secret, salt, &params, out).map_err(|e| fail(e.to_string()))
            }
            KdfParams::Pbkdf2Sha256 { iter, salt } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, *iter, out);
                Ok(())
            }
        }
    }

    /// A one-line human description ("argon2id m=256 MiB t=3 p=4").
    pub fn describe(&self) -> String {
        match self {
            KdfParams::Argon2id { m_kib, t, p, .. } => {
                format!("argon2id m={} MiB t={t} p={p}", m_kib / 1024)
            }
            KdfParams::Scrypt { log_n, r, p, .. } => format!("scrypt N=2^{log_n} r={r} p={p}"),
            KdfParams::Pbkdf2Sha256 { iter, .. } => format!("pbkdf2-sha256 iter={iter}"),
        }
    }
}

fn check_salt(salt: &[u8]) -> Result<(), IntegrityFailure> {
    if (MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
        Ok(())
    } else {
        Err(IntegrityFailure::KdfOutOfBounds(format!("salt of {} bytes", salt.len())))
    }
}

/// What a passphrase slot's argon2id should cost, before calibration picks the passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalibrationTarget {
    /// How long one unlock should take on this machine.
    pub unlock_time: Duration,
    /// The most memory to use, in KiB; lowered if one pass alone is slower than the target.
    pub max_memory_kib: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl CalibrationTarget {
    /// keyward's default for passphrase slots: 1 s, 256 MiB, up to 4 lanes.
    pub fn default_for_passphrase() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CalibrationTarget {
            unlock_time: Duration::from_millis(1000),
            max_memory_kib: 256 * 1024,
            parallelism: u32::try_from(cores.min(4)).unwrap_or(1),
        }
    }
}

/// The floor for a new passphrase slot's argon2id: OWASP's smallest recommended setting,
/// m = 19 MiB, t = 2 (Password Storage Cheat Sheet). Calibration never goes below it, and a
/// target that cannot reach it is refused rather than quietly made weaker. (Parameters read
/// from existing files are bounded from above only: a slot made below this floor by an older
/// keyward still opens.)
pub const PASSPHRASE_FLOOR_MEMORY_KIB: u32 = 19 * 1024;
/// See [`PASSPHRASE_FLOOR_MEMORY_KIB`].
pub const PASSPHRASE_FLOOR_PASSES: u32 = 2;
/// The shortest target unlock time accepted, in milliseconds.
pub const MIN_UNLOCK_TIME_MS: u64 = 10;
/// The longest target unlock time accepted, in milliseconds.
pub const MAX_UNLOCK_TIME_MS: u64 = 60_000;
/// Most memory a target may ask for, in MiB.
pub const MAX_TARGET_MEMORY_MIB: u32 = 4096;

impl CalibrationTarget {
    /// Refuses a target below the floor or beyond the bounds, naming them.
    pub fn check(&self) -> crate::Result<()> {
        let time_ms = u64::try_from(self.unlock_time.as_millis()).unwrap_or(u64::MAX);
        if !(MIN_UNLOCK_TIME_MS..=MAX_UNLOCK_TIME_MS).contains(&time_ms) {
            return Err(crate::Error::KdfBelowFloor(format!(
                "an unlock time of {time_ms} ms (allowed {MIN_UNLOCK_TIME_MS} to {MAX_UNLOCK_TIME_MS})"
            )));
        }
        let floor_mib = PASSPHRASE_FLOOR_MEMORY_KIB / 1024;
        let mib = self.max_memory_kib / 1024;
        if self.max_memory_kib < PASSPHRASE_FLOOR_MEMORY_KIB || mib > MAX_TARGET_MEMORY_MIB {
            return Err(crate::Error::KdfBelowFloor(format!(
                "{mib} MiB of memory (allowed {floor_mib} to {MAX_TARGET_MEMORY_MIB} MiB; argon2id below m={floor_mib} MiB, t={PASSPHRASE_FLOOR_PASSES} is refused)"
            )));
        }
        Ok(())
    }
}

/// Picks argon2id parameters that take about `target.unlock_time` here, as cryptsetup does:
/// time one pass at the target memory, halve the memory while one pass is already too slow (but
/// never below the floor), then choose the number of passes that fills the time (at least the
/// floor's two). `progress` is told each measurement.
pub fn calibrate_argon2id(
    target: CalibrationTarget,
    mut progress: impl FnMut(&str),
) -> crate::Result<KdfParams> {
    target.check()?;
    let p = target.parallelism.clamp(1, 16);
    let mut m_kib = target.max_memory_kib;
    loop {
        let probe = KdfParams::argon2id(m_kib, 1, p)?;
        let started = Instant::now();
        probe.derive(b"keyward calibration").map_err(crate::Error::from_new_kdf)?;
        let one_pass = started.elapsed().max(Duration::from_micros(100));
        progress(&format!("one pass at {} MiB took {} ms", m_kib / 1024, one_pass.as_millis()));
        if one_pass > target.unlock_time && m_kib / 2 >= PASSPHRASE_FLOOR_MEMORY_KIB {
            m_kib /= 2;
            continue;
        }
        let passes = (target.unlock_time.as_secs_f64() / one_pass.as_secs_f64()).floor();
        // Cap the passes by the work bound a reader enforces, so we never write what we refuse.
        let max_t = (MAX_WORK_KIB / u64::from(m_kib)).min(1000);
        let floor = u64::from(PASSPHRASE_FLOOR_PASSES);
        let t = if passes < floor as f64 { floor } else { (passes as u64).clamp(floor, max_t) };
        return KdfParams::argon2id(m_kib, u32::try_from(t).unwrap_or(1), p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_work_factors_are_refused() {
        let salt = vec![0u8; 32];
        let huge = KdfParams::Argon2id { m_kib: u32::MAX, t: 1, p: 1, salt: salt.clone() };
        assert!(huge.derive(b"x").is_err(), "4 TiB of memory must be refused");
        let long = KdfParams::Argon2id { m_kib: 1 << 20, t: 1000, p: 1, salt: salt.clone() };
        assert!(long.derive(b"x").is_err(), "1000 passes over 1 GiB must be refused");
        let scrypt = KdfParams::Scrypt { log_n: 30, r: 8, p: 1, salt };
        assert!(scrypt.derive(b"x").is_err(), "scrypt N=2^30 must be refused");
    }

    #[test]
    fn argon2id_matches_rfc9106_shape_and_is_deterministic() {
        let params = KdfParams::Argon2id { m_kib: 64, t: 1, p: 1, salt: vec![7u8; 16] };
        let a = params.derive(b"password").expect("derive");
        let b = params.derive(b"password").expect("derive");
        let c = params.derive(b"Password").expect("derive");
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
    }
}
