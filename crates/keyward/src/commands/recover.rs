//! `keyward recover --blob`: offline recovery on a machine that has nothing. The blob is opened
//! with the recovery code and the key's PBS fingerprint compared with the one the operator
//! expects *before* anything is written; then the key is written as an unencrypted PBS key file
//! (or installed where the backup client reads its default key).

use keyward_core::Error as CoreError;
use keyward_pbs::{PbsError, PbsTime, escrow, pbs_fingerprint};
use serde_json::json;

use crate::cli::RecoverArgs;
use crate::context::Context;
use crate::exit::{CliError, CliResult};
use crate::output::{encode_plain, write_secret};
use crate::pbs;
use crate::secret_input::{SecretReader, code_from};

/// Runs `recover`.
pub fn run(ctx: &Context, args: &RecoverArgs) -> CliResult {
    let reader = SecretReader::new();
    let blob = pbs::read_key_file(&reader, &args.blob)?;
    let code = code_from(&reader, args.code_file.as_deref())?;
    let key = escrow::open(&blob, &code).map_err(|source| match source {
        // Say what was tried: the code, on this blob (which a hub or a disk may have changed).
        PbsError::WrongPassphrase { .. } => CliError::BlobNotOpened(args.blob.clone()),
        source => CliError::Pbs { path: args.blob.clone(), source },
    })?;

    // The fingerprint gate: nothing is written for a key the operator did not ask for.
    let found = pbs_fingerprint(key.expose());
    if !found.matches(&args.expect_fingerprint) {
        return Err(CoreError::FingerprintMismatch {
            expected: args.expect_fingerprint.to_string(),
            found: found.to_string(),
        }
        .into());
    }

    let (path, format) = match (&args.out, args.install) {
        (Some(out), false) => (out.clone(), args.format),
        _ => (pbs::default_key_path()?, crate::cli::KeyFormat::Pbs),
    };
    let encoded = match encode_plain(key.expose(), format) {
        Some(encoded) => encoded,
        None => {
            let now = PbsTime::now(ctx.local_offset);
            pbs::key_file_bytes(
                &key,
                crate::cli::PbsKdfArg::None,
                None,
                &reader,
                blob.created.clone(),
                now,
            )?
        }
    };
    if args.install
        && let Some(folder) = path.parent()
    {
        keyward_core::store::create_private_folder(&keyward_core::store::RealFs, folder)?;
    }
    write_secret(&path, &encoded, args.force)?;

    if path != std::path::Path::new("-") {
        ctx.out.line(format!("Recovered key {} written to {}", found.short(), path.display()))?;
        ctx.out.json(&json!({
            "out": path,
            "pbs_fingerprint": found.to_string(),
            "pbs_fingerprint_short": found.short(),
        }))?;
    }
    Ok(())
}
