//! Glue between the commands and keyward-peer: peer cards, the box's identity beside its keybox,
//! and getting K back through a peers slot (the restart case).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::slot::{PeersParams, ReleasePolicy};
use keyward_core::{DataKey, ExpectedFingerprint, Keybox};
use keyward_peer::card::PeerCard;
use keyward_peer::recovery::{self, Gathered, Proof};
use keyward_service::SigningIdentity;

use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::{enrollment_paths, read_identity, read_ticket, write_identity};
use crate::output::warn;
use crate::runtime::block_on;
use crate::secret_input::SecretReader;

/// How long one peer may take to answer before it counts as unreachable.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a peer card file.
pub fn read_card(reader: &SecretReader, path: &Path) -> CliResult<PeerCard> {
    let bytes = reader.bytes(path)?;
    PeerCard::parse(&bytes).map_err(|source| CliError::Card { path: path.to_path_buf(), source })
}

/// The box's identity (`<keybox>.box-key`, the one a hub enrollment uses too).
pub fn owner_identity(reader: &SecretReader, keybox: &Path) -> CliResult<SigningIdentity> {
    read_identity(reader, &enrollment_paths(keybox).1)
}

/// The box's identity, made (0600) if there is none yet; `true` with it if it was made now
/// (a command that fails afterwards removes it again).
pub fn owner_identity_or_new(
    reader: &SecretReader,
    keybox: &Path,
) -> CliResult<(SigningIdentity, bool)> {
    let (_, key_path) = enrollment_paths(keybox);
    if key_path.exists() {
        return Ok((read_identity(reader, &key_path)?, false));
    }
    let identity = SigningIdentity::generate()?;
    write_identity(&key_path, &identity)?;
    Ok((identity, true))
}

/// The peers slot named (or the keybox's only one) and its parameters.
pub fn peers_slot<'a>(
    keybox: &'a Keybox,
    name: Option<&str>,
) -> CliResult<(keyward_core::SlotId, &'a PeersParams)> {
    let named = |s: &&keyward_core::keybox::SlotRecord| {
        name.is_none_or(|n| n == s.label || n == s.id.to_string())
    };
    let mut found =
        keybox.slots().iter().filter(named).filter_map(|s| Some((s.id, s.protection.peers()?)));
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => {
            Err(usage("this keybox has several peers slots; name one with --slot"))
        }
        (None, _) => match name {
            Some(n) => Err(keyward_core::Error::SlotNotFound(format!("{n} (a peers slot)")).into()),
            None => Err(keyward_core::Error::NoSlotOfKind(keyward_core::SlotKind::Peers).into()),
        },
    }
}

/// The cards a peers slot recorded.
pub fn cards_of(params: &PeersParams) -> CliResult<Vec<PeerCard>> {
    params
        .peers
        .iter()
        .map(|record| {
            PeerCard::from_record(record).map_err(|source| CliError::Card {
                path: format!("the slot's record of {}", record.url).into(),
                source,
            })
        })
        .collect()
}

/// Gets K back from the peers of a slot with the box's own identity (the restart case), and
/// the operator's release ticket when the slot's policy asks for both. The caller opens the
/// slot with the result, which checks it is exactly K.
pub fn reconstruct_for_slot(
    reader: &SecretReader,
    keybox_path: &Path,
    keybox: &Keybox,
    params: &PeersParams,
    release_ticket: Option<&Path>,
) -> CliResult<DataKey> {
    let identity = Arc::new(owner_identity(reader, keybox_path)?);
    let share_set = params.share_set.clone();
    let proof = match (params.policy, release_ticket) {
        (ReleasePolicy::Operator, _) => {
            return Err(usage(format!(
                "this slot's peers release shares only to {}; use `keyward recover --peers`",
                policy_text(params.policy)
            )));
        }
        (ReleasePolicy::Both, None) => {
            return Err(usage(
                "this slot's peers want the box's identity and an operator's release ticket: add --release-ticket F (--unlock-release-ticket F)",
            ));
        }
        (ReleasePolicy::Both, Some(path)) => {
            Proof::Both { identity, share_set, ticket: Arc::new(read_ticket(reader, path)?) }
        }
        (ReleasePolicy::Identity | ReleasePolicy::Either, _) => {
            Proof::Owner { identity, share_set }
        }
    };
    let cards = cards_of(params)?;
    let expected = ExpectedFingerprint::Full(keybox.fingerprint());
    let gathered =
        block_on(recovery::gather(&cards, proof, &expected, Some(params.threshold), PEER_TIMEOUT))?;
    Ok(report(gathered))
}

/// Warns about peers that gave nothing or a share that does not fit; returns the key.
pub fn report(gathered: Gathered) -> DataKey {
    for misfit in &gathered.misfits {
        warn(&format!(
            "the share from {misfit} does not fit the key: that peer's store is damaged or it lies; re-share without it"
        ));
    }
    for silent in &gathered.silent {
        warn(&format!("no share from {}: {}", silent.peer, silent.reason));
    }
    gathered.key
}

/// The policy a peers slot asks for, as text for messages.
pub fn policy_text(policy: ReleasePolicy) -> &'static str {
    match policy {
        ReleasePolicy::Either => "the box's identity or an operator's release ticket",
        ReleasePolicy::Identity => "the box's identity only",
        ReleasePolicy::Operator => "an operator's release ticket only",
        ReleasePolicy::Both => "the box's identity and an operator's release ticket together",
    }
}
