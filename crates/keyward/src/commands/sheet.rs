//! `keyward sheet` (keyward_box::sheet) and `keyward code check`.

use std::path::Path;

use keyward_box::config::{BoxFiles, Enrollment, Volumes};
use keyward_box::sheet::{self, SheetFacts};
use keyward_core::{RecoveryCode, Unlocker};
use serde_json::json;

use crate::cli::{SheetArgs, SheetFormat};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::output::{Overwrite, check_new, write_secret};
use crate::secret_input::{code_from, prompt_hidden, terminal_available};

/// Runs `sheet`.
pub fn run(ctx: &Context, args: &SheetArgs) -> CliResult {
    let overwrite = Overwrite::from_force(args.force);
    check_new(&args.out, overwrite)?;
    let keybox = ctx.store().load()?;
    let about = format!("keybox {}, to print it on the recovery sheet", ctx.keybox.display());
    let code = code_from(&ctx.reader, args.code_file.as_deref(), &about)?;
    // The code on paper must be one that opens this keybox.
    keybox.unlock(&Unlocker::RecoveryCode(&code), None, &ctx.keybox)?;
    let files = BoxFiles::beside(&ctx.keybox);
    let enrollment: Option<Enrollment> = match files.enrollment.exists() {
        true => Some(keyward_box::config::read(&files.enrollment)?),
        false => None,
    };
    let volumes: Vec<String> =
        Volumes::beside(&ctx.keybox)?.volumes.into_iter().map(|v| v.uuid).collect();
    let header = keybox.header();
    let date = time::OffsetDateTime::now_utc().date().to_string();
    let facts = SheetFacts {
        box_name: enrollment.as_ref().map_or(header.label.as_str(), |e| e.box_name.as_str()),
        fingerprint: header.fingerprint,
        pbs_fingerprint: header.pbs.as_ref().map(|r| r.fingerprint),
        hubs: enrollment.as_ref().map_or(&[][..], |e| e.hubs.as_slice()),
        volumes: &volumes,
        date: &date,
        code: &code,
    };
    let page = match args.format {
        SheetFormat::Html => sheet::html(&facts)?,
        SheetFormat::Text => sheet::text(&facts)?,
    };
    write_secret(&args.out, page.as_bytes(), overwrite)?;
    if args.out != Path::new("-") {
        ctx.out.line(format!(
            "Recovery sheet written to {} (0600; it holds the recovery code: print it, keep it offline, then delete the file)",
            args.out.display()
        ))?;
        ctx.out.json(&json!({ "out": args.out, "box": facts.box_name, "fingerprint": header.fingerprint.to_string() }))?;
    }
    Ok(())
}

/// Runs `code check`: the code read as typed (a word not on the list is named with the list
/// words nearest it: the person asked for the check), never opened against anything.
pub fn check_code(ctx: &Context, code_file: Option<&Path>) -> CliResult {
    // Typed at the terminal: a word not on the list gets its nearest list words. From a file:
    // its position only (the file may be something else, and the words near it go to stderr).
    let (typed, hints) = match code_file {
        Some(path) => {
            let bytes = ctx.reader.bytes(path)?;
            (zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned()), false)
        }
        None if terminal_available() => {
            (prompt_hidden("Recovery code (to check it, offline): ")?, true)
        }
        None => return Err(usage("no terminal to prompt on; give the code with --code-file F")),
    };
    match RecoveryCode::parse(&typed).map_err(|e| if hints { e } else { e.without_hints() }) {
        Ok(_) => {
            ctx.out.line(
                "The code is well formed: ten words, each on the list. A wrong word that is on the list cannot be found offline; only opening the keybox or the blob tells.",
            )?;
            ctx.out.json(&json!({ "well_formed": true }))
        }
        Err(e) => Err(keyward_core::Error::from(e).into()),
    }
}
