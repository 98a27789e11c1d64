//! Runs one KDF through keyward-core, as a whole process, for benchmarks against the C reference
//! tools (see scripts/bench-kdf.sh). Password on stdin, parameters on the command line, the
//! derived 32 bytes printed as hex so the script can check both tools agree.
//!
//! Usage: kdf argon2id SALT M_KIB T P | kdf scrypt SALT LOG_N R P

use std::io::Read;
use std::process::ExitCode;

use keyward_core::encoding::to_hex;
use keyward_core::kdf::KdfParams;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| args.get(i).and_then(|s| s.parse::<u32>().ok());
    let salt = args.get(1).map(|s| s.as_bytes().to_vec()).unwrap_or_default();
    let params = match (args.first().map(String::as_str), number(2), number(3), number(4)) {
        (Some("argon2id"), Some(m_kib), Some(t), Some(p)) => {
            KdfParams::Argon2id { m_kib, t, p, salt }
        }
        (Some("scrypt"), Some(log_n), Some(r), Some(p)) => {
            KdfParams::Scrypt { log_n: u8::try_from(log_n).unwrap_or(u8::MAX), r, p, salt }
        }
        _ => {
            eprintln!("usage: kdf argon2id SALT M_KIB T P | kdf scrypt SALT LOG_N R P");
            return ExitCode::from(2);
        }
    };
    let mut password = Vec::new();
    if std::io::stdin().read_to_end(&mut password).is_err() {
        return ExitCode::from(1);
    }
    match params.derive(&password) {
        Ok(key) => {
            println!("{}", to_hex(key.as_slice()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kdf: {e}");
            ExitCode::from(1)
        }
    }
}
