//! How the CLI enrolls a tpm2 slot (the kind itself is in the keyward-tpm2 crate), and
//! `keyward tpm2 reseal`: the same slot sealed again to today's PCR values.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use keyward_core::slot::SlotId;
use keyward_core::slot::{DeviceError, SlotError};
use keyward_core::{Error as CoreError, Passphrase, operations};
use keyward_peer::api::Attestation;
use keyward_tpm2::{
    Bank, DEFAULT_DEVICE, DEVICE_VARIABLE, NewTpm2, TPM2, Tpm, Tpm2Params, parse_pcrs, pcr_digest,
    pcr_text,
};
use serde_json::json;

use crate::auth::{authorization, open};
use crate::cli::{AuthArgs, NewSecretArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, usage};
use crate::kinds::Enroller;
use crate::new_secret::NewSecret;
use crate::output::Output;
use crate::secret_input::prompt_new_secret;
use keyward_box::secrets::SecretFiles;
use keyward_box::unlock::Companions;

/// The tpm2 kind's enrollment.
pub const ENROLLMENT: Enroller =
    Enroller::Secret { options: &["--tpm2-device", "--pcrs", "--with-pin", "--pin-file"], prepare };

/// What a new tpm2 slot needs (`enroll tpm2`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TPM2 slot")]
pub struct Tpm2Args {
    /// The TPM: a device path, or a TCTI string such as `swtpm:host=127.0.0.1,port=2321`;
    /// recorded in the slot, so `unlock` finds it. [default: $KEYWARD_TPM2_DEVICE, else
    /// /dev/tpmrm0]
    #[arg(long, value_name = "DEVICE")]
    pub tpm2_device: Option<String>,

    /// The PCRs the key is sealed to, as systemd writes them: `7`, `7+11`, or with a bank,
    /// `sha1:0+7` [default: sha256:7, the Secure Boot state].
    #[arg(long, value_name = "LIST")]
    pub pcrs: Option<String>,

    /// Also require a PIN (asked twice, or from --pin-file); wrong PINs count toward the TPM's
    /// dictionary-attack lockout. Without it the slot opens unattended.
    #[arg(long)]
    pub with_pin: bool,
}

impl Tpm2Args {
    /// The TPM and the PCR selection chosen (or their defaults).
    fn chosen(&self) -> CliResult<(String, Bank, Vec<u8>)> {
        let device = match &self.tpm2_device {
            Some(device) => device.clone(),
            None => std::env::var(DEVICE_VARIABLE).unwrap_or_else(|_| DEFAULT_DEVICE.to_string()),
        };
        let pcrs = self.pcrs.as_deref().unwrap_or("7");
        let (bank, pcrs) = parse_pcrs(pcrs).ok_or_else(|| {
            usage(format!(
                "--pcrs {pcrs} is not a PCR list: give indices 0-23 joined by +, optionally after \
                 a bank (sha1, sha256, sha384), such as 7+11 or sha256:7"
            ))
        })?;
        Ok((device, bank, pcrs))
    }

    /// The options given, by name.
    pub fn given(&self) -> impl Iterator<Item = &'static str> {
        [
            ("--tpm2-device", self.tpm2_device.is_some()),
            ("--pcrs", self.pcrs.is_some()),
            ("--with-pin", self.with_pin),
        ]
        .into_iter()
        .filter(|(_, is)| *is)
        .map(|(name, _)| name)
    }
}

/// `keyward tpm2 …`.
#[derive(Debug, Subcommand)]
pub enum Tpm2Command {
    /// Seal a tpm2 slot again to today's PCR values, with the same device, PCR list, PIN
    /// requirement and rollback counter (after an expected firmware or boot change),
    /// authorised by another slot.
    Reseal(ResealArgs),
}

/// `keyward tpm2 reseal`.
#[derive(Debug, Args)]
pub struct ResealArgs {
    /// The tpm2 slot (id or label).
    pub slot: String,

    /// For a slot with a PIN: the PIN, from F (`-` for stdin) instead of asking twice.
    #[arg(long, value_name = "F")]
    pub pin_file: Option<PathBuf>,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Runs `keyward tpm2 …`.
pub fn run(ctx: &Context, command: &Tpm2Command) -> CliResult {
    match command {
        Tpm2Command::Reseal(args) => reseal(ctx, args),
    }
}

fn prepare(args: &NewSecretArgs, reader: &SecretFiles, _: &Output) -> CliResult<NewSecret> {
    let tpm = &args.tpm2;
    let (device, bank, pcrs) = tpm.chosen()?;
    if args.pin_file.is_some() && !tpm.with_pin {
        return Err(usage("--pin-file needs --with-pin for a tpm2 slot"));
    }
    let pin = if tpm.with_pin { Some(new_pin(args.pin_file.as_deref(), reader)?) } else { None };
    // Named on the command line (or in the environment): the check before the commit, which
    // opens the new slot, may use it even over the network.
    keyward_tpm2::name_device(&device);
    Ok(NewSecret::bare(Box::new(NewTpm2 { device, bank, pcrs, pin })))
}

/// A new PIN for a TPM slot: from a file (never recorded: a PIN next to the TPM would make it
/// pointless), else typed twice.
fn new_pin(path: Option<&Path>, reader: &SecretFiles) -> CliResult<Passphrase> {
    let pin = match path {
        Some(path) => reader.passphrase(path)?,
        None => prompt_new_secret("TPM PIN")?,
    };
    if pin.expose().is_empty() {
        return Err(usage("the PIN is empty; give one, or enroll without --with-pin"));
    }
    Ok(pin)
}

fn reseal(ctx: &Context, args: &ResealArgs) -> CliResult {
    let store = ctx.store();
    let current = store.load()?;
    let target = current.find_slot(&args.slot)?.clone();
    if target.protection.kind != TPM2 {
        return Err(usage(format!(
            "slot {} is a {} slot; `keyward tpm2 reseal` reseals tpm2 slots (see `keyward rotate`)",
            target.id, target.protection.kind
        )));
    }
    let old = Tpm2Params::of(&target.protection)
        .map_err(|what| CoreError::Integrity { path: store.path().to_path_buf(), what })?;
    if args.pin_file.is_some() && !old.has_pin() {
        return Err(usage(format!("slot {} has no PIN; leave out --pin-file", target.id)));
    }
    let opened = open(&args.auth, &current, store.path(), &ctx.reader, "to authorise the reseal")?;
    let pin =
        if old.has_pin() { Some(new_pin(args.pin_file.as_deref(), &ctx.reader)?) } else { None };
    // The keybox opened and its MAC held: the slot's TPM is the one to use.
    keyward_tpm2::name_device(&old.device);
    // The same device, so the slot keeps its counter, moved past the file it replaces.
    let new = NewTpm2 { device: old.device.clone(), bank: old.bank, pcrs: old.pcrs.clone(), pin };
    let mut companions = Companions::new(&ctx.reader, store.path());
    let auth = authorization(&opened)?;
    let next = operations::rotate(&store, &auth, &args.slot, &new, &mut companions)?;
    let SlotId(id) = target.id;
    ctx.out.line(format!(
        "Resealed slot {id} (\"{}\") to today's values of PCRs {}",
        target.label,
        pcr_text(old.bank, &old.pcrs)
    ))?;
    ctx.out.json(&json!({
        "keybox": ctx.keybox,
        "slot": id,
        "pcrs": pcr_text(old.bank, &old.pcrs),
        "generation": next.keybox().generation(),
    }))
}

/// What a `tpm-quote` peers set is released against: this TPM's attestation key and today's
/// values of the chosen PCRs (`enroll peers --policy tpm-quote [--tpm2-device D] [--pcrs L]`).
pub fn attestation(args: &Tpm2Args) -> CliResult<Attestation> {
    let (device, bank, pcrs) = args.chosen()?;
    let absent = |e: String| {
        CliError::NewSlotDevice(SlotError::Device(DeviceError::Absent(format!(
            "{e} (pass --tpm2-device or set KEYWARD_TPM2_DEVICE)"
        ))))
    };
    let mut tpm = Tpm::open(&device).map_err(|e| absent(e.to_string()))?;
    let key = tpm.attestation_key().map_err(|e| absent(e.to_string()))?;
    let values = tpm.pcr_values(bank, &pcrs).map_err(|e| absent(e.to_string()))?;
    Ok(Attestation {
        key: keyward_core::encoding::to_base64(&key),
        pcrs: pcr_text(bank, &pcrs),
        pcr_digest: keyward_core::encoding::to_hex(&pcr_digest(&values)),
    })
}
