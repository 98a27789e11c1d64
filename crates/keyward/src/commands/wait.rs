//! `keyward wait`: returns once the servers a script started in the background take
//! connections, so the next line can use them. A TCP server is there when a connection to it is
//! accepted (and closed at once, before TLS); a Unix socket when it exists as a socket — it is
//! not connected to, since the key agent audits every connection it answers.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::WaitArgs;
use crate::exit::{CliError, CliResult, usage};

/// How often a target is tried.
const POLL: Duration = Duration::from_millis(20);

/// What is waited for.
enum Target<'a> {
    Tcp(Vec<SocketAddr>),
    Socket(&'a Path),
}

/// Runs `wait`.
pub fn run(args: &WaitArgs) -> CliResult {
    // Every target read first: a typo is said before any waiting.
    let targets: Vec<(&str, Target<'_>)> = args
        .targets
        .iter()
        .map(|t| target(t).map(|parsed| (t.as_str(), parsed)))
        .collect::<CliResult<_>>()?;
    let deadline = Instant::now() + args.timeout;
    for (text, target) in &targets {
        while !ready(target, deadline) {
            if Instant::now() >= deadline {
                return Err(CliError::Unavailable(format!(
                    "nothing takes connections at {text} after {} s",
                    args.timeout.as_secs()
                )));
            }
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

/// `HOST:PORT` is a TCP server, anything else with a `/` or no `:` a socket path.
fn target(text: &str) -> CliResult<Target<'_>> {
    if text.contains('/') || !text.contains(':') {
        return Ok(Target::Socket(Path::new(text)));
    }
    let addresses: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| usage(format!("`{text}` is not HOST:PORT ({e}), nor a socket path")))?
        .collect();
    Ok(Target::Tcp(addresses))
}

/// Whether the target takes connections now (a TCP connect is given until `deadline`, at
/// most a second).
fn ready(target: &Target<'_>, deadline: Instant) -> bool {
    match target {
        Target::Tcp(addresses) => addresses.iter().any(|address| {
            let left = deadline.saturating_duration_since(Instant::now());
            let patience = left.clamp(Duration::from_millis(1), Duration::from_secs(1));
            TcpStream::connect_timeout(address, patience).is_ok()
        }),
        Target::Socket(path) => {
            std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
        }
    }
}
