//! `keyward agent serve|get|status|lock` and `keyward exec`: the CLI around keyward-agent. The
//! agent opens the keybox once as `unlock` does (a person may be asked then), and afterwards only
//! through keyward_box's unattended plan.

#![allow(unsafe_code)] // the pipe `exec` hands the key through; SAFETY notes at the calls

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_agent::callers::{Allowlist, Audience};
use keyward_agent::client::AgentClient;
use keyward_agent::protocol::Reopen;
use keyward_agent::server::{Agent, AgentConfig, Shutdown, block_exit_signals, wipe_on_signals};
use keyward_agent::socket::{self, Listening, Place};
use keyward_box::fingerprint;
use keyward_core::{DataKey, ExpectedFingerprint};
use serde_json::json;

use crate::auth::open;
use crate::cli::{AgentCommand, AgentServeArgs, AgentSocketArgs, AuthArgs, ExecArgs, KeyFormat};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::output::{Overwrite, check_new, encode_plain, warn, write_key};

/// The variable that tells `exec`'s child which descriptor holds the key.
pub const KEY_FD_VARIABLE: &str = "KEYWARD_KEY_FD";

/// Runs `agent …`.
pub fn run(ctx: &Context, command: &AgentCommand) -> CliResult {
    match command {
        AgentCommand::Serve(args) => serve(ctx, args),
        AgentCommand::Get { out, format, force, expect_fingerprint, socket } => {
            check_new(out, Overwrite::from_force(*force))?;
            let key = key_from_agent(ctx, socket, expect_fingerprint.as_ref())?;
            let encoded = encode_plain(key.expose(), *format)
                .ok_or_else(|| usage("the agent hands the raw key: --format raw, hex or base64"))?;
            write_key(out, &encoded, *format, Overwrite::from_force(*force))?;
            if out != Path::new("-") {
                let fp = key.fingerprint();
                ctx.out.line(format!("Key {} written to {}", fp.short(), out.display()))?;
                ctx.out.json(&json!({ "out": out, "fingerprint": fp.to_string() }))?;
            }
            Ok(())
        }
        AgentCommand::Status { socket } => {
            let status = client(ctx, socket)?.status()?;
            let state = match (status.seconds_left, status.waiting.unwrap_or(0)) {
                (Some(left), _) => {
                    format!("unlocked, {left} s left of {} s", status.ttl.unwrap_or(0))
                }
                (None, 0) => "locked".into(),
                (None, waiting) => {
                    format!("locked; opening the keybox again for {waiting} waiting request(s)")
                }
            };
            ctx.out.line(format!("agent: {state}"))?;
            ctx.out.line(match &status.reopen {
                Some(Reopen::Through(slots)) => format!(
                    "once the key is wiped, the next request opens the keybox again, unattended, through {}",
                    slots.join(" or ")
                ),
                Some(Reopen::LastFailed { through, failure }) => format!(
                    "once the key is wiped, the next request tries {} again; the last attempt FAILED: {failure}",
                    through.join(" or ")
                ),
                Some(Reopen::Cannot(why)) => format!(
                    "once the key is wiped, the next request is REFUSED: {why}; restart the agent (`keyward agent serve`) with a secret"
                ),
                None => "(this agent does not say how it opens the keybox again)".into(),
            })?;
            ctx.out.line(format!(
                "served {} request(s), refused {}; key {}",
                status.served.unwrap_or(0),
                status.refused.unwrap_or(0),
                status.fingerprint.as_deref().unwrap_or("?")
            ))?;
            ctx.out.json(&json!({
                "state": status.state, "seconds_left": status.seconds_left, "ttl": status.ttl,
                "served": status.served, "refused": status.refused, "waiting": status.waiting,
                "fingerprint": status.fingerprint, "reopen": status.reopen,
            }))
        }
        AgentCommand::Lock { socket } => {
            client(ctx, socket)?.lock()?;
            ctx.out.line("agent: key wiped")?;
            ctx.out.json(&json!({ "state": "locked" }))
        }
    }
}

/// The socket to use: the one given, else the keybox's default.
fn socket_path(ctx: &Context, socket: &AgentSocketArgs) -> CliResult<PathBuf> {
    match &socket.socket {
        Some(path) => Ok(path.clone()),
        None => Ok(socket::default_socket(ctx.agent_keybox())?),
    }
}

fn client(ctx: &Context, socket: &AgentSocketArgs) -> CliResult<AgentClient> {
    Ok(AgentClient::new(&socket_path(ctx, socket)?).with_timeout(socket.timeout))
}

/// The key from the agent, refused (exit 5, nothing written or run) unless it has the
/// fingerprint expected.
fn key_from_agent(
    ctx: &Context,
    socket: &AgentSocketArgs,
    expected: Option<&ExpectedFingerprint>,
) -> CliResult<DataKey> {
    let key = client(ctx, socket)?.get()?;
    if let Some(expected) = expected {
        fingerprint::gate(&key, &[("--expect-fingerprint".into(), expected.clone())])?;
    }
    // The default socket is one per runtime folder for the default keybox: an agent there may
    // serve another default keybox (another XDG_CONFIG_HOME). Its key must be this keybox's.
    if socket.socket.is_none()
        && let Ok(keybox) = ctx.store().load()
        && key.fingerprint() != keybox.header().fingerprint
    {
        return Err(keyward_core::Error::FingerprintMismatch {
            expected: format!(
                "{} (the keybox {})",
                keybox.header().fingerprint,
                ctx.keybox.display()
            ),
            found: format!(
                "{} (the agent at the default socket serves another keybox)",
                key.fingerprint()
            ),
        }
        .into());
    }
    Ok(key)
}

/// `agent serve`: signals taken first (before any thread, and so also during start-up), the
/// socket bound (so a second agent is refused before anyone types a secret), the keybox
/// opened, then served until a signal wipes the key and ends the process.
fn serve(ctx: &Context, args: &AgentServeArgs) -> CliResult {
    let signals = block_exit_signals();
    let shutdown = Arc::new(Shutdown::default());
    wipe_on_signals(signals, Arc::clone(&shutdown));
    // Taken once: the descriptor systemd passed becomes this listener (and only this one).
    let activated = socket::activated();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::geteuid() };
    let allow = Allowlist::new(&args.allow, own_uid);
    if allow.audience() == Audience::Others && args.socket.socket.is_none() && activated.is_none() {
        return Err(usage(
            "other users cannot reach a socket in $XDG_RUNTIME_DIR/keyward (0700): give --socket PATH in a folder they can enter",
        ));
    }
    let audit: Box<dyn Write + Send> = match &args.audit {
        Some(path) => Box::new(open_audit_log(path)?),
        None => Box::new(std::io::stderr()),
    };
    let Listening { listener, bound } = match activated {
        Some(listener) => Listening { listener, bound: None },
        None => {
            let place = match args.socket.socket {
                Some(_) => Place::Chosen(allow.audience()),
                None => Place::DefaultFolder,
            };
            socket::bind(&socket_path(ctx, &args.socket)?, place)?
        }
    };
    if let Some(bound) = &bound {
        shutdown.set_socket(bound.clone());
    }
    let opened = open_key(ctx, args);
    let key = match opened {
        Ok(key) => key,
        Err(e) => {
            if let Some(bound) = &bound {
                bound.remove_if_ours();
            }
            return Err(e);
        }
    };
    let config = AgentConfig {
        keybox: ctx.keybox.clone(),
        slot: args.open.slot.clone(),
        ttl: args.ttl,
        allow,
        audit,
    };
    let agent = Agent::new(config, key)?;
    shutdown.set_agent(Arc::clone(&agent));
    let at = bound
        .as_ref()
        .map_or_else(|| "the socket systemd passed".into(), |b| b.path.display().to_string());
    eprintln!(
        "keyward: agent serving key {} at {at}, held {} s at a time",
        agent.fingerprint().short(),
        args.ttl.as_secs()
    );
    agent.serve(&listener)?;
    Ok(())
}

/// The audit log, appended to: never through a symbolic link (O_NOFOLLOW), never a FIFO or a
/// device someone put at the path (O_NONBLOCK, then only a regular file is kept), created 0600.
fn open_audit_log(path: &Path) -> CliResult<std::fs::File> {
    let failed = |e| keyward_core::Error::io("cannot open the audit log", path, e);
    let refused =
        |what| keyward_core::Error::OutputNotReplaceable { path: path.to_path_buf(), what };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("a symbolic link"),
            Some(libc::ENXIO) => refused("a FIFO or device nobody reads"),
            _ => failed(e),
        })?;
    if !file.metadata().map_err(failed)?.is_file() {
        return Err(refused("not a regular file").into());
    }
    Ok(file)
}

/// The key the agent starts with, opened as `unlock` opens it.
fn open_key(ctx: &Context, args: &AgentServeArgs) -> CliResult<DataKey> {
    let store = ctx.store();
    let keybox = store.load()?;
    let opened = open(
        &AuthArgs::from(&args.open),
        &keybox,
        store.path(),
        &ctx.reader,
        "for the agent to hold its key",
    )?;
    let unattended =
        keybox.read_slots().any(|(_, slot)| slot.is_some_and(|slot| slot.is_unattended()));
    if args.open.slot.is_none() && !unattended {
        warn(
            "no slot of this keybox opens with nobody there: once the TTL is up, requests are refused until the agent is started again",
        );
    }
    Ok(opened.key().clone())
}

/// `exec -- CMD ARGS…`: the key from the agent goes into a pipe whose read end the command
/// inherits (its number in `KEYWARD_KEY_FD`); this process then becomes the command, so the key
/// is in no argument, no environment, no file.
pub fn exec(ctx: &Context, args: &ExecArgs) -> CliResult {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(usage("give the command to run after --"));
    };
    // A PBS key file takes the keybox's record of the key: read before the key is asked for,
    // so a keybox this user cannot read costs no request the agent audits as served.
    let record = match args.format {
        KeyFormat::Pbs => Some(ctx.store().load()?.header().pbs.clone()),
        _ => None,
    };
    let key = key_from_agent(ctx, &args.socket, args.expect_fingerprint.as_ref())?;
    let handed = match (encode_plain(key.expose(), args.format), record) {
        (Some(encoded), _) => encoded,
        (None, record) => pbs_key_file(ctx, &key, record.flatten().as_ref())?,
    };
    drop(key);
    let (read, write) = key_pipe()?;
    let mut writer = std::fs::File::from(write);
    // A pipe holds at least a page before a writer blocks; a PBS key file is under 1 KiB.
    writer.write_all(&handed).map_err(CliError::Output)?;
    drop(writer);
    drop(handed);
    let fd = read.as_raw_fd();
    // SAFETY: F_SETFD on a descriptor this process owns only changes its close-on-exec flag, so
    // that the command inherits it.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(CliError::Output(std::io::Error::last_os_error()));
    }
    let error =
        std::process::Command::new(program).args(rest).env(KEY_FD_VARIABLE, fd.to_string()).exec();
    drop(read);
    Err(keyward_core::Error::io("cannot run", PathBuf::from(program), error).into())
}

/// The agent's key as an unencrypted Proxmox Backup key file, with the creation time the
/// keybox recorded at import (`record`; now, for a key that was not imported from PBS).
fn pbs_key_file(
    ctx: &Context,
    key: &DataKey,
    record: Option<&keyward_core::keybox::PbsRecord>,
) -> CliResult<zeroize::Zeroizing<Vec<u8>>> {
    keyward_box::escrow::check_exportable(key, record)?;
    let now = keyward_pbs::PbsTime::now(ctx.local_offset);
    let created = crate::pbs::created_time(record, &now);
    crate::pbs::key_file_bytes(key, crate::cli::PbsKdfArg::None, None, &ctx.reader, created, now)
}

/// A pipe, both ends close-on-exec.
fn key_pipe() -> CliResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is valid for two descriptors; pipe2 fills both on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(CliError::Output(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created by pipe2 and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
