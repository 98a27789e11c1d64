//! What else a device holds, by libblkid's low-level probe (`blkid -p`, util-linux): a header
//! restore writes over the start of a device, so before it writes anywhere libcryptsetup cannot
//! read a LUKS2 header, it asks whether something else is there — a filesystem, a LUKS1
//! volume, swap, a partition table, a LUKS2 header libcryptsetup could not load. Asked through
//! the `blkid` program rather than linked, as it ships with every system cryptsetup runs on.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{LuksError, Result};

/// Where `blkid` is looked for when it is not on the `PATH` (an ordinary user's `PATH` on
/// Debian lacks the sbin folders).
const BLKID_PATHS: [&str; 3] = ["/usr/sbin/blkid", "/sbin/blkid", "/usr/bin/blkid"];

/// A signature libblkid recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Its type (`ext4`, `crypto_LUKS`, `swap`), or a partition table's (`dos`, `gpt`).
    pub kind: String,
    /// The format's version, when it has one (`1` or `2` for LUKS).
    pub version: Option<String>,
    /// Its UUID, when it has one.
    pub uuid: Option<String>,
}

impl Signature {
    /// Whether it is a LUKS2 header of volume `uuid`.
    pub fn is_luks2_of(&self, uuid: &str) -> bool {
        self.kind == "crypto_LUKS"
            && self.version.as_deref() == Some("2")
            && self.uuid.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(uuid))
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind.as_str(), &self.version) {
            ("crypto_LUKS", Some(version)) => write!(f, "a LUKS{version} header")?,
            (kind, _) => write!(f, "a signature of type {kind}")?,
        }
        match &self.uuid {
            Some(uuid) => write!(f, " (UUID {uuid})"),
            None => Ok(()),
        }
    }
}

/// What libblkid found on `device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// No signature it knows.
    Nothing,
    /// One signature.
    One(Signature),
    /// Several that contradict each other (libblkid's "ambivalent result").
    Several,
}

/// Probes `device` (a block device or an image file). A device that cannot be read is an
/// error, never "nothing there": blkid says both with the same exit code.
pub fn probe(device: &Path) -> Result<Probed> {
    // Opened without blocking, and only a block device or an image file is probed: a FIFO put
    // at the path would otherwise hold the command (and blkid) forever.
    let cannot_read = |e: std::io::Error| probe_failed(device, format!("cannot read it: {e}"));
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(device)
        .map_err(cannot_read)?;
    let kind = opened.metadata().map_err(cannot_read)?.file_type();
    if !(kind.is_file() || kind.is_block_device()) {
        return Err(probe_failed(device, "it is neither a block device nor a file".into()));
    }
    let blkid = blkid()?;
    let out = Command::new(&blkid)
        .args(["-p", "-o", "export", "--"])
        .arg(device)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| probe_failed(device, format!("cannot run {}: {e}", blkid.display())))?;
    // blkid's exit codes: 0 found, 2 nothing found, 8 ambivalent, anything else an error. It
    // also exits 2 on a device it could not read, saying so on stderr.
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(Probed::One(parse(&String::from_utf8_lossy(&out.stdout)))),
        Some(2) if said.is_empty() => Ok(Probed::Nothing),
        Some(8) => Ok(Probed::Several),
        _ => Err(probe_failed(device, said)),
    }
}

/// The `blkid` program: on the `PATH`, else in the sbin folders.
fn blkid() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|folder| folder.join("blkid"));
    on_path.chain(BLKID_PATHS.iter().map(PathBuf::from)).find(|p| p.is_file()).ok_or_else(|| {
        LuksError::Probe {
            path: PathBuf::from("blkid"),
            reason: "the blkid program is not installed (Debian package util-linux)".into(),
        }
    })
}

/// Reads `blkid -o export` lines (`KEY=value`). A partition table's type counts as the kind
/// when the device has no other.
fn parse(export: &str) -> Signature {
    let field = |name: &str| {
        export
            .lines()
            .filter_map(|line| line.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    };
    Signature {
        kind: field("TYPE").or_else(|| field("PTTYPE")).unwrap_or_else(|| "unknown".into()),
        version: field("VERSION"),
        uuid: field("UUID"),
    }
}

fn probe_failed(device: &Path, reason: String) -> LuksError {
    LuksError::Probe { path: device.into(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_read_as_a_signature() {
        let ext4 = "DEVNAME=t.img\nUUID=9bdce2c6-5be2-4805-a458-a0f89c4415d5\nVERSION=1.0\nTYPE=ext4\nUSAGE=filesystem\n";
        let signature = parse(ext4);
        assert_eq!(signature.kind, "ext4");
        assert_eq!(
            signature.to_string(),
            "a signature of type ext4 (UUID 9bdce2c6-5be2-4805-a458-a0f89c4415d5)"
        );
        let luks = parse("VERSION=2\nUUID=ABC\nTYPE=crypto_LUKS\n");
        assert!(luks.is_luks2_of("abc"));
        assert!(!parse("VERSION=1\nUUID=abc\nTYPE=crypto_LUKS\n").is_luks2_of("abc"));
        assert_eq!(parse("PTUUID=1\nPTTYPE=gpt\n").kind, "gpt");
    }

    /// Review of issue 22.2: blkid exits 2 both for "nothing found" and for a device it could
    /// not read; only the first is nothing.
    #[test]
    fn a_device_that_cannot_be_read_is_an_error_and_a_blank_one_holds_nothing() {
        let folder = std::env::temp_dir().join(format!("keyward-probe-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("folder");
        let blank = folder.join("blank.img");
        std::fs::write(&blank, vec![0u8; 1 << 20]).expect("a blank image");
        assert_eq!(probe(&blank).expect("probed"), Probed::Nothing);
        let missing = folder.join("missing.img");
        assert!(matches!(probe(&missing), Err(LuksError::Probe { .. })));
        let fifo = folder.join("fifo");
        let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(status.success());
        assert!(matches!(probe(&fifo), Err(LuksError::Probe { .. })), "refused, not waited on");
        std::fs::remove_dir_all(&folder).expect("clean up");
    }
}
