//! `keyward verify`: every check that can run without a prompt. Loading checks the checksum,
//! canonical form and structure; each slot that opens unattended (or with a secret given) proves
//! its wrapped key, the fingerprint and the header MAC.

use keyward_core::SlotId;
use serde_json::json;

use crate::auth::{Attempt, attempts, unattended_attempts};
use crate::cli::{AuthArgs, VerifyArgs};
use crate::context::Context;
use crate::exit::CliResult;
use crate::secret_input::SecretReader;

/// Runs `verify`.
pub fn run(ctx: &Context, args: &VerifyArgs) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    ctx.out.line(format!("{}: checksum, canonical form and structure ok", ctx.keybox.display()))?;

    let reader = SecretReader::new();
    let auth_args = AuthArgs::from(&args.open);
    // Each slot that needs no prompt, plus the one a given secret opens.
    let mut tries: Vec<Attempt> = Vec::new();
    if auth_args.secrets_given() > 0 {
        tries.extend(attempts(&auth_args, &keybox, store.path(), &reader)?);
    }
    tries.extend(unattended_attempts(&keybox, None, &reader));

    let mut failures = Vec::new();
    let mut opened: Vec<SlotId> = Vec::new();
    let mut results = Vec::new();
    for attempt in &tries {
        let auth = attempt.authorization();
        match keybox.unlock(&auth.unlocker, auth.slot, store.path()) {
            Ok(unlocked) => {
                let id = unlocked.opened_by();
                if !opened.contains(&id) {
                    opened.push(id);
                    ctx.out.line(format!("slot {id}: opens; key fingerprint and header MAC ok"))?;
                    results.push(json!({ "slot": id.0, "result": "ok" }));
                }
            }
            Err(e) => {
                let slot = auth.slot.map(|s| s.0);
                ctx.out.line(format!(
                    "slot {}: FAILED: {e}",
                    slot.map_or("?".into(), |s| s.to_string())
                ))?;
                results.push(json!({ "slot": slot, "result": "failed", "error": e.to_string() }));
                failures.push(e);
            }
        }
    }
    let mac_checked = !opened.is_empty();
    // Only an integrity failure says the header is bad; a wrong secret says nothing about it.
    let integrity_failed =
        failures.iter().any(|e| matches!(e, keyward_core::Error::Integrity { .. }));
    let header_mac = if integrity_failed {
        "failed"
    } else if mac_checked {
        "ok"
    } else {
        "not-checked"
    };
    if !mac_checked && failures.is_empty() {
        ctx.out.line(
            "header MAC: not checked (no slot opens without a secret; pass --code-file, --passphrase-file or --keyfile)",
        )?;
    }
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "checksum": "ok",
        "header_mac": header_mac,
        "slots": results,
        "ok": failures.is_empty(),
    }))?;
    match failures.into_iter().next() {
        Some(first) => Err(first.into()),
        None => Ok(()),
    }
}
