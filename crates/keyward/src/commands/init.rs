//! `keyward init`: a new keybox with a new or imported key and its first slot.

use keyward_core::keybox::{NewKeybox, PbsRecord};
use keyward_core::{DataKey, operations};
use keyward_pbs::pbs_fingerprint;
use serde_json::json;

use crate::cli::InitArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::kinds::named;
use crate::new_secret::NewSecret;
use crate::output::fingerprint_lines;
use crate::pbs;

/// Runs `init`.
pub fn run(ctx: &Context, args: &InitArgs) -> CliResult {
    let store = ctx.store();
    // Refuse early, before prompting or writing a code file; `create` checks again under the lock.
    if store.exists() {
        return Err(keyward_core::Error::KeyboxExists(ctx.keybox.clone()).into());
    }
    let kind = named(&args.with)?;
    kind.check_options(&args.secret.given())?;
    let reader = &ctx.reader;
    let (key, pbs) = match (&args.import, &args.import_pbs) {
        (Some(path), _) => (DataKey::import(reader.bytes(path)?)?, None),
        (None, Some(path)) => {
            let file = pbs::read_key_file(reader, path)?;
            let key = pbs::open_key_file(&file, path, args.pbs_passphrase_file.as_deref(), reader)?;
            let record = PbsRecord {
                fingerprint: pbs_fingerprint(key.expose()),
                created: file.created.as_str().to_string(),
            };
            (key, Some(record))
        }
        (None, None) => (DataKey::generate(args.bytes)?, None),
    };
    let first = NewSecret::prepare(kind, &args.secret, reader, &ctx.out)?;
    let created = first.commit(|| {
        Ok(operations::init(
            &store,
            NewKeybox { key, label: &args.label, slot_label: args.slot_label.as_deref(), pbs },
            first.secret.as_ref(),
        )?)
    })?;

    let keybox = created.keybox();
    let fp = keybox.fingerprint();
    let slot = created.opened_by();
    ctx.out.line(format!("Created keybox {}", ctx.keybox.display()))?;
    for line in fingerprint_lines(&fp, keybox.header().pbs.as_ref().map(|r| &r.fingerprint)) {
        ctx.out.line(format!("  {line}"))?;
    }
    ctx.out.line(format!("  slot {slot:<11} {}", first.secret.kind()))?;
    first.report(&ctx.out, &slot.to_string())?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "id": keybox.header().id.to_string(),
        "fingerprint": fp.to_string(),
        "fingerprint_short": fp.short(),
        "key_length": keybox.header().key_length,
        "pbs_fingerprint": keybox.header().pbs.as_ref().map(|r| r.fingerprint.to_string()),
        "slot": { "id": slot.0, "kind": first.secret.kind() },
    }))
}
