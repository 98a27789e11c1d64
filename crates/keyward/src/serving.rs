//! What the hub and peer servers share: the configuration file and TLS certificate made at
//! `init` and read at `serve`, how a server process starts (a private umask, structured logs, a
//! multi-threaded runtime), and the connection options of `serve`.

use std::path::Path;

use keyward_service::tls;

use crate::cli::ServeArgs;
use crate::exit::{CliError, CliResult};
use crate::output::{Overwrite, warn, write_secret};

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

/// Makes a self-signed certificate, writes it and its key (0600, never over existing files),
/// and returns its SHA-256 fingerprint, which clients pin.
pub fn create_certificate(cert_path: &Path, key_path: &Path) -> CliResult<String> {
    let certificate = tls::generate_certificate().map_err(|e| failed("certificate", e))?;
    let fingerprint = tls::certificate_fingerprint(&certificate.cert_pem)
        .map_err(|e| failed("certificate", e))?;
    write_secret(key_path, certificate.key_pem.as_bytes(), Overwrite::Never)?;
    write_secret(cert_path, certificate.cert_pem.as_bytes(), Overwrite::Never)?;
    Ok(fingerprint)
}

/// The server's TLS configuration from the files [`create_certificate`] wrote, and the
/// certificate's fingerprint: the audience of the requests signed for this server. An Ed25519
/// key (what `init` writes) is held in locked memory; another one is used as rustls holds it,
/// with a warning.
pub fn load_tls(cert_path: &Path, key_path: &Path) -> CliResult<(tls::ServerConfig, String)> {
    let cert = std::fs::read_to_string(cert_path)
        .map_err(|e| keyward_core::Error::io("cannot read", cert_path, e))?;
    let key = zeroize::Zeroizing::new(
        std::fs::read_to_string(key_path)
            .map_err(|e| keyward_core::Error::io("cannot read", key_path, e))?,
    );
    let loaded = tls::server_config(&cert, &key).map_err(|e| failed("TLS", e))?;
    if !loaded.key_locked {
        warn(&format!(
            "{} is not an Ed25519 key, so it is not kept in locked memory; `init` a new data folder to get one",
            key_path.display()
        ));
    }
    let fingerprint = tls::certificate_fingerprint(&cert).map_err(|e| failed("certificate", e))?;
    Ok((loaded.config, fingerprint))
}

/// What a server process does first: files it creates (its database and the database's log
/// among them) are private to its user, whatever umask it was started with.
pub fn private_umask() {
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// The connection options `serve` was given, over the service's body limit.
pub fn serve_options(
    args: &ServeArgs,
    max_body_bytes: usize,
) -> keyward_service::shell::ServeOptions {
    keyward_service::shell::ServeOptions {
        read_timeout: std::time::Duration::from_secs(args.read_timeout_secs),
        max_connections_per_source: usize::try_from(args.max_connections_per_source)
            .unwrap_or(usize::MAX),
        max_body_bytes,
        large_route: None,
    }
}

/// Structured logs on stderr (`KEYWARD_LOG` filters; default `info`).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}

/// A multi-threaded runtime for a server.
pub fn server_runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("cannot start the async runtime", e))
}
