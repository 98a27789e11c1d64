//! `keyward escrow export-blob`: the PBS-native escrow blob, a Proxmox Backup key file encrypted
//! with scrypt under the recovery code (see keyward_pbs::escrow). It is self-verified before it
//! is written: opened again with the code, its PBS fingerprint compared.

use keyward_core::Unlocker;
use keyward_pbs::{PbsTime, escrow};
use serde_json::json;

use crate::cli::ExportBlobArgs;
use crate::context::Context;
use crate::exit::{CliError, CliResult};
use crate::output::write_secret;
use crate::pbs;
use crate::secret_input::{SecretReader, code_from};

/// Runs `escrow export-blob`.
pub fn export_blob(ctx: &Context, args: &ExportBlobArgs) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    let reader = SecretReader::new();
    let code = code_from(&reader, args.code_file.as_deref())?;
    // The code must open this keybox: a blob under a code nobody holds would be useless.
    let unlocked = keybox.unlock(&Unlocker::RecoveryCode(&code), None, store.path())?;
    let key = unlocked.key();
    let record = keybox.header().pbs.as_ref();
    let fp = pbs::check_exportable(key, record)?;

    let now = PbsTime::now(ctx.local_offset);
    let blob = escrow::seal(key, &code, pbs::created_time(record, &now), now)
        .map_err(|source| CliError::Pbs { path: args.out.clone(), source })?;
    write_secret(&args.out, &blob.to_bytes(), args.force)?;

    if args.out != std::path::Path::new("-") {
        ctx.out.line(format!(
            "Escrow blob written to {} (a Proxmox Backup key file, scrypt, opened by recovery-code slot {})",
            args.out.display(),
            unlocked.opened_by()
        ))?;
        ctx.out.line(format!("  pbs fingerprint  {fp}"))?;
        ctx.out.line(format!("  short            {}", fp.short()))?;
        ctx.out.json(&json!({
            "blob": args.out,
            "format": "pbs-key-file-scrypt",
            "pbs_fingerprint": fp.to_string(),
            "pbs_fingerprint_short": fp.short(),
        }))?;
    }
    Ok(())
}
