//! `keyward escrow …`: the escrow blob and the hub. `export-blob` writes the PBS-native blob (a
//! Proxmox Backup key file encrypted with scrypt under the recovery code, self-verified: opened
//! again with the code, its PBS fingerprint compared); `enroll`, `push`, `status` and `fetch`
//! talk to the hub as this box. Every blob is made from a keybox that was opened first, so its
//! header MAC has vouched for the slot escrowed: a slot spliced in from an old copy of the file
//! is never sent.

use std::path::Path;

use keyward_box::config::{BoxFiles, Enrollment};
use keyward_box::escrow::{self, Admission, BlobForm, EscrowBlobToPush};
use keyward_core::Keybox;
use keyward_hub::api::StatusResponse;
use keyward_pbs::PbsTime;
use serde_json::json;

use crate::auth::open;
use crate::cli::{AuthArgs, ExportBlobArgs, HubArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io;
use crate::output::{Overwrite, check_new, format_time, progress, write_secret};
use crate::pbs;
use crate::secret_input::code_from;

/// Runs `escrow export-blob`.
pub fn export_blob(ctx: &Context, args: &ExportBlobArgs) -> CliResult {
    check_new(&args.out, Overwrite::from_force(args.force))?;
    let keybox = ctx.store().load()?;
    let (blob, fp, slot) = pbs_blob(ctx, &keybox, args.code_file.as_deref())?;
    write_secret(&args.out, &blob.to_bytes(), Overwrite::from_force(args.force))?;

    if args.out != Path::new("-") {
        ctx.out.line(format!(
            "Escrow blob written to {} (a Proxmox Backup key file, scrypt, opened by recovery-code slot {})",
            args.out.display(),
            slot
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

/// The PBS-native blob of this keybox's key, under the recovery code (from `code_file`, else a
/// prompt); see keyward_box::escrow::pbs_blob.
fn pbs_blob(
    ctx: &Context,
    keybox: &Keybox,
    code_file: Option<&Path>,
) -> CliResult<(keyward_pbs::PbsKeyFile, keyward_core::Fingerprint, keyward_core::SlotId)> {
    let about = format!("keybox {}, to seal the escrow blob under it", ctx.keybox.display());
    let code = code_from(&ctx.reader, code_file, &about)?;
    let now = PbsTime::now(ctx.local_offset);
    let created = pbs::created_time(keybox.header().pbs.as_ref(), &now);
    Ok(escrow::pbs_blob(keybox, &ctx.keybox, &code, created, now)?)
}

/// Runs `escrow enroll`: this box registered with the hub, with an enrollment token or a
/// takeover (keyward_box::escrow::enroll).
pub fn enroll(
    ctx: &Context,
    hub: &HubArgs,
    box_name: &str,
    token_file: Option<&Path>,
    takeover_file: Option<&Path>,
) -> CliResult {
    let text = match (token_file, takeover_file) {
        (Some(path), None) | (None, Some(path)) => ctx.reader.ticket(path)?,
        _ => return Err(usage("give --token-file F or --takeover-file F")),
    };
    let admission = match takeover_file {
        Some(_) => Admission::Takeover(&text),
        None => Admission::Token(&text),
    };
    let addresses = hub_io::hubs(ctx, hub)?;
    let hubs = hub_io::connect(&addresses)?;
    let enrollment = Enrollment { box_name: box_name.into(), hubs: addresses };
    let done = escrow::enroll(&ctx.reader, &ctx.keybox, &hubs, enrollment, admission)?;
    let urls = hubs.urls().join(", ");
    let how = match admission {
        Admission::Takeover(_) => "Took over",
        Admission::Token(_) => "Enrolled",
    };
    ctx.out.line(format!("{how} {box_name} at {urls} (identity {})", done.identity))?;
    ctx.out.json(&json!({
        "box": box_name, "hubs": hubs.urls(), "public_key": done.identity.to_string(),
        "takeover": matches!(admission, Admission::Takeover(_)),
    }))
}

/// Runs `escrow identity`: the box's public key, made first if it has none.
pub fn identity(ctx: &Context) -> CliResult {
    let (identity, made_now) = keyward_box::identity::read_or_new(&ctx.reader, &ctx.keybox)?;
    if made_now {
        progress(&format!(
            "Made this box's identity ({}); an operator's takeover names the key below",
            BoxFiles::beside(&ctx.keybox).identity.display()
        ));
    }
    ctx.out.line(identity.public().to_string())?;
    ctx.out.json(&json!({ "public_key": identity.public().to_string(), "made": made_now }))
}

/// The restore directive from a file: a JSON object (docs/hub-api.md, "The restore
/// directive").
fn read_directive(
    ctx: &Context,
    path: Option<&Path>,
) -> CliResult<serde_json::Map<String, serde_json::Value>> {
    let Some(path) = path else { return Ok(serde_json::Map::new()) };
    let bytes = ctx.reader.bytes(path)?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(_) => Err(usage(format!(
            "{}: the restore directive is a JSON object, e.g. {{\"repository\": \"backup@pbs@pbs.example:store1\"}}",
            path.display()
        ))),
        Err(e) => Err(usage(format!("{}: not JSON ({e})", path.display()))),
    }
}

/// Runs `escrow push`: the blob (PBS-native for a Proxmox Backup key, else the keybox's
/// recovery-code slot as a keyward escrow blob) and the directive. The blob's SHA-256 goes to
/// stdout: an operator's approval of a pending version names it.
pub fn push(
    ctx: &Context,
    directive: Option<&Path>,
    code_file: Option<&Path>,
    auth: &AuthArgs,
) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    let (enrollment, identity, hubs) = escrow::load_enrollment(&ctx.keybox, &ctx.reader)?;
    let directive = read_directive(ctx, directive)?;
    let blob = match BlobForm::of(&keybox) {
        BlobForm::PbsKeyFile => {
            // The PBS-native blob is sealed under the recovery code, so the code is what opens
            // the keybox here; another secret could not make the blob.
            if auth.unlock_passphrase_file.is_some() || auth.unlock_keyfile.is_some() {
                return Err(usage(
                    "a Proxmox Backup key's blob is made under its recovery code: give --code-file F",
                ));
            }
            let code = code_file.or(auth.unlock_code_file.as_deref());
            let (blob, fp, _) = pbs_blob(ctx, &keybox, code)?;
            EscrowBlobToPush::pbs(&blob, &fp, &keybox.fingerprint())
        }
        BlobForm::KeywardBlob => {
            if code_file.is_some() {
                return Err(usage(
                    "--code-file is for a Proxmox Backup key's blob; open this keybox with --unlock-code-file (or another --unlock-… option)",
                ));
            }
            EscrowBlobToPush::keyward(&open(
                auth,
                &keybox,
                store.path(),
                &ctx.reader,
                "to escrow its recovery-code slot",
            )?)?
        }
    };
    let answer = escrow::push(&ctx.keybox, &hubs, &enrollment, &identity, &blob, directive)?;
    let (blob_format, fingerprint) = (blob.form.name(), &blob.fingerprint);
    if answer.state == "active" {
        progress(&format!(
            "Pushed escrow version {} of {} ({blob_format}); it is active. Its blob's SHA-256:",
            answer.version, enrollment.box_name
        ));
    } else {
        progress(&format!(
            "Pushed escrow version {} of {} ({blob_format}); it is pending until an operator approves it with `keyward operator approve-overwrite --box {} --version {} --blob-sha256 HASH`, HASH being:",
            answer.version, enrollment.box_name, enrollment.box_name, answer.version
        ));
    }
    ctx.out.line(&answer.blob_sha256)?;
    ctx.out.json(&json!({
        "box": enrollment.box_name, "version": answer.version, "state": answer.state,
        "fingerprint": fingerprint, "blob_sha256": answer.blob_sha256,
    }))
}

/// Prints a box's escrow versions (for `escrow status` and `operator escrow-status`).
pub fn print_versions(ctx: &Context, answer: &StatusResponse, hubs: &str) -> CliResult {
    ctx.out.line(format!("{} at {hubs}", answer.box_name))?;
    for v in &answer.versions {
        let pushed = format_time(v.pushed_at);
        let hash = v.blob_sha256.as_deref().unwrap_or("(erased)");
        ctx.out.line(format!(
            "  version {:>3}  {:<10}  pushed {pushed}  fingerprint {}  blob sha256 {hash}",
            v.version, v.state, v.fingerprint
        ))?;
    }
    if answer.versions.is_empty() {
        ctx.out.line("  nothing pushed yet")?;
    }
    ctx.out.json(&serde_json::to_value(answer).map_err(|e| CliError::Failed(e.to_string()))?)
}

/// Runs `escrow status`.
pub fn status(ctx: &Context) -> CliResult {
    let (enrollment, identity, hubs) = escrow::load_enrollment(&ctx.keybox, &ctx.reader)?;
    let answer = escrow::status(&hubs, &enrollment, &identity)?;
    print_versions(ctx, &answer, &hubs.urls().join(", "))
}

/// Runs `escrow fetch`: the active blob as the hub holds it.
pub fn fetch(ctx: &Context, out: &Path) -> CliResult {
    check_new(out, Overwrite::Never)?;
    let (enrollment, identity, hubs) = escrow::load_enrollment(&ctx.keybox, &ctx.reader)?;
    let (escrow, blob) = escrow::fetch_active(&hubs, &enrollment, &identity)?;
    write_secret(out, &blob, Overwrite::Never)?;
    if out != Path::new("-") {
        ctx.out.line(format!(
            "Escrow version {} of {} ({}) written to {}",
            escrow.version,
            enrollment.box_name,
            escrow.blob_format,
            out.display()
        ))?;
        ctx.out.json(&json!({
            "box": enrollment.box_name,
            "version": escrow.version,
            "blob_format": escrow.blob_format,
            "fingerprint": escrow.fingerprint,
            "blob_sha256": escrow.blob_sha256,
            "out": out,
        }))?;
    }
    Ok(())
}
