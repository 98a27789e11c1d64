//! `keyward verify`: every check that can run. Loading checks the checksum, canonical form and
//! structure. Then every slot (or only `--slot X`) is reported: each that opens — unattended,
//! with the secret given, or through its peers when named — proves its wrapped key, the
//! fingerprint and the header MAC; each that needs a secret not given is named as not checked;
//! an unattended slot that cannot open (its key file gone) is a failure, named.

use keyward_core::keybox::SlotRecord;
use keyward_core::{Error as CoreError, Keybox, Unlocker};
use serde_json::json;

use crate::auth::{check_unattended, explicit_secret, open};
use crate::cli::{AuthArgs, VerifyArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::output::unknown_kind;
use crate::secret_input::terminal_available;
use keyward_box::secrets::SecretFiles;

/// What happened to one slot.
enum Outcome {
    /// It opened: wrapped key, fingerprint and header MAC are sound.
    Opens,
    /// It needs something not given; the text says what.
    NotChecked(String),
    /// It failed.
    Failed(CliError),
}

impl<T> From<CliResult<T>> for Outcome {
    fn from(result: CliResult<T>) -> Self {
        match result {
            Ok(_) => Outcome::Opens,
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// Tries one slot with what is at hand: the secret given (if the slot opens with that kind of
/// secret), else what the slot opens with unattended; the slot named alone may also prompt or
/// ask its peers, as `unlock --slot` would.
fn check_slot(
    keybox: &Keybox,
    record: &SlotRecord,
    given: Option<&Unlocker<'_>>,
    named: Option<&AuthArgs>,
    ctx: &Context,
) -> Outcome {
    let path = &ctx.keybox;
    let Some(slot) = keybox.read_slot(record.id) else {
        return Outcome::NotChecked(unknown_kind(&record.protection.kind));
    };
    let channel = slot.channel();
    if let Some(unlocker) = given {
        if unlocker.channel() == channel {
            return Outcome::from(
                keybox.unlock(unlocker, Some(record.id), path).map_err(CliError::from),
            );
        }
    } else if slot.is_unattended() {
        // Named or not: what it opens with unattended must be there (a missing key file fails).
        return Outcome::from(check_unattended(keybox, record.id, path, &ctx.reader));
    } else if let Some(args) = named
        && (!channel.is_typed() || terminal_available())
    {
        return Outcome::from(open(args, keybox, path, &ctx.reader, "to check a slot"));
    }
    Outcome::NotChecked(if named.is_some() || channel.is_typed() {
        format!("needs {}", channel.describe())
    } else {
        format!("needs {} (`keyward verify --slot {}` asks for it)", channel.describe(), record.id)
    })
}

/// Runs `verify`.
pub fn run(ctx: &Context, args: &VerifyArgs) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    ctx.out.line(format!("{}: checksum, canonical form and structure ok", ctx.keybox.display()))?;

    let auth_args = AuthArgs::from(&args.open);
    let reader: &SecretFiles = &ctx.reader;
    let only = match &args.open.slot {
        Some(name) => Some(keybox.find_slot(name)?),
        None => None,
    };
    let given = explicit_secret(&auth_args, reader)?;
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

    let mut results = Vec::new();
    let mut failures: Vec<CliError> = Vec::new();
    let mut opened = 0;
    // Slots the secret given was tried on, and how many of them it opened.
    let (mut tried_given, mut opened_by_given) = (0, 0);
    for record in keybox.slots().iter().filter(|s| only.is_none_or(|id| s.id == id)) {
        let named = only.is_some().then_some(&auth_args);
        let mut outcome = check_slot(&keybox, record, given_unlocker.as_ref(), named, ctx);
        let channel = keybox.read_slot(record.id).map(|s| s.channel());
        if given_unlocker.as_ref().is_some_and(|u| channel == Some(u.channel())) {
            tried_given += 1;
            opened_by_given += usize::from(matches!(outcome, Outcome::Opens));
        }
        // A secret given opens the slots it belongs to; another slot of its kind is not
        // broken for refusing it — unless it was the one named.
        if only.is_none()
            && let Outcome::Failed(CliError::Core(CoreError::WrongSecret { .. })) = &outcome
        {
            outcome = Outcome::NotChecked("the secret given is not this slot's".into());
        }
        let kind = &record.protection.kind;
        let label = format!("slot {} ({kind}, \"{}\")", record.id, record.label);
        match outcome {
            Outcome::Opens => {
                opened += 1;
                ctx.out.line(format!("{label}: opens; key fingerprint and header MAC ok"))?;
                results.push(json!({ "slot": record.id.0, "kind": kind, "result": "ok" }));
            }
            Outcome::NotChecked(why) => {
                ctx.out.line(format!("{label}: not checked: {why}"))?;
                results.push(json!({ "slot": record.id.0, "kind": kind, "result": "not-checked", "needs": why }));
            }
            Outcome::Failed(e) => {
                ctx.out.line(format!("{label}: FAILED: {e}"))?;
                results.push(json!({ "slot": record.id.0, "kind": kind, "result": "failed", "error": e.to_string() }));
                failures.push(e);
            }
        }
    }
    // A secret given that opens none of its slots is a wrong secret, not a pass.
    if let Some(unlocker) = &given_unlocker
        && opened_by_given == 0
    {
        failures.push(
            match tried_given {
                0 => CoreError::NoSlotTakes(unlocker.describe()),
                _ => CoreError::WrongSecret { tried: unlocker.describe().to_string() },
            }
            .into(),
        );
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
