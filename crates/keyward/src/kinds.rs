//! The slot kinds this keyward offers, one line each: the kind (its stored form, how it opens,
//! from keyward-core or its own crate) and how the CLI enrolls one. `main` registers the kinds
//! that are not keyward-core's own; `enroll`, `init` and `rotate` find a kind's enrollment here.

use clap::builder::{PossibleValue, PossibleValuesParser};
use keyward_core::slot::{
    KeyfileKind, PassphraseKind, PlainKind, RecoveryCodeKind, SlotKind, registry,
};
use keyward_peer::slot::PeersKind;

use crate::cli::{EnrollArgs, NewSecretArgs};
use crate::context::Context;
use crate::exit::CliResult;
use crate::new_secret::{self, NewSecret};
use crate::output::Output;
use crate::secret_input::SecretReader;

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
        prepare: fn(&NewSecretArgs, &SecretReader, &Output) -> CliResult<NewSecret>,
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

impl Enroller {
    /// The enroll options it takes.
    pub fn options(&self) -> &'static [&'static str] {
        match self {
            Enroller::Secret { options, .. } | Enroller::Command { options, .. } => options,
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
];

/// Registers the kinds keyward-core does not have itself. Called once, first thing in `main`.
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

/// The value parser for a KIND argument: the names, each with its one-line help.
pub fn parser() -> PossibleValuesParser {
    PossibleValuesParser::new(
        KINDS.iter().map(|k| PossibleValue::new(k.kind.name()).help(k.kind.about())),
    )
}
