//! `keyward enroll KIND`: add a slot, authorised by opening an existing one.

use keyward_core::operations;
use serde_json::json;

use crate::auth::{attempts, with_first_that_opens};
use crate::cli::{EnrollArgs, KindArg};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::new_secret::NewSecret;

/// Runs `enroll`.
pub fn run(ctx: &Context, args: &EnrollArgs) -> CliResult {
    if args.kind == KindArg::Peers {
        return super::peers::enroll(ctx, args);
    }
    let given = &args.peers;
    if given.threshold.is_some()
        || !given.peers.is_empty()
        || given.box_name.is_some()
        || given.token_file.is_some()
    {
        return Err(usage(
            "--threshold, --peer, --box and --token-file apply to `enroll peers` only",
        ));
    }
    let store = ctx.store();
    let current = store.load()?;
    let reader = &ctx.reader;
    let tries = attempts(&args.auth, &current, store.path(), reader)?;
    let new = NewSecret::prepare(args.kind, &args.secret, reader, &ctx.out)?;
    let (next, id) = new.commit(|| {
        with_first_that_opens(&tries, |auth| {
            operations::enroll(&store, auth, args.label.as_deref(), &new.secret)
        })
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
        "slot": { "id": id.0, "kind": new.secret.kind().name(), "label": label },
        "generation": next.keybox().generation(),
    }))
}
