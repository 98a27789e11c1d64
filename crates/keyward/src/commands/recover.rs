//! `keyward recover`: on a machine that has nothing. The blob comes from a file (`--blob`) or
//! from a hub with an operator's recovery ticket (`--hub`); it is opened with the recovery code,
//! and the key's fingerprint is compared with every fingerprint that names it — the one the
//! operator expects, and with a hub the pushed one and the restore directive's — *before*
//! anything is written. Then the key is written (`--out`), installed where the Proxmox Backup
//! client reads it (`--install`), or kept in a fresh keybox under the same code (`--into-keybox`).

use std::path::{Path, PathBuf};

use keyward_core::escrow::EscrowBlob;
use keyward_core::keybox::{NewKeybox, PbsRecord};
use keyward_core::slot::default_recovery_code_kdf;
use keyward_core::store::{RealFs, create_private_folder};
use keyward_core::{
    DataKey, Error as CoreError, ExpectedFingerprint, Fingerprint, RecoveryCode, SlotSecret, Store,
    operations,
};
use keyward_pbs::{PbsError, PbsKeyFile, PbsTime, escrow, pbs_fingerprint};
use serde_json::json;

use crate::cli::{KeyFormat, PbsKdfArg, RecoverArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io;
use crate::output::{encode_plain, write_secret};
use crate::pbs;
use crate::runtime::block_on;
use crate::secret_input::{SecretReader, code_from};

/// A blob in one of the two escrow forms.
enum Blob {
    /// A Proxmox Backup key file, scrypt under the code.
    Pbs(PbsKeyFile),
    /// A keyward escrow blob (a recovery-code slot standing alone).
    Keyward(EscrowBlob),
}

/// What was fetched or read, before it is opened.
struct Fetched {
    blob: Blob,
    origin: PathBuf,
    /// Fingerprints the key must have, with where each came from.
    expected: Vec<(String, ExpectedFingerprint)>,
    /// From a hub: the version served and its restore directive.
    directive: Option<(u64, serde_json::Value)>,
}

/// Runs `recover`.
pub fn run(ctx: &Context, args: &RecoverArgs) -> CliResult {
    if !args.peers.is_empty() {
        return super::peers::recover(ctx, args);
    }
    let reader = SecretReader::new();
    // The code first: a single-use ticket must not be spent on a run that cannot finish.
    let code = code_from(&reader, args.code_file.as_deref())?;
    let mut fetched = match (&args.blob, &args.hub) {
        (Some(path), _) => Fetched {
            blob: read_blob(&reader.bytes(path)?, path)?,
            origin: path.clone(),
            expected: Vec::new(),
            directive: None,
        },
        (None, Some(url)) => fetch(args, url)?,
        (None, None) => return Err(usage("give --blob FILE or --hub URL")),
    };
    if let Some(fp) = &args.expect_fingerprint {
        fetched.expected.push(("--expect-fingerprint".into(), fp.clone()));
    }

    // Open, then the fingerprint gate: nothing is written for a key nobody asked for.
    let (key, found) = match &fetched.blob {
        Blob::Pbs(file) => {
            let key = escrow::open(file, &code).map_err(|source| match source {
                PbsError::WrongPassphrase { .. } => CliError::BlobNotOpened(fetched.origin.clone()),
                source => CliError::Pbs { path: fetched.origin.clone(), source },
            })?;
            let fp = pbs_fingerprint(key.expose());
            (key, fp)
        }
        Blob::Keyward(blob) => {
            let key = blob.open(&code, &fetched.origin).map_err(|e| match e {
                CoreError::WrongSecret { .. } => CliError::BlobNotOpened(fetched.origin.clone()),
                e => e.into(),
            })?;
            let fp = key.fingerprint();
            (key, fp)
        }
    };
    for (source, expected) in &fetched.expected {
        if !found.matches(expected) {
            return Err(CoreError::FingerprintMismatch {
                expected: format!("{expected} ({source})"),
                found: found.to_string(),
            }
            .into());
        }
    }

    if let Some(path) = &args.into_keybox {
        return into_keybox(ctx, path, key, &code, &fetched, found);
    }
    let is_pbs = matches!(fetched.blob, Blob::Pbs(_));
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
            pbs::check_exportable(&key, None)?;
            let now = PbsTime::now(ctx.local_offset);
            let created = match &fetched.blob {
                Blob::Pbs(file) => file.created.clone(),
                Blob::Keyward(_) => now.clone(),
            };
            pbs::key_file_bytes(&key, PbsKdfArg::None, None, &reader, created, now)?
        }
    };
    if args.expect_fingerprint.is_none() {
        // Only the hub's own fingerprints named the key; say that they were all there was.
        crate::output::warn(
            "no --expect-fingerprint: the key was checked only against fingerprints the hub served",
        );
    }
    if args.install
        && let Some(folder) = path.parent()
    {
        create_private_folder(&RealFs, folder)?;
    }
    write_secret(&path, &encoded, args.force)?;
    if path != Path::new("-") {
        ctx.out.line(format!("Recovered key {} written to {}", found.short(), path.display()))?;
        report_directive(ctx, &fetched)?;
        ctx.out.json(&json!({
            "out": path,
            "fingerprint": found.to_string(),
            "fingerprint_short": found.short(),
            "version": fetched.directive.as_ref().map(|d| d.0),
            "directive": fetched.directive.as_ref().map(|d| &d.1),
        }))?;
    }
    Ok(())
}

/// Shows the restore directive a hub served (non-secret: it tells the fresh machine what to do).
fn report_directive(ctx: &Context, fetched: &Fetched) -> CliResult {
    if let Some((version, directive)) = &fetched.directive {
        ctx.out.line(format!("escrow version {version}; restore directive: {directive}"))?;
    }
    Ok(())
}

/// Reads a blob file in either form.
fn read_blob(bytes: &[u8], origin: &Path) -> CliResult<Blob> {
    let is_keyward = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("format").and_then(|f| f.as_str()).map(|f| f == keyward_core::escrow::BLOB_FORMAT)
        })
        .unwrap_or(false);
    if is_keyward {
        Ok(Blob::Keyward(EscrowBlob::parse(bytes, origin)?))
    } else {
        PbsKeyFile::parse(bytes)
            .map(Blob::Pbs)
            .map_err(|source| CliError::Pbs { path: origin.to_path_buf(), source })
    }
}

/// Fetches the active escrow from a hub with a recovery ticket.
fn fetch(args: &RecoverArgs, url: &str) -> CliResult<Fetched> {
    let (Some(box_name), Some(ticket_file)) = (&args.box_name, &args.ticket_file) else {
        return Err(usage("--hub needs --box NAME and --ticket-file F"));
    };
    let (pin, _) = hub_io::pin(args.hub_fingerprint.as_deref(), args.hub_cert.as_deref())?;
    let client = keyward_hub::client::HubClient::new(url, pin).map_err(CliError::Remote)?;
    let (ticket, _) = hub_io::read_ticket_for(ticket_file, box_name)?;
    let answer = block_on(client.recover(&ticket))?;
    let origin = PathBuf::from(format!("the escrow of {box_name} at {url}"));
    if &answer.box_name != box_name {
        return Err(usage(format!("the ticket is for {}, not {box_name}", answer.box_name)));
    }
    let bytes =
        keyward_core::encoding::from_base64(&answer.blob).ok_or_else(|| CoreError::Integrity {
            path: origin.clone(),
            what: keyward_core::IntegrityFailure::Malformed("the blob is not base64".into()),
        })?;
    let blob = match answer.blob_format.as_str() {
        "pbs-key-file" => Blob::Pbs(
            PbsKeyFile::parse(&bytes)
                .map_err(|source| CliError::Pbs { path: origin.clone(), source })?,
        ),
        "keyward-escrow-blob" => Blob::Keyward(EscrowBlob::parse(&bytes, &origin)?),
        other => {
            return Err(usage(format!(
                "the hub served an unknown blob format `{other}`; upgrade keyward"
            )));
        }
    };
    let mut expected = Vec::new();
    let parse = |text: &str, source: &str| {
        text.parse::<ExpectedFingerprint>().map_err(|e| CoreError::Integrity {
            path: origin.clone(),
            what: keyward_core::IntegrityFailure::Malformed(format!("{source}: {e}")),
        })
    };
    expected.push(("as pushed".to_string(), parse(&answer.fingerprint, "pushed fingerprint")?));
    if let Some(fp) = answer.directive.get("fingerprint").and_then(|v| v.as_str()) {
        expected.push(("the restore directive".to_string(), parse(fp, "directive fingerprint")?));
    }
    Ok(Fetched { blob, origin, expected, directive: Some((answer.version, answer.directive)) })
}

/// Keeps the recovered key in a fresh keybox with a recovery-code slot for the same code.
fn into_keybox(
    ctx: &Context,
    path: &Path,
    key: DataKey,
    code: &RecoveryCode,
    fetched: &Fetched,
    found: Fingerprint,
) -> CliResult {
    let pbs = match &fetched.blob {
        Blob::Pbs(file) => {
            Some(PbsRecord { fingerprint: found, created: file.created.as_str().to_string() })
        }
        Blob::Keyward(_) => None,
    };
    let store = Store::new(&RealFs, path);
    let secret = SlotSecret::RecoveryCode { code: code.clone(), kdf: default_recovery_code_kdf()? };
    let created = operations::init(
        &store,
        NewKeybox { key, label: "recovered", slot_label: None, pbs },
        &secret,
    )?;
    let fp = created.keybox().fingerprint();
    ctx.out.line(format!(
        "Recovered key kept in a new keybox {} (fingerprint {}); the same recovery code opens it",
        path.display(),
        fp.short()
    ))?;
    report_directive(ctx, fetched)?;
    ctx.out.json(&json!({ "keybox": path, "fingerprint": fp.to_string(), "directive": fetched.directive.as_ref().map(|d| &d.1) }))
}
