//! How the CLI enrolls a pkcs11 slot (the kind itself is in the keyward-pkcs11 crate): which
//! token and key, and the token's PIN.

use std::path::PathBuf;

use clap::Args;
use keyward_pkcs11::{KeyOrigin, NewPkcs11};

use crate::cli::NewSecretArgs;
use crate::exit::{CliError, CliResult, usage};
use crate::kinds::Enroller;
use crate::new_secret::{NewSecret, device_pin, recorded_path};
use crate::output::{Output, progress};
use keyward_box::secrets::SecretFiles;

/// The wrapping key's label when `--key-label` is not given.
const DEFAULT_KEY_LABEL: &str = "keyward";

/// The pkcs11 kind's enrollment.
pub const ENROLLMENT: Enroller =
    Enroller::Secret { options: &["--module", "--token", "--key-label", "--pin-file"], prepare };

/// What a new pkcs11 slot needs (`enroll pkcs11`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "PKCS#11 slot")]
pub struct Pkcs11Args {
    /// The token's PKCS#11 module, a shared library (SoftHSM2's is
    /// /usr/lib/softhsm/libsofthsm2.so); its absolute path is recorded in the slot.
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,

    /// The label of the token that holds the wrapping key.
    #[arg(long, value_name = "LABEL")]
    pub token: Option<String>,

    /// The label of the wrapping key in the token: an AES-256 key that cannot leave it. Used if
    /// it exists (it must be sensitive and not extractable), created inside the token if not.
    /// [default: keyward]
    #[arg(long, value_name = "LABEL")]
    pub key_label: Option<String>,
}

impl Pkcs11Args {
    /// The options given, by name.
    pub fn given(&self) -> impl Iterator<Item = &'static str> {
        [
            ("--module", self.module.is_some()),
            ("--token", self.token.is_some()),
            ("--key-label", self.key_label.is_some()),
        ]
        .into_iter()
        .filter(|(_, is)| *is)
        .map(|(name, _)| name)
    }
}

fn prepare(args: &NewSecretArgs, reader: &SecretFiles, _: &Output) -> CliResult<NewSecret> {
    let token_args = &args.pkcs11;
    let module = token_args
        .module
        .as_ref()
        .ok_or_else(|| usage("a pkcs11 slot needs --module PATH, the token's PKCS#11 library"))?;
    let token = token_args
        .token
        .clone()
        .ok_or_else(|| usage("a pkcs11 slot needs --token LABEL, the token's label"))?;
    let key_label = token_args.key_label.clone().unwrap_or_else(|| DEFAULT_KEY_LABEL.into());
    let (pin, pin_file) = device_pin(args, reader, &format!("token \"{token}\""))?;
    let new = NewPkcs11 { module: recorded_path(module)?, token, key_label, pin, pin_file };
    match new.prepare_key().map_err(CliError::NewSlotDevice)? {
        KeyOrigin::Created => progress(&format!(
            "Created a non-extractable AES-256 key \"{}\" in token \"{}\".",
            new.key_label, new.token
        )),
        KeyOrigin::Existing => progress(&format!(
            "Using the existing key \"{}\" in token \"{}\".",
            new.key_label, new.token
        )),
    }
    Ok(NewSecret::bare(Box::new(new)))
}
