//! What the user sees: results on stdout (human text or `--json`), progress on stderr only when
//! stderr is a terminal, and secret files written through the store's atomic 0600 writer.

use std::io::{IsTerminal, Write};
use std::path::Path;

use base64::Engine as _;
use keyward_core::Fingerprint;
use keyward_core::store::{RealFs, write_secret_file};
use zeroize::Zeroizing;

use crate::cli::KeyFormat;

use crate::exit::CliResult;

/// How results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json` was given.
    pub json: bool,
}

impl Output {
    /// Prints a line of human output (suppressed under `--json`).
    pub fn line(&self, text: impl AsRef<str>) -> CliResult {
        if !self.json {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", text.as_ref())?;
        }
        Ok(())
    }

    /// Prints the JSON result (only under `--json`).
    pub fn json(&self, value: &serde_json::Value) -> CliResult {
        if self.json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        Ok(())
    }
}

/// The key as raw bytes, hex or base64 (with a newline); `None` for the PBS format, which the
/// commands build with more context (see `pbs.rs`).
pub fn encode_plain(key: &[u8], format: KeyFormat) -> Option<Zeroizing<Vec<u8>>> {
    let mut encoded = Zeroizing::new(match format {
        KeyFormat::Raw => key.to_vec(),
        KeyFormat::Hex => keyward_core::encoding::to_hex(key).into_bytes(),
        KeyFormat::Base64 => base64::engine::general_purpose::STANDARD.encode(key).into_bytes(),
        KeyFormat::Pbs => return None,
    });
    if format != KeyFormat::Raw {
        encoded.push(b'\n');
    }
    Some(encoded)
}

/// The fingerprint lines every command prints alike: keyward's own (full, short) and, for a key
/// from a Proxmox Backup key file, the PBS one.
pub fn fingerprint_lines(fp: &Fingerprint, pbs: Option<&Fingerprint>) -> Vec<String> {
    let mut lines =
        vec![format!("fingerprint      {fp}"), format!("short            {}", fp.short())];
    if let Some(pbs) = pbs {
        lines.push(format!("pbs fingerprint  {pbs}"));
        lines.push(format!("pbs short        {}", pbs.short()));
    }
    lines
}

/// A progress or notice line on stderr, shown only to a person at a terminal.
pub fn progress(text: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{text}");
    }
}

/// A warning on stderr (always shown: it is about safety, not progress).
pub fn warn(text: &str) {
    eprintln!("keyward: warning: {text}");
}

/// Writes secret bytes to `path` (a new 0600 file, atomically; an existing device or pipe is
/// written into), or to stdout when `path` is `-`.
pub fn write_secret(path: &Path, data: &[u8], overwrite: bool) -> CliResult {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(data)?;
        out.flush()?;
        return Ok(());
    }
    // An existing device or pipe (/dev/null, a FIFO, /dev/fd/N from a shell's `>(…)`) is
    // written into, never replaced: an atomic rename over it would leave the key in a regular
    // file where the device was.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        let mut target = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| keyward_core::Error::io("cannot write", path, e))?;
        target.write_all(data).map_err(|e| keyward_core::Error::io("cannot write", path, e))?;
        return Ok(());
    }
    write_secret_file(&RealFs, path, data, overwrite)?;
    Ok(())
}
