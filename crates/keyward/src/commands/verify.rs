//! `keyward verify`: every check that can run. Loading checks the checksum, canonical form and
//! structure. Then every slot (or only `--slot X`) is proven as the drill proves it
//! (`keyward_box::drill::prove_slots`): each that opens — unattended, with the secret given, or
//! through its peers when named — proves its wrapped key, the fingerprint and the header MAC;
//! each that needs a secret not given is named as not checked; an unattended slot that cannot
//! open (its key file gone) is a failure, named, and so is a peers slot that opens while a peer
//! no longer holds its share (exit 11, as the drill says it).

use keyward_box::drill::{Hints, Outcome, SlotPlan, prove_slots};
use keyward_box::secrets::Person;
use keyward_core::Error as CoreError;
use serde_json::json;

use crate::auth::explicit_secret;
use crate::cli::{AuthArgs, VerifyArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::secret_input::Terminal;

/// Runs `verify`.
pub fn run(ctx: &Context, args: &VerifyArgs) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    ctx.out.line(format!("{}: checksum, canonical form and structure ok", ctx.keybox.display()))?;

    // A PIN is for one device: tried on every PIN slot, one typo would spend the retries of
    // each. Said before the PIN is read.
    if args.open.pin_file.is_some() && args.open.slot.is_none() {
        return Err(usage("a PIN opens one slot: name it with --slot N"));
    }
    let auth_args = AuthArgs::from(&args.open);
    let only = match &args.open.slot {
        Some(name) => Some(keybox.find_slot(name)?),
        None => None,
    };
    let given = explicit_secret(&auth_args, &ctx.reader)?;
    let given_unlocker = given.as_ref().map(|s| s.unlocker());
    // A secret of another kind than the slot named cannot check it: say so before any work.
    if let (Some(record), Some(unlocker)) = (only, &given_unlocker)
        && keybox.read_slot(record.id).map(|s| s.channel()) != Some(unlocker.channel())
    {
        return Err(CoreError::WrongSecretKind {
            slot: record.id,
            kind: record.protection.kind.clone(),
            offered: unlocker.describe(),
        }
        .into());
    }
    let only = only.map(|record| record.id);
    let about = format!("keybox {}, to check a slot", ctx.keybox.display());
    let mut terminal = only.and_then(|_| Terminal::if_there(about));
    let plan = SlotPlan {
        given: given_unlocker,
        only,
        ask_peers: false,
        release_ticket: args.open.release_ticket.as_deref(),
        person: terminal.as_mut().map(|t| t as &mut dyn Person),
        hints: Hints::Verify,
    };
    let mut proven = prove_slots(&keybox, &ctx.keybox, &ctx.reader, plan);
    // Only what each slot showed is printed: the key and the secret go now.
    proven.key = None;
    drop(given);

    let mut results = Vec::new();
    let mut failures: Vec<CliError> = Vec::new();
    let mut opened = 0;
    for slot in proven.slots {
        opened += usize::from(slot.opened);
        let (id, kind) = (slot.id.0, &slot.kind);
        let label = slot.name();
        match slot.outcome {
            Outcome::Ok(detail) => {
                ctx.out.line(format!("{label}: {detail}; header MAC ok"))?;
                results.push(json!({ "slot": id, "kind": kind, "result": "ok" }));
            }
            Outcome::NotProven(needs) => {
                ctx.out.line(format!("{label}: not checked: needs {needs}"))?;
                results.push(
                    json!({ "slot": id, "kind": kind, "result": "not-checked", "needs": needs }),
                );
            }
            Outcome::Broken(why) => {
                ctx.out.line(format!("{label}: FAILED: {why}"))?;
                results.push(json!({ "slot": id, "kind": kind, "result": "failed", "error": why }));
                // Broken with no error of its own (a peer lost its share): a recovery path
                // is broken, as the drill says it.
                let broken = || CliError::DrillFound(vec![label.clone()]);
                failures.push(slot.error.map_or_else(broken, CliError::from));
            }
        }
    }
    // A secret given that opens none of its slots is a wrong secret, not a pass: it goes first,
    // as what to fix.
    if let Some(wrong) = proven.given_opened_none {
        failures.insert(0, wrong.into());
    }
    let integrity_failed =
        failures.iter().any(|e| matches!(e, CliError::Core(CoreError::Integrity { .. })));
    let header_mac = if integrity_failed {
        "failed"
    } else if opened > 0 {
        "ok"
    } else {
        "not-checked"
    };
    // A slot named alone must have been checked: "not checked" is not a pass.
    if only.is_some() && opened == 0 && failures.is_empty() {
        failures.push(usage(
            "the slot named could not be checked without its secret; give it with --code-file, --passphrase-file, --keyfile or --pin-file",
        ));
    }
    if header_mac == "not-checked" {
        ctx.out.line(
            "header MAC: not checked (no slot opened; give a slot's secret with --code-file, --passphrase-file, --keyfile or --pin-file)",
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
        Some(first) => Err(first),
        None => Ok(()),
    }
}
