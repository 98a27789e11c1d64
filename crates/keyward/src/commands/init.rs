//! `keyward init`: a new keybox with a new or imported key and its first slot.

use keyward_core::keybox::NewKeybox;
use keyward_core::{DataKey, operations};
use serde_json::json;

use crate::cli::InitArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::new_secret::NewSecret;
use crate::secret_input::SecretReader;

/// Runs `init`.
pub fn run(ctx: &Context, args: &InitArgs) -> CliResult {
    let store = ctx.store();
    // Refuse early, before prompting or writing a code file; `create` checks again under the lock.
    if store.exists() {
        return Err(keyward_core::Error::KeyboxExists(ctx.keybox.clone()).into());
    }
    let reader = SecretReader::new();
    let key = match &args.import {
        Some(path) => DataKey::import(reader.bytes(path)?)?,
        None => DataKey::generate(args.bytes)?,
    };
    let first = NewSecret::prepare(args.with, &args.secret, &reader, &ctx.out)?;
    let created = first.commit(|| {
        Ok(operations::init(
            &store,
            NewKeybox::new(key, &args.label, args.slot_label.as_deref()),
            &first.secret,
        )?)
    })?;

    let keybox = created.keybox();
    let fp = keybox.fingerprint();
    let slot = created.opened_by();
    ctx.out
        .line(format!("Created keybox {}", ctx.keybox.display()))?;
    ctx.out.line(format!("  fingerprint  {fp}"))?;
    ctx.out.line(format!("  short        {}", fp.short()))?;
    ctx.out
        .line(format!("  slot {slot}       {}", first.secret.kind()))?;
    first.report(&ctx.out, &slot.to_string())?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "id": keybox.header().id.to_string(),
        "fingerprint": fp.to_string(),
        "fingerprint_short": fp.short(),
        "key_length": keybox.header().key_length,
        "slot": { "id": slot.0, "kind": first.secret.kind().name() },
    }))
}
