//! `keyward luks …`: keyward's keyslot on a LUKS2 volume (keyward_luks does the work). The
//! volume is opened before the keybox, so a wrong device is said before anyone is prompted;
//! what settling repaired is said on stderr even when the command then fails.

use std::path::Path;

use keyward_box::config::{Enrollment, Volumes};
use keyward_box::escrow::{HubHeaderCopy, SealedHeader};
use keyward_box::{escrow, recovery};
use keyward_core::Fingerprint;
use keyward_core::encoding::to_hex;
use keyward_hub::api::HeaderPushResponse;
use keyward_hub::client::Hubs;
use keyward_luks::backup::{self, HeaderBackup};
use keyward_luks::journal::{Entry, Journal};
use keyward_luks::{KeyslotKdf, KeywardVolume, LuksError, NoFaults, Volume};
use keyward_service::SigningIdentity;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::auth::open;
use crate::cli::{
    LuksCommand, LuksHeaderBackupArgs, LuksHeaderRestoreArgs, LuksKdf, LuksKdfArgs, LuksKeyArgs,
};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io;
use crate::output::{Overwrite, check_new, format_time, progress, warn, write_secret};
use crate::secret_input::{prompt_new_secret, prompt_secret};

/// Runs `keyward luks …`.
pub fn run(ctx: &Context, command: &LuksCommand) -> CliResult {
    match command {
        LuksCommand::Enroll(args) => {
            let kdf = keyslot_kdf(&args.kdf);
            let (entry, hub_copy) = changing(ctx, &args.volume, |volume| {
                let existing = match &args.luks_key_file {
                    Some(path) => ctx.reader.bytes(path).map_err(CliError::from)?,
                    None => prompt_secret(&format!(
                        "A passphrase of {} (an existing keyslot): ",
                        args.volume.device.display()
                    ))
                    .map(|p| Zeroizing::new(p.expose().to_vec()))?,
                };
                progress(adding_keyslot(&kdf));
                Ok(volume.enroll(&existing, &kdf)?)
            })?;
            pair_done(ctx, "Enrolled", &args.volume.device, &entry, &hub_copy)?;
            note_volume(ctx, &args.volume.device, Note::Remember);
            hub_copy.finish(&args.volume.device)
        }
        LuksCommand::Rotate(args) => {
            let kdf = keyslot_kdf(&args.kdf);
            let (rotation, hub_copy) = changing(ctx, &args.volume, |volume| {
                progress(adding_keyslot(&kdf));
                Ok(volume.rotate(&kdf)?)
            })?;
            ctx.out.line(format!(
                "Rotated keyward's keyslot of {}: keyslot {} (sequence {}) wiped, keyslot {} (sequence {}) in use",
                args.volume.device.display(),
                rotation.from.record.keyslot,
                rotation.from.record.sequence,
                rotation.to.record.keyslot,
                rotation.to.record.sequence,
            ))?;
            hub_copy.say(ctx, &args.volume.device)?;
            ctx.out.json(&json!({
                "device": args.volume.device,
                "from": pair_json(&rotation.from),
                "to": pair_json(&rotation.to),
                "hub_copy": hub_copy.json(),
            }))?;
            hub_copy.finish(&args.volume.device)
        }
        LuksCommand::Passphrase(args) => {
            check_new(&args.out, Overwrite::from_force(args.force))?;
            let (entry, passphrase) =
                with_key(ctx, &args.volume, |volume| Ok(volume.passphrase()?))?;
            write_secret(&args.out, passphrase.expose(), Overwrite::from_force(args.force))?;
            progress(&format!(
                "keyward's passphrase of keyslot {} (sequence {}) written to {}",
                entry.record.keyslot,
                entry.record.sequence,
                args.out.display()
            ));
            Ok(())
        }
        LuksCommand::Status { device } => status(ctx, device),
        LuksCommand::Remove(args) => {
            let (entry, hub_copy) = changing(ctx, args, |volume| Ok(volume.remove()?))?;
            note_volume(ctx, &args.device, Note::Forget);
            ctx.out.line(format!(
                "Removed keyward's keyslot {} and its token {} from {}",
                entry.record.keyslot,
                entry.token,
                args.device.display()
            ))?;
            hub_copy.say(ctx, &args.device)?;
            ctx.out.json(&json!({
                "device": args.device,
                "removed": pair_json(&entry),
                "hub_copy": hub_copy.json(),
            }))?;
            hub_copy.finish(&args.device)
        }
        LuksCommand::HeaderBackup(args) => header_backup(ctx, args),
        LuksCommand::HeaderRestore(args) => header_restore(ctx, args),
        LuksCommand::AddPassphrase(args) => {
            let kdf = keyslot_kdf(&args.kdf);
            let (keyslot, hub_copy) = changing(ctx, &args.volume, |volume| {
                let new = match &args.new_key_file {
                    Some(path) => ctx.reader.bytes(path).map_err(CliError::from)?,
                    None => prompt_new_secret("passphrase for the volume")
                        .map(|p| Zeroizing::new(p.expose().to_vec()))?,
                };
                progress(adding_keyslot(&kdf));
                Ok(volume.add_passphrase(&new, &kdf)?)
            })?;
            ctx.out.line(format!(
                "Added a passphrase keyslot {keyslot} to {}, opened through keyward's keyslot",
                args.volume.device.display()
            ))?;
            hub_copy.say(ctx, &args.volume.device)?;
            ctx.out.json(&json!({
                "device": args.volume.device,
                "keyslot": keyslot,
                "hub_copy": hub_copy.json(),
            }))?;
            hub_copy.finish(&args.volume.device)
        }
    }
}

/// Opens the volume, then the keybox, and runs `work` on the volume with K; what settling
/// repaired is said on stderr whatever `work` returns.
fn with_key<T>(
    ctx: &Context,
    args: &LuksKeyArgs,
    work: impl FnOnce(&mut KeywardVolume<'_>) -> CliResult<T>,
) -> CliResult<T> {
    let volume = Volume::open(&args.device)?;
    let store = ctx.store();
    let keybox = store.load()?;
    let unlocked =
        open(&args.auth, &keybox, store.path(), &ctx.reader, "to open the volume with its key")?;
    let keybox_id = keybox.header().id.to_string();
    let mut no_faults = NoFaults;
    let mut volume = KeywardVolume::new(volume, unlocked.key(), &keybox_id, &mut no_faults);
    let result = work(&mut volume);
    for repair in volume.repairs() {
        eprintln!("keyward: {}: {repair}", args.device.display());
    }
    result
}

/// A change to the volume: as [`with_key`], and then, when the box is enrolled at a hub, a fresh
/// sealed copy of the header pushed there, so that a restore from the hub never brings back
/// what the change took away (a rotated-out keyslot). The enrollment is read before anything
/// changes; a push that fails after the change leaves it made and the hub's copy stale.
fn changing<T>(
    ctx: &Context,
    args: &LuksKeyArgs,
    change: impl FnOnce(&mut KeywardVolume<'_>) -> CliResult<T>,
) -> CliResult<(T, HubCopyAfter)> {
    let hub = escrow::enrollment_if_any(&ctx.keybox, &ctx.reader)?;
    with_key(ctx, args, |volume| {
        let done = change(volume)?;
        let Some(hub) = hub else { return Ok((done, HubCopyAfter::NotEnrolled)) };
        let pushed = volume
            .sealed_header()
            .map_err(CliError::from)
            .and_then(|(backup, sealed)| push_sealed(&backup, hub, volume.fingerprint(), &sealed));
        Ok((done, pushed.map_or_else(HubCopyAfter::Failed, HubCopyAfter::Pushed)))
    })
}

/// The hub's copy of a volume's header after a change.
enum HubCopyAfter {
    /// The box is enrolled at no hub.
    NotEnrolled,
    /// A fresh copy is at the hub.
    Pushed(HeaderPushed),
    /// The push failed: the hub's copy (if any) is the header before the change.
    Failed(CliError),
}

impl HubCopyAfter {
    /// Says what happened to the hub's copy.
    fn say(&self, ctx: &Context, device: &Path) -> CliResult {
        match self {
            HubCopyAfter::Pushed(pushed) => pushed.say(ctx, device),
            HubCopyAfter::NotEnrolled | HubCopyAfter::Failed(_) => Ok(()),
        }
    }

    /// What `--json` tells of it.
    fn json(&self) -> Value {
        match self {
            HubCopyAfter::NotEnrolled => Value::Null,
            HubCopyAfter::Pushed(pushed) => pushed.json(),
            HubCopyAfter::Failed(e) => json!({ "state": "stale", "error": e.to_string() }),
        }
    }

    /// The command's end: a failed push is its failure (exit 8), after the change was told.
    fn finish(self, device: &Path) -> CliResult {
        match self {
            HubCopyAfter::Failed(source) => {
                Err(CliError::HubCopyStale { device: device.into(), source: Box::new(source) })
            }
            HubCopyAfter::NotEnrolled | HubCopyAfter::Pushed(_) => Ok(()),
        }
    }
}

/// `keyward luks header-backup`: to a file, to the hub (sealed), or both — the file first, so
/// a hub that cannot be reached costs nothing of it.
fn header_backup(ctx: &Context, args: &LuksHeaderBackupArgs) -> CliResult {
    let device = &args.volume.device;
    if let Some(out) = &args.out {
        check_new(out, Overwrite::from_force(args.force))?;
    }
    let (backup, sealed) = if args.push {
        // Not enrolled at a hub: said before anything is opened or prompted for.
        let hub = escrow::load_enrollment(&ctx.keybox, &ctx.reader)?;
        let (backup, entry, sealed) =
            with_key(ctx, &args.volume, |volume| Ok(volume.sealed_header_backup()?))?;
        (backup, Some((hub, entry, sealed)))
    } else {
        (backup::back_up(&mut Volume::open(device)?)?, None)
    };
    if let Some(out) = &args.out {
        write_secret(out, &backup.bytes, Overwrite::from_force(args.force))?;
        ctx.out.line(format!(
            "Header of {} (UUID {}) backed up to {} (SHA-256 {}); {}",
            device.display(),
            backup.uuid,
            out.display(),
            to_hex(&backup.sha256),
            match &backup.pair {
                Some(e) => format!(
                    "keyward's keyslot {} (sequence {}, key {}) is in it",
                    e.record.keyslot,
                    e.record.sequence,
                    e.record.fingerprint.short()
                ),
                None => "it holds no settled keyward keyslot".into(),
            }
        ))?;
    }
    let pushed = match sealed {
        Some((hub, entry, sealed)) => {
            let pushed = push_sealed(&backup, hub, entry.record.fingerprint, &sealed)?;
            pushed.say(ctx, device)?;
            Some(pushed.json())
        }
        None => None,
    };
    ctx.out.json(&json!({
        "device": device,
        "uuid": backup.uuid,
        "backup": args.out,
        "sha256": to_hex(&backup.sha256),
        "keyward": backup.pair.as_ref().map(pair_json),
        "pushed": pushed,
    }))
}

/// A sealed header copy the hub took.
struct HeaderPushed {
    hub: String,
    box_name: String,
    uuid: String,
    fingerprint: Fingerprint,
    bytes: usize,
    answer: HeaderPushResponse,
}

/// Pushes a sealed header backup (with its state) to the box's hub.
fn push_sealed(
    backup: &HeaderBackup,
    (enrollment, identity, hubs): (Enrollment, SigningIdentity, Hubs),
    fingerprint: Fingerprint,
    sealed: &[u8],
) -> CliResult<HeaderPushed> {
    let state = keyward_luks::escrow::header_state(&backup.metadata);
    let header =
        SealedHeader { uuid: &backup.uuid, fingerprint: &fingerprint, sealed, state: &state };
    let answer = escrow::push_header(&hubs, &enrollment, &identity, header)?;
    Ok(HeaderPushed {
        hub: hubs.urls().join(", "),
        box_name: enrollment.box_name,
        uuid: backup.uuid.clone(),
        fingerprint,
        bytes: sealed.len(),
        answer,
    })
}

impl HeaderPushed {
    /// Says so (and warns of a volume the hub dropped to make room).
    fn say(&self, ctx: &Context, device: &Path) -> CliResult {
        ctx.out.line(format!(
            "Header of {} (UUID {}) pushed to {} for {}, sealed under key {} ({} bytes, SHA-256 {}){}",
            device.display(),
            self.uuid,
            self.hub,
            self.box_name,
            self.fingerprint.short(),
            self.bytes,
            self.answer.sha256,
            if self.answer.replaced { ", in place of the one it held" } else { "" }
        ))?;
        if let Some(evicted) = &self.answer.evicted {
            warn(&format!(
                "to make room the hub dropped its header backup of volume {evicted}, the one pushed longest ago (it keeps {} volumes per box); push that volume's again if it still exists",
                keyward_hub::hub::MAX_HEADER_VOLUMES
            ));
        }
        Ok(())
    }

    /// What the JSON output tells of it.
    fn json(&self) -> Value {
        json!({
            "state": "current", "hub": self.hub, "box": self.box_name,
            "sha256": self.answer.sha256, "bytes": self.bytes,
            "replaced": self.answer.replaced, "evicted": self.answer.evicted,
        })
    }
}

/// The box a recovery ticket is for and the hubs to ask: `--hub` if given, else the ticket's.
fn ticket_hubs(
    ctx: &Context,
    ticket_file: &Path,
    args: &LuksHeaderRestoreArgs,
) -> CliResult<(String, Hubs)> {
    let (box_name, named) =
        recovery::recovery_ticket(&ctx.reader, ticket_file, args.box_name.as_deref())?;
    let given = hub_io::given_hubs(&args.hub)?;
    let hubs = if given.is_empty() { named } else { given };
    if hubs.is_empty() {
        return Err(usage(
            "the ticket names no hub (it is older than tickets that do): give --hub URL --hub-fingerprint HEX",
        ));
    }
    Ok((box_name, hub_io::connect(&hubs)?))
}

/// `keyward luks header-restore`: from a file, or the volume's sealed backup from the hub.
fn header_restore(ctx: &Context, args: &LuksHeaderRestoreArgs) -> CliResult {
    let device = &args.volume.device;
    let expect_uuid = args.expect_uuid.as_deref();
    let (restored, source) = match (&args.from, &args.ticket_file) {
        (Some(from), _) => {
            (backup::restore(device, from, expect_uuid)?, from.display().to_string())
        }
        (None, Some(ticket_file)) => {
            // What needs neither a secret nor the network first: the ticket's box and hubs,
            // and which volume to ask for — the one the header names, else the one the user
            // names (a header too damaged to name its volume needs --expect-uuid).
            let (box_name, hubs) = ticket_hubs(ctx, ticket_file, args)?;
            let uuid = match Volume::open(device) {
                Ok(volume) => volume.uuid().to_string(),
                Err(LuksError::NotLuks2 { .. }) => match &args.expect_uuid {
                    Some(uuid) => uuid.clone(),
                    None => {
                        return Err(usage(format!(
                            "the header of {} cannot be read, so neither can its UUID: give --expect-uuid UUID (as `cryptsetup luksUUID` printed it at setup)",
                            device.display()
                        )));
                    }
                },
                Err(e) => return Err(e.into()),
            };
            // The key first: the hub is asked (and audits serving) only once it can be used.
            let store = ctx.store();
            let keybox = store.load()?;
            let unlocked = open(
                &args.volume.auth,
                &keybox,
                store.path(),
                &ctx.reader,
                "to open the header backup",
            )?;
            let served =
                recovery::header_from_hub(&ctx.reader, &hubs, &box_name, ticket_file, Some(&uuid))?;
            let restored = backup::restore_sealed(
                device,
                unlocked.key(),
                &served.sealed,
                &served.origin,
                expect_uuid,
            )?;
            (restored, served.origin)
        }
        (None, None) => return Err(usage("give --from FILE or --ticket-file F")),
    };
    if let Some(later) = restored.went_back_from {
        warn(&format!(
            "the restored header holds an earlier keyward keyslot than sequence {later}, the one it replaced; that earlier passphrase opens the volume again: run `keyward luks rotate {}`",
            device.display()
        ));
    }
    let sealed = restored
        .sealed_at
        .map(|at| format!(", sealed {}", format_time(i64::try_from(at).unwrap_or(i64::MAX))));
    note_volume(ctx, device, Note::Remember);
    ctx.out.line(format!(
        "Restored the header of {} (UUID {}) from {source}{}",
        device.display(),
        restored.uuid,
        sealed.unwrap_or_default()
    ))?;
    ctx.out.json(&json!({
        "device": device,
        "uuid": restored.uuid,
        "keyward": restored.pair.as_ref().map(pair_json),
        "went_back_from": restored.went_back_from,
        "sealed_at": restored.sealed_at,
    }))
}

/// What to note of a volume beside the keybox.
enum Note {
    /// keyward's keyslot of this keybox's key is on it.
    Remember,
    /// It is not (any more).
    Forget,
}

/// Notes the volume at `device` beside the keybox (`<keybox>.volumes.json`), for `keyward
/// status`. The volume's header is the truth about it, so a note that cannot be made is said
/// and the command's work stands.
fn note_volume(ctx: &Context, device: &Path, note: Note) {
    let noted = Volume::open(device).map_err(CliError::from).and_then(|volume| {
        let uuid = volume.uuid().to_string();
        match note {
            Note::Remember => Volumes::remember(&ctx.keybox, &uuid, device)?,
            Note::Forget => Volumes::forget(&ctx.keybox, &uuid)?,
        }
        Ok(())
    });
    if let Err(e) = noted {
        warn(&format!(
            "cannot note {} beside the keybox ({e}); `keyward status` will not list it",
            device.display()
        ));
    }
}

/// `keyward luks status`.
fn status(ctx: &Context, device: &Path) -> CliResult {
    let mut volume = Volume::open(device)?;
    let status = keyward_luks::workflow::status(&mut volume)?;
    let keyslots: Vec<u32> = status.header.keyslots.iter().copied().collect();
    let without_token = status.header.keyslots_without_token();
    let (state, pair, pending): (&str, Option<&Entry>, Option<&Entry>) = match &status.journal {
        Ok(Journal::Empty) => ("not enrolled", None, None),
        Ok(Journal::Settled(e)) => ("enrolled", Some(e), None),
        Ok(Journal::Pending { committed, pending, .. }) => {
            ("rotation unfinished", committed.as_ref(), Some(pending))
        }
        Ok(Journal::Superseded { old, new, .. }) => ("rotation unfinished", Some(new), Some(old)),
        Ok(Journal::Orphaned(e)) => ("token without its keyslot", None, Some(e)),
        Err(_) => ("anomaly", None, None),
    };
    ctx.out.line(format!("Volume {} (UUID {})", device.display(), status.uuid))?;
    ctx.out.line(format!("keyward: {state}"))?;
    if let Some(e) = pair {
        ctx.out.line(format!(
            "  keyslot {}, token {}, sequence {}, key {} (keybox {})",
            e.record.keyslot,
            e.token,
            e.record.sequence,
            e.record.fingerprint.short(),
            e.record.keybox
        ))?;
    }
    match &status.journal {
        Ok(Journal::Pending { pending, keyslot_added, .. }) => ctx.out.line(format!(
            "  unfinished: token {} for sequence {} in keyslot {} ({}); the next keyward luks command that opens the keybox finishes it",
            pending.token,
            pending.record.sequence,
            pending.record.keyslot,
            if *keyslot_added { "keyslot added" } else { "keyslot not added yet" }
        ))?,
        Ok(Journal::Superseded { old, .. }) => ctx.out.line(format!(
            "  unfinished: the old keyslot {} (sequence {}, token {}) is still to be wiped; the next keyward luks command that opens the keybox finishes it",
            old.record.keyslot, old.record.sequence, old.token
        ))?,
        Ok(Journal::Orphaned(e)) => ctx.out.line(format!(
            "  token {} names keyslot {}, which is gone; the next keyward luks command that opens the keybox removes it",
            e.token, e.record.keyslot
        ))?,
        _ => {}
    }
    ctx.out.line(format!(
        "Keyslots: {}; with no token (a passphrase, or a keyslot whose token was removed; keyward never uses these): {}",
        list(&keyslots),
        list(&without_token)
    ))?;
    let hub_copy = hub_copy_of(ctx, &mut volume)?;
    if let Some((hub, copy)) = &hub_copy {
        ctx.out.line(hub_copy_line(device, hub, copy))?;
    }
    ctx.out.json(&json!({
        "device": device,
        "uuid": status.uuid,
        "state": state,
        "keyward": pair.map(pair_json),
        "unfinished": pending.map(pair_json),
        "anomaly": status.journal.as_ref().err().map(|a| a.to_string()),
        "keyslots": keyslots,
        "keyslots_without_token": without_token,
        "hub_copy": hub_copy.as_ref().map(|(hub, copy)| hub_copy_json(hub, copy)),
    }))?;
    match status.journal {
        Err(anomaly) => Err(LuksError::Anomaly { path: device.into(), anomaly }.into()),
        Ok(_) => Ok(()),
    }
}

/// How the hub's copy of the volume's header compares with the header now, when the box is
/// enrolled at a hub: the hub's URL and the comparison, or why the hub could not say.
pub fn hub_copy_of(
    ctx: &Context,
    volume: &mut Volume,
) -> CliResult<Option<(String, Result<HubHeaderCopy, CliError>)>> {
    let Some((enrollment, identity, hubs)) = escrow::enrollment_if_any(&ctx.keybox, &ctx.reader)?
    else {
        return Ok(None);
    };
    let state = keyward_luks::escrow::header_state(&volume.metadata()?);
    let uuid = volume.uuid().to_string();
    let copy = escrow::header_copies(&hubs, &enrollment, &identity)
        .map(|held| HubHeaderCopy::of(&held, &uuid, &state))
        .map_err(CliError::from);
    Ok(Some((hubs.urls().join(", "), copy)))
}

pub fn hub_copy_line(device: &Path, hub: &str, copy: &Result<HubHeaderCopy, CliError>) -> String {
    let push = format!("push one: keyward luks header-backup {} --push", device.display());
    match copy {
        Ok(HubHeaderCopy::Current { pushed_at }) => {
            format!("Hub copy at {hub}: current (pushed {})", format_time(*pushed_at))
        }
        Ok(HubHeaderCopy::Stale { pushed_at }) => format!(
            "Hub copy at {hub}: STALE (pushed {}; the header changed since, and a restore from it would bring back what changed); {push}",
            format_time(*pushed_at)
        ),
        Ok(HubHeaderCopy::Unknown { pushed_at }) => format!(
            "Hub copy at {hub}: pushed {} by a keyward that did not record its state; {push}",
            format_time(*pushed_at)
        ),
        Ok(HubHeaderCopy::Missing) => format!("Hub copy at {hub}: none; {push}"),
        Err(e) => format!("Hub copy at {hub}: cannot tell ({e})"),
    }
}

pub fn hub_copy_json(hub: &str, copy: &Result<HubHeaderCopy, CliError>) -> Value {
    match copy {
        Ok(copy) => {
            let pushed_at = match copy {
                HubHeaderCopy::Current { pushed_at }
                | HubHeaderCopy::Stale { pushed_at }
                | HubHeaderCopy::Unknown { pushed_at } => Some(*pushed_at),
                HubHeaderCopy::Missing => None,
            };
            json!({ "hub": hub, "state": copy.name(), "pushed_at": pushed_at })
        }
        Err(e) => json!({ "hub": hub, "state": "cannot tell", "error": e.to_string() }),
    }
}

fn pair_done(
    ctx: &Context,
    what: &str,
    device: &Path,
    entry: &Entry,
    hub_copy: &HubCopyAfter,
) -> CliResult {
    ctx.out.line(format!(
        "{what} {}: keyward's keyslot {} (token {}, sequence {}), opened by key {}",
        device.display(),
        entry.record.keyslot,
        entry.token,
        entry.record.sequence,
        entry.record.fingerprint.short()
    ))?;
    hub_copy.say(ctx, device)?;
    ctx.out.json(&json!({
        "device": device,
        "keyward": pair_json(entry),
        "hub_copy": hub_copy.json(),
    }))
}

fn pair_json(entry: &Entry) -> Value {
    json!({
        "token": entry.token,
        "keyslot": entry.record.keyslot,
        "sequence": entry.record.sequence,
        "state": entry.record.state,
        "keybox": entry.record.keybox,
        "fingerprint": entry.record.fingerprint.to_string(),
    })
}

fn list(numbers: &[u32]) -> String {
    if numbers.is_empty() {
        return "none".into();
    }
    numbers.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn keyslot_kdf(args: &LuksKdfArgs) -> KeyslotKdf {
    KeyslotKdf {
        kdf: args.pbkdf.map(|k| match k {
            LuksKdf::Argon2id => keyward_luks::Kdf::Argon2id,
            LuksKdf::Argon2i => keyward_luks::Kdf::Argon2i,
            LuksKdf::Pbkdf2 => keyward_luks::Kdf::Pbkdf2,
        }),
        iter_time_ms: args.iter_time,
        memory_kib: args.pbkdf_memory,
        parallel: args.pbkdf_parallel,
        iterations: args.pbkdf_force_iterations,
    }
}

fn adding_keyslot(kdf: &KeyslotKdf) -> &'static str {
    if kdf.iterations.is_some() {
        "Adding a keyslot…"
    } else {
        "Adding a keyslot (libcryptsetup benchmarks its PBKDF first, about 2 s)…"
    }
}
