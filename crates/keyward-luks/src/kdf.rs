//! The PBKDF of a keyslot keyward adds: libcryptsetup's own choice (argon2id, benchmarked to
//! its default 2 s) unless the caller names parameters, with cryptsetup's option meanings. The
//! LUKS2 helper turns it into libcryptsetup's settings.

use serde::{Deserialize, Serialize};

/// A PBKDF algorithm LUKS2 keyslots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kdf {
    /// argon2id (LUKS2's default).
    Argon2id,
    /// argon2i.
    Argon2i,
    /// PBKDF2-SHA256.
    Pbkdf2,
}

/// The keyslot PBKDF asked for; every field left `None` is libcryptsetup's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyslotKdf {
    /// The algorithm (`--pbkdf`).
    pub kdf: Option<Kdf>,
    /// The unlock time the benchmark aims at, in ms (`--iter-time`).
    pub iter_time_ms: Option<u32>,
    /// argon2's memory, in KiB (`--pbkdf-memory`): its most with a benchmark, its cost without.
    pub memory_kib: Option<u32>,
    /// argon2's threads (`--pbkdf-parallel`).
    pub parallel: Option<u32>,
    /// A fixed iteration (time) cost, with no benchmark (`--pbkdf-force-iterations`).
    pub iterations: Option<u32>,
}
