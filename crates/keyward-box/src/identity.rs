//! The box's identity: one Ed25519 signing key beside its keybox (`<keybox>.box-key`, 0600),
//! which its hub enrollment and its peers slots share. A replacement machine makes its own and
//! shows the public key, and an operator's takeover names exactly that key; the checks here
//! read a takeover before anything is sent, so a takeover for another box or another machine is
//! refused without a request (the hub and the peers verify it for real).

use std::path::Path;

use keyward_core::store::{RealFs, write_secret_file};
use keyward_service::statement::{self, Statement};
use keyward_service::{PublicKey, SigningIdentity};

use crate::config::BoxFiles;
use crate::error::{BoxResult, invalid};
use crate::secrets::SecretFiles;

/// The box's identity; an error naming the file if it has none.
pub fn read(files: &SecretFiles, keybox: &Path) -> BoxResult<SigningIdentity> {
    files.identity(&BoxFiles::beside(keybox).identity)
}

/// The box's identity, made (0600) if there is none yet; `true` with it if it was made now
/// (a workflow that fails afterwards removes it again).
pub fn read_or_new(files: &SecretFiles, keybox: &Path) -> BoxResult<(SigningIdentity, bool)> {
    let path = BoxFiles::beside(keybox).identity;
    if path.exists() {
        return Ok((files.identity(&path)?, false));
    }
    let identity = SigningIdentity::generate()?;
    write_secret_file(&RealFs, &path, &identity.to_file_bytes(), false)?;
    Ok((identity, true))
}

/// The box's identity for a takeover: it must exist already (a takeover names the key
/// `keyward escrow identity` printed), and `text` must be a takeover of `box_name` naming it.
/// The statement is read without checking its signature (that is for whoever redeems it).
pub fn for_takeover(
    files: &SecretFiles,
    keybox: &Path,
    text: &str,
    box_name: &str,
) -> BoxResult<SigningIdentity> {
    if !BoxFiles::beside(keybox).identity.exists() {
        return Err(invalid(
            "this box has no identity yet, so no takeover can name it: run `keyward escrow identity`, and ask the operator for a takeover naming the key it prints",
        ));
    }
    let identity = read(files, keybox)?;
    check_takeover(text, box_name, &identity.public())?;
    Ok(identity)
}

fn check_takeover(text: &str, box_name: &str, identity: &PublicKey) -> BoxResult {
    match statement::peek(text) {
        Some(Statement::Takeover { box_name: named, identity: named_identity, .. }) => {
            if named != box_name {
                return Err(invalid(format!(
                    "the takeover is for {named}, not {box_name}; give --box {named}, or ask the operator for a takeover of {box_name}"
                )));
            }
            if named_identity != *identity {
                return Err(invalid(format!(
                    "the takeover names identity {named_identity}, and this box's is {identity}; ask the operator for a takeover naming this one (`keyward escrow identity` prints it)"
                )));
            }
            Ok(())
        }
        Some(other) => Err(invalid(format!(
            "the takeover file holds {} for {}, not a takeover; ask the operator for one (`keyward operator takeover`)",
            other.kind(),
            other.box_name()
        ))),
        None => Err(invalid("the takeover file holds no operator statement")),
    }
}
