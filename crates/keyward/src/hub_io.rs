//! Glue between the commands and keyward-hub: the hubs and the operator key from the command
//! line or the profile, pinning, the box's enrollment (its files are keyward_box::config's),
//! identity files, durations.

use std::path::Path;

use keyward_hub::client::Hubs;
use keyward_service::addresses::HubAddress;
use keyward_service::tls;
use keyward_service::{PublicKey, SigningIdentity};

use crate::cli::HubArgs;
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::output::{Overwrite, write_secret};

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

/// The hubs given on the command line: each `--hub` with the `--hub-fingerprint` (or
/// `--hub-cert`) in the same position. Empty when none is given.
pub fn given_hubs(args: &HubArgs) -> CliResult<Vec<HubAddress>> {
    let pins = args.hub_fingerprints.len() + args.hub_certs.len();
    if pins != args.hubs.len() {
        return Err(usage(format!(
            "give each --hub its certificate's --hub-fingerprint (or --hub-cert), in the same order: {} hub(s), {pins} pin(s)",
            args.hubs.len()
        )));
    }
    let fingerprints = args.hub_fingerprints.iter().map(|fp| pin(Some(fp), None));
    let certs = args.hub_certs.iter().map(|cert| pin(None, Some(cert)));
    args.hubs
        .iter()
        .zip(fingerprints.chain(certs))
        .map(|(url, pinned)| Ok(HubAddress { url: url.clone(), fingerprint: pinned?.1 }))
        .collect()
}

/// The hubs on the command line, else the profile's; an error saying how to name them when
/// there are none.
pub fn hubs(ctx: &Context, args: &HubArgs) -> CliResult<Vec<HubAddress>> {
    let given = given_hubs(args)?;
    if !given.is_empty() {
        return Ok(given);
    }
    match ctx.profile()? {
        Some(chosen) if !chosen.profile.hubs.is_empty() => Ok(chosen.profile.hubs.clone()),
        Some(chosen) => Err(usage(format!(
            "profile `{}` ({}) names no hub: give --hub URL --hub-fingerprint HEX",
            chosen.name,
            chosen.file.display()
        ))),
        None => Err(usage(
            "give the hub: --hub URL --hub-fingerprint HEX (repeat for several), or a profile that lists them (--profile, docs/formats/config.md)",
        )),
    }
}

/// Clients for `hubs`, tried in order.
pub fn connect(hubs: &[HubAddress]) -> CliResult<Hubs> {
    Hubs::new(hubs).map_err(CliError::Remote)
}

/// The operator's key: `--key`, else the profile's `operator_key`.
pub fn operator_key(ctx: &Context, given: Option<&Path>) -> CliResult<SigningIdentity> {
    let path = match (given, ctx.profile()?) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(chosen)) => match &chosen.profile.operator_key {
            Some(path) => path.clone(),
            None => {
                return Err(usage(format!(
                    "profile `{}` names no operator_key: give --key FILE",
                    chosen.name
                )));
            }
        },
        (None, None) => {
            return Err(usage("give the operator's key: --key FILE, or a profile that names it"));
        }
    };
    Ok(ctx.reader.identity(&path)?)
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

/// Parses an age back from now (`12h`, `2d`, `90d`) into seconds, up to ten years.
pub fn parse_age(text: &str) -> CliResult<i64> {
    let bad = || usage(format!("`{text}` is not an age like 12h, 2d or 90d"));
    let split = text.len().checked_sub(1).filter(|_| text.is_ascii()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    let secs = number.parse::<i64>().map_err(|_| bad())?.saturating_mul(scale);
    if !(1..=3650 * 86400).contains(&secs) {
        return Err(usage("an age is between 1 second and ten years"));
    }
    Ok(secs)
}

/// Operator public keys from text.
pub fn parse_operators(texts: &[String]) -> CliResult<Vec<PublicKey>> {
    texts.iter().map(|t| t.parse().map_err(|e| usage(format!("operator key `{t}`: {e}")))).collect()
}
