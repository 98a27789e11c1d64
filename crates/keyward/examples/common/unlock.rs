//! The unlock both start-up probes run (unlock_core_kinds, unlock_every_kind).

use std::io::Write as _;
use std::path::PathBuf;

use keyward_box::secrets::SecretFiles;
use keyward_box::unlock::open_unattended;
use keyward_core::store::{RealFs, Store};

/// Opens the keybox named by the first argument through its unattended slots and writes the
/// key to stdout; a failure is one line on stderr and exit status 1.
pub fn unlock() -> std::process::ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: unlock_… KEYBOX");
        return std::process::ExitCode::FAILURE;
    };
    let opened = Store::new(&RealFs, &path).load().map_err(|e| e.to_string()).and_then(|keybox| {
        open_unattended(&keybox, &path, &SecretFiles::new(), None).map_err(|e| e.to_string())
    });
    let written = opened.and_then(|opened| {
        std::io::stdout().lock().write_all(opened.key().expose()).map_err(|e| e.to_string())
    });
    match written {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
