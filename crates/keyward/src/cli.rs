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
#[command(after_help = crate::exit::exit_code_help())]
pub struct Cli {
    /// The keybox file [default: $KEYWARD_KEYBOX, else $XDG_CONFIG_HOME/keyward/keybox.json,
    /// else ~/.config/keyward/keybox.json].
    #[arg(long, global = true, value_name = "PATH", env = "KEYWARD_KEYBOX")]
    pub keybox: Option<PathBuf>,

    /// Print results as JSON on stdout, for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// The operator profile to use: hubs with their pins, the operator key, the peers' cards,
    /// from $XDG_CONFIG_HOME/keyward/config.toml (docs/formats/config.md) [default: its
    /// default_profile]. Options given on the command line override it.
    #[arg(long, global = true, value_name = "NAME", env = "KEYWARD_PROFILE")]
    pub profile: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each one's options are built only when it is the one run (or help, the
/// completions or the manual need them all): building every command's options to parse one of
/// them was a fifth of a short command's start (docs/BENCHMARKS.md).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
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
    /// One overview of the box: its slots and what each needs, its escrow versions at the hubs
    /// (approvals waiting included), its LUKS2 volumes and whether the hub's header copy of
    /// each is current, its peers slots and how many peers hold the current set, and its key
    /// agent. Changes nothing; a part that cannot be reached is shown as such.
    Status,
    /// Check the checksum, the header MAC and every slot that opens without a prompt or with
    /// the secret given, as the drill proves slots; a peers slot named with --slot asks its
    /// peers, who count it as a drill, not a use (exit 11 when it opens but a peer no longer
    /// holds its share). A PIN is tried on the slot named with --slot only.
    Verify(VerifyArgs),
    /// Prove, before a disaster, each way this box's key can be recovered: every slot that opens
    /// unattended, the peers, the escrow at the hubs (and, with the code, that it opens here),
    /// each LUKS2 volume keyward manages (its keyslot, and the hubs' copy of its header), and
    /// that an offline fallback exists. The key is opened as an unlock opens it, and written
    /// nowhere; the peers count their release as a drill, apart from a use. One line per path:
    /// ok, broken (and why), or not proven (and what it needs); exit 11 naming every broken path.
    Drill(DrillArgs),
    /// Write the recovery sheet: what you keep on paper — the box's name, the key's
    /// fingerprints, the hubs and their pins, the LUKS2 volumes' UUIDs, the date, and the
    /// recovery code in large print with a QR code. It holds the code: a new 0600 file (never
    /// over an existing one without --force). The code must open the keybox.
    Sheet(SheetArgs),
    /// Back up the box itself: the keybox with the files beside it (hub enrollment, identity,
    /// share journal, notes) in one file (0600); the secret parts are sealed under a key derived
    /// from the key, so any slot opens it. The --unlock-… options open the keybox.
    Backup {
        /// Where to write it (created 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Restore a box from `keyward backup`: the keybox (at --keybox) and the files beside it,
    /// written atomically, the keybox last. The --unlock-… options open the backup's keybox.
    /// Never over a keybox of another key; over the same one only with --force.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The key's fingerprint, full or short, as you recorded it. Required: a backup is a
        /// keybox someone hands you, and nothing is written unless its key is yours (exit 5).
        #[arg(long, value_name = "FP", required = true)]
        expect_fingerprint: keyward_core::ExpectedFingerprint,
        /// Replace a keybox of the same key, and the files beside the keybox.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// The recovery code on its own.
    Code {
        #[command(subcommand)]
        command: CodeCommand,
    },
    /// Open the keybox and write the key to a file (or stdout with `--out -`).
    Unlock(UnlockArgs),
    /// Escrow: make the blob a fresh machine recovers the key from.
    Escrow {
        #[command(subcommand)]
        command: EscrowCommand,
    },
    /// Recover the key on a machine that has nothing but the blob (or a hub ticket) and the code.
    Recover(RecoverArgs),
    /// Operator tools: keys, enrollment tokens, recovery tickets, overwrite approvals, deletions.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Run a peer backup provider, which holds key shares for other boxes.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// This box's key shares at its peers: where they are, and a new split.
    Peers {
        #[command(subcommand)]
        command: PeersCommand,
    },
    /// TPM2 slots: seal one again after an expected firmware or boot change.
    Tpm2 {
        #[command(subcommand)]
        command: crate::kinds::tpm2::Tpm2Command,
    },
    /// The key agent: holds the unlocked key in locked memory for a bounded time and hands it
    /// to allowed local callers over a Unix socket.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// LUKS2 volumes: a keyslot whose passphrase is derived from the key, so every slot that
    /// opens the keybox opens the volume, with a `keyward` token in the header that names it and
    /// journals its crash-safe rotation.
    Luks {
        #[command(subcommand)]
        command: LuksCommand,
    },
    /// Run a command with the key from the agent on an inherited file descriptor, whose number
    /// is in the child's `KEYWARD_KEY_FD` (never in its arguments or environment).
    Exec(ExecArgs),
    /// Run an escrow hub.
    Hub {
        #[command(subcommand)]
        command: HubCommand,
    },
    /// Walk through keyward end to end in a temporary folder.
    Demo(DemoArgs),
    /// Wait until servers started in the background listen: after `keyward hub serve … &`,
    /// `keyward wait 127.0.0.1:8443` returns once the hub takes connections (exit 8 if it does
    /// not within --timeout). A PATH waits for a Unix socket (the key agent's) to be there.
    Wait(WaitArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or with --out write one page per command: keyward(1),
    /// keyward-init(1), keyward-escrow-enroll(1), …
    Man {
        /// The folder to write every page to (created if needed; pages there are replaced).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
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

    /// The PIN for a new device slot, from F (`-` for stdin; one trailing newline is dropped)
    /// instead of a prompt. For pkcs11 (the token's user PIN), a file's absolute path is
    /// recorded in the slot, so `unlock` opens it unattended; the file must be readable by its
    /// owner only. For tpm2 --with-pin (the new PIN), it is read once and not recorded.
    #[arg(long, value_name = "F")]
    pub pin_file: Option<PathBuf>,

    /// Target unlock time for a new passphrase slot's argon2id, in milliseconds (10 to 60000).
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub kdf_time_ms: u64,

    /// Most memory for a new passphrase slot's argon2id, in MiB (19 to 4096; lowered if one
    /// pass alone is slower than the target, never below 19 MiB with 2 passes, OWASP's floor).
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(19..=4096))]
    pub kdf_memory_mib: u32,

    #[command(flatten)]
    pub pkcs11: crate::kinds::pkcs11::Pkcs11Args,

    #[command(flatten)]
    pub tpm2: crate::kinds::tpm2::Tpm2Args,
}

impl NewSecretArgs {
    /// The kind-specific options given (those without a default), by name.
    pub fn given(&self) -> Vec<&'static str> {
        let given = [
            ("--passphrase-file", self.passphrase_file.is_some()),
            ("--keyfile", self.keyfile.is_some()),
            ("--code-out", self.code_out.is_some()),
            ("--pin-file", self.pin_file.is_some()),
        ];
        given
            .into_iter()
            .filter(|(_, is)| *is)
            .map(|(name, _)| name)
            .chain(self.pkcs11.given())
            .chain(self.tpm2.given())
            .collect()
    }
}

/// How an existing slot is opened to authorise a change.
#[derive(Debug, Clone, Default, Args)]
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

    /// Authorise through a device slot (a TPM or token slot with a PIN) with the PIN in F (`-`
    /// for stdin; one trailing newline is dropped).
    #[arg(long, value_name = "F")]
    pub unlock_pin_file: Option<PathBuf>,

    /// Open only this slot (id or label). Without a secret option, an unattended slot is tried,
    /// then a prompt; a peers slot asks its peers.
    #[arg(long, value_name = "SLOT")]
    pub unlock_slot: Option<String>,

    /// For a peers slot whose policy is `both`: the operator's release ticket (naming this box's
    /// identity as the requester) that goes with the box's own proof.
    #[arg(long, value_name = "F")]
    pub unlock_release_ticket: Option<PathBuf>,
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

    /// Open a device slot (a TPM or token slot with a PIN) with the PIN in F (`-` for stdin).
    #[arg(long, value_name = "F")]
    pub pin_file: Option<PathBuf>,

    /// Open only this slot (id or label); a peers slot asks its peers.
    #[arg(long, value_name = "SLOT")]
    pub slot: Option<String>,

    /// For a peers slot whose policy is `both`: the operator's release ticket (naming this box's
    /// identity as the requester) that goes with the box's own proof.
    #[arg(long, value_name = "F")]
    pub release_ticket: Option<PathBuf>,
}

impl AuthArgs {
    /// How many secret options were given.
    pub fn secrets_given(&self) -> usize {
        [
            &self.unlock_code_file,
            &self.unlock_passphrase_file,
            &self.unlock_keyfile,
            &self.unlock_pin_file,
        ]
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
            unlock_pin_file: a.pin_file.clone(),
            unlock_keyfile: a.keyfile.clone(),
            unlock_slot: a.slot.clone(),
            unlock_release_ticket: a.release_ticket.clone(),
        }
    }
}

/// `keyward init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of the first slot.
    #[arg(long = "with", value_name = "KIND", value_parser = crate::kinds::parser())]
    pub with: String,

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
    #[arg(value_parser = crate::kinds::parser())]
    pub kind: String,

    /// A name for the new slot [default: KIND-ID].
    #[arg(long, value_name = "L")]
    pub label: Option<String>,

    #[command(flatten)]
    pub secret: NewSecretArgs,

    #[command(flatten)]
    pub peers: PeersSlotArgs,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// What a peers slot needs (`enroll peers`).
#[derive(Debug, Args)]
pub struct PeersSlotArgs {
    /// Shares needed to get the key back (at least 2; at most the number of peers).
    #[arg(long, value_name = "K")]
    pub threshold: Option<u8>,

    /// A peer's card (from `keyward peer init`); one per peer, 2 to 16.
    #[arg(long = "peer", value_name = "CARD")]
    pub peers: Vec<PathBuf>,

    /// Who the peers release shares to: `either` the box itself (its identity signature, after
    /// a restart) or a fresh machine with an operator's release ticket; only the `identity`;
    /// only an `operator` ticket; `both` together; or `tpm-quote`: the box's identity with a
    /// fresh quote by its TPM over the PCRs chosen (--pcrs, default 7; --tpm2-device).
    #[arg(long, value_name = "POLICY", default_value = "either")]
    pub policy: keyward_peer::slot::ReleasePolicy,

    /// The name the peers know this box by (release tickets name it) [default: the box's hub
    /// name if it is enrolled at a hub, else the keybox label].
    #[arg(long = "box", value_name = "NAME")]
    pub box_name: Option<String>,

    /// An operator's enrollment token for this box (`operator enroll-token`), from F: a peer
    /// admits a box it does not know only with one. One token serves every peer, once each.
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,

    /// An operator's takeover of the box name by this machine's identity (`operator
    /// takeover`), from F: each peer moves the name from the machine this one replaces (once
    /// each); the sets it holds under the name stay until re-shared, released by ticket only.
    #[arg(long, value_name = "F", conflicts_with = "token_file")]
    pub takeover_file: Option<PathBuf>,
}

impl EnrollArgs {
    /// The kind-specific options given (those without a default), by name.
    pub fn given(&self) -> Vec<&'static str> {
        let peers = [
            ("--threshold", self.peers.threshold.is_some()),
            ("--peer", !self.peers.peers.is_empty()),
            ("--box", self.peers.box_name.is_some()),
            ("--token-file", self.peers.token_file.is_some()),
            ("--takeover-file", self.peers.takeover_file.is_some()),
        ];
        let mut given = self.secret.given();
        given.extend(peers.into_iter().filter(|(_, is)| *is).map(|(name, _)| name));
        given
    }
}

/// `keyward sheet`.
#[derive(Debug, Args)]
pub struct SheetArgs {
    /// Where to write it (created 0600; `-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub out: PathBuf,

    /// `html` (one A4 page, for a browser's print) or `text`.
    #[arg(long, value_enum, default_value = "html")]
    pub format: SheetFormat,

    /// The recovery code, from F (`-` for stdin); without it, a prompt.
    #[arg(long, value_name = "F")]
    pub code_file: Option<PathBuf>,

    /// Replace an existing sheet (atomically).
    #[arg(long)]
    pub force: bool,
}

/// A sheet's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SheetFormat {
    /// One HTML page that prints on A4.
    Html,
    /// Plain text.
    Text,
}

/// `keyward code …`.
#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Check a typed recovery code offline: ten words, each on the list. A word not on the
    /// list is named by its position, with the list words nearest it; a wrong word that is on
    /// the list cannot be found offline (only opening the keybox or the blob tells).
    Check {
        /// The code, from F (`-` for stdin); without it, a prompt.
        #[arg(long, value_name = "F")]
        code_file: Option<PathBuf>,
    },
}

/// `keyward drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The recovery code, from F (`-` for stdin): the escrowed blob is opened with it here, and
    /// the recovery-code slots too.
    #[arg(long, value_name = "F", conflicts_with = "ask")]
    pub code_file: Option<PathBuf>,

    /// Ask for the recovery code at the terminal, to confirm you still have it.
    #[arg(long)]
    pub ask: bool,

    /// Do not send the result to the box's hubs (by default it goes there as box-signed
    /// evidence, for the operator's fleet view).
    #[arg(long)]
    pub no_report: bool,

    /// Also write the result for node_exporter's textfile collector (one gauge per path and
    /// the time it was last proven), replacing FILE atomically (mode 0644: it holds no secret).
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
}

/// `keyward remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The slot to remove (id or label).
    pub slot: String,

    /// Remove the last recovery-code, passphrase or key-file slot though other slots remain:
    /// afterwards only a device (TPM, token) or the network (peers) opens the keybox.
    #[arg(long)]
    pub force: bool,

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
    #[arg(
        long,
        value_name = "FILE|-",
        required_unless_present = "to_keyring",
        conflicts_with = "to_keyring"
    )]
    pub out: Option<PathBuf>,

    /// Load the key into a kernel keyring instead of writing it: the user's (`@u`), this
    /// session's (`@s`) or the user's default session keyring (`@us`), with a timeout.
    #[arg(long, value_name = "@u|@s|@us")]
    pub to_keyring: Option<crate::keyring::Ring>,

    /// With --to-keyring: a `logon` key (the kernel uses it; user space cannot read it back)
    /// or a `user` key (readable, for tools that need that).
    #[arg(long, value_enum, default_value_t = crate::keyring::KeyKind::Logon)]
    pub key_type: crate::keyring::KeyKind,

    /// With --to-keyring: the key's description, what a consumer finds it by; a logon key's is
    /// SERVICE:NAME. [default: keyward:KEYBOX-ID]
    #[arg(long, value_name = "NAME", requires = "to_keyring")]
    pub description: Option<String>,

    /// With --to-keyring: how long the kernel keeps the key (`120s`, `2m`, `1h`; 1 s to 24 h).
    #[arg(long, value_name = "DURATION", default_value = "120s",
          value_parser = crate::keyring::parse_timeout)]
    pub timeout: std::time::Duration,

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

/// How to reach the hubs: their URLs and the certificates to trust, in pairs.
#[derive(Debug, Clone, Default, Args)]
pub struct HubArgs {
    /// A hub, `https://HOST:PORT`. Repeat for several hubs of one fleet (one database), each
    /// with its --hub-fingerprint in the same order: they are tried in turn, the next when one
    /// is down, hangs or fails [default: the profile's hubs].
    #[arg(long = "hub", value_name = "URL")]
    pub hubs: Vec<String>,

    /// The certificate SHA-256 of the --hub in the same position, as `hub init` printed it.
    #[arg(long = "hub-fingerprint", value_name = "HEX")]
    pub hub_fingerprints: Vec<String>,

    /// A hub's certificate (PEM), whose SHA-256 is pinned, in place of its --hub-fingerprint.
    #[arg(long = "hub-cert", value_name = "FILE", conflicts_with = "hub_fingerprints")]
    pub hub_certs: Vec<PathBuf>,
}

/// `keyward operator …`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Make an Ed25519 key pair — an operator's, or a fresh machine's requester key — (secret
    /// file 0600) and print its public key alone on stdout, for `hub init --operator`,
    /// `peer init --operator` or `approve-release --requester`.
    Keygen {
        /// Where to write the secret key file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a single-use, expiring enrollment token for a box.
    EnrollToken(StatementArgs),
    /// Sign a takeover: the box name moves from the identity it has now to exactly the one
    /// given (a replacement machine's, from `keyward escrow identity` on it), once at the hub
    /// and once at each peer. Its escrow versions, header backups and share sets stay; the old
    /// machine's requests are refused from then on. Useless to anyone without that identity's
    /// key, and void once the name has moved anywhere else.
    #[command(disable_version_flag = true)]
    Takeover {
        #[command(flatten)]
        statement: StatementArgs,
        /// The replacement machine's identity (`ed25519:…`), as `keyward escrow identity`
        /// printed it there.
        #[arg(long, value_name = "PUBKEY")]
        identity: String,
        /// The identity the name has now, which the takeover replaces [default: as the hubs
        /// say (`operator escrow-status` shows it); give it for a box enrolled at peers only].
        #[arg(long, value_name = "PUBKEY")]
        replacing: Option<String>,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Sign an expiring recovery ticket: a fresh machine may fetch every escrow version the hub
    /// holds of the box, a few times (so a mistyped code does not cost the ticket). The ticket
    /// names the box and the hubs with their pins, so `keyward recover --ticket-file` needs
    /// nothing else to find them.
    #[command(disable_version_flag = true)]
    ApproveRecovery {
        #[command(flatten)]
        statement: StatementArgs,
        #[command(flatten)]
        uses: UsesArg,
        #[command(flatten)]
        hub: HubArgs,
    },
    /// Sign a release ticket: the machine holding the requester key may get the box's key
    /// shares from its peers (a few times at each peer, until it expires).
    #[command(disable_version_flag = true)]
    ApproveRelease {
        #[command(flatten)]
        statement: StatementArgs,
        #[command(flatten)]
        uses: UsesArg,
        /// The requester's public key (`ed25519:…`): on a fresh machine, from
        /// `keyward operator keygen --out requester.key`; for a `both` policy, the box's own
        /// identity (`enroll peers` prints it). Only that key's holder can use the ticket.
        #[arg(long, value_name = "PUBKEY")]
        requester: String,
        /// A card of a peer that holds the box's shares (from `keyward peer init`); repeat for
        /// each. The ticket carries them, so `keyward recover --ticket-file` needs nothing else
        /// to find the peers [default: the profile's peers].
        #[arg(long = "peer", value_name = "CARD")]
        peers: Vec<PathBuf>,
    },
    /// A box's escrow versions at the hub, with each blob's SHA-256 (what an approval names).
    #[command(disable_version_flag = true)]
    EscrowStatus {
        #[command(flatten)]
        hub: HubArgs,
        /// The box.
        #[arg(long = "box", value_name = "NAME")]
        box_name: String,
        /// The operator's secret key file [default: the profile's operator_key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Approve a pending escrow version of a box, making it the active one. The older versions
    /// stay at the hub (only a deletion erases one), so a recovery still finds them.
    #[command(disable_version_flag = true)]
    ApproveOverwrite {
        #[command(flatten)]
        hub: HubArgs,
        /// The box.
        #[arg(long = "box", value_name = "NAME")]
        box_name: String,
        /// The pending version to make active.
        #[arg(long, value_name = "V")]
        version: u64,
        /// The SHA-256 of the blob to activate, as the box owner read it to you (`escrow push`
        /// prints it) and `operator escrow-status` shows it: exactly that blob becomes active.
        #[arg(long, value_name = "HEX")]
        blob_sha256: String,
        /// The key's fingerprint, full or short form, as the box owner recorded it (for a
        /// Proxmox Backup key, its PBS fingerprint): the version must claim that key.
        #[arg(long, value_name = "FP")]
        fingerprint: keyward_core::ExpectedFingerprint,
        /// The operator's secret key file [default: the profile's operator_key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Every box the hub knows, at a glance: its escrow version and state, approvals waiting,
    /// header backups and their age, and its last drill path by path. A box whose last drill
    /// found a path broken is "broken", one whose newest proof is older than --stale-after (or
    /// that never reported one) "stale"; exit 11 unless every box is healthy.
    #[command(disable_version_flag = true)]
    Fleet {
        #[command(flatten)]
        hub: HubArgs,
        /// The operator's secret key file [default: the profile's operator_key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// How old a box's newest proof may be before it is stale: `12h`, `2d`.
        #[arg(long, value_name = "DURATION", default_value = "2d")]
        stale_after: String,
    },
    /// Serve the fleet view as a read-only page on 127.0.0.1: broken boxes first in red, stale
    /// ones in amber, with the commands to approve or ticket, to copy. Each load asks the hubs
    /// anew with this operator's signed requests; the key never leaves this machine.
    #[command(disable_version_flag = true)]
    Dashboard {
        #[command(flatten)]
        hub: HubArgs,
        /// The operator's secret key file [default: the profile's operator_key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Where to serve the page: a loopback address only.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
        listen: std::net::SocketAddr,
        /// How old a box's newest proof may be before it is stale: `12h`, `2d`.
        #[arg(long, value_name = "DURATION", default_value = "2d")]
        stale_after: String,
    },
    /// Read the hub's audit log: every enrollment, takeover, push, approval, deletion, ticket
    /// use, header backup, drill report and the refusals counted, oldest first (the newest
    /// 1,000 at most).
    #[command(disable_version_flag = true)]
    Audit {
        #[command(flatten)]
        hub: HubArgs,
        /// The operator's secret key file [default: the profile's operator_key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// One box's records only.
        #[arg(long = "box", value_name = "NAME")]
        box_name: Option<String>,
        /// Records from then on: a duration back from now (`2d`, `12h`) [default: all].
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
    },
    /// Erase one escrow version of a box on the hub (its blob and directive; the row stays,
    /// marked deleted). Works on any state, the active one included: afterwards the box has no
    /// active escrow until an operator approves a new push. A box can never do this itself.
    #[command(disable_version_flag = true)]
    DeleteEscrow {
        #[command(flatten)]
        hub: HubArgs,
        /// The box.
        #[arg(long = "box", value_name = "NAME")]
        box_name: String,
        /// The version to erase (`keyward escrow status` on the box lists them).
        #[arg(long, value_name = "V")]
        version: u64,
        /// The operator's secret key file [default: the profile's operator_key].
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
}

/// How many uses a ticket allows.
#[derive(Debug, Args)]
pub struct UsesArg {
    /// How many times the ticket may be redeemed (at the hub, or at each peer), 1 to 10: more
    /// than one lets a fresh machine try again after a mistyped code or fingerprint. Each use is
    /// audited.
    #[arg(long, value_name = "N", default_value_t = keyward_service::statement::DEFAULT_TICKET_USES,
          value_parser = clap::value_parser!(u32).range(1..=10))]
    pub uses: u32,
}

/// What an operator statement needs.
#[derive(Debug, Args)]
pub struct StatementArgs {
    /// The box it is for.
    #[arg(long = "box", value_name = "NAME")]
    pub box_name: String,
    /// The operator's secret key file [default: the profile's operator_key].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// How long it stays valid: `30m`, `1h`, `2d`.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// Where to write it (0600; `-` for stdout). It is a bearer credential: hand it over safely.
    #[arg(long, value_name = "FILE|-")]
    pub out: PathBuf,
}

/// `keyward peer …`.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Create a peer's data folder: its Ed25519 identity, its X25519 sealing key, a TLS
    /// certificate, and its card (`DIR/peer-card.json`) for owners to enroll with.
    Init {
        /// The data folder (created 0700).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The URL owners reach it at (`https://127.0.0.1:PORT`), written on the card.
        #[arg(long, value_name = "URL")]
        url: String,
        /// An operator whose enrollment tokens (to admit a box) and release tickets this peer
        /// accepts (`ed25519:…`); repeat for several.
        #[arg(long = "operator", value_name = "PUBKEY", required = true)]
        operators: Vec<String>,
    },
    /// Serve HTTPS.
    Serve {
        /// The data folder from `peer init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8444")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// How a server treats its clients.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Requests per minute from one source (an IPv4 address, an IPv6 /64; 0: no limit).
    #[arg(long, value_name = "N", default_value_t = 600)]
    pub rate_per_source: u32,
    /// Seconds a connection may send and receive nothing (a stalled body included) before it is
    /// dropped; a request body must arrive whole within it too.
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub read_timeout_secs: u64,
    /// Connections one source may have open at once.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections_per_source: u32,
}

/// `keyward peers …`. (Parsed once per process: the size of its largest variant costs nothing.)
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum PeersCommand {
    /// Which peers hold a share of the current set, and when each was last released.
    Status {
        /// The peers slot [default: the keybox's only one].
        #[arg(long, value_name = "SLOT")]
        slot: Option<String>,
    },
    /// Split the key again (a new polynomial and share set): new shares are stored at every
    /// peer first, then the slot switches to them in one atomic commit, then the old shares are
    /// deleted. Old and new shares never combine.
    Reshare {
        /// The peers slot [default: the keybox's only one].
        #[arg(long, value_name = "SLOT")]
        slot: Option<String>,
        /// Drop this peer (its card, or its URL); repeatable.
        #[arg(long, value_name = "CARD|URL")]
        remove: Vec<String>,
        /// Add this peer's card; repeatable.
        #[arg(long, value_name = "CARD")]
        add: Vec<PathBuf>,
        /// An operator's enrollment token for this box, from F, for added peers that do not
        /// know it yet.
        #[arg(long, value_name = "F")]
        token_file: Option<PathBuf>,
        /// A new threshold [default: the current one].
        #[arg(long, value_name = "K")]
        threshold: Option<u8>,
        #[command(flatten)]
        auth: AuthArgs,
    },
}

/// `keyward hub …`.
#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Create a hub's data folder: its TLS certificate and the operators it trusts. Prints the
    /// certificate's SHA-256 alone on stdout (what clients pin with --hub-fingerprint).
    Init {
        /// The data folder (created 0700).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// An operator's public key (`ed25519:…`, from `operator keygen`); repeat for several.
        #[arg(long = "operator", value_name = "PUBKEY", required = true)]
        operators: Vec<String>,
    },
    /// Serve HTTPS.
    Serve {
        /// The data folder from `hub init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        serve: ServeArgs,
        /// Requests per minute for one box (0: no limit).
        #[arg(long, value_name = "N", default_value_t = 120)]
        rate_per_box: u32,
        /// Versions of one box that may wait for approval at once (more pushes are refused
        /// until an operator approves or deletes one).
        #[arg(
            long,
            value_name = "N",
            default_value_t = keyward_hub::hub::DEFAULT_MAX_PENDING,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
        )]
        max_pending_versions: usize,
        /// Also export each box's proof age and broken paths at /metrics (one series each per
        /// box). /metrics answers anyone who reaches the hub, and this lists the boxes' names.
        #[arg(long)]
        metrics_per_box: bool,
        /// Boxes per page of the fleet listing (`operator fleet` reads page after page; smaller
        /// pages for boxes with long drill reports).
        #[arg(
            long,
            value_name = "N",
            default_value_t = keyward_hub::hub::FLEET_PAGE,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=keyward_hub::hub::FLEET_PAGE as u64)
        )]
        fleet_page: usize,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `keyward hub audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; names the first record that does not fit.
    Verify {
        /// The data folder from `hub init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where a hub's database is. Its URL may hold a password, so it never comes on the command
/// line: from a file, else from the environment variable KEYWARD_DATABASE_URL, else SQLite in the
/// data folder.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Read the database URL (`postgres://…`, or `sqlite://PATH?mode=rwc`) from F (mode 0600;
    /// `-` for stdin) [default: $KEYWARD_DATABASE_URL, else SQLite in the data folder].
    #[arg(long, value_name = "F")]
    pub database_url_file: Option<PathBuf>,
}

/// `keyward escrow …`.
#[derive(Debug, Subcommand)]
pub enum EscrowCommand {
    /// Register this box with a hub under its identity (made beside the keybox, 0600, if it
    /// has none yet): a new name with an operator's enrollment token, or the name of a box this
    /// machine replaces with an operator's takeover.
    #[command(group(clap::ArgGroup::new("admission").required(true).args(["token_file", "takeover_file"])))]
    Enroll {
        #[command(flatten)]
        hub: HubArgs,
        /// This box's name at the hub.
        #[arg(long = "box", value_name = "NAME")]
        box_name: String,
        /// The operator's enrollment token, from F (`-` for stdin).
        #[arg(long, value_name = "F")]
        token_file: Option<PathBuf>,
        /// The operator's takeover of the name by this machine's identity (`keyward operator
        /// takeover`), from F (`-` for stdin): the hub moves the name, with its escrow versions
        /// and header backups, to this machine and refuses the old one from then on.
        #[arg(long, value_name = "F")]
        takeover_file: Option<PathBuf>,
    },
    /// Print this box's identity (its public key, `ed25519:…`), making it first (0600, beside
    /// the keybox) if it has none: what an operator's takeover names when this machine
    /// replaces a dead one.
    Identity,
    /// Upload the escrow blob and the restore directive. The keybox is opened first (its header
    /// MAC vouches for the slot escrowed). The first push is active; later ones wait for an
    /// operator's approval, which names the blob's SHA-256 this prints.
    Push {
        /// The restore directive: a JSON object the fresh machine is shown on recovery
        /// (docs/hub-api.md, "The restore directive"), e.g. the backup repository and the
        /// server's certificate fingerprint. Never put secrets in it.
        #[arg(long, value_name = "FILE.json")]
        directive: Option<PathBuf>,
        /// For a Proxmox Backup key: the recovery code, from F (`-` for stdin), to make the
        /// PBS-native blob; it also opens the keybox. Without it, a prompt.
        #[arg(long, value_name = "F")]
        code_file: Option<PathBuf>,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Show this box's escrow versions at the hub.
    Status,
    /// Download this box's active escrow blob, as the hub holds it (a PBS key file or a keyward
    /// escrow blob; both open only with the recovery code).
    Fetch {
        /// Where to write it (mode 0600; `-` for stdout).
        #[arg(long, value_name = "FILE|-")]
        out: PathBuf,
    },
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
#[command(group(clap::ArgGroup::new("destination").required(true).args(["out", "install", "into_keybox"])))]
#[command(group(clap::ArgGroup::new("source").required(true).args(["blob", "ticket_file"])))]
pub struct RecoverArgs {
    /// The escrow blob (as `keyward escrow export-blob` writes it). It is only read.
    #[arg(long, value_name = "FILE")]
    pub blob: Option<PathBuf>,

    /// The operator's ticket, from F: a recovery ticket (`operator approve-recovery`) fetches
    /// every escrow version from the hubs it names; a release ticket (`operator
    /// approve-release`) gathers the key's shares from the peers it names.
    #[arg(long, value_name = "F", conflicts_with = "blob")]
    pub ticket_file: Option<PathBuf>,

    /// With a recovery ticket: ask these hubs instead of the ticket's (a hub that moved).
    #[command(flatten)]
    pub hub: HubArgs,

    /// With a release ticket: ask these peers (their cards) instead of the ticket's.
    #[arg(long = "peers", value_name = "CARD", num_args = 1.., requires = "ticket_file")]
    pub peers: Vec<PathBuf>,

    /// The box the ticket must be for (it names its box; this only checks it).
    #[arg(long = "box", value_name = "NAME", requires = "ticket_file")]
    pub box_name: Option<String>,

    /// With a release ticket: the requester key it names (made on this machine with
    /// `keyward operator keygen --out requester.key`).
    #[arg(long, value_name = "FILE", requires = "ticket_file")]
    pub requester_key: Option<PathBuf>,

    /// Build a fresh keybox at PATH holding the key, with a recovery-code slot for the same code.
    #[arg(long = "into-keybox", value_name = "PATH")]
    pub into_keybox: Option<PathBuf>,

    /// The recovery code, from F (`-` for stdin); without it, a prompt.
    #[arg(long, value_name = "F")]
    pub code_file: Option<PathBuf>,

    /// The key's fingerprint, full or short form, as you recorded it when it was escrowed (the
    /// PBS one for a Proxmox Backup blob). Required: nothing is written unless the recovered key
    /// has it (exit 5); with --hub the restore directive's fingerprint is checked too. What a
    /// blob or a hub says of itself is no proof of the key.
    #[arg(long, value_name = "FP", required = true)]
    pub expect_fingerprint: keyward_core::ExpectedFingerprint,

    /// Where to write the key (created 0600; `-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub out: Option<PathBuf>,

    /// Install it as the backup client's default key,
    /// $XDG_CONFIG_HOME/proxmox-backup/encryption-key.json (an unencrypted PBS key file).
    #[arg(long, conflicts_with = "format")]
    pub install: bool,

    /// How to encode the key [default: pbs for a Proxmox Backup blob, else raw].
    #[arg(long, value_enum)]
    pub format: Option<KeyFormat>,

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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

/// Where the agent's socket is: `--socket`, else one per keybox under
/// `$XDG_RUNTIME_DIR/keyward/` (a folder only its user can enter).
#[derive(Debug, Clone, Args)]
pub struct AgentSocketArgs {
    /// The agent's Unix socket. [default: $XDG_RUNTIME_DIR/keyward/agent-HASH.sock, HASH from
    /// the keybox's path]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// How long to wait for the agent's whole answer before giving up (exit 8, nothing written
    /// or run) [default: 35 s for get and exec, which may wait for the agent to open the keybox
    /// again; 5 s for status and lock].
    #[arg(long, value_name = "DURATION", value_parser = crate::keyring::parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

/// `keyward agent …`.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum AgentCommand {
    /// Open the keybox (as `unlock` does: a secret given, an unattended slot, else a prompt),
    /// then serve the key in the foreground until SIGTERM. After the TTL the key is wiped; the
    /// next request opens the keybox again through a slot that needs nobody (plain, key file,
    /// tpm2, pkcs11 with a PIN file, or the slot named with --slot, e.g. peers), or is refused.
    /// One JSON audit line per request goes to stderr (or --audit FILE). Socket activation by
    /// systemd is used when it passes a socket (docs/keyward-agent.socket).
    Serve(AgentServeArgs),
    /// Write the key the agent holds to a file (created 0600) or `-` for stdout.
    Get {
        /// Where to write the key: a file (created 0600) or `-` for stdout.
        #[arg(long, value_name = "FILE|-")]
        out: PathBuf,
        /// How to encode the key.
        #[arg(long, value_enum, default_value_t = KeyFormat::Raw)]
        format: KeyFormat,
        /// Replace an existing output file (atomically).
        #[arg(long)]
        force: bool,
        /// Refuse (exit 5, nothing written) unless the key has this fingerprint, full or short.
        #[arg(long, value_name = "FP")]
        expect_fingerprint: Option<keyward_core::ExpectedFingerprint>,
        #[command(flatten)]
        socket: AgentSocketArgs,
    },
    /// Whether the agent holds the key, for how long still, and how many requests it served.
    Status {
        #[command(flatten)]
        socket: AgentSocketArgs,
    },
    /// Wipe the agent's key now (the next request opens the keybox again, unattended).
    Lock {
        #[command(flatten)]
        socket: AgentSocketArgs,
    },
}

/// `keyward wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// What to wait for: HOST:PORT, a TCP server (`127.0.0.1:8443`; IPv6 as `[::1]:8443`), or
    /// PATH, a Unix socket; each in turn.
    #[arg(value_name = "HOST:PORT|PATH", required = true)]
    pub targets: Vec<String>,

    /// How long to wait for all of them (`10s`, `2m`; 1 s to 24 h).
    #[arg(long, value_name = "DURATION", default_value = "10s",
          value_parser = crate::keyring::parse_timeout)]
    pub timeout: std::time::Duration,
}

/// `keyward agent serve`.
#[derive(Debug, Args)]
pub struct AgentServeArgs {
    /// How long the key is held after it was opened (`120s`, `2m`, `1h`; 1 s to 24 h).
    #[arg(long, value_name = "DURATION", default_value = "120s",
          value_parser = crate::keyring::parse_timeout)]
    pub ttl: std::time::Duration,

    /// Serve callers with this uid or gid (`uid:N`, `gid:N`; any one matches), and only this
    /// executable (`exe:/path`, or `exe:/path@SHA256` to pin its contents too; any one
    /// matches); repeatable. [default: the agent's own uid, any executable]
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<keyward_agent::callers::Rule>,

    /// Append the audit lines (JSON, one per request) to FILE (created 0600) instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    #[command(flatten)]
    pub socket: AgentSocketArgs,

    #[command(flatten)]
    pub open: OpenArgs,
}

/// `keyward exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub socket: AgentSocketArgs,

    /// Refuse (exit 5, nothing run) unless the key has this fingerprint, full or short.
    #[arg(long, value_name = "FP")]
    pub expect_fingerprint: Option<keyward_core::ExpectedFingerprint>,

    /// What the descriptor holds: the key's bytes (raw, hex, base64), or `pbs`, a Proxmox
    /// Backup key file (unencrypted JSON) for a backup client:
    /// `keyward exec --format pbs -- sh -c 'proxmox-backup-client backup … --keyfd "$KEYWARD_KEY_FD"'`.
    #[arg(long, value_enum, default_value = "raw")]
    pub format: KeyFormat,

    /// The command and its arguments, after `--`.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// `keyward luks …`. DEVICE is a block device or a LUKS2 image file. Every command that opens
/// the keybox first finishes (or rolls back) a keyward command that was stopped half-way, and
/// says so on stderr.
#[derive(Debug, Subcommand)]
pub enum LuksCommand {
    /// Add keyward's keyslot, with a `keyward` token bound to it. An existing passphrase of the
    /// volume is needed once (a prompt, or --luks-key-file).
    Enroll(LuksEnrollArgs),
    /// Give keyward's keyslot a new passphrase: a pending token, a new keyslot, the token
    /// committed, then the old keyslot wiped and its token removed. After a crash at any step
    /// the next keyward luks command finishes it or rolls it back.
    Rotate(LuksRotateArgs),
    /// Write keyward's keyslot passphrase (for `cryptsetup open --key-file -`), after checking
    /// that it opens its keyslot. No newline is added.
    Passphrase(LuksPassphraseArgs),
    /// Show which keyslot is keyward's, its token, and a rotation left unfinished. Reads only,
    /// needs no key; exits 4 when the header holds keyward tokens no keyward step leaves.
    Status {
        /// The block device or image file.
        device: PathBuf,
    },
    /// Wipe keyward's keyslot and remove its token. Refused if it is the volume's last keyslot.
    Remove(LuksKeyArgs),
    /// Back up the header and keyslot areas (cryptsetup's luksHeaderBackup) to a new 0600 file,
    /// or with --push to this box's escrow hub, sealed under the key, so a fresh machine that
    /// recovered the key can repair a damaged header.
    HeaderBackup(LuksHeaderBackupArgs),
    /// Restore a header backup, from a file or from the hub; refused if it is another volume's
    /// (by UUID).
    HeaderRestore(LuksHeaderRestoreArgs),
    /// Add an ordinary passphrase keyslot, opened through keyward's keyslot: on a fresh machine,
    /// after `keyward recover`, this gives the volume a passphrase again.
    AddPassphrase(LuksAddPassphraseArgs),
}

/// A volume and how the keybox is opened.
#[derive(Debug, Args)]
pub struct LuksKeyArgs {
    /// The block device or image file.
    pub device: PathBuf,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// The PBKDF of a keyslot keyward adds, with cryptsetup's option names and meanings; without
/// any, libcryptsetup chooses as `cryptsetup luksAddKey` does (argon2id, benchmarked).
#[derive(Debug, Args)]
pub struct LuksKdfArgs {
    /// The keyslot's PBKDF.
    #[arg(long, value_enum, value_name = "KDF")]
    pub pbkdf: Option<LuksKdf>,

    /// The unlock time the PBKDF benchmark aims at, in milliseconds.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
    pub iter_time: Option<u32>,

    /// argon2's memory in KiB: its most with a benchmark, its cost with
    /// --pbkdf-force-iterations.
    #[arg(long, value_name = "KIB", value_parser = clap::value_parser!(u32).range(32..))]
    pub pbkdf_memory: Option<u32>,

    /// argon2's threads.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4))]
    pub pbkdf_parallel: Option<u32>,

    /// A fixed PBKDF cost (argon2 passes, or PBKDF2 iterations), with no benchmark.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pbkdf_force_iterations: Option<u32>,
}

/// A LUKS2 keyslot PBKDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LuksKdf {
    /// argon2id (LUKS2's default).
    Argon2id,
    /// argon2i.
    Argon2i,
    /// PBKDF2-SHA256.
    Pbkdf2,
}

/// `keyward luks enroll`.
#[derive(Debug, Args)]
pub struct LuksEnrollArgs {
    #[command(flatten)]
    pub volume: LuksKeyArgs,

    /// An existing passphrase (or key file) of the volume, read whole as `cryptsetup
    /// --key-file` reads it (`-` for stdin), instead of a prompt.
    #[arg(long, value_name = "F")]
    pub luks_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub kdf: LuksKdfArgs,
}

/// `keyward luks rotate`.
#[derive(Debug, Args)]
pub struct LuksRotateArgs {
    #[command(flatten)]
    pub volume: LuksKeyArgs,

    #[command(flatten)]
    pub kdf: LuksKdfArgs,
}

/// `keyward luks passphrase`.
#[derive(Debug, Args)]
pub struct LuksPassphraseArgs {
    #[command(flatten)]
    pub volume: LuksKeyArgs,

    /// Where to write the passphrase: a file (created 0600) or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub out: PathBuf,

    /// Replace an existing output file (atomically).
    #[arg(long)]
    pub force: bool,
}

/// `keyward luks header-backup`.
#[derive(Debug, Args)]
pub struct LuksHeaderBackupArgs {
    /// The block device or image file; the --unlock-… options open the keybox, for --push.
    #[command(flatten)]
    pub volume: LuksKeyArgs,

    /// The backup file (created 0600, atomically): cryptsetup's own format, which `cryptsetup
    /// luksHeaderRestore` takes too.
    #[arg(long, value_name = "FILE", required_unless_present = "push")]
    pub out: Option<PathBuf>,

    /// Replace an existing backup file (atomically).
    #[arg(long, requires = "out")]
    pub force: bool,

    /// Push the backup to the hub this box is enrolled at (`keyward escrow enroll`), sealed
    /// under a key derived from the keybox's key, in place of the one the hub held for this
    /// volume. Opens the keybox; the volume must have keyward's keyslot. Push again after a
    /// rotation or a passphrase change, so the hub's copy is the current header.
    #[arg(long)]
    pub push: bool,
}

/// `keyward luks header-restore`.
#[derive(Debug, Args)]
pub struct LuksHeaderRestoreArgs {
    /// The block device or image file; the --unlock-… options open the keybox, for --hub.
    #[command(flatten)]
    pub volume: LuksKeyArgs,

    /// The header backup (from `keyward luks header-backup --out` or `cryptsetup
    /// luksHeaderBackup`).
    #[arg(long, value_name = "FILE", required_unless_present = "ticket_file")]
    pub from: Option<PathBuf>,

    /// Fetch the volume's sealed header backup instead, from the hubs an operator's recovery
    /// ticket names, with that ticket (checked, not used up), and open it with the keybox's
    /// key: on a fresh machine, run `keyward recover --into-keybox` first.
    #[arg(long, value_name = "F", conflicts_with = "from")]
    pub ticket_file: Option<PathBuf>,

    /// With --ticket-file: ask these hubs instead of the ticket's.
    #[command(flatten)]
    pub hub: HubArgs,

    /// The box the ticket must be for (it names its box; this only checks it).
    #[arg(long = "box", value_name = "NAME", requires = "ticket_file")]
    pub box_name: Option<String>,

    /// The volume's UUID as you recorded it (`cryptsetup luksUUID` at setup), needed when its
    /// header is too damaged to read it from. Only a device holding nothing else (no
    /// filesystem, LUKS1 or other signature, as `blkid -p` sees it) is restored onto.
    #[arg(long, value_name = "UUID")]
    pub expect_uuid: Option<String>,
}

/// `keyward luks add-passphrase`.
#[derive(Debug, Args)]
pub struct LuksAddPassphraseArgs {
    #[command(flatten)]
    pub volume: LuksKeyArgs,

    /// The new passphrase (or key file), read whole as `cryptsetup --key-file` reads it (`-`
    /// for stdin), instead of prompting twice.
    #[arg(long, value_name = "F")]
    pub new_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub kdf: LuksKdfArgs,
}
