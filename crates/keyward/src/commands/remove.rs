//! `keyward remove SLOT`: remove a slot and its tokens; never the last slot.

use std::sync::Arc;

use keyward_core::operations;
use keyward_service::unix_now;
use serde_json::json;

use crate::auth::{authorization, open};
use crate::cli::RemoveArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::output::warn;
use keyward_box::peers::{owner_identity, peers_params};
use keyward_box::share_journal::{Disposal, PendingSet, ShareJournal};

/// Runs `remove`.
pub fn run(ctx: &Context, args: &RemoveArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let target = current.find_slot(&args.slot)?.clone();
    if current.slots().len() == 1 {
        return Err(keyward_core::Error::LastSlot(target.id).into());
    }
    let opened = open(&args.auth, &current, store.path(), &ctx.reader)?;
    let peers = peers_params(&target)?;
    // A peers slot's shares stay at its peers: note them before the commit, so they are
    // deleted there even if this command stops right after it.
    let journal = ShareJournal::beside(store.path());
    if let Some(params) = &peers {
        journal.note(PendingSet {
            share_set: params.share_set.clone(),
            peers: params.peers.clone(),
            since: unix_now(),
            disposal: Disposal::Removed,
        })?;
    }
    let next = operations::remove(&store, &authorization(&opened)?, &args.slot)?;
    if peers.is_some() {
        match owner_identity(&ctx.reader, store.path()) {
            Ok(identity) => {
                let done = journal.clean_up(next.keybox(), &Arc::new(identity))?;
                for (peer, set, why) in &done.failed {
                    warn(&format!(
                        "{peer} still holds share set {set} ({why}); `keyward peers status` tries again"
                    ));
                }
            }
            Err(e) => warn(&format!("the removed slot's shares stay at its peers for now: {e}")),
        }
    }

    ctx.out.line(format!(
        "Removed slot {} ({}, \"{}\"); {} slot(s) left",
        target.id,
        target.protection.kind,
        target.label,
        next.keybox().slots().len()
    ))?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "removed": target.id.0,
        "slots_left": next.keybox().slots().len(),
        "generation": next.keybox().generation(),
    }))
}
