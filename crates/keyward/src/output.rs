//! What the user sees: results on stdout (human text or `--json`), progress on stderr only when
//! stderr is a terminal, and secret files written through the store's atomic 0600 writer.

use std::io::{IsTerminal, Write};
use std::path::Path;

use keyward_core::store::{RealFs, write_secret_file};

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

/// Writes secret bytes to `path`, or to stdout when `path` is `-`.
pub fn write_secret(path: &Path, data: &[u8], overwrite: bool) -> CliResult {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(data)?;
        out.flush()?;
        return Ok(());
    }
    write_secret_file(&RealFs, path, data, overwrite)?;
    Ok(())
}
