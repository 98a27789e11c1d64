//! A keyslot's PBKDF choice (`keyward_luks::KeyslotKdf`) as libcryptsetup's settings.

use keyward_luks::{Kdf, KeyslotKdf};
use libcryptsetup_rs::consts::flags::CryptPbkdf;
use libcryptsetup_rs::consts::vals::{CryptKdf, LuksType};
use libcryptsetup_rs::{CryptPbkdfType, CryptSettingsHandle, LibcryptErr};

/// libcryptsetup's PBKDF settings for `chosen`, or `None` to leave its default alone.
pub(crate) fn settings(chosen: &KeyslotKdf) -> Result<Option<CryptPbkdfType>, LibcryptErr> {
    if *chosen == KeyslotKdf::default() {
        return Ok(None);
    }
    let mut settings = match chosen.kdf {
        None => CryptSettingsHandle::get_pbkdf_default(&LuksType::Luks2)?,
        Some(kdf) => CryptSettingsHandle::get_pbkdf_type_params(&crypt(kdf))?,
    };
    let kdf = chosen.kdf.unwrap_or(Kdf::Argon2id);
    if kdf == Kdf::Pbkdf2 {
        settings.hash = Some("sha256".into());
        settings.max_memory_kb = 0;
        settings.parallel_threads = 0;
    } else {
        if let Some(kib) = chosen.memory_kib {
            settings.max_memory_kb = kib;
        }
        if let Some(threads) = chosen.parallel {
            settings.parallel_threads = threads;
        }
    }
    if let Some(ms) = chosen.iter_time_ms {
        settings.time_ms = ms;
    }
    if let Some(iterations) = chosen.iterations {
        settings.iterations = iterations;
        settings.flags |= CryptPbkdf::NO_BENCHMARK;
    }
    Ok(Some(settings))
}

fn crypt(kdf: Kdf) -> CryptKdf {
    match kdf {
        Kdf::Argon2id => CryptKdf::Argon2Id,
        Kdf::Argon2i => CryptKdf::Argon2I,
        Kdf::Pbkdf2 => CryptKdf::Pbkdf2,
    }
}
