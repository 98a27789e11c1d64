//! `keyward operator …`: an operator's key, and the statements it signs — enrollment tokens,
//! recovery tickets (both offline: they are handed to a box or a fresh machine), overwrite
//! approvals and deletion orders (both sent to the hub at once).

use keyward_hub::SigningIdentity;
use keyward_hub::statement::{self, Statement};
use keyward_hub::unix_now;
use serde_json::json;

use crate::cli::{OperatorCommand, StatementArgs};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::hub_io::{self, read_identity, write_identity};
use crate::output::write_secret;
use crate::runtime::block_on;

/// Runs `operator …`.
pub fn run(ctx: &Context, command: &OperatorCommand) -> CliResult {
    match command {
        OperatorCommand::Keygen { out } => {
            let identity = SigningIdentity::generate()?;
            write_identity(out, &identity)?;
            ctx.out.line(format!("Operator key written to {}", out.display()))?;
            ctx.out.line(format!("public key: {}", identity.public()))?;
            ctx.out.json(&json!({ "key_file": out, "public_key": identity.public().to_string() }))
        }
        OperatorCommand::EnrollToken(args) => issue(ctx, args, |box_name, id, expires| {
            Statement::Enrollment { box_name, id, expires }
        }),
        OperatorCommand::ApproveRecovery(args) => {
            issue(ctx, args, |box_name, id, expires| Statement::Recovery { box_name, id, expires })
        }
        OperatorCommand::ApproveRelease { statement: args, requester } => {
            let requester: keyward_hub::PublicKey =
                requester.parse().map_err(|e| usage(format!("--requester `{requester}`: {e}")))?;
            issue(ctx, args, |box_name, id, expires| Statement::PeerRelease {
                box_name,
                requester,
                id,
                expires,
            })
        }
        OperatorCommand::ApproveOverwrite { hub, box_name, version, fingerprint, key } => {
            let operator = read_identity(key)?;
            let approval = Statement::Overwrite {
                box_name: box_name.clone(),
                version: *version,
                fingerprint: fingerprint.to_string(),
                id: Statement::fresh_id()?,
                expires: unix_now() + 600,
            };
            let text = statement::issue(&operator, approval);
            let (client, _) = hub_io::client(hub)?;
            let active = block_on(client.approve(&text))?;
            ctx.out.line(format!("Version {active} of {box_name} is now the active escrow"))?;
            ctx.out.json(&json!({ "box": box_name, "version": active, "state": "active" }))
        }
        OperatorCommand::DeleteEscrow { hub, box_name, version, key } => {
            let operator = read_identity(key)?;
            let order = Statement::Deletion {
                box_name: box_name.clone(),
                version: *version,
                id: Statement::fresh_id()?,
                expires: unix_now() + 600,
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

/// Signs a single-use statement and writes it.
fn issue(
    ctx: &Context,
    args: &StatementArgs,
    make: impl FnOnce(String, String, i64) -> Statement,
) -> CliResult {
    let operator = read_identity(&args.key)?;
    let expires = unix_now() + hub_io::parse_ttl(&args.ttl)?;
    let statement = make(args.box_name.clone(), Statement::fresh_id()?, expires);
    let kind = statement.kind();
    // A token or ticket is a bearer credential until it is used: keep it in wiped memory.
    let mut text = zeroize::Zeroizing::new(statement::issue(&operator, statement));
    text.push('\n');
    write_secret(&args.out, text.as_bytes(), false)?;
    if args.out != std::path::Path::new("-") {
        ctx.out.line(format!(
            "Wrote {kind} for {} to {} (single use, valid {})",
            args.box_name,
            args.out.display(),
            args.ttl
        ))?;
        ctx.out.json(&json!({ "box": args.box_name, "out": args.out, "expires": expires }))?;
    }
    Ok(())
}
