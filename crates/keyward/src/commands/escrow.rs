//! `keyward escrow …`: the escrow blob and the hub. `export-blob` writes the PBS-native blob (a
//! Proxmox Backup key file encrypted with scrypt under the recovery code, self-verified: opened
//! again with the code, its PBS fingerprint compared); `enroll`, `push`, `status` and `fetch`
//! talk to the hub as this box. Every blob is made from a keybox that was opened first, so its
//! header MAC has vouched for the slot escrowed: a slot spliced in from an old copy of the file
//! is never sent.

use std::path::Path;

use keyward_core::{Keybox, Unlocker};
use keyward_hub::api::{PushRequest, StatusResponse};
use keyward_pbs::{PbsTime, escrow};
use serde_json::json;

use crate::auth::open;
use crate::cli::{AuthArgs, ExportBlobArgs, HubArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io;
use crate::output::{Overwrite, progress, write_secret};
use crate::pbs;
use crate::runtime::block_on;
use crate::secret_input::code_from;

/// Runs `escrow export-blob`.
pub fn export_blob(ctx: &Context, args: &ExportBlobArgs) -> CliResult {
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
/// prompt), which must open one of its recovery-code slots — so the keybox is opened and its
/// header MAC checked, and a blob under a code nobody holds is never made. Returns the blob,
/// the key's PBS fingerprint and the slot the code opened.
fn pbs_blob(
    ctx: &Context,
    keybox: &Keybox,
    code_file: Option<&Path>,
) -> CliResult<(keyward_pbs::PbsKeyFile, keyward_core::Fingerprint, keyward_core::SlotId)> {
    let code = code_from(&ctx.reader, code_file)?;
    let unlocked = keybox.unlock(&Unlocker::RecoveryCode(&code), None, &ctx.keybox)?;
    let record = keybox.header().pbs.as_ref();
    let fp = pbs::check_exportable(unlocked.key(), record)?;
    let now = PbsTime::now(ctx.local_offset);
    let blob = escrow::seal(unlocked.key(), &code, pbs::created_time(record, &now), now)
        .map_err(|source| CliError::Pbs { path: "the escrow blob".into(), source })?;
    Ok((blob, fp, unlocked.opened_by()))
}

/// Runs `escrow enroll`: a new identity for this box, registered with the hub. Nothing is
/// left behind when the hub refuses.
pub fn enroll(ctx: &Context, hub: &HubArgs, box_name: &str, token_file: &Path) -> CliResult {
    let (info_path, key_path) = hub_io::enrollment_paths(&ctx.keybox);
    for existing in [&info_path, &key_path] {
        if existing.exists() {
            return Err(keyward_core::Error::OutputExists(existing.clone()).into());
        }
    }
    let token = hub_io::read_ticket(&ctx.reader, token_file)?;
    let (client, pin_text) = hub_io::client(hub)?;
    let identity = keyward_service::SigningIdentity::generate()?;
    // The identity file first: if the hub accepts us, we must be able to sign as this box.
    hub_io::write_identity(&key_path, &identity)?;
    if let Err(e) = block_on(client.enroll(box_name, identity.public(), &token)) {
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    let enrollment = hub_io::Enrollment {
        box_name: box_name.into(),
        hub: hub.hub.clone(),
        hub_fingerprint: pin_text,
    };
    let mut bytes =
        serde_json::to_vec_pretty(&enrollment).map_err(|e| CliError::Failed(e.to_string()))?;
    bytes.push(b'\n');
    write_secret(&info_path, &bytes, Overwrite::Never)?;
    ctx.out.line(format!("Enrolled {box_name} at {} (identity {})", hub.hub, identity.public()))?;
    ctx.out.json(
        &json!({ "box": box_name, "hub": hub.hub, "public_key": identity.public().to_string() }),
    )
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
    let (enrollment, identity, client) = hub_io::load_enrollment(&ctx.reader, &ctx.keybox)?;
    let mut directive = read_directive(ctx, directive)?;
    let (blob_format, blob, fingerprint) = match &keybox.header().pbs {
        Some(_) => {
            // The PBS-native blob is sealed under the recovery code, so the code is what opens
            // the keybox here; another secret could not make the blob.
            if auth.unlock_passphrase_file.is_some() || auth.unlock_keyfile.is_some() {
                return Err(usage(
                    "a Proxmox Backup key's blob is made under its recovery code: give --code-file F",
                ));
            }
            let code = code_file.or(auth.unlock_code_file.as_deref());
            let (blob, fp, _) = pbs_blob(ctx, &keybox, code)?;
            ("pbs-key-file", blob.to_bytes().to_vec(), fp.to_string())
        }
        None => {
            if code_file.is_some() {
                return Err(usage(
                    "--code-file is for a Proxmox Backup key's blob; open this keybox with --unlock-code-file (or another --unlock-… option)",
                ));
            }
            let unlocked = open(auth, &keybox, store.path(), &ctx.reader)?;
            let blob = keyward_core::escrow::EscrowBlob::from_keybox(&unlocked, None)?;
            ("keyward-escrow-blob", blob.to_bytes(), keybox.fingerprint().to_string())
        }
    };
    directive.insert("fingerprint".into(), json!(fingerprint));
    let request = PushRequest {
        blob_format: blob_format.into(),
        blob: keyward_core::encoding::to_base64(&blob),
        fingerprint: fingerprint.clone(),
        directive: serde_json::Value::Object(directive),
    };
    let answer = block_on(client.push(&enrollment.box_name, &identity, &request))?;
    let expected = keyward_hub::api::blob_sha256(&blob);
    if answer.blob_sha256 != expected {
        return Err(client_bad_answer(&enrollment.hub, "a blob hash other than the blob's"));
    }
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

fn client_bad_answer(hub: &str, reason: &str) -> CliError {
    CliError::Remote(keyward_service::client::ClientError::BadAnswer {
        service: "hub",
        url: hub.to_string(),
        reason: reason.to_string(),
    })
}

/// Prints a box's escrow versions (for `escrow status` and `operator escrow-status`).
pub fn print_versions(ctx: &Context, answer: &StatusResponse, hub: &str) -> CliResult {
    ctx.out.line(format!("{} at {hub}", answer.box_name))?;
    for v in &answer.versions {
        let pushed = time::OffsetDateTime::from_unix_timestamp(v.pushed_at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| v.pushed_at.to_string());
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
    let (enrollment, identity, client) = hub_io::load_enrollment(&ctx.reader, &ctx.keybox)?;
    let answer = block_on(client.status(&enrollment.box_name, &identity))?;
    print_versions(ctx, &answer, &enrollment.hub)
}

/// Runs `escrow fetch`: the active blob as the hub holds it.
pub fn fetch(ctx: &Context, out: &Path) -> CliResult {
    let (enrollment, identity, client) = hub_io::load_enrollment(&ctx.reader, &ctx.keybox)?;
    let escrow = block_on(client.fetch_active(&enrollment.box_name, &identity))?.escrow;
    let blob = keyward_core::encoding::from_base64(&escrow.blob)
        .filter(|bytes| keyward_hub::api::blob_sha256(bytes) == escrow.blob_sha256)
        .ok_or_else(|| client_bad_answer(&enrollment.hub, "a blob that does not match its hash"))?;
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
