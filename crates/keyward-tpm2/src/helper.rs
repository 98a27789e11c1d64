//! The calls the tpm2 kind makes to its helper (`keyward-tpm2-helper`), and the replies: the
//! bodies of the frames of docs/formats/helper.md. `Open` comes first and is answered with
//! [`Answer::Opened`]; every other call with [`Answer::Replied`].

use keyward_helper::SecretBytes;
use serde::{Deserialize, Serialize};

use crate::attest::Quote;
use crate::tpm::{Bank, Lockout, Sealed, TpmFailure, Unreachable};

/// A call to the helper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "call")]
pub enum Call {
    /// Connect to the TPM at `device` (a path or a TCTI string).
    Open {
        /// The device.
        device: String,
    },
    /// Read PCR values.
    PcrValues {
        /// The bank.
        bank: Bank,
        /// The PCRs, in the order wanted.
        pcrs: Vec<u8>,
    },
    /// Seal `secret` to the current values of `pcrs`, and to `auth` when given.
    Seal {
        /// The bank.
        bank: Bank,
        /// The PCRs of the policy.
        pcrs: Vec<u8>,
        /// A PIN's digest, the object's authorisation value.
        auth: Option<SecretBytes>,
        /// The secret.
        secret: SecretBytes,
    },
    /// Unseal `sealed` under its policy.
    Unseal {
        /// The object.
        sealed: Sealed,
        /// The bank.
        bank: Bank,
        /// The PCRs of the policy.
        pcrs: Vec<u8>,
        /// The PIN's digest, when the slot has one.
        auth: Option<SecretBytes>,
    },
    /// Define a new NV counter.
    DefineCounter,
    /// Read the counter at `index`.
    Counter {
        /// The NV index.
        index: u32,
    },
    /// Delete the counter at `index`.
    UndefineCounter {
        /// The NV index.
        index: u32,
    },
    /// Whether the storage key is the one named `name`.
    HasStorageKey {
        /// The key's TPM name.
        #[serde(with = "keyward_core::encoding::base64_bytes")]
        name: Vec<u8>,
    },
    /// Add one to the counter at `index`.
    Increment {
        /// The NV index.
        index: u32,
    },
    /// The dictionary-attack state.
    Lockout,
    /// The attestation key's public point.
    AttestationKey,
    /// A quote over `challenge` and `pcrs`.
    Quote {
        /// The verifier's challenge.
        #[serde(with = "keyward_core::encoding::base64_bytes")]
        challenge: Vec<u8>,
        /// The bank.
        bank: Bank,
        /// The PCRs quoted.
        pcrs: Vec<u8>,
    },
}

/// The helper's answer to a call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// To `Open`: connected, or why not.
    Opened(Result<(), Unreachable>),
    /// To any other call.
    Replied(Result<Reply, TpmFailure>),
}

/// Bytes that are not secret, as base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(#[serde(with = "keyward_core::encoding::base64_bytes")] pub Vec<u8>);

/// What a call returns.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply", content = "value")]
pub enum Reply {
    /// For `PcrValues`: the values, in the order asked.
    PcrValues(Vec<Bytes>),
    /// For `Seal`.
    Sealed(Sealed),
    /// For `Unseal`: the secret.
    Unsealed(SecretBytes),
    /// For `DefineCounter`: the index.
    Index(u32),
    /// For `Counter`: its value.
    Counter(u64),
    /// For `UndefineCounter` and `Increment`.
    Done,
    /// For `HasStorageKey`.
    Yes(bool),
    /// For `Lockout`.
    Lockout(Option<Lockout>),
    /// For `AttestationKey`: the point, SEC1 uncompressed.
    AttestationKey(Bytes),
    /// For `Quote`.
    Quote(Quote),
}

impl Reply {
    /// The reply's name, for an error that says which came.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::PcrValues(_) => "pcr_values",
            Reply::Sealed(_) => "sealed",
            Reply::Unsealed(_) => "unsealed",
            Reply::Index(_) => "index",
            Reply::Counter(_) => "counter",
            Reply::Done => "done",
            Reply::Yes(_) => "yes",
            Reply::Lockout(_) => "lockout",
            Reply::AttestationKey(_) => "attestation_key",
            Reply::Quote(_) => "quote",
        }
    }
}
