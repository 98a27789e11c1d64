//! Errors of the CLI and the one place they become exit codes. The table is in the README and is
//! stable: scripts depend on it.

use std::io::ErrorKind;

use keyward_agent::AgentError;
use keyward_box::BoxError;
use keyward_core::Error as CoreError;
use keyward_core::kdf::KdfError;
use keyward_core::shamir::ShareError;
use keyward_core::slot::{DeviceError, SlotError};
use keyward_pbs::PbsError;
use keyward_peer::distribute::DistributeError;
use keyward_peer::recovery::GatherError;
use keyward_peer::slot::PeersSlotError;
use keyward_service::client::ClientError;

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

/// The exit code of a LUKS2 failure.
fn luks_exit_code(error: &keyward_luks::LuksError) -> ExitCode {
    use keyward_luks::LuksError as L;
    use keyward_luks::escrow::HeaderEscrowError;
    match error {
        L::Missing { .. } | L::NotEnrolled { .. } => ExitCode::NotFound,
        L::NotLuks2 { .. } | L::NothingToCompare { .. } => ExitCode::Usage,
        L::WrongPassphrase { .. } => ExitCode::AuthenticationFailed,
        L::OtherKey { .. } => ExitCode::FingerprintMismatch,
        L::KeyslotDoesNotOpen { .. } | L::Anomaly { .. } | L::Metadata { .. } => {
            ExitCode::Integrity
        }
        L::AlreadyEnrolled { .. } | L::KeepsChanging { .. } => ExitCode::Conflict,
        L::LastKeyslot { .. }
        | L::NoFreeKeyslot { .. }
        | L::OtherVolume { .. }
        | L::ExpectedOtherVolume { .. }
        | L::OtherSignature { .. } => ExitCode::Refused,
        L::Cryptsetup { .. }
        | L::Io { .. }
        | L::Interrupted { .. }
        | L::Random(_)
        | L::Probe { .. } => ExitCode::Internal,
        L::HeaderEscrow { source, .. } => match source {
            HeaderEscrowError::Layout(_) => ExitCode::Refused,
            HeaderEscrowError::Format(_)
            | HeaderEscrowError::Damaged
            | HeaderEscrowError::Contents(_) => ExitCode::Integrity,
            HeaderEscrowError::OtherKey { .. } => ExitCode::FingerprintMismatch,
            HeaderEscrowError::Sealing(_) => ExitCode::Internal,
        },
    }
}

/// The stable exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// A bug or an unexpected system failure.
    Internal = 1,
    /// Wrong arguments or missing input.
    Usage = 2,
    /// Wrong code, passphrase or key file.
    AuthenticationFailed = 3,
    /// Corrupt or tampered keybox or blob.
    Integrity = 4,
    /// A recovered key has the wrong fingerprint.
    FingerprintMismatch = 5,
    /// A keybox, slot or file does not exist.
    NotFound = 6,
    /// The keybox exists, the lock is held, or it changed concurrently.
    Conflict = 7,
    /// A server or device cannot be reached (the hub and peer commands return it).
    Unavailable = 8,
    /// Refused by policy (permissions, last slot, rate limit, approval needed).
    Refused = 9,
    /// A server presented another certificate than the pinned one: the connection may be
    /// intercepted.
    CertificateMismatch = 10,
}

impl CliError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::Usage,
            CliError::Output(_) | CliError::Failed(_) => ExitCode::Internal,
            CliError::Core(e) => core_exit_code(e),
            CliError::Workflow(e) => match e {
                BoxError::CodeOpensNothing { .. } => ExitCode::AuthenticationFailed,
                BoxError::Config { .. } => ExitCode::Usage,
                _ => ExitCode::Internal,
            },
            CliError::Remote(e) => client_exit_code(e),
            CliError::Unavailable(_) => ExitCode::Unavailable,
            CliError::NewSlotDevice(e) => slot_exit_code(e),
            // Over the user's key quota, or a keyring this process may not write: a refusal.
            CliError::Keyring { source, .. }
                if matches!(source.0, libc::EDQUOT | libc::EACCES | libc::EPERM) =>
            {
                ExitCode::Refused
            }
            CliError::Keyring { .. } => ExitCode::Internal,
            CliError::AuditBroken(_) => ExitCode::Integrity,
            CliError::Luks(e) => luks_exit_code(e),
            CliError::Agent(e) => match e {
                // No agent, or one that died mid-request: nothing was handed over.
                AgentError::NotRunning { .. } => ExitCode::Unavailable,
                AgentError::Refused(_) | AgentError::Locked(_) | AgentError::Impostor { .. } => {
                    ExitCode::Refused
                }
                AgentError::AlreadyServing(_) => ExitCode::Conflict,
                AgentError::Invalid(_) => ExitCode::Usage,
                AgentError::Protocol(_) | AgentError::Io { .. } => ExitCode::Internal,
            },
            CliError::Pbs { source, .. } => pbs_exit_code(source),
            CliError::Distribute(e) => match e {
                DistributeError::Core(e) => core_exit_code(e),
                DistributeError::Seal { .. } => ExitCode::Usage,
                DistributeError::NotStored { failed, .. } => failed
                    .iter()
                    .map(|(_, e)| client_exit_code(e))
                    .find(|code| *code != ExitCode::Unavailable)
                    .unwrap_or(ExitCode::Unavailable),
            },
            CliError::Gather(e) => gather_exit_code(e),
            CliError::Card { .. } => ExitCode::Usage,
            CliError::OutputExists { .. } => ExitCode::Conflict,
            CliError::HubCopyStale { .. } => ExitCode::Unavailable,
        }
    }
}

/// Exit codes for keyward-core errors.
fn core_exit_code(error: &CoreError) -> ExitCode {
    match error {
        CoreError::WrongSecret { .. } | CoreError::BadRecoveryCode(_) => {
            ExitCode::AuthenticationFailed
        }
        CoreError::Integrity { .. } => ExitCode::Integrity,
        CoreError::FingerprintMismatch { .. } => ExitCode::FingerprintMismatch,
        CoreError::KeyboxNotFound(_)
        | CoreError::SlotNotFound(_)
        | CoreError::NoSlotOfKind(_)
        | CoreError::NoSlotTakes(_)
        | CoreError::NotRecorded(_) => ExitCode::NotFound,
        CoreError::UnknownKind { .. } => ExitCode::Unavailable,
        CoreError::Slot { source, .. } => slot_exit_code(source),
        CoreError::KeyboxExists(_)
        | CoreError::LockHeld(_)
        | CoreError::ConcurrentChange { .. }
        | CoreError::OutputExists(_)
        | CoreError::OutputNotReplaceable { .. } => ExitCode::Conflict,
        CoreError::MissingFolder { .. } => ExitCode::NotFound,
        CoreError::InsecurePermissions { .. }
        | CoreError::LastSlot(_)
        | CoreError::SlotIdsExhausted => ExitCode::Refused,
        CoreError::KeyLength { .. }
        | CoreError::PassphraseTooShort { .. }
        | CoreError::KeyfileSize { .. }
        | CoreError::SlotKindMismatch { .. }
        | CoreError::WrongSecretKind { .. }
        | CoreError::SlotNeeds { .. }
        | CoreError::DuplicateLabel(_)
        | CoreError::BadLabel(_)
        | CoreError::KdfParams(_)
        | CoreError::KdfBelowFloor(_)
        | CoreError::NotAKeyboxFile { .. }
        | CoreError::NoUnattendedSlot => ExitCode::Usage,
        CoreError::Shares(ShareError::Unusable(_)) => ExitCode::Integrity,
        CoreError::Shares(_) => ExitCode::Usage,
        CoreError::Io { source, .. } if source.kind() == ErrorKind::NotFound => ExitCode::NotFound,
        CoreError::Io { .. }
        | CoreError::Random(_)
        | CoreError::Internal(_)
        | CoreError::OutOfMemory { .. }
        | CoreError::NotDurable { .. } => ExitCode::Internal,
        _ => ExitCode::Internal,
    }
}

/// Exit codes for putting a key together from peers' shares.
fn gather_exit_code(error: &GatherError) -> ExitCode {
    match error {
        // Refusals (policy, lockout) are what to fix first; else too many are down.
        GatherError::TooFew { silent, .. } if silent.iter().any(|s| !s.unreachable) => {
            ExitCode::Refused
        }
        GatherError::TooFew { .. } => ExitCode::Unavailable,
        GatherError::NoFit { .. } => ExitCode::Integrity,
    }
}

/// Exit codes for a slot that could not give its key. The device family is mapped here and only
/// here: a device that is not there or busy is 8, one that locks us out 9, one whose state does
/// not satisfy the slot's policy (PCRs, a wrong PIN) 3.
fn slot_exit_code(error: &SlotError) -> ExitCode {
    match error {
        SlotError::Device(DeviceError::Absent(_) | DeviceError::Busy(_)) => ExitCode::Unavailable,
        SlotError::Device(DeviceError::LockedOut(_)) => ExitCode::Refused,
        SlotError::Device(DeviceError::PolicyMismatch(_)) => ExitCode::AuthenticationFailed,
        SlotError::Params(_) => ExitCode::Integrity,
        SlotError::Core(e) => core_exit_code(e),
        SlotError::Other(other) => match other.downcast_ref::<PeersSlotError>() {
            Some(PeersSlotError::Runtime(_)) => ExitCode::Internal,
            Some(PeersSlotError::Gather(e)) => gather_exit_code(e),
            Some(_) => ExitCode::Usage,
            None => ExitCode::Internal,
        },
        _ => ExitCode::Internal,
    }
}

/// Exit codes for hub and peer client errors: unreachable 8; refused by policy (auth, used or
/// expired ticket, lockout) 9; missing 6; conflicting 7; an answer that does not parse or open 4.
fn client_exit_code(error: &ClientError) -> ExitCode {
    match error {
        ClientError::NotHttps { .. } | ClientError::NotABoxName { .. } => ExitCode::Usage,
        ClientError::PinMismatch { .. } => ExitCode::CertificateMismatch,
        ClientError::Unavailable { .. } => ExitCode::Unavailable,
        // Refusals the server's policy makes (authentication, single use, lockout, limits, size)
        // are exit 9 with its reason; the status code says which family.
        ClientError::Refused { status, .. } => match status {
            // The server gave up waiting for the request: the network, not the request.
            408 => ExitCode::Unavailable,
            404 => ExitCode::NotFound,
            409 => ExitCode::Conflict,
            400 => ExitCode::Usage,
            401 | 403 | 413 | 429 => ExitCode::Refused,
            _ => ExitCode::Internal,
        },
        ClientError::BadAnswer { .. } => ExitCode::Integrity,
        ClientError::Tls(_) => ExitCode::Internal,
        ClientError::Core(e) => core_exit_code(e),
        _ => ExitCode::Internal,
    }
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

/// Exit codes for Proxmox Backup key-file errors.
fn pbs_exit_code(error: &PbsError) -> ExitCode {
    match error {
        PbsError::WrongPassphrase { .. } => ExitCode::AuthenticationFailed,
        PbsError::SelfCheckFailed | PbsError::EncryptionFailed => ExitCode::Internal,
        PbsError::PassphraseNeeded { .. } => ExitCode::Usage,
        PbsError::Kdf(KdfError::OutOfMemory { .. }) => ExitCode::Internal,
        PbsError::NotJson(_)
        | PbsError::BadField { .. }
        | PbsError::UnknownKdf { .. }
        | PbsError::StoredFingerprintMismatch { .. }
        | PbsError::KeyLength(_)
        | PbsError::EscrowCostTooHigh { .. }
        | PbsError::Kdf(_) => ExitCode::Integrity,
        PbsError::Core(e) => core_exit_code(e),
        _ => ExitCode::Internal,
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

    use keyward_core::{IntegrityFailure, SlotId};

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
    fn every_exit_code_is_in_the_readme_with_its_meaning() {
        let table = readme_table();
        let expected = [
            (ExitCode::Ok, "ok"),
            (ExitCode::Internal, "internal error"),
            (ExitCode::Usage, "usage"),
            (ExitCode::AuthenticationFailed, "authentication failed"),
            (ExitCode::Integrity, "integrity failure"),
            (ExitCode::FingerprintMismatch, "fingerprint mismatch"),
            (ExitCode::NotFound, "not found"),
            (ExitCode::Conflict, "conflict"),
            (ExitCode::Unavailable, "unavailable"),
            (ExitCode::Refused, "refused by policy"),
            (ExitCode::CertificateMismatch, "certificate mismatch"),
        ];
        assert_eq!(table.len(), expected.len(), "the README table has one row per exit code");
        for (code, meaning) in expected {
            let row = table.iter().find(|(c, _)| *c == code as u8);
            let text = row
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("README lacks exit code {}", code as u8));
            assert!(
                text.starts_with(meaning),
                "README row {}: `{text}` should start with `{meaning}`",
                code as u8
            );
        }
    }

    #[test]
    fn every_error_variant_maps_to_its_documented_code() {
        let path = PathBuf::from("k");
        let io = |kind| std::io::Error::from(kind);
        let device = |e: DeviceError| -> CliError {
            CoreError::Slot { slot: SlotId(1), source: SlotError::Device(e) }.into()
        };
        let cases: Vec<(CliError, ExitCode)> = vec![
            (CoreError::WrongSecret { tried: "x".into() }.into(), ExitCode::AuthenticationFailed),
            (
                CoreError::BadRecoveryCode(keyward_core::recovery_code::CodeError::WordCount {
                    found: 3,
                })
                .into(),
                ExitCode::AuthenticationFailed,
            ),
            (
                CoreError::Integrity { path: path.clone(), what: IntegrityFailure::Checksum }
                    .into(),
                ExitCode::Integrity,
            ),
            (
                CoreError::FingerprintMismatch { expected: "a".into(), found: "b".into() }.into(),
                ExitCode::FingerprintMismatch,
            ),
            (CoreError::KeyboxNotFound(path.clone()).into(), ExitCode::NotFound),
            (CoreError::SlotNotFound("2".into()).into(), ExitCode::NotFound),
            (CoreError::NotRecorded("x").into(), ExitCode::NotFound),
            (CoreError::NoSlotOfKind("passphrase".into()).into(), ExitCode::NotFound),
            (CoreError::NoSlotTakes("the passphrase").into(), ExitCode::NotFound),
            (
                CoreError::UnknownKind { slot: SlotId(1), kind: "fido2".into() }.into(),
                ExitCode::Unavailable,
            ),
            (
                CoreError::SlotNeeds { slot: SlotId(1), needs: "the PIN".into() }.into(),
                ExitCode::Usage,
            ),
            (
                CoreError::WrongSecretKind { slot: SlotId(1), kind: "plain".into(), offered: "x" }
                    .into(),
                ExitCode::Usage,
            ),
            (device(DeviceError::Absent("no TPM".into())), ExitCode::Unavailable),
            (device(DeviceError::Busy("in use".into())), ExitCode::Unavailable),
            (device(DeviceError::LockedOut("lockout".into())), ExitCode::Refused),
            (
                device(DeviceError::PolicyMismatch("PCR 7 changed".into())),
                ExitCode::AuthenticationFailed,
            ),
            (
                CoreError::Slot {
                    slot: SlotId(2),
                    source: SlotError::Other(Box::new(PeersSlotError::TicketNeeded)),
                }
                .into(),
                ExitCode::Usage,
            ),
            (CoreError::NoUnattendedSlot.into(), ExitCode::Usage),
            (CoreError::KeyboxExists(path.clone()).into(), ExitCode::Conflict),
            (CoreError::LockHeld(path.clone()).into(), ExitCode::Conflict),
            (
                CoreError::ConcurrentChange { path: path.clone(), expected: 1, found: 2 }.into(),
                ExitCode::Conflict,
            ),
            (CoreError::OutputExists(path.clone()).into(), ExitCode::Conflict),
            (
                CoreError::InsecurePermissions {
                    path: path.clone(),
                    problem: "p",
                    fix: "f".into(),
                }
                .into(),
                ExitCode::Refused,
            ),
            (CoreError::LastSlot(SlotId(1)).into(), ExitCode::Refused),
            (CoreError::KeyLength { len: 3, min: 16, max: 4096 }.into(), ExitCode::Usage),
            (CoreError::PassphraseTooShort { min: 8 }.into(), ExitCode::Usage),
            (CoreError::KeyfileSize { len: 3 }.into(), ExitCode::Usage),
            (
                CoreError::SlotKindMismatch {
                    slot: SlotId(1),
                    kind: "plain".into(),
                    offered: "passphrase".into(),
                }
                .into(),
                ExitCode::Usage,
            ),
            (CoreError::DuplicateLabel("x".into()).into(), ExitCode::Usage),
            (CoreError::BadLabel("1".into()).into(), ExitCode::Usage),
            (CoreError::OutOfMemory { kib: 1024 }.into(), ExitCode::Internal),
            (
                CoreError::NotDurable { path: path.clone(), source: io(std::io::ErrorKind::Other) }
                    .into(),
                ExitCode::Internal,
            ),
            (CoreError::SlotIdsExhausted.into(), ExitCode::Refused),
            (CoreError::KdfParams(IntegrityFailure::Checksum).into(), ExitCode::Usage),
            (CoreError::Internal("x").into(), ExitCode::Internal),
            (CoreError::Random("x".into()).into(), ExitCode::Internal),
            (
                CoreError::io("cannot read", &path, io(std::io::ErrorKind::NotFound)).into(),
                ExitCode::NotFound,
            ),
            (
                CoreError::io("cannot read", &path, io(std::io::ErrorKind::PermissionDenied))
                    .into(),
                ExitCode::Internal,
            ),
            (CliError::Usage("x".into()), ExitCode::Usage),
            (CliError::Failed("x".into()), ExitCode::Internal),
            (
                BoxError::CodeOpensNothing { what: "b".into(), ticket_uses_left: Some(2) }.into(),
                ExitCode::AuthenticationFailed,
            ),
            (BoxError::Config { path: path.clone(), problem: "x".into() }.into(), ExitCode::Usage),
            (BoxError::Invalid("x".into()).into(), ExitCode::Usage),
            (CliError::OutputExists { path: path.clone() }, ExitCode::Conflict),
            (CliError::Output(io(std::io::ErrorKind::BrokenPipe)), ExitCode::Internal),
        ];
        let pbs = |source| CliError::Pbs { path: path.clone(), source };
        let pbs_cases: Vec<(CliError, ExitCode)> = vec![
            (pbs(PbsError::NotJson("x".into())), ExitCode::Integrity),
            (pbs(PbsError::BadField { field: "data", problem: "x".into() }), ExitCode::Integrity),
            (pbs(PbsError::UnknownKdf { found: "x".into() }), ExitCode::Integrity),
            (pbs(PbsError::PassphraseNeeded { kdf: "x".into() }), ExitCode::Usage),
            (pbs(PbsError::WrongPassphrase { hint: None }), ExitCode::AuthenticationFailed),
            (pbs(PbsError::SelfCheckFailed), ExitCode::Internal),
            (pbs(PbsError::EncryptionFailed), ExitCode::Internal),
            (
                pbs(PbsError::EscrowCostTooHigh { found: "x".into(), limit: "y".into() }),
                ExitCode::Integrity,
            ),
            (
                pbs(PbsError::StoredFingerprintMismatch { stored: "a".into(), found: "b".into() }),
                ExitCode::Integrity,
            ),
            (pbs(PbsError::KeyLength(3)), ExitCode::Integrity),
            (pbs(PbsError::Kdf(KdfError::OutOfMemory { kib: 1 })), ExitCode::Internal),
            (pbs(PbsError::Kdf(KdfError::Params(IntegrityFailure::Checksum))), ExitCode::Integrity),
            (pbs(PbsError::Core(CoreError::Random("x".into()))), ExitCode::Internal),
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
        let silent = |unreachable| keyward_peer::recovery::Silent {
            peer: "u".into(),
            reason: "r".into(),
            unreachable,
        };
        let remote_cases: Vec<(CliError, ExitCode)> = vec![
            (unreachable().into(), ExitCode::Unavailable),
            (refused(400).into(), ExitCode::Usage),
            (refused(401).into(), ExitCode::Refused),
            (refused(403).into(), ExitCode::Refused),
            (refused(413).into(), ExitCode::Refused),
            (refused(429).into(), ExitCode::Refused),
            (refused(404).into(), ExitCode::NotFound),
            (refused(409).into(), ExitCode::Conflict),
            (refused(408).into(), ExitCode::Unavailable),
            (refused(500).into(), ExitCode::Internal),
            (
                ClientError::BadAnswer { service: "peer", url: "u".into(), reason: "r".into() }
                    .into(),
                ExitCode::Integrity,
            ),
            (CliError::Unavailable("x".into()), ExitCode::Unavailable),
            (
                CliError::AuditBroken(keyward_hub::audit::AuditBreak { seq: 2, what: "x" }),
                ExitCode::Integrity,
            ),
            (
                GatherError::TooFew { got: 1, needed: 3, silent: vec![silent(true)] }.into(),
                ExitCode::Unavailable,
            ),
            (
                GatherError::TooFew {
                    got: 1,
                    needed: 3,
                    silent: vec![silent(true), silent(false)],
                }
                .into(),
                ExitCode::Refused,
            ),
            (
                GatherError::NoFit { got: 5, needed: 3, expected: "f".into() }.into(),
                ExitCode::Integrity,
            ),
            (
                DistributeError::NotStored { failed: vec![("u".into(), unreachable())], total: 3 }
                    .into(),
                ExitCode::Unavailable,
            ),
            (
                DistributeError::NotStored {
                    failed: vec![("u".into(), unreachable()), ("v".into(), refused(409))],
                    total: 3,
                }
                .into(),
                ExitCode::Conflict,
            ),
            (
                DistributeError::Seal { peer: "u".into(), reason: "r".into() }.into(),
                ExitCode::Usage,
            ),
            (
                CliError::Card {
                    path: path.clone(),
                    source: keyward_peer::card::CardError::Version(2),
                },
                ExitCode::Usage,
            ),
            (
                CoreError::from(keyward_core::shamir::ShareError::Unusable("x")).into(),
                ExitCode::Integrity,
            ),
            (
                CoreError::from(keyward_core::shamir::ShareError::BadThreshold {
                    threshold: 1,
                    shares: 3,
                })
                .into(),
                ExitCode::Usage,
            ),
        ];
        for (error, code) in cases.into_iter().chain(pbs_cases).chain(remote_cases) {
            assert_eq!(error.exit_code(), code, "{error:?}");
            let message = error.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "one-line message for {error:?}: {message}"
            );
        }
    }
}
