//! `keyward operator …`: an operator's key, and the statements it signs — enrollment tokens,
//! takeovers, recovery and release tickets (offline: they are handed to a box or a fresh machine),
//! overwrite approvals and deletion orders (sent to the hub at once) — and the operator's view
//! of a box's escrow versions, with the blob hashes an approval names.

use keyward_service::SigningIdentity;
use keyward_service::statement::{self, Statement};
use keyward_service::unix_now;
use serde_json::json;

use crate::cli::{OperatorCommand, StatementArgs};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::hub_io::{self, write_identity};
use crate::output::{Overwrite, write_secret};
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
        OperatorCommand::Takeover { statement: args, identity } => {
            let identity: keyward_service::PublicKey =
                identity.parse().map_err(|e| usage(format!("--identity `{identity}`: {e}")))?;
            issue(ctx, args, |box_name, id, expires| Statement::Takeover {
                box_name,
                identity,
                id,
                expires,
            })
        }
        OperatorCommand::ApproveRecovery { statement: args, uses } => {
            let uses = uses.uses;
            issue(ctx, args, |box_name, id, expires| Statement::Recovery {
                box_name,
                id,
                expires,
                uses,
            })
        }
        OperatorCommand::ApproveRelease { statement: args, uses, requester } => {
            let requester: keyward_service::PublicKey =
                requester.parse().map_err(|e| usage(format!("--requester `{requester}`: {e}")))?;
            let uses = uses.uses;
            issue(ctx, args, |box_name, id, expires| Statement::PeerRelease {
                box_name,
                requester,
                id,
                expires,
                uses,
            })
        }
        OperatorCommand::EscrowStatus { hub, box_name, key } => {
            check_box_name(box_name)?;
            let operator = ctx.reader.identity(key)?;
            let (client, _) = hub_io::client(hub)?;
            let answer = block_on(client.operator_status(box_name, &operator))?;
            crate::commands::escrow::print_versions(ctx, &answer, &hub.hub)
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
            let operator = ctx.reader.identity(key)?;
            let approval = Statement::Overwrite {
                box_name: box_name.clone(),
                version: *version,
                fingerprint: fingerprint.to_string(),
                blob_sha256,
                id: Statement::fresh_id()?,
                expires: unix_now() + SENT_AT_ONCE_TTL_SECS,
            };
            let text = statement::issue(&operator, approval);
            let (client, _) = hub_io::client(hub)?;
            let active = block_on(client.approve(&text))?;
            ctx.out.line(format!(
                "Version {} of {box_name} is now the active escrow (older versions stay at the hub until deleted)",
                active.version
            ))?;
            ctx.out.json(&json!({ "box": box_name, "version": active.version, "state": "active" }))
        }
        OperatorCommand::DeleteEscrow { hub, box_name, version, key } => {
            let operator = ctx.reader.identity(key)?;
            let order = Statement::Deletion {
                box_name: box_name.clone(),
                version: *version,
                id: Statement::fresh_id()?,
                expires: unix_now() + SENT_AT_ONCE_TTL_SECS,
            };
            let text = statement::issue(&operator, order);
            let (client, _) = hub_io::client(hub)?;
            let erased = block_on(client.delete(&text))?;
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
    let operator = ctx.reader.identity(&args.key)?;
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

/// Refuses a name no box can have.
fn check_box_name(name: &str) -> CliResult {
    if keyward_service::names::valid_box_name(name) {
        return Ok(());
    }
    Err(usage(format!("`{name}` cannot name a box ({})", keyward_service::names::BOX_NAME_RULE)))
}
