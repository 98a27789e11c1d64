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

    let key = unlocked.key().expose();
    let encoded = match args.format {
        KeyFormat::Raw => Zeroizing::new(key.to_vec()),
        KeyFormat::Hex => Zeroizing::new(format!("{}\n", to_hex(key)).into_bytes()),
        KeyFormat::Base64 => Zeroizing::new(
            format!(
                "{}\n",
                base64::engine::general_purpose::STANDARD.encode(key)
            )
            .into_bytes(),
        ),
    };
    write_secret(&args.out, &encoded, args.force)?;
    progress(&format!(
        "Opened slot {}; key {} written to {}",
        unlocked.opened_by(),
        unlocked.key().fingerprint().short(),
        args.out.display()
    ));
    Ok(())
}
