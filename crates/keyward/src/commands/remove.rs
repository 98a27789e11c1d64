//! `keyward remove SLOT`: remove a slot and its tokens; never the last slot.

use keyward_core::operations;
use serde_json::json;

use crate::auth::{attempts, with_first_that_opens};
use crate::cli::RemoveArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::secret_input::SecretReader;

/// Runs `remove`.
pub fn run(ctx: &Context, args: &RemoveArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let target = current.find_slot(&args.slot)?.clone();
    if current.slots().len() == 1 {
        return Err(keyward_core::Error::LastSlot(target.id).into());
    }
    let tries = attempts(&args.auth, &current, store.path(), &SecretReader::new())?;
    let next = with_first_that_opens(&tries, |auth| operations::remove(&store, auth, &args.slot))?;

    ctx.out.line(format!(
        "Removed slot {} ({}, \"{}\"); {} slot(s) left",
        target.id,
        target.protection.kind(),
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
