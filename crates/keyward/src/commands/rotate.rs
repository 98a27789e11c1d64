//! `keyward rotate SLOT`: a new secret for a slot; K, the slot's id, label and tokens stay.

use keyward_box::unlock::Companions;
use keyward_core::operations;
use serde_json::json;

use keyward_core::slot::RECOVERY_CODE;

use crate::auth::{authorization, open};
use crate::cli::RotateArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::new_secret::NewSecret;

/// Runs `rotate`.
pub fn run(ctx: &Context, args: &RotateArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let target = current.find_slot(&args.slot)?.clone();
    let reader = &ctx.reader;
    let kind = target.protection.kind.as_str();
    // Before anything is asked: a kind this keyward cannot make is not rotated by it.
    let Some(cli_kind) = crate::kinds::find(kind) else {
        return Err(keyward_core::Error::UnknownKind { slot: target.id, kind: kind.into() }.into());
    };
    cli_kind.check_options(&args.secret.given())?;
    let opened = open(&args.auth, &current, store.path(), reader, "to authorise the new secret")?;
    let new = NewSecret::prepare(cli_kind, &args.secret, reader, &ctx.out)?;
    let mut companions = Companions::new(reader, store.path());
    let next = new.commit(|| {
        let auth = authorization(&opened)?;
        Ok(operations::rotate(&store, &auth, &args.slot, new.secret.as_ref(), &mut companions)?)
    })?;

    ctx.out.line(format!(
        "Rotated slot {} ({}, \"{}\"); the old secret no longer opens it",
        target.id, target.protection.kind, target.label
    ))?;
    new.report(&ctx.out, &target.id.to_string())?;
    // A hub keeps every version it was given until an operator deletes one: the old code still
    // opens those pushed under it.
    let enrolled = keyward_box::config::BoxFiles::beside(&ctx.keybox).enrollment;
    if kind == RECOVERY_CODE && enrolled.exists() {
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
