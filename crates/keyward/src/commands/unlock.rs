//! `keyward unlock`: open the keybox and write K. The unlock has already checked K against the
//! keybox's fingerprint and the header MAC; the output file is created only after that.

use base64::Engine as _;
use keyward_core::encoding::to_hex;
use zeroize::Zeroizing;

use crate::auth::{attempts, with_first_that_opens};
use crate::cli::{AuthArgs, KeyFormat, UnlockArgs};
use crate::context::Context;
use crate::exit::CliResult;
use crate::output::{progress, write_secret};
use crate::secret_input::SecretReader;

/// Runs `unlock`.
pub fn run(ctx: &Context, args: &UnlockArgs) -> CliResult {
    let store = ctx.store();
    let keybox = store.load()?;
    let tries = attempts(&AuthArgs::from(&args.open), &keybox, &SecretReader::new())?;
    let unlocked = with_first_that_opens(&tries, |auth| {
        keybox.unlock(&auth.unlocker, auth.slot, store.path())
    })?;

    // The unlock checked K against the keybox's fingerprint; a caller may also name the key
    // it expects, so a keybox swapped for another (with its own valid MAC) is caught too.
    if let Some(expected) = &args.expect_fingerprint {
        let found = unlocked.key().fingerprint();
        if !found.matches(expected) {
            return Err(keyward_core::Error::FingerprintMismatch {
                expected: expected.to_string(),
                found: found.to_string(),
            }
            .into());
        }
    }

    let key = unlocked.key().expose();
    let mut encoded = Zeroizing::new(match args.format {
        KeyFormat::Raw => key.to_vec(),
        KeyFormat::Hex => to_hex(key).into_bytes(),
        KeyFormat::Base64 => base64::engine::general_purpose::STANDARD
            .encode(key)
            .into_bytes(),
    });
    if args.format != KeyFormat::Raw {
        encoded.push(b'\n');
    }
    write_secret(&args.out, &encoded, args.force)?;
    progress(&format!(
        "Opened slot {}; key {} written to {}",
        unlocked.opened_by(),
        unlocked.key().fingerprint().short(),
        args.out.display()
    ));
    Ok(())
}
