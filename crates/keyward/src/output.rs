//! What the user sees: results on stdout (human text or `--json`), progress on stderr only when
//! stderr is a terminal, and secret files written through the store's atomic 0600 writer.
//!
//! Everything printed passes [`printable`] first: text a server or a file supplied (an error
//! message, a directive) cannot drive the terminal with control characters.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use keyward_core::Fingerprint;
use keyward_core::store::{RealFs, check_replaceable, write_secret_file};
use zeroize::Zeroizing;

use crate::cli::KeyFormat;
use crate::exit::{CliError, CliResult, usage};

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
            writeln!(out, "{}", printable(text.as_ref()))?;
        }
        Ok(())
    }

    /// Prints the JSON result (only under `--json`).
    pub fn json(&self, value: &serde_json::Value) -> CliResult {
        if self.json {
            let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
            let mut out = std::io::stdout().lock();
            JSON_SENT.store(true, std::sync::atomic::Ordering::SeqCst);
            writeln!(out, "{}", json_printable(&text))?;
        }
        Ok(())
    }

    /// Whether a JSON result went to stdout already (a command that reports, then fails, such
    /// as `verify`, has said everything in it: no second object follows).
    pub fn json_sent() -> bool {
        JSON_SENT.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Set once a JSON result is printed.
static JSON_SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `text` with every control character but the newline replaced by `escape(c)`.
fn escape_controls(text: &str, escape: impl Fn(char) -> String) -> Cow<'_, str> {
    let is_control = |c: char| c.is_control() && c != '\n';
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars().map(|c| if is_control(c) { escape(c) } else { c.to_string() }).collect(),
    )
}

/// `text` with every control character but the newline shown as an escape (`\u{1b}`), so
/// nothing printed can move the cursor, retitle the window or hide what precedes it.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape_controls(text, |c| c.escape_default().to_string())
}

/// Serialized JSON with the control characters JSON itself leaves raw (DEL and the C1 range,
/// which some terminals obey) written as `\u` escapes: the same JSON value, safe to print.
fn json_printable(json: &str) -> Cow<'_, str> {
    escape_controls(json, |c| format!("\\u{:04x}", u32::from(c)))
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
        eprintln!("{}", printable(text));
    }
}

/// How a slot of a kind this build does not know is described (`list`, `verify`).
pub fn unknown_kind(kind: &str) -> String {
    format!("unknown kind {kind} (needs a newer keyward)")
}

/// A warning on stderr (always shown: it is about safety, not progress).
pub fn warn(text: &str) {
    eprintln!("keyward: warning: {}", printable(text));
}

/// Whether a command may replace an existing output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// The command has no `--force`: an existing file is a conflict.
    Never,
    /// The command has `--force` and it was not given.
    Refuse,
    /// `--force`: replace a regular file of this user's (never a pipe, device or link).
    Replace,
}

impl Overwrite {
    /// From a command's `--force`.
    pub fn from_force(force: bool) -> Self {
        if force { Overwrite::Replace } else { Overwrite::Refuse }
    }
}

/// The descriptor an output path names explicitly, if it is one: `-` and `/dev/stdout` are
/// stdout, `/dev/fd/N` and `/proc/self/fd/N` are descriptor N. Those are the caller's own, so
/// they are written into; every other path gets a new file.
fn own_descriptor(path: &Path) -> CliResult<Option<RawFd>> {
    let text = path.to_string_lossy();
    if text == "-" || text == "/dev/stdout" {
        return Ok(Some(std::io::stdout().as_raw_fd()));
    }
    let Some(number) =
        text.strip_prefix("/dev/fd/").or_else(|| text.strip_prefix("/proc/self/fd/"))
    else {
        return Ok(None);
    };
    match number.parse::<RawFd>() {
        Ok(2) => Err(usage("a secret is not written to stderr (/dev/fd/2)")),
        Ok(fd) if fd >= 0 => Ok(Some(fd)),
        _ => Err(usage(format!("{} is not a descriptor", path.display()))),
    }
}

/// Writes secret bytes to `path`: into the caller's own descriptor if it names one (`-`,
/// `/dev/stdout`, `/dev/fd/N`), else as a new 0600 file written atomically — or, with
/// [`Overwrite::Replace`], over a regular file of this user's. A FIFO, device, socket or
/// symlink at `path` is refused (exit 7), so a secret never lands where another user reads.
pub fn write_secret(path: &Path, data: &[u8], overwrite: Overwrite) -> CliResult {
    if let Some(fd) = own_descriptor(path)? {
        return write_to_descriptor(fd, path, data);
    }
    write_secret_file(&RealFs, path, data, overwrite == Overwrite::Replace).map_err(|e| {
        match (e, overwrite) {
            // `--force` would help only with a regular file of one's own: say so only then.
            (keyward_core::Error::OutputExists(path), Overwrite::Refuse) => {
                match check_replaceable(&RealFs, &path) {
                    Ok(()) => CliError::OutputExists { path },
                    Err(e) => e.into(),
                }
            }
            (e, _) => e.into(),
        }
    })
}

/// Refuses, before any work is done (a prompt, a request, a ticket's use), an output that
/// [`write_secret`] would refuse at the end for being there already.
pub fn check_new(path: &Path, overwrite: Overwrite) -> CliResult {
    if own_descriptor(path)?.is_some() {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(keyward_core::Error::io("cannot check", path, e).into()),
        Ok(_) => match overwrite {
            Overwrite::Replace => Ok(check_replaceable(&RealFs, path)?),
            Overwrite::Refuse => {
                check_replaceable(&RealFs, path)?;
                Err(CliError::OutputExists { path: path.to_path_buf() })
            }
            Overwrite::Never => Err(keyward_core::Error::OutputExists(path.to_path_buf()).into()),
        },
    }
}

/// Writes a key in `format` to `path` as [`write_secret`] does; raw bytes are refused on a
/// terminal (they would be garbage there, and on screen) unless hex or base64 is asked for.
pub fn write_key(path: &Path, data: &[u8], format: KeyFormat, overwrite: Overwrite) -> CliResult {
    if format == KeyFormat::Raw
        && let Some(fd) = own_descriptor(path)?
        && is_terminal(fd)
    {
        return Err(usage(
            "raw key bytes would go to a terminal; add --format hex (or base64), or redirect the output",
        ));
    }
    write_secret(path, data, overwrite)
}

fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor number; a closed one answers 0.
    unsafe { libc::isatty(fd) == 1 }
}

fn write_to_descriptor(fd: RawFd, path: &Path, data: &[u8]) -> CliResult {
    let fail = |e| CliError::from(keyward_core::Error::io("cannot write", PathBuf::from(path), e));
    if fd == std::io::stdout().as_raw_fd() {
        let mut out = std::io::stdout().lock();
        return match out.write_all(data).and_then(|()| out.flush()) {
            // The reader went away: told as any closed stdout is (see main).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
            result => result.map_err(fail),
        };
    }
    // SAFETY: F_DUPFD_CLOEXEC takes no pointers; a descriptor that is not open fails with
    // EBADF, checked below.
    let own = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if own < 0 {
        return Err(fail(std::io::Error::last_os_error()));
    }
    // SAFETY: `own` is a new descriptor this process just made and nothing else owns; the File
    // closes it.
    let mut file = unsafe { std::fs::File::from_raw_fd(own) };
    file.write_all(data).map_err(fail)
}

/// Unix seconds as RFC 3339 (UTC), for people; the number itself if it is out of range.
pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal_raw() {
        assert_eq!(printable("plain text\nline two"), "plain text\nline two");
        assert_eq!(printable("evil \x1b[2J\x07 bell"), "evil \\u{1b}[2J\\u{7} bell");
        assert_eq!(printable("c1 \u{9b}31m"), "c1 \\u{9b}31m");
        let json =
            serde_json::to_string(&serde_json::json!({"m": "a\u{9b}b\u{7f}"})).expect("json");
        let shown = json_printable(&json);
        assert!(!shown.contains('\u{9b}') && !shown.contains('\u{7f}'), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).expect("still JSON");
        assert_eq!(back["m"], "a\u{9b}b\u{7f}", "the same value");
    }
}
