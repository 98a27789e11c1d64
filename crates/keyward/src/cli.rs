//! The command line, as clap definitions. Nothing here does work; `commands/` does.
//!
//! No option ever takes a secret value: secrets come from files (`-` for stdin) or from a prompt
//! that does not echo, so they never reach argv, the process list or shell history.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// keyward keeps one data key and lets independent slots open it: a recovery code, a
/// passphrase, a key file, or an unattended slot. It never changes the key, checks its fingerprint
/// before handing it out, and fails closed.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None, propagate_version = true)]
#[command(after_help = "Exit codes: 0 ok, 1 internal error, 2 usage, 3 authentication failed, \
4 integrity failure, 5 fingerprint mismatch, 6 not found, 7 conflict, 8 unavailable, \
9 refused by policy.")]
pub struct Cli {
    /// The keybox file [default: $KEYWARD_KEYBOX, else $XDG_CONFIG_HOME/keyward/keybox.json,
    /// else ~/.config/keyward/keybox.json].
    #[arg(long, global = true, value_name = "PATH", env = "KEYWARD_KEYBOX")]
    pub keybox: Option<PathBuf>,

    /// Print results as JSON on stdout, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a keybox holding a new or imported key, with its first slot.
    Init(InitArgs),
    /// Add a slot, authorised by opening an existing one.
    Enroll(EnrollArgs),
    /// Remove a slot (never the last one), authorised by opening a slot.
    Remove(RemoveArgs),
    /// Give a slot a new secret; the key stays the same.
    Rotate(RotateArgs),
    /// List the slots and what protects each.
    List,
    /// Print the key's fingerprint (full and short form).
    Fingerprint(FingerprintArgs),
    /// Check the checksum, the header MAC and every slot that opens without a prompt.
    Verify(VerifyArgs),
    /// Open the keybox and write the key to a file (or stdout with `--out -`).
    Unlock(UnlockArgs),
    /// Escrow: make the blob a fresh machine recovers the key from.
    Escrow {
        #[command(subcommand)]
        command: EscrowCommand,
    },
    /// Recover the key on a machine that has nothing but the blob and the recovery code.
    Recover(RecoverArgs),
    /// Walk through keyward end to end in a temporary folder.
    Demo(DemoArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// A slot kind as chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Ten words from the EFF list (~129 bits), shown once.
    RecoveryCode,
    /// A passphrase through argon2id calibrated to --kdf-time-ms.
    Passphrase,
    /// The contents of a key file (an existing file, or a new random one).
    Keyfile,
    /// Unattended: protected by file permissions only.
    Plain,
}

impl From<KindArg> for keyward_core::SlotKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::RecoveryCode => keyward_core::SlotKind::RecoveryCode,
            KindArg::Passphrase => keyward_core::SlotKind::Passphrase,
            KindArg::Keyfile => keyward_core::SlotKind::Keyfile,
            KindArg::Plain => keyward_core::SlotKind::Plain,
        }
    }
}

impl From<keyward_core::SlotKind> for KindArg {
    fn from(kind: keyward_core::SlotKind) -> Self {
        match kind {
            keyward_core::SlotKind::RecoveryCode => KindArg::RecoveryCode,
            keyward_core::SlotKind::Passphrase => KindArg::Passphrase,
            keyward_core::SlotKind::Keyfile => KindArg::Keyfile,
            keyward_core::SlotKind::Plain => KindArg::Plain,
        }
    }
}

/// Where a new slot's secret comes from.
#[derive(Debug, Args)]
pub struct NewSecretArgs {
    /// Read the new passphrase from F (`-` for stdin; one trailing newline is dropped) instead
    /// of prompting twice.
    #[arg(long, value_name = "F")]
    pub passphrase_file: Option<PathBuf>,

    /// The key file for a keyfile slot; created with 64 random bytes (mode 0600) if it does not
    /// exist. Its absolute path is recorded so `unlock` can open the slot unattended.
    #[arg(long, value_name = "F")]
    pub keyfile: Option<PathBuf>,

    /// Write the new recovery code to F (mode 0600, never overwritten; `-` for stdout). Without
    /// it the code is shown on the terminal, and the command refuses if there is none.
    #[arg(long, value_name = "F")]
    pub code_out: Option<PathBuf>,

    /// Target unlock time for a new passphrase slot's argon2id, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub kdf_time_ms: u64,

    /// Most memory for a new passphrase slot's argon2id, in MiB (lowered if one pass alone is
    /// slower than the target).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub kdf_memory_mib: u32,
}

/// How an existing slot is opened to authorise a change.
#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Authorise with the recovery code in F (`-` for stdin).
    #[arg(long, value_name = "F")]
    pub unlock_code_file: Option<PathBuf>,

    /// Authorise with the passphrase in F (`-` for stdin).
    #[arg(long, value_name = "F")]
    pub unlock_passphrase_file: Option<PathBuf>,

    /// Authorise with the key file F.
    #[arg(long, value_name = "F")]
    pub unlock_keyfile: Option<PathBuf>,

    /// Open only this slot (id or label). Without a secret option, an unattended slot is tried,
    /// then a prompt.
    #[arg(long, value_name = "SLOT")]
    pub unlock_slot: Option<String>,
}

/// How a slot is opened for `unlock` and `verify`.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Open with the recovery code in F (`-` for stdin).
    #[arg(long, value_name = "F")]
    pub code_file: Option<PathBuf>,

    /// Open with the passphrase in F (`-` for stdin).
    #[arg(long, value_name = "F")]
    pub passphrase_file: Option<PathBuf>,

    /// Open with the key file F.
    #[arg(long, value_name = "F")]
    pub keyfile: Option<PathBuf>,

    /// Open only this slot (id or label).
    #[arg(long, value_name = "SLOT")]
    pub slot: Option<String>,
}

impl AuthArgs {
    /// How many secret options were given.
    pub fn secrets_given(&self) -> usize {
        [&self.unlock_code_file, &self.unlock_passphrase_file, &self.unlock_keyfile]
            .iter()
            .filter(|o| o.is_some())
            .count()
    }
}

impl From<&OpenArgs> for AuthArgs {
    fn from(a: &OpenArgs) -> Self {
        AuthArgs {
            unlock_code_file: a.code_file.clone(),
            unlock_passphrase_file: a.passphrase_file.clone(),
            unlock_keyfile: a.keyfile.clone(),
            unlock_slot: a.slot.clone(),
        }
    }
}

/// `keyward init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of the first slot.
    #[arg(long = "with", value_name = "KIND")]
    pub with: KindArg,

    /// Import an existing secret of 16–4096 bytes from FILE (`-` for stdin) instead of
    /// generating one. The file is only read.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["bytes", "import_pbs"])]
    pub import: Option<PathBuf>,

    /// Import the key of a Proxmox Backup client key file (kdf none, scrypt or PBKDF2); the
    /// keybox records its PBS fingerprint and creation time. The file is only read.
    #[arg(long, value_name = "FILE", conflicts_with = "bytes")]
    pub import_pbs: Option<PathBuf>,

    /// The passphrase of the file given to --import-pbs, from F (`-` for stdin), when its kdf
    /// is not none; without it, a prompt.
    #[arg(long, value_name = "F", requires = "import_pbs")]
    pub pbs_passphrase_file: Option<PathBuf>,

    /// Length of a newly generated key, in bytes (16–4096).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub bytes: usize,

    /// A name for the keybox.
    #[arg(long, value_name = "L", default_value = "keyward")]
    pub label: String,

    /// A name for the first slot [default: KIND-1].
    #[arg(long, value_name = "L")]
    pub slot_label: Option<String>,

    #[command(flatten)]
    pub secret: NewSecretArgs,
}

/// `keyward enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The kind of slot to add.
    pub kind: KindArg,

    /// A name for the new slot [default: KIND-ID].
    #[arg(long, value_name = "L")]
    pub label: Option<String>,

    #[command(flatten)]
    pub secret: NewSecretArgs,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// `keyward remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The slot to remove (id or label).
    pub slot: String,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// `keyward rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The slot to rotate (id or label).
    pub slot: String,

    #[command(flatten)]
    pub secret: NewSecretArgs,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// `keyward fingerprint`.
#[derive(Debug, Args)]
pub struct FingerprintArgs {
    /// Print only the short form, alone on its line.
    #[arg(long)]
    pub short: bool,

    /// Print the Proxmox Backup fingerprint (of a key imported with --import-pbs) instead.
    #[arg(long)]
    pub pbs: bool,
}

/// `keyward verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub open: OpenArgs,
}

/// The encoding of a written key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyFormat {
    /// The key's bytes.
    Raw,
    /// Lower-case hex and a newline.
    Hex,
    /// Standard base64 and a newline.
    Base64,
    /// A Proxmox Backup client key file (JSON), for a 32-byte key.
    Pbs,
}

/// `keyward unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Where to write the key: a file (created 0600) or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub out: PathBuf,

    /// How to encode the key.
    #[arg(long, value_enum, default_value_t = KeyFormat::Raw)]
    pub format: KeyFormat,

    /// With --format pbs: write the key file unencrypted (`none`, what the backup client reads
    /// unattended) or encrypted with scrypt under a passphrase.
    /// [default: none]
    #[arg(long, value_enum)]
    pub kdf: Option<PbsKdfArg>,

    /// With --format pbs --kdf scrypt: the key file's new passphrase, from F (`-` for stdin)
    /// instead of prompting twice.
    #[arg(long, value_name = "F")]
    pub pbs_passphrase_file: Option<PathBuf>,

    /// Replace an existing output file (atomically).
    #[arg(long)]
    pub force: bool,

    /// Refuse (exit 5, nothing written) unless the key has this fingerprint, full or short form
    /// (as `keyward fingerprint` prints it).
    #[arg(long, value_name = "FP")]
    pub expect_fingerprint: Option<keyward_core::ExpectedFingerprint>,

    #[command(flatten)]
    pub open: OpenArgs,
}

/// How a written Proxmox Backup key file protects the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PbsKdfArg {
    /// Unencrypted (`"kdf": null`).
    None,
    /// Encrypted under a passphrase with scrypt (N=65536, r=8, p=1), as proxmox-backup-client does.
    Scrypt,
}

/// `keyward escrow …`.
#[derive(Debug, Subcommand)]
pub enum EscrowCommand {
    /// Write the escrow blob: the key as a Proxmox Backup key file encrypted (scrypt) under the
    /// recovery code. proxmox-backup-client opens it too, with the code typed as its passphrase
    /// (lower case, one space between words).
    ExportBlob(ExportBlobArgs),
}

/// `keyward escrow export-blob`.
#[derive(Debug, Args)]
pub struct ExportBlobArgs {
    /// Where to write the blob (created 0600; `-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub out: PathBuf,

    /// The recovery code, from F (`-` for stdin); without it, a prompt. It must open one of the
    /// keybox's recovery-code slots.
    #[arg(long, value_name = "F")]
    pub code_file: Option<PathBuf>,

    /// Replace an existing output file (atomically).
    #[arg(long)]
    pub force: bool,
}

/// `keyward recover`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["out", "install"])))]
pub struct RecoverArgs {
    /// The escrow blob (as `keyward escrow export-blob` writes it). It is only read.
    #[arg(long, value_name = "FILE")]
    pub blob: PathBuf,

    /// The recovery code, from F (`-` for stdin); without it, a prompt.
    #[arg(long, value_name = "F")]
    pub code_file: Option<PathBuf>,

    /// The key's PBS fingerprint, full or short form, as recorded when the key was escrowed.
    /// Nothing is written unless the recovered key has it (exit 5 otherwise).
    #[arg(long, value_name = "FP")]
    pub expect_fingerprint: keyward_core::ExpectedFingerprint,

    /// Where to write the key (created 0600; `-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub out: Option<PathBuf>,

    /// Install it as the backup client's default key,
    /// $XDG_CONFIG_HOME/proxmox-backup/encryption-key.json (an unencrypted PBS key file).
    #[arg(long, conflicts_with = "format")]
    pub install: bool,

    /// How to encode the key.
    #[arg(long, value_enum, default_value_t = KeyFormat::Pbs)]
    pub format: KeyFormat,

    /// Replace an existing key file (atomically).
    #[arg(long)]
    pub force: bool,
}

/// `keyward demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the temporary folder and print its path.
    #[arg(long)]
    pub keep: bool,
}
