//! `keyward recover`: on a machine that has nothing. The blob comes from a file (`--blob`) or
//! from a hub with an operator's recovery ticket (`--hub`); the library's recovery pipeline
//! (keyward_box::recovery) opens them and gates the key by its fingerprints *before* anything is
//! written. Then the key is written (`--out`),
//! installed where the Proxmox Backup client reads it (`--install`), or kept in a fresh keybox
//! under the same code (`--into-keybox`).
//!
//! A mistyped code costs nothing: the code is read (and its words checked against the list)
//! before any request, a code typed at the prompt is asked again against the blobs already
//! fetched, and a ticket allows a few fetches.

use std::path::Path;

use keyward_box::recovery::{self, Blob, Candidate, Candidates, Refusal};
use keyward_core::store::{RealFs, create_private_folder};
use keyward_pbs::PbsTime;
use serde_json::json;

use crate::cli::{KeyFormat, PbsKdfArg, RecoverArgs};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::hub_io;
use crate::output::{Overwrite, encode_plain, warn, write_key};
use crate::pbs;
use crate::secret_input::{code_from, prompt_code, terminal_available};

/// How often a code typed at the prompt is asked for again.
const PROMPT_TRIES: usize = 3;

/// Runs `recover`.
pub fn run(ctx: &Context, args: &RecoverArgs) -> CliResult {
    if !args.peers.is_empty() {
        return super::peers::recover(ctx, args);
    }
    // The code first: a ticket must not be spent on a run that cannot finish, and a mistyped
    // word is caught here, before any request.
    let mut code = code_from(&ctx.reader, args.code_file.as_deref())?;
    let mut candidates = match (&args.blob, &args.hub) {
        (Some(path), _) => {
            Candidates { list: vec![Candidate::from_file(&ctx.reader, path)?], uses: None }
        }
        (None, Some(url)) => fetch(ctx, args, url)?,
        (None, None) => return Err(usage("give --blob FILE or --hub URL")),
    };
    candidates.expect("--expect-fingerprint", &args.expect_fingerprint);
    let prompted = args.code_file.is_none();
    let mut tries = 1;
    let recovered = loop {
        match candidates.first_that_opens(&code) {
            Ok(recovered) => break recovered,
            Err(Refusal::WrongCode(e))
                if prompted && tries < PROMPT_TRIES && terminal_available() =>
            {
                warn(&format!("{e}; try again"));
                code = prompt_code()?;
                tries += 1;
            }
            Err(Refusal::WrongCode(e) | Refusal::Other(e)) => return Err(e.into()),
        }
    };
    let chosen = &candidates.list[recovered.index];

    if let Some(path) = &args.into_keybox {
        let fp = recovery::keep_in_keybox(path, recovered, &code, chosen)?;
        ctx.out.line(format!(
            "Recovered key kept in a new keybox {} (fingerprint {}); the same recovery code opens it",
            path.display(),
            fp.short()
        ))?;
        report_directive(ctx, chosen)?;
        return ctx.out.json(&json!({ "keybox": path, "fingerprint": fp.to_string(), "directive": chosen.directive.as_ref().map(|d| &d.1) }));
    }
    let (key, found) = (recovered.key, recovered.fingerprint);
    let is_pbs = matches!(chosen.blob, Ok(Blob::Pbs(_)));
    let (path, format) = match (&args.out, args.install) {
        (Some(out), false) => (
            out.clone(),
            args.format.unwrap_or(if is_pbs { KeyFormat::Pbs } else { KeyFormat::Raw }),
        ),
        _ => (pbs::default_key_path()?, KeyFormat::Pbs),
    };
    let encoded = match encode_plain(key.expose(), format) {
        Some(encoded) => encoded,
        None => {
            keyward_box::escrow::check_exportable(&key, None)?;
            let now = PbsTime::now(ctx.local_offset);
            let created = match &chosen.blob {
                Ok(Blob::Pbs(file)) => file.created.clone(),
                _ => now.clone(),
            };
            pbs::key_file_bytes(&key, PbsKdfArg::None, None, &ctx.reader, created, now)?
        }
    };
    if args.install
        && let Some(folder) = path.parent()
    {
        create_private_folder(&RealFs, folder)?;
    }
    write_key(&path, &encoded, format, Overwrite::from_force(args.force))?;
    if path != Path::new("-") {
        ctx.out.line(format!("Recovered key {} written to {}", found.short(), path.display()))?;
        report_directive(ctx, chosen)?;
        ctx.out.json(&json!({
            "out": path,
            "fingerprint": found.to_string(),
            "fingerprint_short": found.short(),
            "version": chosen.directive.as_ref().map(|d| d.0),
            "directive": chosen.directive.as_ref().map(|d| &d.1),
        }))?;
    }
    Ok(())
}

/// Shows the restore directive a hub served (non-secret: it tells the fresh machine what to do).
fn report_directive(ctx: &Context, chosen: &Candidate) -> CliResult {
    if let Some((version, directive)) = &chosen.directive {
        ctx.out.line(format!("escrow version {version}; restore directive: {directive}"))?;
    }
    Ok(())
}

/// Fetches every version a hub holds with a recovery ticket.
fn fetch(ctx: &Context, args: &RecoverArgs, url: &str) -> CliResult<Candidates> {
    let (Some(box_name), Some(ticket_file)) = (&args.box_name, &args.ticket_file) else {
        return Err(usage("--hub needs --box NAME and --ticket-file F"));
    };
    let (client, _) =
        hub_io::client_at(url, args.hub_fingerprint.as_deref(), args.hub_cert.as_deref())?;
    Ok(recovery::from_hub(&ctx.reader, &client, url, box_name, ticket_file)?)
}
