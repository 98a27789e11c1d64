//! `keyward escrow …`: the escrow blob and the hub. `export-blob` writes the PBS-native blob (a
//! Proxmox Backup key file encrypted with scrypt under the recovery code, self-verified: opened
//! again with the code, its PBS fingerprint compared); `enroll`, `push`, `status` and `fetch`
//! talk to the hub as this box.

use keyward_core::Unlocker;
use keyward_pbs::{PbsTime, escrow};
use serde_json::json;

use crate::cli::ExportBlobArgs;
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io;
use crate::output::write_secret;
use crate::pbs;
use crate::runtime::block_on;
use crate::secret_input::{SecretReader, code_from};
use zeroize::Zeroizing;

/// Runs `escrow export-blob`.
pub fn export_blob(ctx: &Context, args: &ExportBlobArgs) -> CliResult {
    let keybox = ctx.store().load()?;
    let (blob, fp, slot) = pbs_blob(ctx, &keybox, args.code_file.as_deref())?;
    write_secret(&args.out, &blob.to_bytes(), args.force)?;

    if args.out != std::path::Path::new("-") {
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
/// prompt), which must open one of its recovery-code slots: a blob under a code nobody holds
/// would be useless. Returns the blob, the key's PBS fingerprint and the slot the code opened.
fn pbs_blob(
    ctx: &Context,
    keybox: &keyward_core::Keybox,
    code_file: Option<&std::path::Path>,
) -> CliResult<(keyward_pbs::PbsKeyFile, keyward_core::Fingerprint, keyward_core::SlotId)> {
    let code = code_from(&SecretReader::new(), code_file)?;
    let unlocked = keybox.unlock(&Unlocker::RecoveryCode(&code), None, &ctx.keybox)?;
    let record = keybox.header().pbs.as_ref();
    let fp = pbs::check_exportable(unlocked.key(), record)?;
    let now = PbsTime::now(ctx.local_offset);
    let blob = escrow::seal(unlocked.key(), &code, pbs::created_time(record, &now), now)
        .map_err(|source| CliError::Pbs { path: "the escrow blob".into(), source })?;
    Ok((blob, fp, unlocked.opened_by()))
}

/// Runs `escrow enroll`: a new identity for this box, registered with the hub.
pub fn enroll(
    ctx: &Context,
    hub: &crate::cli::HubArgs,
    box_name: &str,
    token_file: &std::path::Path,
) -> CliResult {
    let (info_path, key_path) = hub_io::enrollment_paths(&ctx.keybox);
    for existing in [&info_path, &key_path] {
        if existing.exists() {
            return Err(keyward_core::Error::OutputExists(existing.clone()).into());
        }
    }
    let token = Zeroizing::new(
        String::from_utf8_lossy(&SecretReader::new().bytes(token_file)?).trim().to_string(),
    );
    let (client, pin_text) = hub_io::client(hub)?;
    let identity = keyward_hub::SigningIdentity::generate()?;
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
    write_secret(&info_path, &bytes, false)?;
    ctx.out.line(format!("Enrolled {box_name} at {} (identity {})", hub.hub, identity.public()))?;
    ctx.out.json(
        &json!({ "box": box_name, "hub": hub.hub, "public_key": identity.public().to_string() }),
    )
}

/// Runs `escrow push`: the blob (PBS-native for a Proxmox Backup key, else the keybox's
/// recovery-code slot as a keyward escrow blob) and the directive.
pub fn push(
    ctx: &Context,
    directive: Option<&std::path::Path>,
    code_file: Option<&std::path::Path>,
) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    let (enrollment, identity, client) = hub_io::load_enrollment(&ctx.keybox)?;
    let mut directive = match directive {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| keyward_core::Error::io("cannot read", path, e))?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| usage(format!("{}: not JSON ({e})", path.display())))?
        }
        None => json!({}),
    };
    let (blob_format, blob, fingerprint) = match &keybox.header().pbs {
        Some(_) => {
            let (blob, fp, _) = pbs_blob(ctx, &keybox, code_file)?;
            ("pbs-key-file", blob.to_bytes().to_vec(), fp.to_string())
        }
        None => {
            let blob = keyward_core::escrow::EscrowBlob::from_keybox(&keybox, None)?;
            // A blob that names another key is never pushed (it is the keybox's own slot, so
            // this holds unless the code above is wrong — then nothing leaves the box).
            if blob.fingerprint != keybox.fingerprint() {
                return Err(keyward_core::Error::FingerprintMismatch {
                    expected: keybox.fingerprint().to_string(),
                    found: blob.fingerprint.to_string(),
                }
                .into());
            }
            ("keyward-escrow-blob", blob.to_bytes(), keybox.fingerprint().to_string())
        }
    };
    if let Some(object) = directive.as_object_mut() {
        object.insert("fingerprint".into(), json!(fingerprint));
    }
    let request = keyward_hub::api::PushRequest {
        blob_format: blob_format.into(),
        blob: keyward_core::encoding::to_base64(&blob),
        fingerprint: fingerprint.clone(),
        directive,
    };
    let answer = block_on(client.push(&enrollment.box_name, &identity, &request))?;
    ctx.out.line(format!(
        "Pushed escrow version {} for {} ({}); it is {}",
        answer.version,
        enrollment.box_name,
        blob_format,
        if answer.state == "active" { "active" } else { "pending until an operator approves it" }
    ))?;
    ctx.out.json(&json!({ "box": enrollment.box_name, "version": answer.version, "state": answer.state, "fingerprint": fingerprint }))
}

/// Runs `escrow status`.
pub fn status(ctx: &Context) -> CliResult {
    let (enrollment, identity, client) = hub_io::load_enrollment(&ctx.keybox)?;
    let answer = block_on(client.status(&enrollment.box_name, &identity))?;
    ctx.out.line(format!("{} at {}", enrollment.box_name, enrollment.hub))?;
    for v in &answer.versions {
        let pushed = time::OffsetDateTime::from_unix_timestamp(v.pushed_at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| v.pushed_at.to_string());
        ctx.out.line(format!(
            "  version {:>3}  {:<10}  pushed {pushed}  fingerprint {}",
            v.version, v.state, v.fingerprint
        ))?;
    }
    if answer.versions.is_empty() {
        ctx.out.line("  nothing pushed yet")?;
    }
    ctx.out.json(&serde_json::to_value(&answer).map_err(|e| CliError::Failed(e.to_string()))?)
}

/// Runs `escrow fetch`: the active blob as the hub holds it.
pub fn fetch(ctx: &Context, out: &std::path::Path) -> CliResult {
    let (enrollment, identity, client) = hub_io::load_enrollment(&ctx.keybox)?;
    let answer = block_on(client.fetch_active(&enrollment.box_name, &identity))?;
    let blob = keyward_core::encoding::from_base64(&answer.blob)
        .ok_or_else(|| CliError::Failed("the hub served a blob that is not base64".into()))?;
    write_secret(out, &blob, false)?;
    if out != std::path::Path::new("-") {
        ctx.out.line(format!(
            "Escrow version {} of {} ({}) written to {}",
            answer.version,
            enrollment.box_name,
            answer.blob_format,
            out.display()
        ))?;
        ctx.out.json(&json!({
            "box": enrollment.box_name,
            "version": answer.version,
            "blob_format": answer.blob_format,
            "fingerprint": answer.fingerprint,
            "out": out,
        }))?;
    }
    Ok(())
}
