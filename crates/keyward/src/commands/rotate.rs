//! `keyward rotate SLOT`: a new secret for a slot; K, the slot's id, label and tokens stay.

use keyward_core::operations;
use serde_json::json;

use crate::auth::{attempts, with_first_that_opens};
use crate::cli::{KindArg, RotateArgs};
use crate::context::Context;
use crate::exit::CliResult;
use crate::new_secret::NewSecret;

/// Runs `rotate`.
pub fn run(ctx: &Context, args: &RotateArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let target = current.find_slot(&args.slot)?.clone();
    let reader = &ctx.reader;
    let tries = attempts(&args.auth, &current, store.path(), reader)?;
    let kind = KindArg::from(target.protection.kind());
    let new = NewSecret::prepare(kind, &args.secret, reader, &ctx.out)?;
    let next = new.commit(|| {
        with_first_that_opens(&tries, |auth| {
            operations::rotate(&store, auth, &args.slot, &new.secret)
        })
    })?;

    ctx.out.line(format!(
        "Rotated slot {} ({}, \"{}\"); the old secret no longer opens it",
        target.id,
        target.protection.kind(),
        target.label
    ))?;
    new.report(&ctx.out, &target.id.to_string())?;
    // A hub keeps every version it was given until an operator deletes one: the old code still
    // opens those pushed under it.
    let (enrolled, _) = crate::hub_io::enrollment_paths(&ctx.keybox);
    if kind == KindArg::RecoveryCode && enrolled.exists() {
        crate::output::warn(
            "escrow versions pushed under the old code still open with it: push again (`keyward escrow push`) and have an operator delete the old versions (`keyward operator delete-escrow`)",
        );
    }
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "slot": target.id.0,
        "generation": next.keybox().generation(),
    }))
}
