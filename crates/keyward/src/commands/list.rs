//! `keyward list`: the keybox's public facts and its slots. Never prints a wrapped key or a plain
//! slot's stored key-encryption key.

use keyward_core::keybox::SlotRecord;
use keyward_core::slot::Slot;
use serde_json::{Value, json};

use crate::context::Context;
use crate::exit::CliResult;
use crate::output::{fingerprint_lines, unknown_kind};

/// Runs `list`.
pub fn run(ctx: &Context) -> CliResult {
    let keybox = ctx.store().load()?;
    let header = keybox.header();
    let fp = header.fingerprint;
    ctx.out.line(format!("keybox           {}", ctx.keybox.display()))?;
    ctx.out.line(format!("label            {}", header.label))?;
    ctx.out.line(format!("id               {}", header.id))?;
    ctx.out.line(format!("created          {}", header.created))?;
    ctx.out.line(format!("generation       {}", header.generation))?;
    ctx.out.line(format!("key              {} bytes", header.key_length))?;
    for line in fingerprint_lines(&fp, header.pbs.as_ref().map(|r| &r.fingerprint)) {
        ctx.out.line(line)?;
    }
    if let Some(record) = &header.pbs {
        ctx.out.line(format!("pbs created      {}", record.created))?;
    }
    ctx.out.line("slots")?;
    let fallbacks = keybox.offline_fallbacks();
    for (slot, read) in keybox.read_slots() {
        ctx.out.line(format!(
            "  {:>3}  {:<13}  {:<20}  {}{}",
            slot.id,
            slot.protection.kind,
            slot.label,
            describe(slot, read),
            fallback_mark(&fallbacks, slot.id)
        ))?;
    }
    if fallbacks.is_empty() {
        ctx.out.line(
            "  (no slot opens with no network and no device: enroll a recovery code, passphrase or key file)",
        )?;
    }
    for token in &header.tokens {
        ctx.out.line(format!("  token {} on slot {}", token.token_type, token.slot))?;
    }
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "label": header.label,
        "id": header.id.to_string(),
        "created": header.created,
        "generation": header.generation,
        "key_length": header.key_length,
        "fingerprint": fp.to_string(),
        "fingerprint_short": fp.short(),
        "pbs": header.pbs.as_ref().map(|r| json!({
            "fingerprint": r.fingerprint.to_string(),
            "fingerprint_short": r.fingerprint.short(),
            "created": r.created,
        })),
        "slots": keybox.read_slots().map(|(slot, read)| slot_json(slot, read)).collect::<Vec<_>>(),
        "offline_fallbacks": fallbacks.iter().map(|id| id.0).collect::<Vec<_>>(),
        "tokens": header.tokens.iter().map(|t| json!({
            "slot": t.slot.0, "type": t.token_type, "content": t.content,
        })).collect::<Vec<_>>(),
    }))
}

/// The mark of an offline fallback (a slot that opens with no network and no device) in a
/// slot's line: the last one is said to be the last (`remove` keeps it unless `--force`).
pub fn fallback_mark(fallbacks: &[keyward_core::SlotId], id: keyward_core::SlotId) -> &'static str {
    match (fallbacks.contains(&id), fallbacks.len()) {
        (true, 1) => "  [the only offline fallback]",
        (true, _) => "  [offline fallback]",
        (false, _) => "",
    }
}

/// What protects a slot, in words.
fn describe(slot: &SlotRecord, read: Option<&dyn Slot>) -> String {
    match read {
        Some(read) => read.describe(),
        None => unknown_kind(&slot.protection.kind),
    }
}

/// The public view of a slot: id, label, kind, description, and the kind's own facts.
fn slot_json(slot: &SlotRecord, read: Option<&dyn Slot>) -> Value {
    let mut view = json!({
        "id": slot.id.0,
        "label": slot.label,
        "kind": slot.protection.kind,
        "known": read.is_some(),
        "created": slot.created,
        "protection": describe(slot, read),
        "unattended": read.is_some_and(|r| r.is_unattended()),
        "offline_fallback": read.is_some_and(|r| r.channel().is_offline_fallback()),
        "protected_by_file_permissions_only": read.is_some_and(|r| r.file_is_the_secret()),
    });
    if let (Some(read), Value::Object(fields)) = (read, &mut view) {
        // A kind's facts add to the common fields, never replace them.
        for (name, value) in read.facts() {
            fields.entry(name).or_insert(value);
        }
    }
    view
}
