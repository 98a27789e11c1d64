//! keyward: keep one data key, open it many ways, recover it anywhere.
//!
//! The executables only wire: parse arguments, run one command, turn its error into one line on
//! stderr and a stable exit code (see exit.rs and the README's table). Two are built from this
//! library: `keyward`, and `keyward-server` beside it, which runs `hub …` and `peer …` (the
//! servers, with their databases: sqlx, SQLite, PostgreSQL, axum) and every other command as
//! well. `keyward` hands those two to it by exec, so they keep their process (server.rs). Every
//! process pays at its start for all the code its executable holds (the loader relocates it),
//! and the servers' code was 40 % of keyward's executable (17.3 MB, now 10.4); long-running,
//! the servers pay the one exec once (docs/BENCHMARKS.md, "Where a process's start goes").

mod auth;
mod cli;
mod commands;
mod context;
mod exit;
mod hub_io;
mod keyring;
mod kinds;
mod new_secret;
mod output;
mod pbs;
mod runtime;
mod secret_input;
mod server;
mod serving;

use std::io::Write as _;

use clap::{CommandFactory, Parser};
use keyward_core::ErrorClass;

use crate::cli::{Cli, CodeCommand, Command, EscrowCommand};
use crate::context::Context;
use crate::exit::{CliError, CliResult};

/// `keyward`: every command, `hub …` and `peer …` handed to `keyward-server`.
pub fn main() -> std::process::ExitCode {
    main_with(run::<false>)
}

/// `keyward-server`: every command, the servers' included.
pub fn main_server() -> std::process::ExitCode {
    main_with(run::<true>)
}

fn main_with(run: fn(&Cli, time::UtcOffset) -> CliResult) -> std::process::ExitCode {
    keyward_core::memory::harden_process();
    // Before the command line is parsed: KIND arguments are checked against the kinds known.
    kinds::register();
    // Before any thread exists: the `time` crate reads the local offset only then.
    let local_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(&cli, local_offset) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            reader_went_away()
        }
        Err(e) => {
            let message = e.to_string().replace('\n', " ");
            fail(cli.json, e.class(), &message)
        }
    }
}

/// Ends with a failure: its one line on stderr and, when `--json` was asked for (and the
/// command printed no JSON report of its own), the same as a JSON object on stdout
/// (`{"error": {"exit_code", "class", "message"}}`), so a script that reads stdout gets one
/// answer either way.
fn fail(json: bool, class: ErrorClass, message: &str) -> std::process::ExitCode {
    eprintln!("keyward: error: {}", output::printable(message));
    if json && !output::Output::json_sent() {
        let error = serde_json::json!({ "error": {
            "exit_code": class.exit_code(), "class": class.name(), "message": message,
        }});
        let _ = writeln!(std::io::stdout().lock(), "{error}");
    }
    std::process::ExitCode::from(class.exit_code())
}

/// Whether `--json` is among the arguments given (before a `--`): for a usage error, which
/// comes before the arguments are parsed.
fn json_asked() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// Whoever read stdout went away (`keyward completions bash | head -1`): the process ends as
/// any Unix tool does then, quietly, by SIGPIPE (the shell sees 141), not with an error line.
fn reader_went_away() -> std::process::ExitCode {
    // SAFETY: restoring SIGPIPE's default action and raising it take no pointers; the default
    // action ends the process, so nothing after it runs unless the signal is blocked.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::ExitCode::from(ErrorClass::Internal.exit_code())
}

/// Help and version go out as clap prints them; a real usage error becomes one line, like every
/// other failure.
fn usage_error(error: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => error.exit(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            fail(json_asked(), ErrorClass::Usage, "no command given (see `keyward --help`)")
        }
        _ => {
            // clap's first paragraph says what is wrong (and, for missing arguments, which).
            let rendered = error.render().to_string();
            let paragraph: Vec<&str> =
                rendered.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let joined = paragraph.join(" ");
            let message = joined.strip_prefix("error: ").unwrap_or(&joined);
            fail(json_asked(), ErrorClass::Usage, &format!("{message} (see `keyward --help`)"))
        }
    }
}

/// Runs the command; `hub …` and `peer …` only in `keyward-server` (`SERVERS`), and `keyward`
/// hands them over. `SERVERS` is a constant so that `keyward`'s build holds none of the
/// servers' code.
fn run<const SERVERS: bool>(cli: &Cli, local_offset: time::UtcOffset) -> CliResult {
    if SERVERS {
        server::check_handed_over()?;
    }
    match &cli.command {
        Command::Hub { command } if SERVERS => {
            commands::hub::run(&Context::new(cli, local_offset)?, command)
        }
        Command::Peer { command } if SERVERS => {
            commands::peer::run(&Context::new(cli, local_offset)?, command)
        }
        Command::Hub { .. } | Command::Peer { .. } => Err(server::hand_over().into()),
        Command::Demo(args) => commands::demo::run(args, local_offset),
        Command::Wait(args) => commands::wait::run(args),
        // Rendered whole first: the generators panic on a write error (a closed pipe).
        Command::Completions { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "keyward", &mut text);
            Ok(std::io::stdout().lock().write_all(&text)?)
        }
        Command::Man { out: None } => {
            let mut text = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut text)?;
            Ok(std::io::stdout().lock().write_all(&text)?)
        }
        Command::Man { out: Some(folder) } => {
            let written = |e: std::io::Error| keyward_core::Error::io("cannot write", folder, e);
            std::fs::create_dir_all(folder).map_err(written)?;
            clap_mangen::generate_to(Cli::command(), folder).map_err(written)?;
            let pages = std::fs::read_dir(folder)
                .map_err(written)?
                .filter(|entry| {
                    entry.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1"))
                })
                .count();
            let ctx_out = output::Output { json: cli.json };
            ctx_out.line(format!("Wrote the man pages to {} ({pages} pages)", folder.display()))?;
            ctx_out.json(&serde_json::json!({ "out": folder, "pages": pages }))
        }
        command => {
            let ctx = Context::new(cli, local_offset)?;
            match command {
                Command::Init(args) => commands::init::run(&ctx, args),
                Command::Enroll(args) => commands::enroll::run(&ctx, args),
                Command::Remove(args) => commands::remove::run(&ctx, args),
                Command::Rotate(args) => commands::rotate::run(&ctx, args),
                Command::List => commands::list::run(&ctx),
                Command::Fingerprint(args) => commands::fingerprint::run(&ctx, args),
                Command::Status => commands::status::run(&ctx),
                Command::Verify(args) => commands::verify::run(&ctx, args),
                Command::Drill(args) => commands::drill::run(&ctx, args),
                Command::Sheet(args) => commands::sheet::run(&ctx, args),
                Command::Backup { out, auth } => commands::backup::backup(&ctx, out, auth),
                Command::Restore { from, expect_fingerprint, force, auth } => {
                    commands::backup::restore(&ctx, from, expect_fingerprint, *force, auth)
                }
                Command::Code { command: CodeCommand::Check { code_file } } => {
                    commands::sheet::check_code(&ctx, code_file.as_deref())
                }
                Command::Unlock(args) => commands::unlock::run(&ctx, args),
                Command::Escrow { command } => match command {
                    EscrowCommand::ExportBlob(args) => commands::escrow::export_blob(&ctx, args),
                    EscrowCommand::Enroll { hub, box_name, token_file, takeover_file } => {
                        commands::escrow::enroll(
                            &ctx,
                            hub,
                            box_name,
                            token_file.as_deref(),
                            takeover_file.as_deref(),
                        )
                    }
                    EscrowCommand::Identity => commands::escrow::identity(&ctx),
                    EscrowCommand::Push { directive, code_file, auth } => commands::escrow::push(
                        &ctx,
                        directive.as_deref(),
                        code_file.as_deref(),
                        auth,
                    ),
                    EscrowCommand::Status => commands::escrow::status(&ctx),
                    EscrowCommand::Fetch { out } => commands::escrow::fetch(&ctx, out),
                },
                Command::Operator { command } => commands::operator::run(&ctx, command),
                Command::Peers { command } => commands::peers::run(&ctx, command),
                Command::Tpm2 { command } => kinds::tpm2::run(&ctx, command),
                Command::Agent { command } => commands::agent::run(&ctx, command),
                Command::Exec(args) => commands::agent::exec(&ctx, args),
                Command::Luks { command } => commands::luks::run(&ctx, command),
                Command::Recover(args) => commands::recover::run(&ctx, args),
                // Run above: by keyward-server, or handed over to it.
                Command::Hub { .. } | Command::Peer { .. } => Ok(()),
                Command::Demo(_)
                | Command::Wait(_)
                | Command::Completions { .. }
                | Command::Man { .. } => Ok(()),
            }
        }
    }
}
