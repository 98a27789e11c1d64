//! `keyward remove SLOT`: remove a slot and its tokens; never the last slot, and the last
//! offline fallback (a recovery-code, passphrase or key-file slot) only with `--force`. What the slot's kind
//! keeps outside the keybox (a TPM counter, shares at peers) is retired by the kind itself.

use keyward_box::unlock::Companions;
use keyward_core::operations::{self, Fallback};
use serde_json::json;

use crate::auth::{authorization, open};
use crate::cli::RemoveArgs;
use crate::context::Context;
use crate::exit::CliResult;

/// Runs `remove`.
pub fn run(ctx: &Context, args: &RemoveArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let target = current.find_slot(&args.slot)?.clone();
    // What needs no secret first: the last slot, the last offline fallback.
    if current.slots().len() == 1 {
        return Err(keyward_core::Error::LastSlot(target.id).into());
    }
    let fallback = if args.force { Fallback::MayGo } else { Fallback::Keep };
    if fallback == Fallback::Keep {
        current.keeps_an_offline_fallback_without(target.id)?;
    }
    let opened =
        open(&args.auth, &current, store.path(), &ctx.reader, "to authorise removing a slot")?;
    let mut companions = Companions::new(&ctx.reader, store.path());
    let auth = authorization(&opened)?;
    let next = operations::remove(&store, &auth, &args.slot, fallback, &mut companions)?;

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
