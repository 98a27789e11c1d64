//! `keyward enroll KIND`: add a slot, authorised by opening an existing one.

use keyward_core::operations;
use serde_json::json;

use crate::auth::{authorization, open};
use crate::cli::EnrollArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::kinds::{Enroller, named};
use crate::new_secret::NewSecret;

/// Runs `enroll`.
pub fn run(ctx: &Context, args: &EnrollArgs) -> CliResult {
    let kind = named(&args.kind)?;
    kind.check_options(&args.given())?;
    if let Enroller::Command { run, .. } = &kind.enroll {
        return run(ctx, args);
    }
    let store = ctx.store();
    let current = store.load()?;
    let reader = &ctx.reader;
    let opened = open(&args.auth, &current, store.path(), reader, "to authorise the new slot")?;
    let new = NewSecret::prepare(kind, &args.secret, reader, &ctx.out)?;
    let (next, id) = new.commit(|| {
        Ok(operations::enroll(
            &store,
            &authorization(&opened)?,
            args.label.as_deref(),
            new.secret.as_ref(),
        )?)
    })?;

    let label =
        next.keybox().find_slot(&id.to_string()).map(|s| s.label.clone()).unwrap_or_default();
    ctx.out.line(format!(
        "Enrolled slot {id} ({}, \"{label}\") in {}",
        new.secret.kind(),
        ctx.keybox.display()
    ))?;
    new.report(&ctx.out, &id.to_string())?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "slot": { "id": id.0, "kind": new.secret.kind(), "label": label },
        "generation": next.keybox().generation(),
    }))
}
