//! The TPM as the tpm2 kind sees it: a [`Tpm`] reached through keyward's tpm2 helper, which does
//! the TSS work in a process of its own (docs/formats/helper.md), and the values that cross to it.
//! Nothing here links the TSS: a keyward process that opens no tpm2 slot never loads it.

use std::sync::Mutex;

use keyward_helper::{Helper, HelperError, SecretBytes};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::attest::Quote;
use crate::helper::{Answer, Call, Reply};

/// The helper executable, installed beside `keyward`.
pub const HELPER: &str = "keyward-tpm2-helper";

/// The device used when none is given.
pub const DEFAULT_DEVICE: &str = "/dev/tpmrm0";

/// The environment variable that names the TPM (a new slot's, the box's for quotes), and that
/// must name a slot's TPM when it is not a local device.
pub const DEVICE_VARIABLE: &str = "KEYWARD_TPM2_DEVICE";

/// Whether `device` is this machine's own TPM (a device node, or the local resource manager),
/// not one reached over the network.
fn is_local_device(device: &str) -> bool {
    device.starts_with('/') || device.starts_with("device:") || device.starts_with("tabrmd")
}

/// TPMs this process was told to use besides its environment's (see [`name_device`]).
static NAMED_DEVICES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records that the person named `device` (on the command line, or through a keybox whose MAC
/// held), so a slot may use it even if it is reached over the network.
pub fn name_device(device: &str) {
    if let Ok(mut named) = NAMED_DEVICES.lock() {
        named.push(device.to_string());
    }
}

/// Whether a slot may use `device`: a local TPM, or one [`DEVICE_VARIABLE`] or
/// [`name_device`] names. A slot's record is read before the keybox's MAC can be checked, so
/// a TPM over the network chosen by the file alone is not used.
pub fn may_use_device(device: &str) -> bool {
    is_local_device(device)
        || std::env::var(DEVICE_VARIABLE).is_ok_and(|named| named == device)
        || NAMED_DEVICES.lock().is_ok_and(|named| named.iter().any(|d| d == device))
}

/// A PCR bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bank {
    /// SHA-1 (old TPMs and firmware).
    Sha1,
    /// SHA-256, the default.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl Bank {
    /// The bank's name, as in `sha256:7+11`.
    pub fn name(self) -> &'static str {
        match self {
            Bank::Sha1 => "sha1",
            Bank::Sha256 => "sha256",
            Bank::Sha384 => "sha384",
        }
    }

    /// The bank called `name`.
    pub fn named(name: &str) -> Option<Bank> {
        [Bank::Sha1, Bank::Sha256, Bank::Sha384].into_iter().find(|b| b.name() == name)
    }

    /// Length of one PCR value in this bank.
    pub fn digest_len(self) -> usize {
        match self {
            Bank::Sha1 => 20,
            Bank::Sha256 => 32,
            Bank::Sha384 => 48,
        }
    }

    /// The bank's hash algorithm as the TPM names it (TPM_ALG_ID), as a quote carries it.
    pub fn tpm_alg_id(self) -> u16 {
        match self {
            Bank::Sha1 => 0x0004,
            Bank::Sha256 => 0x000B,
            Bank::Sha384 => 0x000C,
        }
    }
}

/// A failed TPM step: what was being done, and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{what}: {cause}")]
pub struct TpmFailure {
    /// What keyward was doing.
    pub what: String,
    /// Why it failed.
    #[source]
    pub cause: Cause,
}

/// Why a TPM step failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The TPM (or the TSS) answered with an error.
    #[error("{text}")]
    Tss {
        /// The TPM's response code, as far as keyward tells them apart.
        code: Option<ResponseCode>,
        /// The TSS's words for it.
        text: String,
    },
    /// The unseal's authorisation (the PIN) was wrong; the TPM counted it toward its lockout.
    #[error("the authorisation value (the PIN) is wrong")]
    WrongAuth,
    /// The storage key at hand is not the one the object was sealed under.
    #[error("the TPM's storage key is not the one this slot was sealed under")]
    OtherStorageKey,
    /// The NV index is not a counter: something replaced it.
    #[error("the NV index is not a counter (it was replaced)")]
    NotACounter,
    /// The slot's sealed object does not read, or the TPM (under the right storage key) does
    /// not load it: its bytes were changed.
    #[error("the sealed object does not load: {0}")]
    BadSealedObject(String),
    /// The TPM answered with something it should not (a short read, another scheme).
    #[error("the TPM answered with {0}")]
    Unexpected(String),
    /// The helper that speaks to the TPM failed.
    #[error("{0}")]
    Helper(String),
}

/// The TPM response codes the kind acts on; the helper maps the TSS's codes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseCode {
    /// "Not now" rather than "no": busy, yielded, cancelled, NV rate-limited, out of room.
    Busy,
    /// In dictionary-attack lockout.
    Lockout,
    /// A handle that is not there (an NV index deleted).
    Handle,
    /// The policy session does not satisfy the object's policy.
    PolicyFail,
    /// The PCRs changed while the policy session was open.
    PcrChanged,
    /// Any other.
    Other,
}

impl TpmFailure {
    /// A failure of keyward's own checks of the TPM's answers.
    pub fn local(what: &str, cause: Cause) -> Self {
        TpmFailure { what: what.to_string(), cause }
    }

    /// Which kind of failure it is: the TPM busy is unavailable, in lockout a refusal; what
    /// the slot does not map to its device family is the TPM failing unexpectedly.
    pub fn class(&self) -> keyward_core::ErrorClass {
        use keyward_core::ErrorClass;
        match self.kind() {
            Some(ResponseCode::Busy) => ErrorClass::Unavailable,
            Some(ResponseCode::Lockout) => ErrorClass::Refused,
            _ => match self.cause {
                Cause::BadSealedObject(_) => ErrorClass::Integrity,
                Cause::OtherStorageKey => ErrorClass::Unavailable,
                Cause::Tss { .. }
                | Cause::WrongAuth
                | Cause::NotACounter
                | Cause::Unexpected(_)
                | Cause::Helper(_) => ErrorClass::Internal,
            },
        }
    }

    /// The TPM's response code, when the TPM answered with an error.
    pub fn kind(&self) -> Option<ResponseCode> {
        match &self.cause {
            Cause::Tss { code, .. } => *code,
            _ => None,
        }
    }
}

keyward_core::classify_by_method!(TpmFailure);

/// A sealed object: its public and private parts as the TPM marshals them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// TPM2B_PUBLIC contents.
    #[serde(with = "keyward_core::encoding::base64_bytes")]
    pub public: Vec<u8>,
    /// TPM2B_PRIVATE contents (encrypted to the storage primary key: useless to anyone else).
    #[serde(with = "keyward_core::encoding::base64_bytes")]
    pub private: Vec<u8>,
    /// The name of the storage key it was sealed under: the key the sessions are salted to is
    /// checked against it, so a key put in its place on the way is refused.
    #[serde(with = "keyward_core::encoding::base64_bytes")]
    pub parent_name: Vec<u8>,
}

/// The dictionary-attack state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockout {
    /// Failed authorisations counted now.
    pub failures: u32,
    /// Failures that put the TPM in lockout.
    pub max_failures: u32,
    /// Seconds after which one failure is forgiven.
    pub interval_s: u32,
}

/// Why the TPM could not be reached at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Unreachable {
    /// A device node that is not there.
    #[error("no TPM at {0}")]
    NoDevice(String),
    /// A TCTI string the TSS does not understand.
    #[error(
        "\"{0}\" is neither a device path nor a TCTI string (such as swtpm:host=127.0.0.1,port=2321)"
    )]
    BadTcti(String),
    /// The TCTI did not connect.
    #[error("cannot reach the TPM at {device}: {error}")]
    Connect {
        /// The device.
        device: String,
        /// The TSS's words.
        error: String,
    },
    /// keyward's tpm2 helper is missing or failed.
    #[error("{0}")]
    Helper(String),
}

/// An open connection to one TPM, through the helper: every transient object and session the
/// helper made is flushed when this is dropped (its input closes), so a TPM without a resource
/// manager (swtpm) does not fill up.
#[derive(Debug)]
pub struct Tpm {
    helper: Helper,
}

impl Tpm {
    /// Connects to `device`: a device path (`/dev/tpmrm0`) or a TCTI string
    /// (`swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpm0`, `tabrmd:`).
    pub fn open(device: &str) -> Result<Tpm, Unreachable> {
        let helper_failed = |e: HelperError| Unreachable::Helper(e.to_string());
        let mut helper = Helper::start(HELPER).map_err(helper_failed)?;
        match helper.call(&Call::Open { device: device.to_string() }).map_err(helper_failed)? {
            Answer::Opened(opened) => opened.map(|()| Tpm { helper }),
            Answer::Replied(_) => Err(Unreachable::Helper(
                "keyward's tpm2 helper answered the open as another call".into(),
            )),
        }
    }

    /// The current values of `pcrs` in `bank`, in the order given.
    pub fn pcr_values(&mut self, bank: Bank, pcrs: &[u8]) -> Result<Vec<Vec<u8>>, TpmFailure> {
        match self.ask(Call::PcrValues { bank, pcrs: pcrs.to_vec() })? {
            Reply::PcrValues(values) => Ok(values.into_iter().map(|v| v.0).collect()),
            other => Err(unexpected(other)),
        }
    }

    /// Seals `secret` under the storage primary key, to a policy of the current values of
    /// `pcrs` in `bank`, and of `auth` (a PIN's digest) when given. Wrong `auth`s count against
    /// the TPM's dictionary-attack lockout.
    pub fn seal(
        &mut self,
        bank: Bank,
        pcrs: &[u8],
        auth: Option<&[u8]>,
        secret: &[u8],
    ) -> Result<Sealed, TpmFailure> {
        let call = Call::Seal {
            bank,
            pcrs: pcrs.to_vec(),
            auth: auth.map(SecretBytes::from),
            secret: SecretBytes::from(secret),
        };
        match self.ask(call)? {
            Reply::Sealed(sealed) => Ok(sealed),
            other => Err(unexpected(other)),
        }
    }

    /// Unseals: loads the object under the storage key it was sealed under, satisfies its
    /// policy in a salted session whose response is encrypted (the secret never crosses the bus
    /// in the clear), and returns the secret.
    pub fn unseal(
        &mut self,
        sealed: &Sealed,
        bank: Bank,
        pcrs: &[u8],
        auth: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, TpmFailure> {
        let call = Call::Unseal {
            sealed: sealed.clone(),
            bank,
            pcrs: pcrs.to_vec(),
            auth: auth.map(SecretBytes::from),
        };
        match self.ask(call)? {
            Reply::Unsealed(secret) => Ok(secret.into_inner()),
            other => Err(unexpected(other)),
        }
    }

    /// Defines a new NV counter (readable and writable with an empty authorisation, outside the
    /// lockout) at a free index, and increments it once so it can be read. Returns its index.
    pub fn define_counter(&mut self) -> Result<u32, TpmFailure> {
        match self.ask(Call::DefineCounter)? {
            Reply::Index(index) => Ok(index),
            other => Err(unexpected(other)),
        }
    }

    /// The counter's value. An index there that is not a counter is refused: an ordinary index
    /// put in its place could be written back to an older value (a counter only goes up, and a
    /// new one starts at the highest any counter of this TPM ever had).
    pub fn counter(&mut self, index: u32) -> Result<u64, TpmFailure> {
        match self.ask(Call::Counter { index })? {
            Reply::Counter(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes the counter at `index` (with the owner hierarchy's empty authorisation). The TPM
    /// remembers its value: a counter defined at any index afterwards starts at the highest
    /// value any counter of this TPM ever had (TPM 2.0 Library, Part 1, "NV Counters").
    pub fn undefine_counter(&mut self, index: u32) -> Result<(), TpmFailure> {
        match self.ask(Call::UndefineCounter { index })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Whether this TPM's storage key is the one named `name`: tells a TPM that was cleared or
    /// replaced (another storage key) from the same TPM with one NV index gone.
    pub fn has_storage_key(&mut self, name: &[u8]) -> Result<bool, TpmFailure> {
        match self.ask(Call::HasStorageKey { name: name.to_vec() })? {
            Reply::Yes(yes) => Ok(yes),
            other => Err(unexpected(other)),
        }
    }

    /// Adds one to the counter.
    pub fn increment(&mut self, index: u32) -> Result<(), TpmFailure> {
        match self.ask(Call::Increment { index })? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The dictionary-attack state, if the TPM says.
    pub fn lockout(&mut self) -> Option<Lockout> {
        match self.ask(Call::Lockout) {
            Ok(Reply::Lockout(lockout)) => lockout,
            _ => None,
        }
    }

    /// The attestation key's public point, SEC1 uncompressed (65 bytes): an ECC P-256
    /// restricted signing key derived from the TPM's owner seed, the same every time.
    pub fn attestation_key(&mut self) -> Result<Vec<u8>, TpmFailure> {
        match self.ask(Call::AttestationKey)? {
            Reply::AttestationKey(point) => Ok(point.0),
            other => Err(unexpected(other)),
        }
    }

    /// A quote by the attestation key over `challenge` and the PCRs `pcrs` of `bank`.
    pub fn quote(
        &mut self,
        challenge: &[u8],
        bank: Bank,
        pcrs: &[u8],
    ) -> Result<Quote, TpmFailure> {
        let call = Call::Quote { challenge: challenge.to_vec(), bank, pcrs: pcrs.to_vec() };
        match self.ask(call)? {
            Reply::Quote(quote) => Ok(quote),
            other => Err(unexpected(other)),
        }
    }

    fn ask(&mut self, call: Call) -> Result<Reply, TpmFailure> {
        let answer = self
            .helper
            .call(&call)
            .map_err(|e| TpmFailure::local("cannot use the TPM", Cause::Helper(e.to_string())))?;
        match answer {
            Answer::Replied(replied) => replied,
            Answer::Opened(_) => Err(TpmFailure::local(
                "keyward's tpm2 helper",
                Cause::Unexpected("an answer to an open".into()),
            )),
        }
    }
}

fn unexpected(reply: Reply) -> TpmFailure {
    TpmFailure::local(
        "keyward's tpm2 helper",
        Cause::Unexpected(format!("another answer than asked for ({})", reply.name())),
    )
}
