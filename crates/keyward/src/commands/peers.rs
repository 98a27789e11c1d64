//! `keyward enroll peers` and `keyward peers status|reshare`: the commands around a peers slot
//! (a fresh machine's recovery from the peers is keyward_box::recovery's). The workflows (placing shares, the journal of share sets to
//! clean up) are keyward_box::peers'; the splitting, sealing, asking and combining are
//! keyward-peer's. This module reads the options, opens the keybox and reports.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_box::BoxResult;
use keyward_box::config::{self, BoxFiles, Enrollment};
use keyward_box::identity;
use keyward_box::peers::{self, cards_of, peers_slot, read_card};
use keyward_box::share_journal::{Cleanup, Disposal, ShareJournal};
use keyward_core::Keybox;
use keyward_peer::card::PeerCard;
use keyward_peer::distribute::{DistributeError, Owner, Split, new_share_set};
use keyward_peer::slot::{ReleasePolicy, policy_text};
use keyward_service::SigningIdentity;
use serde_json::json;

use crate::auth::open;
use crate::cli::{AuthArgs, EnrollArgs, PeersCommand};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::kinds::Enroller;
use crate::output::{format_time, warn};

/// Runs `peers …`.
pub fn run(ctx: &Context, command: &PeersCommand) -> CliResult {
    match command {
        PeersCommand::Status { slot } => status(ctx, slot.as_deref()),
        PeersCommand::Reshare { slot, remove, add, token_file, threshold, auth } => {
            let change =
                Change { remove, add, token_file: token_file.as_deref(), threshold: *threshold };
            reshare(ctx, slot.as_deref(), &change, auth)
        }
    }
}

/// Reads cards and refuses the same peer twice.
fn read_cards(ctx: &Context, paths: &[PathBuf]) -> CliResult<Vec<PeerCard>> {
    let cards = paths.iter().map(|p| read_card(&ctx.reader, p)).collect::<BoxResult<Vec<_>>>()?;
    // One peer, one share: the same identity, sealing key or certificate twice is one peer.
    let mut seen = HashSet::new();
    for card in &cards {
        let fresh =
            [card.identity.to_string(), card.seal_key.to_string(), card.certificate.clone()]
                .into_iter()
                .all(|id| seen.insert(id));
        if !fresh {
            return Err(usage(format!("the peer {} is given twice", card.url)));
        }
    }
    Ok(cards)
}

/// The name the peers know this box by: `--box`, else its hub name, else the keybox label.
fn owner_name(keybox_path: &Path, keybox: &Keybox, given: Option<&str>) -> CliResult<String> {
    let name = match given {
        Some(name) => name.to_string(),
        None => {
            // A hub enrollment that is there but cannot be read is said, not passed over.
            let enrollment = BoxFiles::beside(keybox_path).enrollment;
            if enrollment.exists() {
                config::read::<Enrollment>(&enrollment)?.box_name
            } else {
                keybox.header().label.clone()
            }
        }
    };
    if !keyward_service::names::valid_box_name(&name) {
        return Err(usage(format!(
            "`{name}` cannot name this box at its peers ({}); give --box NAME",
            keyward_service::names::BOX_NAME_RULE
        )));
    }
    Ok(name)
}

/// Runs a cleanup (its failures are the caller's to report).
fn clean_up(ctx: &Context, keybox: &Keybox, identity: &Arc<SigningIdentity>) -> CliResult<Cleanup> {
    let cleanup = ShareJournal::beside(&ctx.keybox).clean_up(keybox, identity);
    Ok(cleanup.map_err(keyward_box::BoxError::from)?)
}

/// Warns about old shares a cleanup left (for commands that succeed anyway).
fn warn_left(cleanup: &Cleanup) {
    for (peer, set, why) in &cleanup.failed {
        warn(&format!(
            "{peer} still holds old share set {set} ({why}); `keyward peers status` tries again"
        ));
    }
}

/// How the CLI makes a peers slot.
pub const ENROLLMENT: Enroller = Enroller::Command {
    options: &[
        "--threshold",
        "--peer",
        "--box",
        "--token-file",
        "--takeover-file",
        "--tpm2-device",
        "--pcrs",
    ],
    run: enroll,
    rotate_with: "keyward peers reshare",
};

/// `enroll peers`: open the keybox, split K among the peers, then record the slot. The new set
/// is noted first, so a crash or a failed commit leaves it to be cleaned up; an identity made
/// for this enrollment is removed again if it fails.
pub fn enroll(ctx: &Context, args: &EnrollArgs) -> CliResult {
    let given = &args.peers;
    let threshold = given.threshold.ok_or_else(|| usage("`enroll peers` needs --threshold K"))?;
    let cards = read_cards(ctx, &given.peers)?;
    if cards.len() < 2 {
        return Err(usage("`enroll peers` needs a --peer CARD for each of at least two peers"));
    }
    let store = ctx.store();
    let current = store.load()?;
    let name = owner_name(store.path(), &current, given.box_name.as_deref())?;
    // The operator's statement each peer admits the name with: an enrollment token, or a
    // takeover naming this box's identity (checked before anything is opened or sent).
    let enrollment = match (&given.token_file, &given.takeover_file) {
        (_, Some(path)) => {
            let text = ctx.reader.ticket(path)?;
            identity::for_takeover(&ctx.reader, store.path(), &text, &name)?;
            Some(text.to_string())
        }
        (Some(path), None) => Some(ctx.reader.ticket(path)?.to_string()),
        (None, None) => None,
    };
    let unlocked =
        open(&args.auth, &current, store.path(), &ctx.reader, "to split its key among the peers")?;
    let (identity, made_now) = identity::read_or_new(&ctx.reader, store.path())?;
    let owner = Owner {
        identity: Arc::new(identity),
        name,
        keybox_id: current.header().id.to_string(),
        enrollment,
    };
    let result = enroll_with(ctx, args, &store, &unlocked, &cards, threshold, &owner);
    // The identity made for this enrollment goes again only if no peer took a share with it:
    // a peer that did has bound the box's name to it (and used the token), so a retry needs it.
    if made_now && result.as_ref().is_err_and(|e| nothing_placed(e, cards.len())) {
        let _ = std::fs::remove_file(BoxFiles::beside(store.path()).identity);
    }
    result
}

/// Whether a failed `enroll peers` surely left no share at any peer: every peer failed in a way
/// that changed nothing there (a timeout after sending may have stored the share).
fn nothing_placed(error: &CliError, peers: usize) -> bool {
    match error {
        CliError::Distribute(DistributeError::NotStored { failed, .. }) => {
            failed.len() == peers && failed.iter().all(|(_, e)| e.changed_nothing())
        }
        CliError::Distribute(_) => true,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn enroll_with(
    ctx: &Context,
    args: &EnrollArgs,
    store: &keyward_core::Store<'_>,
    unlocked: &keyward_core::UnlockedKeybox,
    cards: &[PeerCard],
    threshold: u8,
    owner: &Owner,
) -> CliResult {
    // A tpm-quote set is released against this TPM's attestation key and today's PCR values.
    let attestation = match args.peers.policy {
        ReleasePolicy::TpmQuote => Some(crate::kinds::tpm2::attestation(&args.secret.tpm2)?),
        _ if args.secret.tpm2.tpm2_device.is_some() || args.secret.tpm2.pcrs.is_some() => {
            return Err(usage("--tpm2-device and --pcrs go with --policy tpm-quote"));
        }
        _ => None,
    };
    let share_set = new_share_set()?;
    let split = Split {
        cards,
        threshold,
        policy: args.peers.policy,
        share_set: &share_set,
        attestation: attestation.as_ref(),
    };
    let enrolled = peers::enroll(store, unlocked, split, owner, args.label.as_deref())?;
    let (next, id, params) = (&enrolled.keybox, enrolled.slot, &enrolled.params);
    warn_left(&enrolled.cleanup);
    ctx.out.line(format!(
        "Enrolled slot {id} (peers): {}-of-{} as `{}`, share set {}; released to {}",
        params.threshold,
        params.peers.len(),
        params.owner,
        params.share_set,
        policy_text(params.policy)
    ))?;
    ctx.out.line(format!(
        "box identity (a `both` release ticket names it): {}",
        owner.identity.public()
    ))?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "slot": { "id": id.0, "kind": "peers" },
        "owner": params.owner,
        "threshold": params.threshold,
        "share_set": params.share_set,
        "policy": params.policy.name(),
        "identity": owner.identity.public().to_string(),
        "peers": params.peers.iter().map(|p| &p.url).collect::<Vec<_>>(),
        "generation": next.keybox().generation(),
    }))
}

/// `peers status`: cleans up what the journal says must go, then asks every peer of the slot
/// which of the box's sets it holds, and lists what is still waiting to be cleaned up.
fn status(ctx: &Context, slot: Option<&str>) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    let identity = Arc::new(identity::read(&ctx.reader, store.path())?);
    let cleanup = clean_up(ctx, &keybox, &identity)?;
    let (id, params) = match peers_slot(&keybox, slot) {
        Ok(found) => found,
        // No peers slot left (the last was removed): the cleanup is all there is to report.
        Err(e) if slot.is_none() && !(cleanup.deleted.is_empty() && cleanup.failed.is_empty()) => {
            report_cleanup(ctx, &cleanup)?;
            ctx.out.line(format!("({e})"))?;
            return cleanup_result(&cleanup);
        }
        Err(e) => return Err(e.into()),
    };
    let holdings = peers::holdings(&params, &identity)?;
    let mut holding = 0;
    let mut rows = Vec::new();
    for peer in &holdings {
        let row = match &peer.answer {
            Ok(answer) => {
                let current = answer.current.as_ref();
                holding += usize::from(current.is_some());
                let line = match current {
                    Some(set) => format!(
                        "{}: holds share {} of the current set; released {} time(s), last {}; to drills {} time(s), last {}",
                        peer.url,
                        set.x,
                        times(set.releases),
                        set.last_released.map_or_else(|| "never".into(), format_time),
                        times(set.drills),
                        set.last_drilled.map_or_else(|| "never".into(), format_time)
                    ),
                    None => format!("{}: does NOT hold the current set", peer.url),
                };
                let line = match answer.other_sets {
                    0 => line,
                    others => format!("{line} ({others} other set(s) of yours there)"),
                };
                ctx.out.line(line)?;
                json!({ "peer": peer.url, "reachable": true, "holds_current": current.is_some(),
                        "x": current.map(|s| s.x), "last_released": current.and_then(|s| s.last_released),
                        "releases": current.map(|s| s.releases), "last_drilled": current.and_then(|s| s.last_drilled),
                        "drills": current.map(|s| s.drills),
                        "other_sets": answer.other_sets })
            }
            Err(e) => {
                ctx.out.line(format!("{}: unreachable or refused: {e}", peer.url))?;
                json!({ "peer": peer.url, "reachable": false, "error": e.to_string() })
            }
        };
        rows.push(row);
    }
    ctx.out.line(format!(
        "slot {id}: {holding} of {} peers hold the current set; {} needed",
        holdings.len(),
        params.threshold
    ))?;
    report_cleanup(ctx, &cleanup)?;
    ctx.out.json(&json!({
        "slot": id.0, "share_set": params.share_set, "threshold": params.threshold,
        "holding": holding, "peers": rows,
        "cleanup": {
            "deleted": cleanup.deleted,
            "pending": cleanup.failed.iter().map(|(peer, set, why)| json!({ "peer": peer, "share_set": set, "error": why })).collect::<Vec<_>>(),
            "waiting": cleanup.waiting.iter().map(|s| &s.share_set).collect::<Vec<_>>(),
        },
    }))?;
    if holding < usize::from(params.threshold) {
        return Err(CliError::Unavailable(format!(
            "only {holding} peers confirm a share of the current set, {} are needed",
            params.threshold
        )));
    }
    cleanup_result(&cleanup)
}

/// A peer's count of releases ("?" from a peer of an older keyward, which did not count).
fn times(count: Option<u64>) -> String {
    count.map_or_else(|| "?".into(), |n| n.to_string())
}

/// What a cleanup did, as lines for people.
fn report_cleanup(ctx: &Context, cleanup: &Cleanup) -> CliResult {
    for set in &cleanup.deleted {
        ctx.out.line(format!("old share set {set}: deleted at every peer that held it"))?;
    }
    for (peer, set, why) in &cleanup.failed {
        ctx.out
            .line(format!("old share set {set}: still at {peer} ({why}); tried again next time"))?;
    }
    for set in &cleanup.waiting {
        let state = match &set.disposal {
            Disposal::Placing => "being placed".to_string(),
            Disposal::Replaced { by } => format!("replaced by {by}"),
            Disposal::Removed => "its slot being removed".to_string(),
        };
        ctx.out.line(format!(
            "share set {}: {state}, noted {}",
            set.share_set,
            format_time(set.since)
        ))?;
    }
    Ok(())
}

/// A cleanup that left old shares at some peers is an error naming them (exit 8): the old set
/// still combines there.
fn cleanup_result(cleanup: &Cleanup) -> CliResult {
    if cleanup.failed.is_empty() {
        return Ok(());
    }
    let peers: Vec<&str> = cleanup.failed.iter().map(|(peer, _, _)| peer.as_str()).collect();
    Err(CliError::Unavailable(format!(
        "old shares are still at {} (they did not confirm deleting them); `keyward peers status` tries again when they are back",
        peers.join(", ")
    )))
}

/// What a re-share changes.
struct Change<'a> {
    remove: &'a [String],
    add: &'a [PathBuf],
    token_file: Option<&'a Path>,
    threshold: Option<u8>,
}

/// `peers reshare`: a new split replaces the slot's set; the new set and the old one are noted
/// in the journal before anything moves, and a cleanup that leaves old shares behind exits
/// non-zero naming the peers.
fn reshare(ctx: &Context, slot: Option<&str>, change: &Change<'_>, auth: &AuthArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let (id, old) = peers_slot(&current, slot)?;
    if old.policy == ReleasePolicy::TpmQuote {
        return Err(usage(
            "a tpm-quote peers slot is not re-shared: enroll a new one (`keyward enroll peers --policy tpm-quote …`), then remove this one",
        ));
    }
    // K from the secret given, else from the peers themselves (this box's identity).
    let mut auth = auth.clone();
    if auth.secrets_given() == 0 && auth.unlock_slot.is_none() {
        auth.unlock_slot = Some(id.to_string());
    }
    let unlocked = open(&auth, &current, store.path(), &ctx.reader, "to split its key anew")?;

    let mut cards = cards_of(&old)?;
    for gone in change.remove {
        let identity = match read_card(&ctx.reader, Path::new(gone)) {
            Ok(card) => Some(card.identity),
            Err(_) if !Path::new(gone).exists() => None,
            Err(e) => return Err(e.into()),
        };
        let before = cards.len();
        cards.retain(|c| Some(c.identity) != identity && c.url != gone.trim_end_matches('/'));
        if cards.len() == before {
            return Err(usage(format!("{gone} is not one of this slot's peers")));
        }
    }
    for card in read_cards(ctx, change.add)? {
        if cards.iter().any(|c| c.identity == card.identity) {
            return Err(usage(format!("{} already holds a share", card.url)));
        }
        cards.push(card);
    }
    let threshold = change.threshold.unwrap_or(old.threshold);
    let enrollment = match change.token_file {
        Some(path) => Some(ctx.reader.ticket(path)?.to_string()),
        None => None,
    };
    let owner = Owner {
        identity: Arc::new(identity::read(&ctx.reader, store.path())?),
        name: old.owner.clone(),
        keybox_id: current.header().id.to_string(),
        enrollment,
    };
    let share_set = new_share_set()?;
    let split = Split {
        cards: &cards,
        threshold,
        policy: old.policy,
        share_set: &share_set,
        attestation: None,
    };
    let done = peers::reshare(&store, &unlocked, id, &old, split, &owner)?;
    let cleanup = done.cleanup;
    let new = &done.params;
    let left = cleanup.failed.len();
    ctx.out.line(format!(
        "Re-shared slot {id}: {}-of-{}, share set {} (was {}); the old set is deleted at {} of {} peers",
        new.threshold,
        new.peers.len(),
        new.share_set,
        old.share_set,
        old.peers.len().saturating_sub(left),
        old.peers.len()
    ))?;
    ctx.out.json(&json!({
        "slot": id.0, "share_set": new.share_set, "old_share_set": old.share_set,
        "threshold": new.threshold, "peers": new.peers.iter().map(|p| &p.url).collect::<Vec<_>>(),
        "undeleted": cleanup.failed.iter().map(|(p, _, _)| p).collect::<Vec<_>>(),
    }))?;
    cleanup_result(&cleanup)
}
