//! `keyward fingerprint`: the key's public fingerprints, as recorded in the keybox — keyward's
//! own, and for a key imported from a Proxmox Backup key file, the PBS one
//! (`proxmox-backup-client key show`).

use keyward_core::{Error as CoreError, Fingerprint};
use serde_json::json;

use crate::cli::FingerprintArgs;
use crate::context::Context;
use crate::exit::CliResult;
use crate::output::fingerprint_lines;

/// Runs `fingerprint`.
pub fn run(ctx: &Context, args: &FingerprintArgs) -> CliResult {
    let keybox = ctx.store().load()?;
    let fp = keybox.fingerprint();
    let pbs: Option<Fingerprint> = keybox.header().pbs.as_ref().map(|r| r.fingerprint);
    // One form alone on its line, for scripts; otherwise everything, labelled.
    let chosen = if args.pbs {
        let missing = "PBS fingerprint (the key was not imported with --import-pbs)";
        Some(pbs.ok_or(CoreError::NotRecorded(missing))?)
    } else if args.short {
        Some(fp)
    } else {
        None
    };
    match chosen {
        Some(f) if args.short => ctx.out.line(f.short())?,
        Some(f) => ctx.out.line(format!("{f}\n{}", f.short()))?,
        None => {
            for line in fingerprint_lines(&fp, pbs.as_ref()) {
                ctx.out.line(line)?;
            }
        }
    }
    ctx.out.json(&json!({
        "fingerprint": fp.to_string(),
        "fingerprint_short": fp.short(),
        "pbs_fingerprint": pbs.map(|p| p.to_string()),
        "pbs_fingerprint_short": pbs.map(|p| p.short()),
    }))
}
