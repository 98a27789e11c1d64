//! Glue between the commands and keyward-hub: pinning, the box's
//! enrollment files beside its keybox, operator key files, durations, and client errors.

use std::path::{Path, PathBuf};

use keyward_hub::client::HubClient;
use keyward_service::{PublicKey, SigningIdentity};
use keyward_service::{statement, tls};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cli::HubArgs;
use crate::exit::{CliError, CliResult, usage};
use crate::output::{Overwrite, write_secret};
use crate::secret_input::SecretReader;

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
    let (pin, pin_text) = pin(args.hub_fingerprint.as_deref(), args.hub_cert.as_deref())?;
    Ok((HubClient::new(&args.hub, pin).map_err(CliError::Remote)?, pin_text))
}

/// What a box remembers about its hub, beside its keybox (not secret).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The box's name at the hub.
    #[serde(rename = "box")]
    pub box_name: String,
    /// The hub's URL.
    pub hub: String,
    /// The pinned certificate hash.
    pub hub_fingerprint: String,
}

/// The files of a box's enrollment: `<keybox>.hub.json` and the secret `<keybox>.box-key`.
pub fn enrollment_paths(keybox: &Path) -> (PathBuf, PathBuf) {
    let name = keybox.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (
        keybox.with_file_name(format!("{name}.hub.json")),
        keybox.with_file_name(format!("{name}.box-key")),
    )
}

/// Loads the box's enrollment and identity.
pub fn load_enrollment(
    reader: &SecretReader,
    keybox: &Path,
) -> CliResult<(Enrollment, SigningIdentity, HubClient)> {
    let (info_path, key_path) = enrollment_paths(keybox);
    let info = std::fs::read(&info_path).map_err(|e| {
        keyward_core::Error::io(
            "cannot read (enroll with `keyward escrow enroll` first)",
            &info_path,
            e,
        )
    })?;
    let enrollment: Enrollment = serde_json::from_slice(&info)
        .map_err(|e| usage(format!("{}: {e}", info_path.display())))?;
    let identity = read_identity(reader, &key_path)?;
    let (pin, _) = pin(Some(&enrollment.hub_fingerprint), None)?;
    let client = HubClient::new(&enrollment.hub, pin).map_err(CliError::Remote)?;
    Ok((enrollment, identity, client))
}

/// Reads a signing identity (an operator's or a box's) from a 0600 file.
pub fn read_identity(reader: &SecretReader, path: &Path) -> CliResult<SigningIdentity> {
    let bytes = reader.bytes(path)?;
    SigningIdentity::from_file_bytes(&bytes).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Writes a new signing identity (0600, never over an existing file).
pub fn write_identity(path: &Path, identity: &SigningIdentity) -> CliResult {
    write_secret(path, &identity.to_file_bytes(), Overwrite::Never)
}

/// Reads a statement file — a token or ticket — (kept in wiped memory: until it is used it is
/// a credential).
pub fn read_ticket(reader: &SecretReader, path: &Path) -> CliResult<Zeroizing<String>> {
    let bytes = reader.bytes(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| usage(format!("{} is not a token or ticket (not text)", path.display())))?;
    Ok(Zeroizing::new(text.trim().to_string()))
}

/// Reads a ticket for `box_name`, and what it says. The statement is read without being
/// trusted (the hub or peer verifies it), only so a ticket for another box is not spent.
pub fn read_ticket_for(
    reader: &SecretReader,
    path: &Path,
    box_name: &str,
) -> CliResult<(Zeroizing<String>, Option<statement::Statement>)> {
    let ticket = read_ticket(reader, path)?;
    let claimed = statement::peek(&ticket);
    if let Some(claimed) = &claimed
        && claimed.box_name() != box_name
    {
        return Err(usage(format!("the ticket is for {}, not {box_name}", claimed.box_name())));
    }
    Ok((ticket, claimed))
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
