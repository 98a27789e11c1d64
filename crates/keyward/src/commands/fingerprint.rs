//! `keyward fingerprint`: the key's public fingerprint, as recorded in the keybox.

use serde_json::json;

use crate::cli::FingerprintArgs;
use crate::context::Context;
use crate::exit::CliResult;

/// Runs `fingerprint`.
pub fn run(ctx: &Context, args: &FingerprintArgs) -> CliResult {
    let fp = ctx.store().load()?.fingerprint();
    if args.short {
        ctx.out.line(fp.short())?;
    } else {
        ctx.out.line(format!("{fp}\n{}", fp.short()))?;
    }
    ctx.out
        .json(&json!({ "fingerprint": fp.to_string(), "fingerprint_short": fp.short() }))
}
