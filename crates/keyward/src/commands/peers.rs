//! `keyward enroll peers`, `keyward peers status|reshare`, and `keyward recover --peers`: the
//! commands around a peers slot. The splitting, sealing, asking and combining live in
//! keyward-peer; this module reads cards and keyboxes, asks for authorization and reports.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_core::{Error as CoreError, Keybox, SlotSecret, operations};
use keyward_peer::card::PeerCard;
use keyward_peer::client::PeerClient;
use keyward_peer::distribute::{Owner, delete_everywhere, distribute};
use keyward_peer::recovery::{self, Proof};
use keyward_peer::reshare::{self, ReshareError};
use serde_json::json;

use crate::auth::{attempts, with_first_that_opens};
use crate::cli::{AuthArgs, EnrollArgs, KeyFormat, PeersCommand, RecoverArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::{Enrollment, enrollment_paths, read_identity, read_ticket_for};
use crate::output::{encode_plain, warn, write_secret};
use crate::peers_io::{
    PEER_TIMEOUT, cards_of, owner_identity, peers_slot, policy_text, read_card, report,
};
use crate::runtime::block_on;
use crate::secret_input::SecretReader;

/// Runs `peers …`.
pub fn run(ctx: &Context, command: &PeersCommand) -> CliResult {
    match command {
        PeersCommand::Status { slot } => status(ctx, slot.as_deref()),
        PeersCommand::Reshare { slot, remove, add, threshold, auth } => {
            reshare(ctx, slot.as_deref(), remove, add, *threshold, auth)
        }
    }
}

/// Reads cards and refuses the same peer twice.
fn read_cards(paths: &[PathBuf]) -> CliResult<Vec<PeerCard>> {
    let cards = paths.iter().map(|p| read_card(p)).collect::<CliResult<Vec<_>>>()?;
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
            let (hub_info, _) = enrollment_paths(keybox_path);
            std::fs::read(&hub_info)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Enrollment>(&bytes).ok())
                .map_or_else(|| keybox.header().label.clone(), |e| e.box_name)
        }
    };
    if !keyward_hub::hub::valid_box_name(&name) {
        return Err(usage(format!(
            "`{name}` cannot name this box at its peers (1–64 letters, digits, `-_.`); give --box NAME"
        )));
    }
    Ok(name)
}

/// `enroll peers`: open the keybox, split K among the peers, then record the slot. If the
/// commit fails, the shares just placed are deleted again.
pub fn enroll(ctx: &Context, args: &EnrollArgs) -> CliResult {
    let given = &args.peers;
    let threshold = given.threshold.ok_or_else(|| usage("`enroll peers` needs --threshold K"))?;
    let cards = read_cards(&given.peers)?;
    if cards.len() < 2 {
        return Err(usage("`enroll peers` needs a --peer CARD for each of at least two peers"));
    }
    let store = ctx.store();
    let current = store.load()?;
    let reader = SecretReader::new();
    let tries = attempts(&args.auth, &current, store.path(), &reader)?;
    let unlocked = with_first_that_opens(&tries, |auth| {
        current.unlock(&auth.unlocker, auth.slot, store.path())
    })?;
    let key = unlocked.key();
    let owner = Owner {
        identity: Arc::new(owner_identity(store.path(), true)?),
        name: owner_name(store.path(), &current, given.box_name.as_deref())?,
        keybox_id: current.header().id.to_string(),
    };
    let params = block_on(distribute(key, &cards, threshold, given.policy, &owner, PEER_TIMEOUT))?;
    let secret = SlotSecret::Peers { key: key.clone(), params: params.clone() };
    let committed = with_first_that_opens(&tries, |auth| {
        operations::enroll(&store, auth, args.label.as_deref(), &secret)
    });
    let (next, id) = match committed {
        Ok(done) => done,
        Err(e) => {
            if !matches!(e, CliError::Core(CoreError::NotDurable { .. })) {
                block_on(async {
                    delete_everywhere(&cards, &owner.identity, &params.share_set, PEER_TIMEOUT)
                        .await;
                    Ok::<_, CliError>(())
                })?;
            }
            return Err(e);
        }
    };
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

/// `peers status`: asks every peer of the slot which of the box's sets it holds.
fn status(ctx: &Context, slot: Option<&str>) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    let (id, params) = peers_slot(&keybox, slot)?;
    let identity = Arc::new(owner_identity(store.path(), false)?);
    let cards = cards_of(params)?;
    let answers = block_on(async {
        let mut asks = tokio::task::JoinSet::new();
        for (i, card) in cards.iter().enumerate() {
            let (card, identity) = (card.clone(), identity.clone());
            asks.spawn(async move {
                let result = match PeerClient::new(&card, PEER_TIMEOUT) {
                    Ok(client) => client.status(&identity).await,
                    Err(e) => Err(e),
                };
                (i, result)
            });
        }
        let mut answers: Vec<_> = asks.join_all().await;
        answers.sort_by_key(|(i, _)| *i);
        Ok::<_, CliError>(answers)
    })?;
    let mut holding = 0;
    let mut rows = Vec::new();
    for ((_, answer), card) in answers.into_iter().zip(&cards) {
        let row = match answer {
            Ok(status) => {
                let current = status.sets.iter().find(|s| s.share_set == params.share_set);
                let others = status.sets.len() - usize::from(current.is_some());
                holding += usize::from(current.is_some());
                let line = match current {
                    Some(set) => format!(
                        "{}: holds share {} of the current set; last released {}",
                        card.url,
                        set.x,
                        set.last_released.map_or_else(|| "never".into(), format_time)
                    ),
                    None => format!("{}: does NOT hold the current set", card.url),
                };
                let line = if others > 0 {
                    format!("{line} ({others} other set(s) of yours there)")
                } else {
                    line
                };
                ctx.out.line(line)?;
                json!({ "peer": card.url, "reachable": true, "holds_current": current.is_some(),
                        "x": current.map(|s| s.x), "last_released": current.and_then(|s| s.last_released),
                        "other_sets": others })
            }
            Err(e) => {
                ctx.out.line(format!("{}: unreachable or refused: {e}", card.url))?;
                json!({ "peer": card.url, "reachable": false, "error": e.to_string() })
            }
        };
        rows.push(row);
    }
    ctx.out.line(format!(
        "slot {id}: {holding} of {} peers hold the current set; {} needed",
        cards.len(),
        params.threshold
    ))?;
    ctx.out.json(&json!({
        "slot": id.0, "share_set": params.share_set, "threshold": params.threshold,
        "holding": holding, "peers": rows,
    }))?;
    if holding < usize::from(params.threshold) {
        return Err(CliError::Unavailable(format!(
            "only {holding} peers confirm a share of the current set, {} are needed",
            params.threshold
        )));
    }
    Ok(())
}

/// Unix seconds as RFC 3339 (UTC), for people.
fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// `peers reshare`.
fn reshare(
    ctx: &Context,
    slot: Option<&str>,
    remove: &[String],
    add: &[PathBuf],
    threshold: Option<u8>,
    auth: &AuthArgs,
) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let (id, old) = peers_slot(&current, slot)?;
    let old = old.clone();
    // K from the secret given, else from the peers themselves (this box's identity).
    let mut auth = auth.clone();
    if auth.secrets_given() == 0 && auth.unlock_slot.is_none() {
        auth.unlock_slot = Some(id.to_string());
    }
    let reader = SecretReader::new();
    let tries = attempts(&auth, &current, store.path(), &reader)?;
    let unlocked =
        with_first_that_opens(&tries, |a| current.unlock(&a.unlocker, a.slot, store.path()))?;
    let key = unlocked.key();

    let mut cards = cards_of(&old)?;
    for gone in remove {
        let identity = match read_card(Path::new(gone)) {
            Ok(card) => Some(card.identity),
            Err(_) if !Path::new(gone).exists() => None,
            Err(e) => return Err(e),
        };
        let before = cards.len();
        cards.retain(|c| Some(c.identity) != identity && c.url != gone.trim_end_matches('/'));
        if cards.len() == before {
            return Err(usage(format!("{gone} is not one of this slot's peers")));
        }
    }
    for card in read_cards(add)? {
        if cards.iter().any(|c| c.identity == card.identity) {
            return Err(usage(format!("{} already holds a share", card.url)));
        }
        cards.push(card);
    }
    let threshold = threshold.unwrap_or(old.threshold);
    let owner = Owner {
        identity: Arc::new(owner_identity(store.path(), false)?),
        name: old.owner.clone(),
        keybox_id: current.header().id.to_string(),
    };
    let done = block_on(async {
        reshare::reshare(&store, id, key, &old, &cards, threshold, &owner, PEER_TIMEOUT, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .await
        .map_err(|e| match e {
            ReshareError::Distribute(e) => CliError::from(e),
            ReshareError::Commit(e) => CliError::from(e),
            ReshareError::Stopped(step) => CliError::Failed(format!("stopped after {step:?}")),
        })
    })?;
    for (peer, e) in &done.undeleted {
        warn(&format!(
            "{peer} did not confirm deleting the old share ({e}); the old set still combines there — delete it when the peer is back"
        ));
    }
    let new = &done.params;
    ctx.out.line(format!(
        "Re-shared slot {id}: {}-of-{}, share set {} (was {}); old shares deleted at {} of {} peers",
        new.threshold,
        new.peers.len(),
        new.share_set,
        old.share_set,
        old.peers.len() - done.undeleted.len(),
        old.peers.len()
    ))?;
    ctx.out.json(&json!({
        "slot": id.0, "share_set": new.share_set, "old_share_set": old.share_set,
        "threshold": new.threshold, "peers": new.peers.iter().map(|p| &p.url).collect::<Vec<_>>(),
        "undeleted": done.undeleted.iter().map(|(p, _)| p).collect::<Vec<_>>(),
    }))
}

/// `recover --peers`: a fresh machine with an operator's release ticket.
pub fn recover(ctx: &Context, args: &RecoverArgs) -> CliResult {
    let (Some(box_name), Some(ticket_file)) = (&args.box_name, &args.ticket_file) else {
        return Err(usage("--peers needs --box NAME and --ticket-file F"));
    };
    if args.into_keybox.is_some() || args.install || args.code_file.is_some() {
        return Err(usage(
            "with --peers, write the key with --out FILE (--into-keybox and --install are for escrow blobs)",
        ));
    }
    let out = args.out.as_ref().ok_or_else(|| usage("give --out FILE"))?;
    let (Some(expected), Some(requester_key)) = (&args.expect_fingerprint, &args.requester_key)
    else {
        return Err(usage("--peers needs --expect-fingerprint FP and --requester-key FILE"));
    };
    let cards = read_cards(&args.peers)?;
    let (ticket, claimed) = read_ticket_for(ticket_file, box_name)?;
    // Nor one for another requester.
    let requester = read_identity(requester_key)?;
    if let Some(keyward_hub::statement::Statement::PeerRelease { requester: named, .. }) = &claimed
        && *named != requester.public()
    {
        return Err(usage(format!(
            "the ticket names the requester {named}, not the key in {}",
            requester_key.display()
        )));
    }
    let proof = Proof::Ticket {
        ticket: Arc::new(ticket),
        owner_name: box_name.clone(),
        requester: Arc::new(requester),
    };
    let gathered = block_on(recovery::gather(&cards, proof, expected, None, PEER_TIMEOUT))?;
    let share_set = gathered.share_set.clone();
    let key = report(gathered);
    let found = key.fingerprint();
    let format = args.format.unwrap_or(KeyFormat::Raw);
    let encoded = encode_plain(key.expose(), format)
        .ok_or_else(|| usage("with --peers, --format is raw, hex or base64"))?;
    write_secret(out, &encoded, args.force)?;
    if out != Path::new("-") {
        ctx.out.line(format!(
            "Recovered key {} from the peers (share set {share_set}) written to {}",
            found.short(),
            out.display()
        ))?;
        ctx.out.json(&json!({
            "out": out, "fingerprint": found.to_string(), "fingerprint_short": found.short(),
            "share_set": share_set,
        }))?;
    }
    Ok(())
}
