//! What the hub and peer servers share: the configuration file and TLS certificate made at
//! `init` and read at `serve`, structured logs, and a multi-threaded runtime.

use std::path::Path;

use keyward_hub::tls;

use crate::exit::{CliError, CliResult};
use crate::output::write_secret;

fn failed(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("{what}: {e}"))
}

/// Makes a self-signed certificate, writes it and its key (0600, never over existing files),
/// and returns its SHA-256 fingerprint, which clients pin.
pub fn create_certificate(cert_path: &Path, key_path: &Path) -> CliResult<String> {
    let certificate = tls::generate_certificate().map_err(|e| failed("certificate", e))?;
    let fingerprint = tls::certificate_fingerprint(&certificate.cert_pem)
        .map_err(|e| failed("certificate", e))?;
    write_secret(key_path, certificate.key_pem.as_bytes(), false)?;
    write_secret(cert_path, certificate.cert_pem.as_bytes(), false)?;
    Ok(fingerprint)
}

/// The server's TLS configuration from the files [`create_certificate`] wrote.
pub fn load_tls(cert_path: &Path, key_path: &Path) -> CliResult<tls::ServerConfig> {
    let cert = std::fs::read_to_string(cert_path)
        .map_err(|e| keyward_core::Error::io("cannot read", cert_path, e))?;
    let key = zeroize::Zeroizing::new(
        std::fs::read_to_string(key_path)
            .map_err(|e| keyward_core::Error::io("cannot read", key_path, e))?,
    );
    tls::server_config(&cert, &key).map_err(|e| failed("TLS", e))
}

/// Writes a server's configuration file (pretty JSON; 0600, never over an existing file).
pub fn write_config(path: &Path, config: &impl serde::Serialize) -> CliResult {
    let mut bytes = serde_json::to_vec_pretty(config).map_err(|e| failed("config", e))?;
    bytes.push(b'\n');
    write_secret(path, &bytes, false)
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
