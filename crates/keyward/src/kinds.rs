//! The slot kinds this keyward offers, one line each: the kind (its stored form, how it opens,
//! from keyward-core or its own crate) and how the CLI enrolls one. `main` registers the kinds
//! that are not keyward-core's own; `enroll`, `init` and `rotate` find a kind's enrollment here.

pub mod pkcs11;
pub mod tpm2;

use clap::builder::{PossibleValue, PossibleValuesParser};
use keyward_core::slot::{
    KeyfileKind, PassphraseKind, PlainKind, RecoveryCodeKind, SlotKind, registry,
};
use keyward_peer::slot::PeersKind;

use crate::cli::{EnrollArgs, NewSecretArgs};
use crate::context::Context;
use crate::exit::{CliResult, usage};
use crate::new_secret::{self, NewSecret};
use crate::output::Output;
use keyward_box::secrets::SecretFiles;

/// A kind and how the CLI enrolls it.
pub struct CliKind {
    /// The kind.
    pub kind: &'static dyn SlotKind,
    /// How a slot of it is made.
    pub enroll: Enroller,
}

/// How the CLI makes a slot of a kind.
pub enum Enroller {
    /// Its secret is gathered first (from the options named, a prompt, a device), then the
    /// slot is sealed and committed like any other; `rotate` works the same way.
    Secret {
        /// The enroll options it takes (others given are refused).
        options: &'static [&'static str],
        /// Gathers the secret.
        prepare: fn(&NewSecretArgs, &SecretFiles, &Output) -> CliResult<NewSecret>,
    },
    /// A flow of its own (a peers slot places its shares first), added to an existing keybox.
    Command {
        /// The enroll options it takes.
        options: &'static [&'static str],
        /// Runs `enroll`.
        run: fn(&Context, &EnrollArgs) -> CliResult,
        /// What to run instead of `rotate`.
        rotate_with: &'static str,
    },
}

impl CliKind {
    /// Refuses, before anything is asked or written, an option given (by name) that this kind
    /// does not take.
    pub fn check_options(&self, given: &[&str]) -> CliResult {
        let (Enroller::Secret { options, .. } | Enroller::Command { options, .. }) = &self.enroll;
        match given.iter().find(|o| !options.contains(o)) {
            Some(option) => {
                Err(usage(format!("{option} does not apply to a {} slot", self.kind.name())))
            }
            None => Ok(()),
        }
    }
}

/// Every kind, in the order `--help` shows them.
pub static KINDS: &[CliKind] = &[
    CliKind { kind: &RecoveryCodeKind, enroll: new_secret::RECOVERY_CODE },
    CliKind { kind: &PassphraseKind, enroll: new_secret::PASSPHRASE },
    CliKind { kind: &KeyfileKind, enroll: new_secret::KEYFILE },
    CliKind { kind: &PlainKind, enroll: new_secret::PLAIN },
    CliKind { kind: &PeersKind, enroll: crate::commands::peers::ENROLLMENT },
    CliKind { kind: &keyward_pkcs11::Pkcs11Kind, enroll: pkcs11::ENROLLMENT },
    CliKind { kind: &keyward_tpm2::Tpm2Kind, enroll: tpm2::ENROLLMENT },
];

/// Registers the kinds keyward-core does not have itself. Called once, first thing in `main`,
/// while the process has one thread.
pub fn register() {
    let added: Vec<&'static dyn SlotKind> =
        KINDS.iter().map(|k| k.kind).filter(|k| registry::find(k.name()).is_none()).collect();
    // One list per process, kept for its life.
    let added: &'static [&'static dyn SlotKind] = Box::leak(added.into_boxed_slice());
    // Only a second, different list fails, and `main` registers once.
    let _ = registry::register(added);
}

/// The kind called `name`.
pub fn find(name: &str) -> Option<&'static CliKind> {
    KINDS.iter().find(|k| k.kind.name() == name)
}

/// The kind called `name` on the command line (clap has checked it is one of [`KINDS`]).
pub fn named(name: &str) -> CliResult<&'static CliKind> {
    find(name).ok_or_else(|| usage(format!("this keyward does not make {name} slots")))
}

/// The value parser for a KIND argument: the names, each with its one-line help.
pub fn parser() -> PossibleValuesParser {
    PossibleValuesParser::new(
        KINDS.iter().map(|k| PossibleValue::new(k.kind.name()).help(k.kind.about())),
    )
}
