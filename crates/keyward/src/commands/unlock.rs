//! `keyward unlock`: open the keybox and write K. The unlock has already checked K against the
//! keybox's fingerprint and the header MAC; the output file is created only after that.

use keyward_box::fingerprint;
use keyward_pbs::PbsTime;
use serde_json::json;

use crate::auth::open;
use crate::cli::{AuthArgs, KeyFormat, PbsKdfArg, UnlockArgs};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::keyring;
use crate::output::{Overwrite, check_new, encode_plain, progress, write_key};
use crate::pbs;

/// Runs `unlock`.
pub fn run(ctx: &Context, args: &UnlockArgs) -> CliResult {
    // PBS options only make sense together: never write an unencrypted key file when a
    // passphrase was given for it.
    let pbs = args.format == KeyFormat::Pbs;
    if !pbs && (args.kdf.is_some() || args.pbs_passphrase_file.is_some()) {
        return Err(usage("--kdf and --pbs-passphrase-file apply to --format pbs only"));
    }
    let kdf = args.kdf.unwrap_or(PbsKdfArg::None);
    if args.pbs_passphrase_file.is_some() && kdf != PbsKdfArg::Scrypt {
        return Err(usage(
            "--pbs-passphrase-file needs --kdf scrypt (without it the key file is written unencrypted)",
        ));
    }
    // The output is checked before anything is opened or asked for.
    if let Some(out) = &args.out {
        check_new(out, Overwrite::from_force(args.force))?;
    }
    let store = ctx.store();
    let keybox = store.load()?;
    let reader = &ctx.reader;
    let unlocked =
        open(&AuthArgs::from(&args.open), &keybox, store.path(), reader, "to hand out its key")?;
    let key = unlocked.key();

    // The unlock checked K against the keybox's fingerprint; a caller may also name the key
    // it expects, so a keybox swapped for another (with its own valid MAC) is caught too.
    if let Some(expected) = &args.expect_fingerprint {
        fingerprint::gate(key, &[("--expect-fingerprint".into(), expected.clone())])?;
    }

    if let Some(ring) = args.to_keyring {
        if args.format != KeyFormat::Raw {
            return Err(usage("--to-keyring loads the raw key; leave out --format"));
        }
        let description =
            args.description.clone().unwrap_or_else(|| format!("keyward:{}", keybox.header().id));
        let loaded = keyring::load(key.expose(), ring, args.key_type, &description, args.timeout)?;
        ctx.out.line(format!(
            "Loaded key {} into {} as a {} key \"{}\", for {} s",
            key.fingerprint().short(),
            loaded.ring,
            args.key_type.name(),
            loaded.description,
            args.timeout.as_secs()
        ))?;
        return ctx.out.json(&json!({
            "keyring": loaded.ring,
            "key_type": args.key_type.name(),
            "description": loaded.description,
            "timeout_s": args.timeout.as_secs(),
            "fingerprint": key.fingerprint().to_string(),
        }));
    }
    let out = args.out.as_ref().ok_or_else(|| usage("give --out FILE|- or --to-keyring"))?;

    let encoded = match encode_plain(key.expose(), args.format) {
        Some(encoded) => encoded,
        None => {
            let record = keybox.header().pbs.as_ref();
            keyward_box::escrow::check_exportable(key, record)?;
            let now = PbsTime::now(ctx.local_offset);
            pbs::key_file_bytes(
                key,
                kdf,
                args.pbs_passphrase_file.as_deref(),
                reader,
                pbs::created_time(record, &now),
                now,
            )?
        }
    };
    write_key(out, &encoded, args.format, Overwrite::from_force(args.force))?;
    progress(&format!(
        "Opened slot {}; key {} written to {}",
        unlocked.opened_by(),
        key.fingerprint().short(),
        out.display()
    ));
    Ok(())
}
