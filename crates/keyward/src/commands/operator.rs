//! `keyward operator …`: an operator's key, and the statements it signs — enrollment tokens,
//! takeovers, recovery and release tickets (offline: they are handed to a box or a fresh machine),
//! overwrite approvals and deletion orders (sent to the hub at once) — and the operator's view
//! of a box's escrow versions, with the blob hashes an approval names.

use std::path::{Path, PathBuf};

use keyward_service::SigningIdentity;
use keyward_service::addresses::PeerRecord;
use keyward_service::statement::{self, MAX_TICKET_HUBS, Statement};
use keyward_service::unix_now;
use serde_json::json;

use crate::cli::{HubArgs, OperatorCommand, StatementArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::hub_io::{self, write_identity};
use crate::output::{Overwrite, check_new, write_secret};
use crate::runtime::block_on;

/// How long an approval or a deletion order sent at once stays valid.
const SENT_AT_ONCE_TTL_SECS: i64 = 600;

/// Runs `operator …`.
pub fn run(ctx: &Context, command: &OperatorCommand) -> CliResult {
    match command {
        OperatorCommand::Keygen { out } => {
            let identity = SigningIdentity::generate()?;
            write_identity(out, &identity)?;
            // The public key alone on stdout, so `OP=$(keyward operator keygen --out op.key)`
            // hands it to the next command.
            ctx.out.line(identity.public().to_string())?;
            ctx.out.json(&json!({ "key_file": out, "public_key": identity.public().to_string() }))
        }
        OperatorCommand::EnrollToken(args) => issue(ctx, args, |box_name, id, expires| {
            Statement::Enrollment { box_name, id, expires }
        }),
        OperatorCommand::Takeover { statement: args, identity, replacing, hub } => {
            let identity: keyward_service::PublicKey =
                identity.parse().map_err(|e| usage(format!("--identity `{identity}`: {e}")))?;
            let replaces = match replacing {
                Some(text) => {
                    text.parse().map_err(|e| usage(format!("--replacing `{text}`: {e}")))?
                }
                None => identity_at_hubs(ctx, hub, &args.box_name, args.key.as_deref())?,
            };
            if replaces == identity {
                return Err(usage(format!("{} has identity {identity} already", args.box_name)));
            }
            issue(ctx, args, |box_name, id, expires| Statement::Takeover {
                box_name,
                replaces,
                identity,
                id,
                expires,
            })
        }
        OperatorCommand::ApproveRecovery { statement: args, uses, hub } => {
            let uses = uses.uses;
            // The hubs go into the ticket, so the fresh machine needs nothing else; a ticket
            // that names none still works with `recover --hub`.
            let hubs = match (hub_io::given_hubs(hub)?, ctx.profile()?) {
                (given, _) if !given.is_empty() => given,
                (_, Some(chosen)) => chosen.profile.hubs.clone(),
                (_, None) => Vec::new(),
            };
            if hubs.len() > MAX_TICKET_HUBS {
                return Err(usage(format!("a ticket names at most {MAX_TICKET_HUBS} hubs")));
            }
            issue(ctx, args, |box_name, id, expires| Statement::Recovery {
                box_name,
                id,
                expires,
                uses,
                hubs,
            })
        }
        OperatorCommand::ApproveRelease { statement: args, uses, requester, peers } => {
            let requester: keyward_service::PublicKey =
                requester.parse().map_err(|e| usage(format!("--requester `{requester}`: {e}")))?;
            let uses = uses.uses;
            let peers = release_peers(ctx, peers)?;
            issue(ctx, args, |box_name, id, expires| Statement::PeerRelease {
                box_name,
                requester,
                id,
                expires,
                uses,
                peers,
            })
        }
        OperatorCommand::EscrowStatus { hub, box_name, key } => {
            check_box_name(box_name)?;
            let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
            let operator = hub_io::operator_key(ctx, key.as_deref())?;
            let answer = block_on(
                hubs.first_answer(async |hub| hub.operator_status(box_name, &operator).await),
            )?;
            crate::commands::escrow::print_versions(ctx, &answer, &hubs.urls().join(", "))
        }
        OperatorCommand::ApproveOverwrite {
            hub,
            box_name,
            version,
            blob_sha256,
            fingerprint,
            key,
        } => {
            let blob_sha256 = blob_sha256.trim().to_ascii_lowercase();
            if !keyward_hub::api::is_blob_sha256(&blob_sha256) {
                return Err(usage("--blob-sha256 is the blob's SHA-256: 64 hex digits"));
            }
            let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
            let operator = hub_io::operator_key(ctx, key.as_deref())?;
            let approval = Statement::Overwrite {
                box_name: box_name.clone(),
                version: *version,
                fingerprint: fingerprint.to_string(),
                blob_sha256,
                id: Statement::fresh_id()?,
                expires: unix_now() + SENT_AT_ONCE_TTL_SECS,
            };
            let text = statement::issue(&operator, approval);
            let active = block_on(hubs.answer_once(async |hub| hub.approve(&text).await))?;
            ctx.out.line(format!(
                "Version {} of {box_name} is now the active escrow (older versions stay at the hub until deleted)",
                active.version
            ))?;
            ctx.out.json(&json!({ "box": box_name, "version": active.version, "state": "active" }))
        }
        OperatorCommand::Fleet { hub, key, stale_after } => {
            fleet(ctx, hub, key.as_deref(), stale_after)
        }
        OperatorCommand::Dashboard { hub, key, listen, stale_after } => {
            let stale_after = hub_io::parse_age(stale_after)?;
            let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
            let operator = hub_io::operator_key(ctx, key.as_deref())?;
            crate::commands::dashboard::serve(ctx, *listen, &hubs, &operator, stale_after)
        }
        OperatorCommand::Audit { hub, key, box_name, since } => {
            let since = match since {
                Some(back) => unix_now() - hub_io::parse_age(back)?,
                None => 0,
            };
            let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
            let operator = hub_io::operator_key(ctx, key.as_deref())?;
            let name = box_name.as_deref();
            let answer =
                block_on(hubs.first_answer(async |hub| hub.audit(&operator, name, since).await))?;
            for record in &answer.records {
                ctx.out.line(format!(
                    "{:>6}  {}  {:<14}  {:<16}  {}",
                    record.seq,
                    crate::output::format_time(record.at),
                    record.event,
                    record.box_name.as_deref().unwrap_or("-"),
                    crate::output::printable(&record.detail)
                ))?;
            }
            ctx.out
                .json(&serde_json::to_value(&answer).map_err(|e| CliError::Failed(e.to_string()))?)
        }
        OperatorCommand::DeleteEscrow { hub, box_name, version, key } => {
            let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
            let operator = hub_io::operator_key(ctx, key.as_deref())?;
            let order = Statement::Deletion {
                box_name: box_name.clone(),
                version: *version,
                id: Statement::fresh_id()?,
                expires: unix_now() + SENT_AT_ONCE_TTL_SECS,
            };
            let text = statement::issue(&operator, order);
            let erased = block_on(hubs.answer_once(async |hub| hub.delete(&text).await))?;
            ctx.out.line(format!(
                "Version {} of {} is erased from the hub",
                erased.version, erased.box_name
            ))?;
            ctx.out.json(
                &json!({ "box": erased.box_name, "version": erased.version, "state": "deleted" }),
            )
        }
    }
}

/// Signs a statement and writes it.
fn issue(
    ctx: &Context,
    args: &StatementArgs,
    make: impl FnOnce(String, String, i64) -> Statement,
) -> CliResult {
    check_box_name(&args.box_name)?;
    check_new(&args.out, Overwrite::Never)?;
    let operator = hub_io::operator_key(ctx, args.key.as_deref())?;
    let expires = unix_now() + hub_io::parse_ttl(&args.ttl)?;
    let statement = make(args.box_name.clone(), Statement::fresh_id()?, expires);
    let (kind, uses) = (statement.kind(), statement.uses());
    // A token or ticket is a bearer credential until it is used: keep it in wiped memory.
    let mut text = zeroize::Zeroizing::new(statement::issue(&operator, statement));
    text.push('\n');
    write_secret(&args.out, text.as_bytes(), Overwrite::Never)?;
    if args.out != std::path::Path::new("-") {
        let allowed = if uses == 1 { "single use".to_string() } else { format!("{uses} uses") };
        ctx.out.line(format!(
            "Wrote {kind} for {} to {} ({allowed}, valid {})",
            args.box_name,
            args.out.display(),
            args.ttl
        ))?;
        ctx.out.json(
            &json!({ "box": args.box_name, "out": args.out, "expires": expires, "uses": uses }),
        )?;
    }
    Ok(())
}

/// Runs `operator fleet`.
fn fleet(ctx: &Context, hub: &HubArgs, key: Option<&Path>, stale_after: &str) -> CliResult {
    use keyward_box::fleet::{self, Verdict, age_text};
    let stale_after = hub_io::parse_age(stale_after)?;
    let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
    let operator = hub_io::operator_key(ctx, key)?;
    let now = unix_now();
    let found = fleet::query(&hubs, &operator, now, stale_after)?;
    for judged in &found.boxes {
        let escrow = match judged.active() {
            Some(v) => format!("escrow v{} active", v.version),
            None => "no active escrow".to_string(),
        };
        let headers = match judged.oldest_header_age(now) {
            Some(age) => format!(
                "{} header backup(s), the oldest {} old",
                judged.facts.headers.len(),
                age_text(age)
            ),
            None => "no header backup".to_string(),
        };
        let pending = judged.pending().count();
        ctx.out.line(format!(
            "{:<7} {}: {}; {escrow}{}; {headers}",
            judged.verdict.label(),
            judged.facts.box_name,
            judged.why,
            if pending > 0 { format!(", {pending} waiting for approval") } else { String::new() }
        ))?;
    }
    if found.truncated {
        ctx.out.line(format!("({})", keyward_box::fleet::TRUNCATED))?;
    }
    ctx.out.json(&serde_json::to_value(&found).map_err(|e| CliError::Failed(e.to_string()))?)?;
    if found.healthy() && !found.truncated {
        return Ok(());
    }
    let unhealthy: Vec<String> = found
        .boxes
        .iter()
        .filter(|b| b.verdict != Verdict::Healthy)
        .map(|b| format!("{} ({})", b.facts.box_name, b.verdict.word()))
        .collect();
    Err(CliError::DrillFound(unhealthy))
}

/// The identity the hubs know `box_name` by now (what a takeover replaces).
fn identity_at_hubs(
    ctx: &Context,
    hub: &HubArgs,
    box_name: &str,
    key: Option<&Path>,
) -> CliResult<keyward_service::PublicKey> {
    check_box_name(box_name)?;
    let hubs = hub_io::connect(&hub_io::hubs(ctx, hub)?)?;
    let operator = hub_io::operator_key(ctx, key)?;
    let answer =
        block_on(hubs.first_answer(async |hub| hub.operator_status(box_name, &operator).await))?;
    let text = answer.identity.ok_or_else(|| {
        usage(format!(
            "the hubs know no box named {box_name}; for a box enrolled at peers only, give --replacing PUBKEY"
        ))
    })?;
    text.parse().map_err(|e| usage(format!("the hub's identity of {box_name}: {e}")))
}

/// The peers a release ticket carries: the cards given, else the profile's (none: a ticket
/// that `recover --peers` is given the cards with).
fn release_peers(ctx: &Context, given: &[PathBuf]) -> CliResult<Vec<PeerRecord>> {
    let cards = match (given.is_empty(), ctx.profile()?) {
        (false, _) => given.to_vec(),
        (true, Some(chosen)) => chosen.profile.peers.clone(),
        (true, None) => Vec::new(),
    };
    cards
        .iter()
        .map(|path| Ok(keyward_box::peers::read_card(&ctx.reader, path)?.to_record()))
        .collect()
}

/// Refuses a name no box can have.
fn check_box_name(name: &str) -> CliResult {
    if keyward_service::names::valid_box_name(name) {
        return Ok(());
    }
    Err(usage(format!("`{name}` cannot name a box ({})", keyward_service::names::BOX_NAME_RULE)))
}
