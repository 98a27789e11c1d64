//! `keyward backup` and `keyward restore` (keyward_box::backup): the box itself in one file.

use std::path::Path;

use keyward_box::backup;
use keyward_box::fingerprint::gate;
use keyward_core::ExpectedFingerprint;
use keyward_service::unix_now;
use serde_json::json;

use crate::auth::open;
use crate::cli::AuthArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::output::{Overwrite, check_new, write_secret};

/// Runs `backup`.
pub fn backup(ctx: &Context, out: &Path, auth: &AuthArgs) -> CliResult {
    check_new(out, Overwrite::Never)?;
    let store = ctx.store();
    let keybox = store.load()?;
    let opened = open(auth, &keybox, store.path(), &ctx.reader, "to seal its backup")?;
    let bytes = backup::make(store.path(), &keybox, opened.key(), unix_now())?;
    write_secret(out, &bytes, Overwrite::Never)?;
    let fp = keybox.header().fingerprint;
    ctx.out.line(format!(
        "Backup of {} (key {}) written to {} (0600: it is as sensitive as the keybox)",
        ctx.keybox.display(),
        fp.short(),
        out.display()
    ))?;
    ctx.out.json(&json!({ "out": out, "fingerprint": fp.to_string() }))
}

/// Runs `restore`.
pub fn restore(
    ctx: &Context,
    from: &Path,
    expected: &ExpectedFingerprint,
    force: bool,
    auth: &AuthArgs,
) -> CliResult {
    let bytes = ctx.reader.bytes(from)?;
    let (keybox, keybox_bytes, created, sealed) = backup::read(&bytes)?;
    let fp = keybox.header().fingerprint;
    // What needs no secret first: the fingerprint the backup claims (checked again against the
    // key once a slot opens), the keybox that is there (another key's is never replaced, the
    // same key's only with --force) and the files beside it (only with --force).
    let claimed = keyward_pbs::KeyFingerprints {
        keyward: fp,
        pbs: keybox.header().pbs.as_ref().map(|r| r.fingerprint),
    };
    if claimed.named_by(expected).is_none() {
        return Err(keyward_core::Error::FingerprintMismatch {
            expected: format!("{expected} (--expect-fingerprint)"),
            found: format!("{claimed} (the backup's key)"),
        }
        .into());
    }
    let store = ctx.store();
    let replace = match store.load() {
        Ok(there) if there.header().fingerprint != fp => {
            return Err(keyward_core::Error::FingerprintMismatch {
                expected: format!(
                    "{} (the keybox at {}, which a restore never replaces)",
                    there.header().fingerprint,
                    ctx.keybox.display()
                ),
                found: format!("{fp} (the backup's key)"),
            }
            .into());
        }
        Ok(_) if !force => {
            return Err(crate::exit::CliError::OutputExists { path: ctx.keybox.clone() });
        }
        Ok(_) => true,
        Err(keyward_core::Error::KeyboxNotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !force && let Some(there) = backup::side_files_there(store.path()).into_iter().next() {
        return Err(crate::exit::CliError::OutputExists { path: there });
    }
    let opened_box = open(auth, &keybox, store.path(), &ctx.reader, "to open the backup")?;
    gate(opened_box.key(), &[("--expect-fingerprint".into(), expected.clone())])?;
    let key = opened_box.key().clone();
    drop(opened_box);
    let opened = backup::open(keybox, keybox_bytes, created, &sealed, &key)?;
    backup::restore(store.path(), &opened, replace)?;
    ctx.out.line(format!(
        "Restored {} (key {}) and {} file(s) beside it from {}",
        ctx.keybox.display(),
        fp,
        opened.side_files.len(),
        from.display()
    ))?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox, "fingerprint": fp.to_string(), "created": created,
        "files": opened.side_files.iter().map(|(suffix, _)| suffix).collect::<Vec<_>>(),
    }))
}
