//! `keyward status`: one overview of the box — its slots and what each needs, its escrow at the
//! hubs (versions and states, approvals waiting), its LUKS2 volumes and whether the hub's
//! header copy of each is current, its peers slots and how many peers hold the current set,
//! and its key agent. It changes nothing; a part that cannot be read or reached is shown as
//! such and the rest still is (exit 0 unless the keybox itself cannot be read).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keyward_box::config::{BoxFiles, Volumes};
use keyward_box::{escrow, identity, peers};
use keyward_core::Keybox;
use keyward_core::slot::Channel;
use keyward_luks::journal::Journal;
use keyward_luks::volume::Volume;
use serde_json::{Value, json};

use crate::commands::list::fallback_mark;
use crate::commands::luks::{hub_copy_json, hub_copy_line, hub_copy_of};
use crate::context::Context;
use crate::exit::{CliError, CliResult};
use crate::output::format_time;

/// How long the agent has to answer: it answers at once when it runs.
const AGENT_PATIENCE: Duration = Duration::from_secs(2);

/// Runs `status`.
pub fn run(ctx: &Context) -> CliResult {
    let keybox = ctx.store().load()?;
    let header = keybox.header();
    ctx.out.line(format!(
        "Keybox {} (\"{}\"), key {}",
        ctx.keybox.display(),
        header.label,
        header.fingerprint.short()
    ))?;
    let report = json!({
        "keybox": ctx.keybox,
        "fingerprint": header.fingerprint.to_string(),
        "pbs_fingerprint": header.pbs.as_ref().map(|r| r.fingerprint.to_string()),
        "slots": slots(ctx, &keybox)?,
        "escrow": part(ctx, "Escrow", escrow_at_hubs(ctx))?,
        "volumes": part(ctx, "LUKS2 volumes", volumes(ctx))?,
        "peers": part(ctx, "Peers", peers_slots(ctx, &keybox))?,
        "agent": part(ctx, "Agent", agent(ctx))?,
    });
    ctx.out.json(&report)
}

/// One part of the overview, or why it cannot be told (a file beside the keybox that cannot
/// be read, a header that cannot be): said, and the rest still shown. Output that cannot be
/// written ends the command.
fn part(ctx: &Context, name: &str, told: CliResult<Value>) -> CliResult<Value> {
    match told {
        Err(e @ CliError::Output(_)) => Err(e),
        Err(e) => {
            ctx.out.line(format!("{name}: cannot tell ({e})"))?;
            Ok(json!({ "error": e.to_string() }))
        }
        Ok(value) => Ok(value),
    }
}

/// Each slot and what opens it.
fn slots(ctx: &Context, keybox: &Keybox) -> CliResult<Value> {
    ctx.out.line("Slots")?;
    let fallbacks = keybox.offline_fallbacks();
    let mut rows = Vec::new();
    for (slot, read) in keybox.read_slots() {
        let needs = match read {
            None => "nothing this keyward knows (a kind it does not have)".to_string(),
            Some(read) if read.is_unattended() => "nobody: it opens unattended".to_string(),
            Some(read) => match read.channel() {
                Channel::Nothing => "its device".to_string(),
                Channel::Key => "its peers".to_string(),
                channel => channel.describe().to_string(),
            },
        };
        let what = read.map_or_else(|| slot.protection.kind.clone(), |r| r.describe());
        let mark = fallback_mark(&fallbacks, slot.id);
        ctx.out
            .line(format!("  {:>3}  {:<20}  {what}; needs {needs}{mark}", slot.id, slot.label))?;
        rows.push(json!({
            "id": slot.id.0, "label": slot.label, "kind": slot.protection.kind,
            "unattended": read.is_some_and(|r| r.is_unattended()), "needs": needs,
            "offline_fallback": fallbacks.contains(&slot.id),
        }));
    }
    if fallbacks.is_empty() {
        ctx.out.line("  NO offline fallback: no slot opens with no network and no device")?;
    }
    Ok(Value::Array(rows))
}

/// The box's escrow versions at its hubs, if it is enrolled at any.
fn escrow_at_hubs(ctx: &Context) -> CliResult<Value> {
    let Some((enrollment, identity, hubs)) = escrow::enrollment_if_any(&ctx.keybox, &ctx.reader)?
    else {
        ctx.out.line("Escrow: enrolled at no hub (`keyward escrow enroll`)")?;
        return Ok(Value::Null);
    };
    let urls = hubs.urls().join(", ");
    ctx.out.line(format!("Escrow of {} at {urls}", enrollment.box_name))?;
    match escrow::status(&hubs, &enrollment, &identity) {
        Ok(answer) => {
            for v in &answer.versions {
                let waiting = if v.state == "pending" { " (waiting for an operator)" } else { "" };
                ctx.out.line(format!(
                    "  version {:>3}  {}{waiting}, pushed {}",
                    v.version,
                    v.state,
                    format_time(v.pushed_at)
                ))?;
            }
            if answer.versions.is_empty() {
                ctx.out.line("  nothing pushed yet (`keyward escrow push`)")?;
            }
            let pending = answer.versions.iter().filter(|v| v.state == "pending").count();
            Ok(json!({
                "box": enrollment.box_name, "hubs": hubs.urls(), "pending": pending,
                "versions": answer.versions,
            }))
        }
        Err(e) => {
            ctx.out.line(format!("  cannot tell: {e}"))?;
            Ok(json!({ "box": enrollment.box_name, "hubs": hubs.urls(), "error": e.to_string() }))
        }
    }
}

/// The LUKS2 volumes noted beside the keybox, each as its header says now.
fn volumes(ctx: &Context) -> CliResult<Value> {
    let noted = Volumes::beside(&ctx.keybox)?.volumes;
    if noted.is_empty() {
        ctx.out.line("LUKS2 volumes: none (`keyward luks enroll` notes each)")?;
        return Ok(json!([]));
    }
    ctx.out.line("LUKS2 volumes")?;
    let mut rows = Vec::new();
    for record in noted {
        rows.push(volume(ctx, &record.device, &record.uuid)?);
    }
    Ok(Value::Array(rows))
}

/// One volume: keyward's keyslot in its header, and the hub's copy of the header.
fn volume(ctx: &Context, device: &Path, uuid: &str) -> CliResult<Value> {
    let at = format!("  {} (UUID {uuid})", device.display());
    let mut opened = match Volume::open(device) {
        Ok(volume) if volume.uuid().eq_ignore_ascii_case(uuid) => volume,
        Ok(volume) => {
            let found = volume.uuid().to_string();
            ctx.out.line(format!("{at}: now holds volume {found}, not this one"))?;
            return Ok(json!({ "device": device, "uuid": uuid, "error": "another volume" }));
        }
        Err(e) => {
            ctx.out.line(format!("{at}: cannot be read ({e})"))?;
            return Ok(json!({ "device": device, "uuid": uuid, "error": e.to_string() }));
        }
    };
    let state = match keyward_luks::workflow::status(&mut opened).map(|s| s.journal) {
        Ok(Ok(Journal::Settled(e))) => {
            format!("keyward's keyslot {} (sequence {})", e.record.keyslot, e.record.sequence)
        }
        Ok(Ok(Journal::Empty)) => "no keyward keyslot".to_string(),
        Ok(Ok(_)) => "a rotation unfinished (`keyward luks status` says which)".to_string(),
        Ok(Err(anomaly)) => format!("an anomaly: {anomaly}"),
        Err(e) => format!("cannot be read ({e})"),
    };
    let hub_copy = match hub_copy_of(ctx, &mut opened) {
        Ok(copy) => copy,
        Err(e) => Some(("its hubs".to_string(), Err(e))),
    };
    ctx.out.line(format!("{at}: {state}"))?;
    if let Some((hubs, copy)) = &hub_copy {
        ctx.out.line(format!("    {}", hub_copy_line(device, hubs, copy)))?;
    }
    Ok(json!({
        "device": device, "uuid": uuid, "keyward": state,
        "hub_copy": hub_copy.as_ref().map(|(hubs, copy)| hub_copy_json(hubs, copy)),
    }))
}

/// Each peers slot: how many of its peers hold the current set, and how many are needed.
fn peers_slots(ctx: &Context, keybox: &Keybox) -> CliResult<Value> {
    let mut rows = Vec::new();
    for record in keybox.slots() {
        let Some(params) = peers::peers_params(record)? else { continue };
        if rows.is_empty() && !BoxFiles::beside(&ctx.keybox).identity.exists() {
            ctx.out.line("Peers: this box has no identity to ask them with")?;
            return Ok(json!([]));
        }
        let identity = Arc::new(identity::read(&ctx.reader, &ctx.keybox)?);
        let holdings = peers::holdings(&params, &identity)?;
        let holding = holdings
            .iter()
            .filter(|h| h.answer.as_ref().is_ok_and(|a| a.current.is_some()))
            .count();
        let down: Vec<&str> =
            holdings.iter().filter(|h| h.answer.is_err()).map(|h| h.url.as_str()).collect();
        let verdict =
            if holding >= usize::from(params.threshold) { "enough" } else { "NOT ENOUGH" };
        ctx.out.line(format!(
            "Peers slot {} (\"{}\"): {holding} of {} peers hold the current set, {} needed: {verdict}{}",
            record.id,
            record.label,
            holdings.len(),
            params.threshold,
            if down.is_empty() { String::new() } else { format!("; no answer from {}", down.join(", ")) }
        ))?;
        rows.push(json!({
            "slot": record.id.0, "share_set": params.share_set, "threshold": params.threshold,
            "peers": holdings.len(), "holding": holding, "unanswered": down,
        }));
    }
    if rows.is_empty() {
        ctx.out.line("Peers: no peers slot")?;
    }
    Ok(Value::Array(rows))
}

/// The key agent at this keybox's default socket.
fn agent(ctx: &Context) -> CliResult<Value> {
    let socket = match keyward_agent::socket::default_socket(ctx.agent_keybox()) {
        Ok(socket) => socket,
        Err(e) => {
            let e = CliError::from(e);
            ctx.out.line(format!("Agent: no socket to ask ({e})"))?;
            return Ok(json!({ "running": false, "error": e.to_string() }));
        }
    };
    if !socket.exists() {
        ctx.out.line(format!("Agent: none runs at {}", socket.display()))?;
        return Ok(json!({ "socket": socket, "running": false }));
    }
    let client =
        keyward_agent::client::AgentClient::new(&socket).with_timeout(Some(AGENT_PATIENCE));
    match client.status() {
        Ok(status) => {
            let state = match status.seconds_left {
                Some(left) => format!("holds the key, {left} s left"),
                None => "holds no key".to_string(),
            };
            ctx.out.line(format!("Agent at {}: {state}", socket.display()))?;
            Ok(json!({ "socket": socket, "running": true, "status": status }))
        }
        Err(e) => {
            let e = CliError::from(e);
            ctx.out.line(format!("Agent at {}: {e}", socket.display()))?;
            Ok(json!({ "socket": socket, "running": false, "error": e.to_string() }))
        }
    }
}
