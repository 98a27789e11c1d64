//! `keyward recover`: on a machine that has nothing. The key comes from a blob file
//! (`--blob`), or with an operator's ticket (`--ticket-file`) from the hubs or the peers the
//! ticket names; keyward_box::recovery does the work — every check that needs neither a
//! secret nor the network first, the code before any request, the fingerprint gate before
//! anything is handed back — and this command checks the destination before it starts, then
//! writes the key (`--out`), installs it where the Proxmox Backup client reads it
//! (`--install`), or keeps it in a fresh keybox under the same code (`--into-keybox`).

use std::path::{Path, PathBuf};

use keyward_box::recovery::{self, Blob, Plan, RecoveredFrom, Recovery, Source, TicketSource};
use keyward_core::store::{RealFs, create_private_folder};
use keyward_pbs::PbsTime;
use serde_json::json;

use crate::cli::{KeyFormat, PbsKdfArg, RecoverArgs};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::hub_io;
use crate::output::{Overwrite, check_new, encode_plain, warn, write_key};
use crate::pbs;
use crate::secret_input::Terminal;

/// Where the recovered key goes, checked before anything else is done.
enum Destination {
    /// A key file (or stdout) in this format.
    File(PathBuf, Option<KeyFormat>),
    /// The backup client's default key file.
    Install(PathBuf),
    /// A fresh keybox.
    Keybox(PathBuf),
}

impl Destination {
    /// The destination the options name, refused now if the write at the end would be.
    fn of(args: &RecoverArgs) -> CliResult<Self> {
        let overwrite = Overwrite::from_force(args.force);
        let destination = match (&args.out, args.install, &args.into_keybox) {
            (Some(out), false, None) => Destination::File(out.clone(), args.format),
            (None, true, None) => Destination::Install(pbs::default_key_path()?),
            (None, false, Some(path)) => Destination::Keybox(path.clone()),
            _ => return Err(usage("give one of --out FILE, --install, --into-keybox PATH")),
        };
        match &destination {
            Destination::File(path, _) | Destination::Install(path) => check_new(path, overwrite)?,
            Destination::Keybox(path) => check_new(path, Overwrite::Never)?,
        }
        Ok(destination)
    }
}

/// Runs `recover`.
pub fn run(ctx: &Context, args: &RecoverArgs) -> CliResult {
    let destination = Destination::of(args)?;
    let hubs = hub_io::given_hubs(&args.hub)?;
    let source = match (&args.blob, &args.ticket_file) {
        (Some(path), None) if hubs.is_empty() => Source::Blob(path),
        (Some(_), None) => return Err(usage("--hub goes with --ticket-file, not --blob")),
        (None, Some(file)) => Source::Ticket(TicketSource {
            file,
            box_name: args.box_name.as_deref(),
            hubs,
            peers: args
                .peers
                .iter()
                .map(|card| keyward_box::peers::read_card(&ctx.reader, card))
                .collect::<Result<_, _>>()?,
            requester_key: args.requester_key.as_deref(),
        }),
        _ => return Err(usage("give --blob FILE or --ticket-file F")),
    };
    let plan = Plan {
        source,
        expected: &args.expect_fingerprint,
        code_file: args.code_file.as_deref(),
        keep_code: matches!(destination, Destination::Keybox(_)),
    };
    let mut terminal = Terminal::if_there("the escrowed key, to recover it");
    let recovered = recovery::recover(&ctx.reader, terminal.as_mut(), plan)?;
    if let RecoveredFrom::Peers { notes, .. } = &recovered.from {
        for note in notes {
            warn(note);
        }
    }
    let report = Report::of(&recovered);
    match destination {
        Destination::Keybox(path) => {
            let fp = recovery::keep_in_keybox(&path, recovered)?;
            ctx.out.line(format!(
                "Recovered key kept in a new keybox {} (fingerprint {}); the same recovery code opens it",
                path.display(),
                fp.short()
            ))?;
            report.say(ctx)?;
            ctx.out.json(&json!({
                "keybox": path, "fingerprint": fp.to_string(), "directive": report.directive,
            }))
        }
        Destination::File(path, format) => write(ctx, args, recovered, &path, format, report),
        Destination::Install(path) => {
            if let Some(folder) = path.parent() {
                create_private_folder(&RealFs, folder)?;
            }
            write(ctx, args, recovered, &path, Some(KeyFormat::Pbs), report)
        }
    }
}

/// What the person is told of where the key came from.
struct Report {
    /// A hub's version and restore directive.
    version: Option<u64>,
    directive: Option<serde_json::Value>,
    /// The peers' share set.
    share_set: Option<String>,
}

impl Report {
    fn of(recovered: &Recovery) -> Self {
        match &recovered.from {
            RecoveredFrom::Blob { candidate, .. } => Report {
                version: candidate.directive.as_ref().map(|d| d.0),
                directive: candidate.directive.as_ref().map(|d| d.1.clone()),
                share_set: None,
            },
            RecoveredFrom::Peers { share_set, .. } => {
                Report { version: None, directive: None, share_set: Some(share_set.clone()) }
            }
        }
    }

    /// Shows the restore directive a hub served (non-secret: it tells the fresh machine what
    /// to do), or the share set the peers gave.
    fn say(&self, ctx: &Context) -> CliResult {
        if let (Some(version), Some(directive)) = (self.version, &self.directive) {
            ctx.out.line(format!("escrow version {version}; restore directive: {directive}"))?;
        }
        if let Some(set) = &self.share_set {
            ctx.out.line(format!("from the peers' share set {set}"))?;
        }
        Ok(())
    }
}

/// Writes the key to `path` in `format` (by default PBS's for a Proxmox Backup blob, else raw).
fn write(
    ctx: &Context,
    args: &RecoverArgs,
    recovered: Recovery,
    path: &Path,
    format: Option<KeyFormat>,
    report: Report,
) -> CliResult {
    let (key, found) = (recovered.key, recovered.fingerprint);
    let pbs_blob = match &recovered.from {
        RecoveredFrom::Blob { candidate, .. } => match &candidate.blob {
            Ok(Blob::Pbs(file)) => Some(file.created.clone()),
            _ => None,
        },
        RecoveredFrom::Peers { .. } => None,
    };
    let format = format.unwrap_or(if pbs_blob.is_some() { KeyFormat::Pbs } else { KeyFormat::Raw });
    let encoded = match encode_plain(key.expose(), format) {
        Some(encoded) => encoded,
        None => {
            keyward_box::escrow::check_exportable(&key, None)?;
            let now = PbsTime::now(ctx.local_offset);
            let created = pbs_blob.unwrap_or_else(|| now.clone());
            pbs::key_file_bytes(&key, PbsKdfArg::None, None, &ctx.reader, created, now)?
        }
    };
    write_key(path, &encoded, format, Overwrite::from_force(args.force))?;
    if path != Path::new("-") {
        ctx.out.line(format!("Recovered key {} written to {}", found.short(), path.display()))?;
        report.say(ctx)?;
        ctx.out.json(&json!({
            "out": path,
            "fingerprint": found.to_string(),
            "fingerprint_short": found.short(),
            "version": report.version,
            "directive": report.directive,
            "share_set": report.share_set,
        }))?;
    }
    Ok(())
}
