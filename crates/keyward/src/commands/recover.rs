//! `keyward recover`: on a machine that has nothing. The blob comes from a file (`--blob`) or
//! from a hub with an operator's recovery ticket (`--hub`), which serves every version it still
//! holds, newest first. Each is opened with the recovery code until one opens and its key passes
//! the fingerprint gate — the fingerprint the operator expects and, from a hub, the pushed one
//! and the restore directive's — *before* anything is written. A version under another code (a
//! compromised box's push, even approved) is passed over. Then the key is written (`--out`),
//! installed where the Proxmox Backup client reads it (`--install`), or kept in a fresh keybox
//! under the same code (`--into-keybox`).
//!
//! A mistyped code costs nothing: the code is read (and its words checked against the list)
//! before any request, a code typed at the prompt is asked again against the blobs already
//! fetched, and a ticket allows a few fetches.

use std::path::{Path, PathBuf};

use keyward_core::escrow::EscrowBlob;
use keyward_core::keybox::{NewKeybox, PbsRecord};
use keyward_core::slot::{NewRecoveryCode, default_recovery_code_kdf};
use keyward_core::store::{RealFs, create_private_folder};
use keyward_core::{
    DataKey, Error as CoreError, ExpectedFingerprint, Fingerprint, IntegrityFailure, RecoveryCode,
    Store, operations,
};
use keyward_hub::api::{EscrowCopy, RecoverResponse};
use keyward_pbs::{PbsError, PbsKeyFile, PbsTime, escrow, pbs_fingerprint};
use serde_json::json;

use crate::cli::{KeyFormat, PbsKdfArg, RecoverArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io;
use crate::output::{Overwrite, encode_plain, warn, write_key};
use crate::pbs;
use crate::runtime::block_on;
use crate::secret_input::{code_from, prompt_code, terminal_available};

/// How often a code typed at the prompt is asked for again.
const PROMPT_TRIES: usize = 3;

/// A hub ticket's use this was, and how many it allows.
#[derive(Debug, Clone, Copy)]
struct TicketUses {
    used: u32,
    allowed: u32,
}

/// A blob in one of the two escrow forms.
enum Blob {
    /// A Proxmox Backup key file, scrypt under the code.
    Pbs(PbsKeyFile),
    /// A keyward escrow blob (a recovery-code slot standing alone).
    Keyward(EscrowBlob),
}

/// One blob to try, with what its key must match.
struct Candidate {
    /// The blob, or why it cannot be read.
    blob: Result<Blob, CliError>,
    origin: PathBuf,
    /// Fingerprints the key must have, with where each came from.
    expected: Vec<(String, ExpectedFingerprint)>,
    /// From a hub: the version and its restore directive.
    directive: Option<(u64, serde_json::Value)>,
}

/// How trying one candidate ended.
enum Tried {
    /// It opened, and the key passed every fingerprint.
    Opened(DataKey, Fingerprint),
    /// The code does not open it.
    WrongCode,
    /// It is damaged (or not a blob): this error, or the one its `blob` holds.
    Damaged(Option<CliError>),
    /// It opened, to a key another fingerprint names.
    Mismatch(CliError),
}

impl Candidate {
    fn try_code(&self, code: &RecoveryCode) -> Tried {
        let (key, found) = match &self.blob {
            Err(_) => return Tried::Damaged(None),
            Ok(Blob::Pbs(file)) => match escrow::open(file, code) {
                Ok(key) => {
                    let fp = pbs_fingerprint(key.expose());
                    (key, fp)
                }
                Err(PbsError::WrongPassphrase { .. }) => return Tried::WrongCode,
                Err(source) => {
                    return Tried::Damaged(Some(CliError::Pbs {
                        path: self.origin.clone(),
                        source,
                    }));
                }
            },
            Ok(Blob::Keyward(blob)) => match blob.open(code, &self.origin) {
                Ok(key) => {
                    let fp = key.fingerprint();
                    (key, fp)
                }
                Err(CoreError::WrongSecret { .. }) => return Tried::WrongCode,
                Err(e) => return Tried::Damaged(Some(e.into())),
            },
        };
        for (source, expected) in &self.expected {
            if !found.matches(expected) {
                return Tried::Mismatch(
                    CoreError::FingerprintMismatch {
                        expected: format!("{expected} ({source})"),
                        found: found.to_string(),
                    }
                    .into(),
                );
            }
        }
        Tried::Opened(key, found)
    }
}

/// Runs `recover`.
pub fn run(ctx: &Context, args: &RecoverArgs) -> CliResult {
    if !args.peers.is_empty() {
        return super::peers::recover(ctx, args);
    }
    // The code first: a ticket must not be spent on a run that cannot finish, and a mistyped
    // word is caught here, before any request.
    let mut code = code_from(&ctx.reader, args.code_file.as_deref())?;
    let (mut candidates, uses) = match (&args.blob, &args.hub) {
        (Some(path), _) => (vec![read_blob_file(ctx, path)?], None),
        (None, Some(url)) => fetch(ctx, args, url)?,
        (None, None) => return Err(usage("give --blob FILE or --hub URL")),
    };
    if let Some(fp) = &args.expect_fingerprint {
        for candidate in &mut candidates {
            candidate.expected.push(("--expect-fingerprint".into(), fp.clone()));
        }
    }
    let prompted = args.code_file.is_none();
    let mut tries = 1;
    let (chosen, key, found) = loop {
        match first_that_opens(&mut candidates, &code, uses) {
            Ok(found) => break found,
            Err(Refusal::WrongCode(e))
                if prompted && tries < PROMPT_TRIES && terminal_available() =>
            {
                warn(&format!("{e}; try again"));
                code = prompt_code()?;
                tries += 1;
            }
            Err(Refusal::WrongCode(e) | Refusal::Other(e)) => return Err(e),
        }
    };
    let chosen = &candidates[chosen];

    if let Some(path) = &args.into_keybox {
        return into_keybox(ctx, path, key, &code, chosen, found);
    }
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
            pbs::check_exportable(&key, None)?;
            let now = PbsTime::now(ctx.local_offset);
            let created = match &chosen.blob {
                Ok(Blob::Pbs(file)) => file.created.clone(),
                _ => now.clone(),
            };
            pbs::key_file_bytes(&key, PbsKdfArg::None, None, &ctx.reader, created, now)?
        }
    };
    if args.expect_fingerprint.is_none() {
        // Only the hub's own fingerprints named the key; say that they were all there was.
        warn(
            "no --expect-fingerprint: the key was checked only against fingerprints the hub served",
        );
    }
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

/// Why no candidate gave the key.
enum Refusal {
    /// The code opens none of them (worth asking again).
    WrongCode(CliError),
    /// Something else, which another code will not fix.
    Other(CliError),
}

/// The index of the first candidate (newest first) the code opens and whose key passes the
/// gate, with the key. Else, the most telling failure: a key under the code with the wrong
/// fingerprint (5), then a code that opens nothing that could be read (3), then damage (4).
fn first_that_opens(
    candidates: &mut [Candidate],
    code: &RecoveryCode,
    uses: Option<TicketUses>,
) -> Result<(usize, DataKey, Fingerprint), Refusal> {
    let mut mismatch = None;
    let mut damaged = None;
    let mut wrong = 0;
    for (i, candidate) in candidates.iter().enumerate() {
        match candidate.try_code(code) {
            Tried::Opened(key, found) => return Ok((i, key, found)),
            Tried::WrongCode => wrong += 1,
            Tried::Mismatch(e) => mismatch = mismatch.or(Some(e)),
            Tried::Damaged(e) => damaged = damaged.or(Some((i, e))),
        }
    }
    if let Some(e) = mismatch {
        return Err(Refusal::Other(e));
    }
    if wrong == 0
        && let Some((i, e)) = damaged
    {
        let e = e.unwrap_or_else(|| {
            let taken =
                std::mem::replace(&mut candidates[i].blob, Err(CliError::Failed(String::new())));
            taken.err().unwrap_or_else(|| CliError::Failed("a damaged blob".into()))
        });
        return Err(Refusal::Other(e));
    }
    let left = uses.map(|u| u.allowed.saturating_sub(u.used));
    Err(Refusal::WrongCode(CliError::CodeOpensNothing {
        what: match candidates {
            [one] => one.origin.display().to_string(),
            many => format!("any of the {} escrow versions the hub holds", many.len()),
        },
        ticket_uses_left: left,
    }))
}

/// Shows the restore directive a hub served (non-secret: it tells the fresh machine what to do).
fn report_directive(ctx: &Context, chosen: &Candidate) -> CliResult {
    if let Some((version, directive)) = &chosen.directive {
        ctx.out.line(format!("escrow version {version}; restore directive: {directive}"))?;
    }
    Ok(())
}

/// Reads a blob in either form.
fn parse_blob(bytes: &[u8], origin: &Path) -> CliResult<Blob> {
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

/// A blob file as the one candidate.
fn read_blob_file(ctx: &Context, path: &Path) -> CliResult<Candidate> {
    // A file that is not a blob at all is said at once, as for any unreadable input.
    let blob = parse_blob(&ctx.reader.bytes(path)?, path)?;
    Ok(Candidate {
        blob: Ok(blob),
        origin: path.to_path_buf(),
        expected: Vec::new(),
        directive: None,
    })
}

/// Fetches every version a hub holds with a recovery ticket; the ticket's use and its allowed
/// uses.
fn fetch(
    ctx: &Context,
    args: &RecoverArgs,
    url: &str,
) -> CliResult<(Vec<Candidate>, Option<TicketUses>)> {
    let (Some(box_name), Some(ticket_file)) = (&args.box_name, &args.ticket_file) else {
        return Err(usage("--hub needs --box NAME and --ticket-file F"));
    };
    let (pin, _) = hub_io::pin(args.hub_fingerprint.as_deref(), args.hub_cert.as_deref())?;
    let client = keyward_hub::client::HubClient::new(url, pin).map_err(CliError::Remote)?;
    let (ticket, _) = hub_io::read_ticket_for(&ctx.reader, ticket_file, box_name)?;
    let answer: RecoverResponse = block_on(client.recover(&ticket))?;
    if &answer.box_name != box_name {
        return Err(usage(format!("the ticket is for {}, not {box_name}", answer.box_name)));
    }
    let uses = Some(TicketUses { used: answer.ticket_use, allowed: answer.ticket_uses });
    let candidates =
        answer.versions.into_iter().map(|copy| candidate_of(copy, box_name, url)).collect();
    Ok((candidates, uses))
}

/// One served version as a candidate: its blob checked against its hash, and the fingerprints
/// it must match.
fn candidate_of(copy: EscrowCopy, box_name: &str, url: &str) -> Candidate {
    let origin = PathBuf::from(format!("version {} of {box_name} at {url}", copy.version));
    let damaged = |what: String| -> CliError {
        CoreError::Integrity { path: origin.clone(), what: IntegrityFailure::Malformed(what) }
            .into()
    };
    let blob = match keyward_core::encoding::from_base64(&copy.blob) {
        None => Err(damaged("the blob is not base64".into())),
        Some(bytes) if keyward_hub::api::blob_sha256(&bytes) != copy.blob_sha256 => {
            Err(CoreError::Integrity { path: origin.clone(), what: IntegrityFailure::Checksum }
                .into())
        }
        Some(bytes) => match copy.blob_format.as_str() {
            "pbs-key-file" => PbsKeyFile::parse(&bytes)
                .map(Blob::Pbs)
                .map_err(|source| CliError::Pbs { path: origin.clone(), source }),
            "keyward-escrow-blob" => {
                EscrowBlob::parse(&bytes, &origin).map(Blob::Keyward).map_err(CliError::from)
            }
            other => Err(usage(format!(
                "the hub served an unknown blob format `{other}`; upgrade keyward"
            ))),
        },
    };
    let mut expected = Vec::new();
    let mut blob = blob;
    let mut claim = |text: &str, source: &str| match text.parse::<ExpectedFingerprint>() {
        Ok(fp) => expected.push((source.to_string(), fp)),
        Err(e) => blob = Err(damaged(format!("{source}: {e}"))),
    };
    claim(&copy.fingerprint, "as pushed");
    if let Some(fp) = copy.directive.get("fingerprint").and_then(|v| v.as_str()) {
        claim(fp, "the restore directive");
    }
    Candidate { blob, origin, expected, directive: Some((copy.version, copy.directive)) }
}

/// Keeps the recovered key in a fresh keybox with a recovery-code slot for the same code.
fn into_keybox(
    ctx: &Context,
    path: &Path,
    key: DataKey,
    code: &RecoveryCode,
    chosen: &Candidate,
    found: Fingerprint,
) -> CliResult {
    let pbs = match &chosen.blob {
        Ok(Blob::Pbs(file)) => {
            Some(PbsRecord { fingerprint: found, created: file.created.as_str().to_string() })
        }
        _ => None,
    };
    let store = Store::new(&RealFs, path);
    let secret = NewRecoveryCode { code: code.clone(), kdf: default_recovery_code_kdf()? };
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
    report_directive(ctx, chosen)?;
    ctx.out.json(&json!({ "keybox": path, "fingerprint": fp.to_string(), "directive": chosen.directive.as_ref().map(|d| &d.1) }))
}
