//! Glue between the commands and keyward-hub: pinning, the box's enrollment (its files are
//! keyward_box::config's), identity files, durations.

use std::path::Path;

use keyward_box::config::{self, BoxFiles, Enrollment};

use keyward_hub::client::HubClient;
use keyward_service::tls;
use keyward_service::{PublicKey, SigningIdentity};

use crate::cli::HubArgs;
use crate::exit::{CliError, CliResult, usage};
use crate::output::{Overwrite, write_secret};
use keyward_box::secrets::SecretFiles;

/// The pinned certificate hash from `--hub-fingerprint` or `--hub-cert`.
pub fn pin(fingerprint: Option<&str>, cert: Option<&Path>) -> CliResult<([u8; 32], String)> {
    let text = match (fingerprint, cert) {
        (Some(fp), _) => fp.to_string(),
        (None, Some(path)) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| keyward_core::Error::io("cannot read", path, e))?;
            tls::certificate_fingerprint(&pem)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?
        }
        (None, None) => {
            return Err(usage(
                "give the hub's certificate: --hub-fingerprint HEX or --hub-cert FILE",
            ));
        }
    };
    let pin = tls::parse_pin(&text)
        .ok_or_else(|| usage("--hub-fingerprint is the 32-byte SHA-256 as hex"))?;
    Ok((pin, keyward_core::fingerprint::colon_hex(&pin)))
}

/// A client for the hub given on the command line.
pub fn client(args: &HubArgs) -> CliResult<(HubClient, String)> {
    client_at(&args.hub, args.hub_fingerprint.as_deref(), args.hub_cert.as_deref())
}

/// A client for the hub at `url`, pinned by `--hub-fingerprint` or `--hub-cert` (for commands
/// whose hub is optional), and the pin as text.
pub fn client_at(
    url: &str,
    fingerprint: Option<&str>,
    cert: Option<&Path>,
) -> CliResult<(HubClient, String)> {
    let (pin, pin_text) = pin(fingerprint, cert)?;
    Ok((HubClient::new(url, pin).map_err(CliError::Remote)?, pin_text))
}

/// Loads the box's enrollment (`<keybox>.hub.json`), its identity, and a client for its hub.
pub fn load_enrollment(
    reader: &SecretFiles,
    keybox: &Path,
) -> CliResult<(Enrollment, SigningIdentity, HubClient)> {
    let files = BoxFiles::beside(keybox);
    let enrollment: Enrollment = config::read(&files.enrollment)?;
    let identity = reader.identity(&files.identity)?;
    let (pin, _) = pin(Some(&enrollment.hub_fingerprint), None)?;
    let client = HubClient::new(&enrollment.hub, pin).map_err(CliError::Remote)?;
    Ok((enrollment, identity, client))
}

/// The box's enrollment as [`load_enrollment`] reads it, or `None` when the box is enrolled at
/// no hub (no `<keybox>.hub.json`).
pub fn enrollment_if_any(
    reader: &SecretFiles,
    keybox: &Path,
) -> CliResult<Option<(Enrollment, SigningIdentity, HubClient)>> {
    if !BoxFiles::beside(keybox).enrollment.exists() {
        return Ok(None);
    }
    load_enrollment(reader, keybox).map(Some)
}

/// Writes a new signing identity (0600, never over an existing file).
pub fn write_identity(path: &Path, identity: &SigningIdentity) -> CliResult {
    write_secret(path, &identity.to_file_bytes(), Overwrite::Never)
}

/// Parses `90s`, `30m`, `1h`, `2d` into seconds (at most 30 days).
pub fn parse_ttl(text: &str) -> CliResult<i64> {
    let bad = || usage(format!("`{text}` is not a duration like 30m, 1h or 2d"));
    if !text.is_ascii() || text.len() < 2 {
        return Err(bad());
    }
    let (number, unit) = text.split_at(text.len() - 1);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(usage(format!("`{text}` is not a duration like 30m, 1h or 2d"))),
    };
    let value: i64 = number
        .parse()
        .map_err(|_| usage(format!("`{text}` is not a duration like 30m, 1h or 2d")))?;
    let secs = value.saturating_mul(scale);
    if !(1..=30 * 86400).contains(&secs) {
        return Err(usage("a token or ticket lives between 1 second and 30 days"));
    }
    Ok(secs)
}

/// Operator public keys from text.
pub fn parse_operators(texts: &[String]) -> CliResult<Vec<PublicKey>> {
    texts.iter().map(|t| t.parse().map_err(|e| usage(format!("operator key `{t}`: {e}")))).collect()
}
