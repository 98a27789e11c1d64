//! The PBKDF of a keyslot keyward adds: libcryptsetup's own choice (argon2id, benchmarked to
//! its default 2 s) unless the caller names parameters, with cryptsetup's option meanings.

use libcryptsetup_rs::consts::flags::CryptPbkdf;
use libcryptsetup_rs::consts::vals::{CryptKdf, LuksType};
use libcryptsetup_rs::{CryptPbkdfType, CryptSettingsHandle, LibcryptErr};

/// A PBKDF algorithm LUKS2 keyslots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// argon2id (LUKS2's default).
    Argon2id,
    /// argon2i.
    Argon2i,
    /// PBKDF2-SHA256.
    Pbkdf2,
}

/// The keyslot PBKDF asked for; every field left `None` is libcryptsetup's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

impl KeyslotKdf {
    /// libcryptsetup's PBKDF settings for this choice, or `None` to leave its default alone.
    pub(crate) fn settings(&self) -> Result<Option<CryptPbkdfType>, LibcryptErr> {
        if *self == KeyslotKdf::default() {
            return Ok(None);
        }
        let mut settings = match self.kdf {
            None => CryptSettingsHandle::get_pbkdf_default(&LuksType::Luks2)?,
            Some(kdf) => CryptSettingsHandle::get_pbkdf_type_params(&kdf.crypt())?,
        };
        let kdf = self.kdf.unwrap_or(Kdf::Argon2id);
        if kdf == Kdf::Pbkdf2 {
            settings.hash = Some("sha256".into());
            settings.max_memory_kb = 0;
            settings.parallel_threads = 0;
        } else {
            if let Some(kib) = self.memory_kib {
                settings.max_memory_kb = kib;
            }
            if let Some(threads) = self.parallel {
                settings.parallel_threads = threads;
            }
        }
        if let Some(ms) = self.iter_time_ms {
            settings.time_ms = ms;
        }
        if let Some(iterations) = self.iterations {
            settings.iterations = iterations;
            settings.flags |= CryptPbkdf::NO_BENCHMARK;
        }
        Ok(Some(settings))
    }
}

impl Kdf {
    fn crypt(self) -> CryptKdf {
        match self {
            Kdf::Argon2id => CryptKdf::Argon2Id,
            Kdf::Argon2i => CryptKdf::Argon2I,
            Kdf::Pbkdf2 => CryptKdf::Pbkdf2,
        }
    }
}
