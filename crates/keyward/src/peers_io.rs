//! Glue between the commands and keyward-peer: peer cards, the box's identity beside its keybox,
//! a keybox's peers slot. (Getting K back through a peers slot is the peers kind's own work.)

use std::path::Path;

use keyward_core::keybox::SlotRecord;
use keyward_core::{DataKey, Keybox, SlotId};
use keyward_peer::card::PeerCard;
use keyward_peer::recovery::Gathered;
use keyward_peer::slot::{PEERS, PeersParams};
use keyward_service::SigningIdentity;

pub use keyward_peer::slot::{PEER_TIMEOUT, policy_text};

use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::{enrollment_paths, read_identity, write_identity};
use crate::output::warn;
use crate::secret_input::SecretReader;

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
pub fn peers_slot(keybox: &Keybox, name: Option<&str>) -> CliResult<(SlotId, PeersParams)> {
    let named = |s: &&SlotRecord| name.is_none_or(|n| n == s.label || n == s.id.to_string());
    let mut found = Vec::new();
    for record in keybox.slots().iter().filter(named) {
        if let Some(params) = peers_params(record)? {
            found.push((record.id, params));
        }
    }
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (Some(_), Some(_)) => {
            Err(usage("this keybox has several peers slots; name one with --slot"))
        }
        (None, _) => match name {
            Some(n) => Err(keyward_core::Error::SlotNotFound(format!("{n} (a peers slot)")).into()),
            None => Err(keyward_core::Error::NoSlotOfKind(PEERS.into()).into()),
        },
    }
}

/// A slot's peers parameters, if it is a peers slot.
pub fn peers_params(record: &SlotRecord) -> CliResult<Option<PeersParams>> {
    PeersParams::of(&record.protection)
        .transpose()
        .map_err(|what| keyward_core::Error::Integrity { path: "the keybox".into(), what }.into())
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

/// Warns about peers that gave nothing or a share that does not fit; returns the key.
pub fn report(gathered: Gathered) -> DataKey {
    for line in keyward_peer::slot::report(&gathered) {
        warn(&line);
    }
    gathered.key
}
