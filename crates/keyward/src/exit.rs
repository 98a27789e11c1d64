//! Errors of the CLI and the one place they become exit codes. The table is in the README and is
//! stable: scripts depend on it.

use keyward_box::BoxError;
use keyward_core::Error as CoreError;
use keyward_core::ErrorClass;
use keyward_core::slot::SlotError;
use keyward_peer::recovery::GatherError;
use keyward_peer::slot::PeersSlotError;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the library.
    #[error(transparent)]
    Core(CoreError),
    /// The command was called in a way that cannot work.
    #[error("{0}")]
    Usage(String),
    /// A check of keyward's own (the demo's) did not hold.
    #[error("{0}")]
    Failed(String),
    /// A drill found recovery paths broken (they are named).
    #[error("broken: {}; see each line above for why and what to do", .0.join("; "))]
    DrillFound(Vec<String>),
    /// A Proxmox Backup key file (or PBS-form blob) could not be read or opened.
    #[error("{}: {source}", path.display())]
    Pbs {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: keyward_pbs::PbsError,
    },
    /// A workflow's failure that has no twin here (a code that opens no blob, a configuration
    /// file that cannot be used).
    #[error(transparent)]
    Workflow(BoxError),
    /// A hub or peer call failed.
    #[error(transparent)]
    Remote(#[from] keyward_service::client::ClientError),
    /// Shares could not be placed at every peer.
    #[error(transparent)]
    Distribute(#[from] keyward_peer::distribute::DistributeError),
    /// The key could not be put together from the peers' shares.
    #[error("{}", gather_message(.0))]
    Gather(#[from] keyward_peer::recovery::GatherError),
    /// A peer card cannot be used.
    #[error("{}: {source}; use the card `keyward peer init` wrote", path.display())]
    Card {
        /// The card file.
        path: std::path::PathBuf,
        /// What is wrong.
        source: keyward_peer::card::CardError,
    },
    /// A new slot's device (a token, a TPM) could not be used while the slot was prepared,
    /// before it has a number.
    #[error("{0}")]
    NewSlotDevice(SlotError),
    /// The kernel keyring refused (its quota, a keyring this process may not write).
    #[error("cannot {what} the kernel keyring {ring}: {source}")]
    Keyring {
        /// `@u`, `@s` or `@us`.
        ring: &'static str,
        /// What was being done.
        what: &'static str,
        /// The kernel's answer.
        source: keyutils::Error,
    },
    /// The key agent, or talking to it.
    #[error(transparent)]
    Agent(#[from] keyward_agent::AgentError),
    /// A LUKS2 volume's keyward keyslot.
    #[error(transparent)]
    Luks(#[from] keyward_luks::LuksError),
    /// `hub …` or `peer …` could not be handed to `keyward-server`.
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    /// A server or database cannot be reached or served.
    #[error("{0}; check that it runs and the address is right")]
    Unavailable(String),
    /// The hub's audit chain is broken.
    #[error("the audit log is broken: {0}")]
    AuditBroken(keyward_hub::audit::AuditBreak),
    /// Writing our own output (stdout) failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A volume changed, and the push of its fresh header copy to the hub failed.
    #[error(
        "{} changed, but the hub's copy of its header is stale now ({source}); a restore from the hub would bring back what changed: push a fresh one when the hub is reachable (`keyward luks header-backup {} --push`)",
        device.display(), device.display()
    )]
    HubCopyStale {
        /// The volume.
        device: std::path::PathBuf,
        /// Why the push failed.
        source: Box<CliError>,
    },
    /// An output file exists, and the command's `--force` was not given.
    #[error(
        "{} already exists; keyward does not overwrite it (choose another path, or pass --force to replace it)",
        path.display()
    )]
    OutputExists {
        /// The output path.
        path: std::path::PathBuf,
    },
}

/// A library error, with a failure of the peers kind's own brought out as the CLI's error for
/// it (so its message and exit code are the same whether the peers were asked by a slot or by
/// `recover --peers`).
impl From<CoreError> for CliError {
    fn from(error: CoreError) -> Self {
        let CoreError::Slot { slot, source: SlotError::Other(other) } = error else {
            return CliError::Core(error);
        };
        // A workflow's failure, met while it answered a slot (see keyward_box::unlock).
        let other = match other.downcast::<BoxError>() {
            Ok(ours) => return CliError::from(*ours),
            Err(other) => other,
        };
        match other.downcast::<PeersSlotError>() {
            Ok(peers) => match *peers {
                PeersSlotError::Gather(gather) => CliError::Gather(gather),
                peers => CliError::Core(CoreError::Slot {
                    slot,
                    source: SlotError::Other(Box::new(peers)),
                }),
            },
            Err(other) => CliError::Core(CoreError::Slot { slot, source: SlotError::Other(other) }),
        }
    }
}

/// A workflow's failure as the CLI's: the same message and exit code it had when the workflow
/// lived in the CLI.
impl From<BoxError> for CliError {
    fn from(error: BoxError) -> Self {
        match error {
            BoxError::Core(e) => e.into(),
            BoxError::Invalid(text) => CliError::Usage(text),
            BoxError::Pbs { path, source } => CliError::Pbs { path, source },
            BoxError::Card { path, source } => CliError::Card { path, source },
            BoxError::Distribute(e) => CliError::Distribute(e),
            BoxError::Gather(e) => CliError::Gather(e),
            BoxError::Remote(e) => CliError::Remote(e),
            other @ (BoxError::Config { .. }
            | BoxError::CodeOpensNothing { .. }
            | BoxError::Runtime(_)) => CliError::Workflow(other),
        }
    }
}

impl CliError {
    /// Which kind of failure it is, and so its exit code: each library error classifies itself
    /// where it is defined (`keyward_core::ErrorClass`), so a new variant cannot become exit 1
    /// by default.
    pub fn class(&self) -> ErrorClass {
        match self {
            CliError::Core(e) => e.class(),
            CliError::Usage(_) => ErrorClass::Usage,
            CliError::Failed(_) | CliError::Output(_) => ErrorClass::Internal,
            CliError::DrillFound(_) => ErrorClass::DrillFound,
            CliError::Pbs { source, .. } => source.class(),
            CliError::Workflow(e) => e.class(),
            CliError::Remote(e) => e.class(),
            CliError::Distribute(e) => e.class(),
            CliError::Gather(e) => e.class(),
            CliError::Card { source, .. } => source.class(),
            CliError::NewSlotDevice(e) => e.class(),
            CliError::Keyring { source, .. } => keyring_class(source),
            CliError::Agent(e) => e.class(),
            CliError::Luks(e) => e.class(),
            CliError::Server(_) | CliError::Unavailable(_) => ErrorClass::Unavailable,
            // The change stands either way; a hub that answered with another certificate is
            // said as such (it may be someone else's), anything else as the hub not reachable.
            CliError::HubCopyStale { source, .. } => {
                if source.class() == ErrorClass::CertificateMismatch {
                    ErrorClass::CertificateMismatch
                } else {
                    ErrorClass::Unavailable
                }
            }
            CliError::AuditBroken(_) => ErrorClass::Integrity,
            CliError::OutputExists { .. } => ErrorClass::Conflict,
        }
    }
}

/// The kernel keyring's refusals: over the user's key quota, or a keyring this process may not
/// write, are refusals; anything else the kernel failing.
fn keyring_class(error: &keyutils::Error) -> ErrorClass {
    if [libc::EDQUOT, libc::EACCES, libc::EPERM].contains(&error.0) {
        ErrorClass::Refused
    } else {
        ErrorClass::Internal
    }
}

/// The exit-code list of `--help` and the man page, from the classes themselves.
pub fn exit_code_help() -> String {
    let codes: Vec<String> = std::iter::once("0 ok".to_string())
        .chain(
            ErrorClass::ALL.iter().map(|class| format!("{} {}", class.exit_code(), class.name())),
        )
        .collect();
    format!("Exit codes: {} (the README's table says what each covers).", codes.join(", "))
}

/// One line naming what went wrong at each peer that gave nothing.
fn gather_message(error: &GatherError) -> String {
    match error {
        GatherError::TooFew { silent, .. } => {
            let names = |unreachable: bool| {
                silent
                    .iter()
                    .filter(|s| s.unreachable == unreachable)
                    .map(|s| if unreachable { s.peer.clone() } else { s.reason.clone() })
                    .collect::<Vec<_>>()
            };
            let mut text = format!("{error}");
            let (down, refused) = (names(true), names(false));
            if !down.is_empty() {
                text.push_str(&format!("; unreachable: {}", down.join(", ")));
            }
            if !refused.is_empty() {
                text.push_str(&format!("; {}", refused.join("; ")));
            }
            text.push_str("; start the peers that are down, or fix what they refused");
            text
        }
        GatherError::NoFit { .. } => format!(
            "{error}; a peer's store may be damaged, or peers lie: check them with `keyward peers status`"
        ),
    }
}

/// Shorthand for a usage error.
pub fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// The CLI's result type.
pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use keyward_core::kdf::KdfError;
    use keyward_core::slot::DeviceError;
    use keyward_core::{IntegrityFailure, SlotId};
    use keyward_pbs::PbsError;
    use keyward_peer::distribute::DistributeError;
    use keyward_service::client::ClientError;

    use super::*;

    const README: &str = include_str!("../../../README.md");

    /// The README's exit-code table, as (code, meaning) rows.
    fn readme_table() -> Vec<(u8, String)> {
        README
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse::<u8>().ok()?;
                Some((code, cells.get(2)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_exit_code_is_in_the_readme_and_the_help_with_its_meaning() {
        let table = readme_table();
        let expected: Vec<(u8, &str)> = std::iter::once((0, "ok"))
            .chain(ErrorClass::ALL.iter().map(|c| (c.exit_code(), c.name())))
            .collect();
        assert_eq!(table.len(), expected.len(), "the README table has one row per exit code");
        let help = exit_code_help();
        for (code, meaning) in expected {
            let row = table.iter().find(|(c, _)| *c == code);
            let text = row
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("README lacks exit code {code}"));
            assert!(
                text.starts_with(meaning),
                "README row {code}: `{text}` should start with `{meaning}`"
            );
            assert!(help.contains(&format!("{code} {meaning}")), "--help lacks {code}: {help}");
        }
    }

    #[test]
    fn every_error_variant_maps_to_its_documented_code() {
        let path = PathBuf::from("k");
        let io = |kind| std::io::Error::from(kind);
        let device = |e: DeviceError| -> CliError {
            CoreError::Slot { slot: SlotId(1), source: SlotError::Device(e) }.into()
        };
        let cases: Vec<(CliError, ErrorClass)> = vec![
            (CoreError::WrongSecret { tried: "x".into() }.into(), ErrorClass::AuthenticationFailed),
            (
                CoreError::BadRecoveryCode(keyward_core::recovery_code::CodeError::WordCount {
                    found: 3,
                })
                .into(),
                ErrorClass::AuthenticationFailed,
            ),
            (
                CoreError::Integrity { path: path.clone(), what: IntegrityFailure::Checksum }
                    .into(),
                ErrorClass::Integrity,
            ),
            (
                CoreError::FingerprintMismatch { expected: "a".into(), found: "b".into() }.into(),
                ErrorClass::FingerprintMismatch,
            ),
            (CoreError::KeyboxNotFound(path.clone()).into(), ErrorClass::NotFound),
            (CoreError::SlotNotFound("2".into()).into(), ErrorClass::NotFound),
            (CoreError::NotRecorded("x").into(), ErrorClass::NotFound),
            (CoreError::NoSlotOfKind("passphrase".into()).into(), ErrorClass::NotFound),
            (CoreError::NoSlotTakes("the passphrase").into(), ErrorClass::NotFound),
            (
                CoreError::UnknownKind { slot: SlotId(1), kind: "fido2".into() }.into(),
                ErrorClass::Unavailable,
            ),
            (
                CoreError::SlotNeeds { slot: SlotId(1), needs: "the PIN".into() }.into(),
                ErrorClass::Usage,
            ),
            (
                CoreError::WrongSecretKind { slot: SlotId(1), kind: "plain".into(), offered: "x" }
                    .into(),
                ErrorClass::Usage,
            ),
            (device(DeviceError::Absent("no TPM".into())), ErrorClass::Unavailable),
            (device(DeviceError::Busy("in use".into())), ErrorClass::Unavailable),
            (device(DeviceError::LockedOut("lockout".into())), ErrorClass::Refused),
            (
                device(DeviceError::PolicyMismatch("PCR 7 changed".into())),
                ErrorClass::AuthenticationFailed,
            ),
            (
                CoreError::Slot {
                    slot: SlotId(2),
                    source: SlotError::Other(Box::new(PeersSlotError::TicketNeeded)),
                }
                .into(),
                ErrorClass::Usage,
            ),
            (CoreError::NoUnattendedSlot.into(), ErrorClass::Usage),
            (CoreError::KeyboxExists(path.clone()).into(), ErrorClass::Conflict),
            (CoreError::LockHeld(path.clone()).into(), ErrorClass::Conflict),
            (
                CoreError::ConcurrentChange { path: path.clone(), expected: 1, found: 2 }.into(),
                ErrorClass::Conflict,
            ),
            (CoreError::OutputExists(path.clone()).into(), ErrorClass::Conflict),
            (
                CoreError::InsecurePermissions {
                    path: path.clone(),
                    problem: "p",
                    fix: "f".into(),
                }
                .into(),
                ErrorClass::Refused,
            ),
            (CoreError::LastSlot(SlotId(1)).into(), ErrorClass::Refused),
            (CoreError::KeyLength { len: 3, min: 16, max: 4096 }.into(), ErrorClass::Usage),
            (CoreError::PassphraseTooShort { min: 8 }.into(), ErrorClass::Usage),
            (CoreError::KeyfileSize { len: 3 }.into(), ErrorClass::Usage),
            (
                CoreError::SlotKindMismatch {
                    slot: SlotId(1),
                    kind: "plain".into(),
                    offered: "passphrase".into(),
                }
                .into(),
                ErrorClass::Usage,
            ),
            (CoreError::DuplicateLabel("x".into()).into(), ErrorClass::Usage),
            (CoreError::BadLabel("1".into()).into(), ErrorClass::Usage),
            (CoreError::OutOfMemory { kib: 1024 }.into(), ErrorClass::Internal),
            (
                CoreError::NotDurable { path: path.clone(), source: io(std::io::ErrorKind::Other) }
                    .into(),
                ErrorClass::Internal,
            ),
            (CoreError::SlotIdsExhausted.into(), ErrorClass::Refused),
            (CoreError::KdfParams(IntegrityFailure::Checksum).into(), ErrorClass::Usage),
            (CoreError::Internal("x").into(), ErrorClass::Internal),
            (CoreError::Random("x".into()).into(), ErrorClass::Internal),
            (
                CoreError::io("cannot read", &path, io(std::io::ErrorKind::NotFound)).into(),
                ErrorClass::NotFound,
            ),
            (
                CoreError::io("cannot write", &path, io(std::io::ErrorKind::StorageFull)).into(),
                ErrorClass::Internal,
            ),
            (
                CoreError::io("cannot read", &path, io(std::io::ErrorKind::PermissionDenied))
                    .into(),
                ErrorClass::Internal,
            ),
            (CliError::Usage("x".into()), ErrorClass::Usage),
            (CliError::Failed("x".into()), ErrorClass::Internal),
            (CliError::DrillFound(vec!["slot 2".into()]), ErrorClass::DrillFound),
            (
                BoxError::CodeOpensNothing { what: "b".into(), ticket_uses_left: Some(2) }.into(),
                ErrorClass::AuthenticationFailed,
            ),
            (
                BoxError::Config { path: path.clone(), problem: "x".into() }.into(),
                ErrorClass::Usage,
            ),
            (BoxError::Invalid("x".into()).into(), ErrorClass::Usage),
            (CliError::OutputExists { path: path.clone() }, ErrorClass::Conflict),
            (CliError::Output(io(std::io::ErrorKind::BrokenPipe)), ErrorClass::Internal),
        ];
        let pbs = |source| CliError::Pbs { path: path.clone(), source };
        let pbs_cases: Vec<(CliError, ErrorClass)> = vec![
            (pbs(PbsError::NotJson("x".into())), ErrorClass::Integrity),
            (pbs(PbsError::BadField { field: "data", problem: "x".into() }), ErrorClass::Integrity),
            (pbs(PbsError::UnknownKdf { found: "x".into() }), ErrorClass::Integrity),
            (pbs(PbsError::PassphraseNeeded { kdf: "x".into() }), ErrorClass::Usage),
            (pbs(PbsError::WrongPassphrase { hint: None }), ErrorClass::AuthenticationFailed),
            (pbs(PbsError::SelfCheckFailed), ErrorClass::Internal),
            (pbs(PbsError::EncryptionFailed), ErrorClass::Internal),
            (
                pbs(PbsError::EscrowCostTooHigh { found: "x".into(), limit: "y".into() }),
                ErrorClass::Integrity,
            ),
            (
                pbs(PbsError::StoredFingerprintMismatch { stored: "a".into(), found: "b".into() }),
                ErrorClass::Integrity,
            ),
            (pbs(PbsError::KeyLength(3)), ErrorClass::Integrity),
            (pbs(PbsError::Kdf(KdfError::OutOfMemory { kib: 1 })), ErrorClass::Internal),
            (
                pbs(PbsError::Kdf(KdfError::Params(IntegrityFailure::Checksum))),
                ErrorClass::Integrity,
            ),
            (pbs(PbsError::Core(CoreError::Random("x".into()))), ErrorClass::Internal),
        ];
        let refused = |status| ClientError::Refused {
            service: "hub",
            url: "u".into(),
            status,
            code: "x".into(),
            message: "y".into(),
        };
        let unreachable = || ClientError::Unavailable {
            service: "peer",
            url: "u".into(),
            reason: "r".into(),
            may_have_arrived: false,
        };
        let stale = |source: CliError| CliError::HubCopyStale {
            device: PathBuf::from("v.img"),
            source: Box::new(source),
        };
        let silent = |unreachable| keyward_peer::recovery::Silent {
            peer: "u".into(),
            reason: "r".into(),
            unreachable,
        };
        let remote_cases: Vec<(CliError, ErrorClass)> = vec![
            (unreachable().into(), ErrorClass::Unavailable),
            (refused(400).into(), ErrorClass::Usage),
            (refused(401).into(), ErrorClass::Refused),
            (refused(403).into(), ErrorClass::Refused),
            (refused(413).into(), ErrorClass::Refused),
            (refused(429).into(), ErrorClass::Refused),
            (refused(404).into(), ErrorClass::NotFound),
            (refused(409).into(), ErrorClass::Conflict),
            (refused(408).into(), ErrorClass::Unavailable),
            (refused(500).into(), ErrorClass::Internal),
            (
                ClientError::BadAnswer { service: "peer", url: "u".into(), reason: "r".into() }
                    .into(),
                ErrorClass::Integrity,
            ),
            (CliError::Unavailable("x".into()), ErrorClass::Unavailable),
            (stale(refused(500).into()), ErrorClass::Unavailable),
            (stale(unreachable().into()), ErrorClass::Unavailable),
            (
                stale(
                    ClientError::PinMismatch {
                        service: "hub",
                        url: "u".into(),
                        expected: "a".into(),
                        found: "b".into(),
                    }
                    .into(),
                ),
                ErrorClass::CertificateMismatch,
            ),
            (
                CliError::AuditBroken(keyward_hub::audit::AuditBreak { seq: 2, what: "x" }),
                ErrorClass::Integrity,
            ),
            (
                GatherError::TooFew { got: 1, needed: 3, silent: vec![silent(true)] }.into(),
                ErrorClass::Unavailable,
            ),
            (
                GatherError::TooFew {
                    got: 1,
                    needed: 3,
                    silent: vec![silent(true), silent(false)],
                }
                .into(),
                ErrorClass::Refused,
            ),
            (
                GatherError::NoFit { got: 5, needed: 3, expected: "f".into() }.into(),
                ErrorClass::Integrity,
            ),
            (
                DistributeError::NotStored { failed: vec![("u".into(), unreachable())], total: 3 }
                    .into(),
                ErrorClass::Unavailable,
            ),
            (
                DistributeError::NotStored {
                    failed: vec![("u".into(), unreachable()), ("v".into(), refused(409))],
                    total: 3,
                }
                .into(),
                ErrorClass::Conflict,
            ),
            (
                DistributeError::Seal { peer: "u".into(), reason: "r".into() }.into(),
                ErrorClass::Usage,
            ),
            (
                CliError::Card {
                    path: path.clone(),
                    source: keyward_peer::card::CardError::Version(2),
                },
                ErrorClass::Usage,
            ),
            (
                CoreError::from(keyward_core::shamir::ShareError::Unusable("x")).into(),
                ErrorClass::Integrity,
            ),
            (
                CoreError::from(keyward_core::shamir::ShareError::BadThreshold {
                    threshold: 1,
                    shares: 3,
                })
                .into(),
                ErrorClass::Usage,
            ),
        ];
        for (error, code) in cases.into_iter().chain(pbs_cases).chain(remote_cases) {
            assert_eq!(error.class(), code, "{error:?}");
            let message = error.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "one-line message for {error:?}: {message}"
            );
        }
    }
}
