//! The `tpm2` kind: the slot's key-encryption key is a random secret sealed by a TPM 2.0 under
//! its storage primary key, to a policy of PCR values (chosen at enroll, PCR 7 by default) and,
//! optionally, a PIN. Opening unseals it — unattended at boot when there is no PIN — and checks
//! the keybox's generation against an NV counter in the same TPM, so an older copy of the file
//! is refused through this slot (docs/security.md, "Rollback").

use std::sync::Mutex;

use keyward_core::encoding::{base64_bytes, from_hex, to_hex};
use keyward_core::kdf::{KEK_LEN, Kek};
use keyward_core::slot::{
    Channel, DeviceError, NewSlot, OpenContext, RetireStage, Retirement, SealContext, Slot,
    SlotError, SlotId, SlotKind, SlotParams, Unlocker, typed_params,
};
use keyward_core::{IntegrityFailure, Passphrase, random};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::tpm::{
    Bank, Cause, DEVICE_VARIABLE, ResponseCode, Sealed, Tpm, TpmFailure, Unreachable,
    may_use_device,
};

/// The kind's name.
pub const TPM2: &str = "tpm2";

/// Highest PCR index.
const MAX_PCR: u8 = 23;
/// Longest device string kept.
const MAX_DEVICE: usize = 512;
/// Longest sealed part kept (a TPM2B_PUBLIC or TPM2B_PRIVATE is well under this).
const MAX_SEALED: usize = 1024;
/// The TCG's owner NV index range, where a slot's counter lives.
const OWNER_NV_INDICES: std::ops::Range<u32> = 0x0100_0000..0x0140_0000;
/// Longest TPM name (a hash algorithm's 2 bytes and a SHA-512 digest).
const MAX_NAME: usize = 66;
/// Salt of the PIN's digest.
const PIN_SALT_LEN: usize = 16;
/// Most counter steps one open may take to catch up with the file (each is an NV write).
const MAX_ADVANCE: u64 = 4096;
const PIN_DOMAIN: &[u8] = b"keyward tpm2 pin v1";

/// Parameters of a tpm2 slot (docs/format.md, "tpm2").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tpm2Params {
    /// The device path or TCTI string the TPM is reached by.
    pub device: String,
    /// The PCR bank.
    pub bank: Bank,
    /// The PCR indices of the policy, ascending.
    pub pcrs: Vec<u8>,
    /// Their values when the slot was sealed (hex), to name the ones that changed.
    pub pcr_values: Vec<String>,
    /// With a PIN: the salt of its digest (hex); without one, absent.
    pub pin_salt: Option<String>,
    /// The sealed object's public part (TPM2B_PUBLIC contents).
    #[serde(with = "base64_bytes")]
    pub public: Vec<u8>,
    /// Its private part, encrypted to the TPM's storage primary key.
    #[serde(with = "base64_bytes")]
    pub private: Vec<u8>,
    /// The TPM name of that storage key (hex): sessions are salted only to a key of this name.
    pub storage_key: String,
    /// The NV counter that binds the keybox's generation.
    pub nv_index: u32,
    /// The counter's value when the slot was sealed.
    pub nv_base: u64,
    /// The keybox generation the slot was committed in.
    pub nv_generation: u64,
}

impl Tpm2Params {
    /// A tpm2 slot's parameters from its stored form.
    pub fn of(params: &SlotParams) -> Result<Self, IntegrityFailure> {
        Tpm2Params::read(&params.params)
    }

    fn read(params: &Value) -> Result<Self, IntegrityFailure> {
        let typed: Tpm2Params = typed_params(TPM2, params)?;
        typed.validate()?;
        Ok(typed)
    }

    /// Whether the slot asks for a PIN.
    pub fn has_pin(&self) -> bool {
        self.pin_salt.is_some()
    }

    /// The PCR selection as `sha256:7+11`.
    pub fn pcr_text(&self) -> String {
        pcr_text(self.bank, &self.pcrs)
    }

    fn validate(&self) -> Result<(), IntegrityFailure> {
        let bad = |what: &str| IntegrityFailure::Inconsistent(format!("tpm2 slot {what}"));
        if self.device.is_empty() || self.device.len() > MAX_DEVICE {
            return Err(bad("device is empty or too long"));
        }
        if self.pcrs.is_empty()
            || self.pcrs.windows(2).any(|w| w[0] >= w[1])
            || self.pcrs.iter().any(|&p| p > MAX_PCR)
        {
            return Err(bad("PCR list is empty, unordered or out of range"));
        }
        let value_len = self.bank.digest_len();
        if self.pcr_values.len() != self.pcrs.len()
            || self.pcr_values.iter().any(|v| from_hex(v).is_none_or(|b| b.len() != value_len))
        {
            return Err(bad("PCR values do not match the PCR list"));
        }
        if self
            .pin_salt
            .as_deref()
            .is_some_and(|s| from_hex(s).is_none_or(|b| b.len() != PIN_SALT_LEN))
        {
            return Err(bad("PIN salt has the wrong length"));
        }
        if [&self.public, &self.private].iter().any(|p| p.is_empty() || p.len() > MAX_SEALED) {
            return Err(bad("sealed object is empty or too long"));
        }
        if !(OWNER_NV_INDICES).contains(&self.nv_index) {
            return Err(bad("NV index is not an owner index"));
        }
        if from_hex(&self.storage_key).is_none_or(|n| n.is_empty() || n.len() > MAX_NAME) {
            return Err(bad("storage key name is not a TPM name"));
        }
        Ok(())
    }

    fn sealed(&self) -> Sealed {
        Sealed {
            public: self.public.clone(),
            private: self.private.clone(),
            parent_name: from_hex(&self.storage_key).unwrap_or_default(),
        }
    }

    fn pin_auth(&self, pin: &Passphrase) -> Option<Zeroizing<Vec<u8>>> {
        let salt = from_hex(self.pin_salt.as_deref()?)?;
        Some(pin_auth(&salt, pin))
    }

    /// The counter value the keybox at `generation` should find: the base, plus one per commit
    /// since the slot was sealed.
    fn expected_counter(&self, generation: u64) -> Option<u64> {
        self.nv_base.checked_add(generation.checked_sub(self.nv_generation)?)
    }

    /// What the keybox at `generation` expects, for a file known to be genuine (a slot newer
    /// than its file is damage).
    fn expected_by_genuine(&self, generation: u64) -> Result<u64, IntegrityFailure> {
        self.expected_counter(generation).ok_or_else(|| {
            IntegrityFailure::Inconsistent(format!(
                "tpm2 slot sealed in generation {}, after its keybox's {generation}",
                self.nv_generation
            ))
        })
    }

    /// Moves the slot's counter up to `target` (never down: a counter only goes up) and returns
    /// its value then.
    fn move_counter_up(&self, tpm: &mut Tpm, target: u64) -> Result<u64, SlotError> {
        let counter = tpm.counter(self.nv_index).map_err(|e| self.counter_failure(tpm, e))?;
        let steps = target.saturating_sub(counter);
        if steps > MAX_ADVANCE {
            return Err(DeviceError::PolicyMismatch(format!(
                "the keybox is {steps} changes ahead of its TPM counter {:#010x}; run `keyward \
                 tpm2 reseal` on this slot to bind it afresh",
                self.nv_index
            ))
            .into());
        }
        for _ in 0..steps {
            tpm.increment(self.nv_index).map_err(|e| self.counter_failure(tpm, e))?;
        }
        Ok(counter.max(target))
    }

    fn counter_failure(&self, tpm: &mut Tpm, failure: TpmFailure) -> SlotError {
        if matches!(failure.cause, Cause::NotACounter) {
            return DeviceError::PolicyMismatch(format!(
                "the TPM's NV index {:#010x} is no longer this slot's counter (it was replaced): \
                 refused, as an older keybox could pass it; open another slot and enroll tpm2 again",
                self.nv_index
            ))
            .into();
        }
        if matches!(failure.cause, Cause::Helper(_)) {
            // The helper failed, not the TPM: nothing is known of the counter.
            return other(failure);
        }
        match failure.kind() {
            Some(ResponseCode::Handle) | None => {
                // The same TPM (its storage key is the slot's) without the counter: a later
                // keybox removed or replaced this slot and retired its counter.
                let parent = from_hex(&self.storage_key).unwrap_or_default();
                if tpm.has_storage_key(&parent).unwrap_or(false) {
                    return DeviceError::PolicyMismatch(format!(
                        "this slot's counter {:#010x} was retired from its TPM: a newer keybox \
                         removed or replaced the slot, and this is an older copy; use the current \
                         keybox file",
                        self.nv_index
                    ))
                    .into();
                }
                DeviceError::Absent(format!(
                    "the TPM at {} has no NV counter {:#010x} for this slot: it was cleared, or it \
                     is not the TPM the slot was enrolled with; open another slot and enroll tpm2 \
                     again",
                    self.device, self.nv_index
                ))
                .into()
            }
            _ => other(failure),
        }
    }

    /// Retires the counter as `at` says: before the commit, up to what the current file expects
    /// (it still opens; every older copy no longer does); after it, past that (the file before
    /// the change no longer opens either), and deleted when the keybox no longer uses it.
    fn retire_counter(&self, at: &Retirement<'_>) -> Result<(), SlotError> {
        let expected = self.expected_by_genuine(at.generation)?;
        let mut tpm = Tpm::open(&self.device).map_err(|e| unreachable(&e))?;
        match at.stage {
            RetireStage::BeforeCommit => self.move_counter_up(&mut tpm, expected).map(drop),
            RetireStage::Committed(keybox) => {
                let still_used = keybox.slots().iter().any(|record| {
                    Tpm2Params::of(&record.protection)
                        .is_ok_and(|p| p.device == self.device && p.nv_index == self.nv_index)
                });
                if still_used {
                    // The new slot on this counter expects exactly this.
                    return self.move_counter_up(&mut tpm, expected.saturating_add(1)).map(drop);
                }
                // Deleted, which retires it whatever its value (a counter defined again starts
                // past this one), and frees the TPM's NV space; only if it is still a counter
                // (an index replaced by something else is not ours to delete). Moved up first
                // where it can be, so that a deletion that fails still leaves older copies behind.
                tpm.counter(self.nv_index).map_err(|e| self.counter_failure(&mut tpm, e))?;
                let _ = self.move_counter_up(&mut tpm, expected.saturating_add(1));
                tpm.undefine_counter(self.nv_index).map_err(other)
            }
        }
    }
}

/// The PIN's digest, the sealed object's authorisation value: the TPM's lockout, not this hash,
/// is what limits guessing.
fn pin_auth(salt: &[u8], pin: &Passphrase) -> Zeroizing<Vec<u8>> {
    let mut hash = Sha256::new();
    hash.update(PIN_DOMAIN);
    hash.update(salt);
    hash.update(pin.expose());
    Zeroizing::new(hash.finalize().to_vec())
}

/// `sha256:7+11`.
pub fn pcr_text(bank: Bank, pcrs: &[u8]) -> String {
    let list: Vec<String> = pcrs.iter().map(u8::to_string).collect();
    format!("{}:{}", bank.name(), list.join("+"))
}

/// Reads `7+11`, `sha256:7+11` or `sha1:0+2+4+7` into a bank and ascending PCR indices.
pub fn parse_pcrs(text: &str) -> Option<(Bank, Vec<u8>)> {
    let (bank, list) = match text.split_once(':') {
        Some((bank, list)) => (Bank::named(bank)?, list),
        None => (Bank::Sha256, text),
    };
    let mut pcrs = list
        .split(['+', ','])
        .map(|p| p.trim().parse::<u8>().ok().filter(|&p| p <= MAX_PCR))
        .collect::<Option<Vec<u8>>>()?;
    pcrs.sort_unstable();
    pcrs.dedup();
    (!pcrs.is_empty()).then_some((bank, pcrs))
}

/// The tpm2 kind.
#[derive(Debug)]
pub struct Tpm2Kind;

impl SlotKind for Tpm2Kind {
    fn name(&self) -> &'static str {
        TPM2
    }

    fn about(&self) -> &'static str {
        "The TPM 2.0 of this machine: sealed to PCR values (and a PIN if wanted); unattended at boot"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        let params = Tpm2Params::read(params)?;
        Ok(Box::new(Tpm2Slot { params, counter_seen: Mutex::new(None) }))
    }
}

/// A tpm2 slot as read from a keybox.
#[derive(Debug)]
struct Tpm2Slot {
    params: Tpm2Params,
    /// The counter value `open` read, for `opened` (saves a second connection).
    counter_seen: Mutex<Option<u64>>,
}

impl Slot for Tpm2Slot {
    fn channel(&self) -> Channel {
        if self.params.has_pin() { Channel::Pin } else { Channel::Nothing }
    }

    fn is_unattended(&self) -> bool {
        !self.params.has_pin()
    }

    // The TPM checked the PIN and the policy before it unsealed the KEK.
    fn kek_is_vouched(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let pin = if self.params.has_pin() { ", PIN" } else { "" };
        format!("PCRs {}{pin}, TPM {}", self.params.pcr_text(), self.params.device)
    }

    fn facts(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([
            ("device".to_string(), Value::from(self.params.device.clone())),
            ("pcrs".to_string(), Value::from(self.params.pcr_text())),
            ("pin".to_string(), Value::from(self.params.has_pin())),
            ("nv_index".to_string(), Value::from(format!("{:#010x}", self.params.nv_index))),
        ])
    }

    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        let p = &self.params;
        // Nothing to give: skipped before the TPM is asked.
        let channel = self.channel();
        let auth = match ctx.want(channel, None)? {
            Some(Unlocker::Pin(pin)) if p.has_pin() => p.pin_auth(pin),
            Some(Unlocker::Unattended) if !p.has_pin() => None,
            _ => return Ok(None),
        };
        // The slot's record is not yet known to be genuine (the MAC is checked after a slot
        // opens): a TPM over the network is used only when the person named it too, so an
        // edited file cannot send a PIN's session to a TPM of someone else's choosing.
        if !may_use_device(&p.device) {
            return Err(DeviceError::Absent(format!(
                "this slot's TPM is `{}`, not a local device: set {DEVICE_VARIABLE} to it to use it",
                p.device
            ))
            .into());
        }
        let mut tpm = Tpm::open(&p.device).map_err(|e| unreachable(&e))?;
        let counter = tpm.counter(p.nv_index).map_err(|e| p.counter_failure(&mut tpm, e))?;
        match p.expected_counter(ctx.generation) {
            Some(expected) if expected >= counter => {}
            _ => {
                return Err(DeviceError::PolicyMismatch(format!(
                    "this keybox (generation {}) is older than one this TPM has opened: a \
                     restored or rolled-back copy; use the current keybox file",
                    ctx.generation
                ))
                .into());
            }
        }
        let secret = tpm
            .unseal(&p.sealed(), p.bank, &p.pcrs, auth.as_deref().map(|a| a.as_slice()))
            .map_err(|e| self.unseal_failure(&mut tpm, ctx.slot, e))?;
        if secret.len() != KEK_LEN {
            return Err(DeviceError::PolicyMismatch(
                "the TPM unsealed a secret of the wrong length".into(),
            )
            .into());
        }
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        kek.copy_from_slice(&secret);
        if let Ok(mut seen) = self.counter_seen.lock() {
            *seen = Some(counter);
        }
        Ok(Some(kek))
    }

    fn opened(&self, generation: u64) -> Result<(), SlotError> {
        let p = &self.params;
        let Some(expected) = p.expected_counter(generation) else { return Ok(()) };
        let seen = self.counter_seen.lock().ok().and_then(|s| *s);
        if seen.is_some_and(|counter| counter >= expected) {
            return Ok(());
        }
        let mut tpm = Tpm::open(&p.device).map_err(|e| unreachable(&e))?;
        p.move_counter_up(&mut tpm, expected).map(drop)
    }

    fn retire(&self, at: &mut Retirement<'_>) -> Result<(), SlotError> {
        let retired = self.params.retire_counter(at);
        match (retired, at.stage) {
            // Never a reason to keep a slot the person is dropping (its TPM may be dead): said,
            // and the change goes on.
            (Err(e), RetireStage::BeforeCommit) => {
                at.secrets.notice(&format!(
                    "slot {}: its TPM counter cannot be moved up now ({e}); a copy of this \
                     keybox from before this change may still open through the TPM",
                    at.slot
                ));
                Ok(())
            }
            (retired, _) => retired,
        }
    }
}

impl Tpm2Slot {
    /// Why unsealing failed, in the words the person needs: which PCRs changed and what to run,
    /// a wrong PIN and the tries left, the lockout state, another TPM.
    fn unseal_failure(&self, tpm: &mut Tpm, slot: SlotId, failure: TpmFailure) -> SlotError {
        let p = &self.params;
        match &failure.cause {
            Cause::BadSealedObject(_) => {
                return SlotError::Params(IntegrityFailure::Inconsistent(format!(
                    "tpm2 slot {slot}: {failure} under the storage key it was sealed under; the \
                     slot's record was changed"
                )));
            }
            Cause::OtherStorageKey => return cleared_or_another(&p.device),
            _ => {}
        }
        match failure.kind() {
            Some(ResponseCode::PolicyFail | ResponseCode::PcrChanged) => {
                let now = tpm.pcr_values(p.bank, &p.pcrs).unwrap_or_default();
                let changed: Vec<String> = p
                    .pcrs
                    .iter()
                    .zip(&p.pcr_values)
                    .zip(now.iter().map(|v| to_hex(v)).chain(std::iter::repeat(String::new())))
                    .filter(|((_, then), now)| *then != now)
                    .map(|((pcr, _), _)| pcr.to_string())
                    .collect();
                let which = if changed.is_empty() {
                    format!("the TPM's state does not satisfy the slot's policy ({})", p.pcr_text())
                } else {
                    format!(
                        "PCR {} ({}) changed since the slot was sealed (a firmware, boot loader or \
                         Secure Boot change?)",
                        changed.join("+"),
                        p.bank.name()
                    )
                };
                DeviceError::PolicyMismatch(format!(
                    "{which}; if the change is expected, run `keyward tpm2 reseal {slot}` \
                     (authorised by another slot) to seal to today's values"
                ))
                .into()
            }
            _ if matches!(failure.cause, Cause::WrongAuth) => {
                let left = tpm
                    .lockout()
                    .map(|l| {
                        format!(
                            " ({} of {} tries left before the TPM locks out)",
                            l.max_failures.saturating_sub(l.failures),
                            l.max_failures
                        )
                    })
                    .unwrap_or_default();
                DeviceError::PolicyMismatch(format!(
                    "wrong PIN for the TPM slot; check it and run again{left}"
                ))
                .into()
            }
            Some(ResponseCode::Lockout) => locked_out(tpm),
            _ => other(failure),
        }
    }
}

/// The slot's storage key is not this TPM's: a TPM cleared since, or another one.
fn cleared_or_another(device: &str) -> SlotError {
    DeviceError::Absent(format!(
        "the TPM at {device} cannot load this slot's sealed key: it was cleared, or it is not the \
         TPM the slot was enrolled with; open another slot and enroll tpm2 again"
    ))
    .into()
}

fn locked_out(tpm: &mut Tpm) -> SlotError {
    let state = tpm
        .lockout()
        .map(|l| {
            format!(
                " after {} failed PINs (of {} allowed; one is forgiven every {} s)",
                l.failures, l.max_failures, l.interval_s
            )
        })
        .unwrap_or_default();
    DeviceError::LockedOut(format!(
        "the TPM is in dictionary-attack lockout{state}; wait, or clear it with the lockout \
         authorisation (tpm2_dictionarylockout --clear-lockout), or open another slot"
    ))
    .into()
}

fn unreachable(error: &Unreachable) -> SlotError {
    match error {
        Unreachable::Helper(why) => DeviceError::Absent(format!("{why}; or open another slot")),
        _ => DeviceError::Absent(format!(
            "{error} (the TPM this slot was enrolled with); open another slot"
        )),
    }
    .into()
}

fn other(failure: TpmFailure) -> SlotError {
    match failure.kind() {
        Some(ResponseCode::Busy) => {
            DeviceError::Busy(format!("the TPM is busy: {failure}; try again")).into()
        }
        Some(ResponseCode::Lockout) => {
            DeviceError::LockedOut(format!("the TPM is in dictionary-attack lockout: {failure}"))
                .into()
        }
        _ => SlotError::Other(Box::new(failure)),
    }
}

/// A new tpm2 slot: the TPM, the policy, and the PIN if there is one.
#[derive(Debug)]
pub struct NewTpm2 {
    /// The device path or TCTI string.
    pub device: String,
    /// The PCR bank.
    pub bank: Bank,
    /// The PCR indices, ascending.
    pub pcrs: Vec<u8>,
    /// The PIN, if the slot asks for one.
    pub pin: Option<Passphrase>,
}

impl NewTpm2 {
    /// The slot this one replaces (a rotate or a reseal), if it was a tpm2 slot on the same TPM:
    /// its counter is kept.
    fn replacing(&self, at: &SealContext<'_>) -> Result<Option<Tpm2Params>, SlotError> {
        let Some(old) = at.replacing.filter(|old| old.kind == TPM2) else { return Ok(None) };
        let old = Tpm2Params::of(old)?;
        Ok((old.device == self.device).then_some(old))
    }
}

impl NewSlot for NewTpm2 {
    fn kind(&self) -> &'static str {
        TPM2
    }

    fn seal(&self, at: &SealContext<'_>) -> Result<(SlotParams, Kek), SlotError> {
        let replacing = self.replacing(at)?;
        let mut tpm = Tpm::open(&self.device).map_err(|e| {
            SlotError::from(DeviceError::Absent(format!(
                "{e} (pass --tpm2-device or set KEYWARD_TPM2_DEVICE)"
            )))
        })?;
        let kek = Zeroizing::new(random::array::<KEK_LEN>()?);
        let pin_salt = match &self.pin {
            Some(_) => Some(random::array::<PIN_SALT_LEN>()?.to_vec()),
            None => None,
        };
        let auth = match (&self.pin, &pin_salt) {
            (Some(pin), Some(salt)) => Some(pin_auth(salt, pin)),
            _ => None,
        };
        let pcr_values = tpm.pcr_values(self.bank, &self.pcrs).map_err(other)?;
        let sealed = tpm
            .seal(self.bank, &self.pcrs, auth.as_deref().map(|a| a.as_slice()), kek.as_slice())
            .map_err(|e| match e.kind() {
                Some(ResponseCode::Lockout) => locked_out(&mut tpm),
                _ => other(e),
            })?;
        // A rotate or reseal on the same TPM keeps the counter, and the new slot expects it one
        // past what the file being replaced expects. Nothing moves yet: until the commit lands
        // that file must still open. Once it has, the old slot's retirement moves the counter
        // there, and that file (with the old sealed object, maybe an old PIN) and every older
        // copy expect less than it holds. A counter too far behind to be moved there (many
        // commits since the TPM last opened the file) is left for a new one.
        let kept = match replacing {
            Some(old) => {
                let current = at.generation.saturating_sub(1);
                let past = old.expected_by_genuine(current)?.saturating_add(1);
                let counter =
                    tpm.counter(old.nv_index).map_err(|e| old.counter_failure(&mut tpm, e))?;
                (past.saturating_sub(counter) <= MAX_ADVANCE)
                    .then_some((old.nv_index, past.max(counter)))
            }
            None => None,
        };
        let (nv_index, nv_base) = match kept {
            Some(kept) => kept,
            None => {
                let index = tpm.define_counter().map_err(other)?;
                (index, tpm.counter(index).map_err(other)?)
            }
        };
        let params = Tpm2Params {
            device: self.device.clone(),
            bank: self.bank,
            pcrs: self.pcrs.clone(),
            pcr_values: pcr_values.iter().map(|v| to_hex(v)).collect(),
            pin_salt: pin_salt.map(|s| to_hex(&s)),
            public: sealed.public,
            private: sealed.private,
            storage_key: to_hex(&sealed.parent_name),
            nv_index,
            nv_base,
            nv_generation: at.generation,
        };
        params.validate()?;
        Ok((SlotParams::new(TPM2, &params)?, kek))
    }

    fn unlocker(&self) -> Unlocker<'_> {
        match &self.pin {
            Some(pin) => Unlocker::Pin(pin),
            None => Unlocker::Unattended,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_lists_read_as_systemd_writes_them() {
        assert_eq!(parse_pcrs("7"), Some((Bank::Sha256, vec![7])));
        assert_eq!(parse_pcrs("11+7+7"), Some((Bank::Sha256, vec![7, 11])));
        assert_eq!(parse_pcrs("sha1:0+2"), Some((Bank::Sha1, vec![0, 2])));
        for bad in ["", "24", "7+x", "md5:7", "sha256:"] {
            assert_eq!(parse_pcrs(bad), None, "{bad}");
        }
        assert_eq!(pcr_text(Bank::Sha256, &[7, 11]), "sha256:7+11");
    }

    #[test]
    fn the_expected_counter_follows_the_generation() {
        let params = Tpm2Params {
            device: "/dev/tpmrm0".into(),
            bank: Bank::Sha256,
            pcrs: vec![7],
            pcr_values: vec![to_hex(&[0; 32])],
            pin_salt: None,
            public: vec![1],
            private: vec![2],
            storage_key: to_hex(&[0, 11, 7]),
            nv_index: 0x0138_0001,
            nv_base: 10,
            nv_generation: 4,
        };
        assert_eq!(params.expected_counter(4), Some(10));
        assert_eq!(params.expected_counter(7), Some(13));
        assert_eq!(params.expected_counter(3), None, "a file older than the slot");
        let stored = serde_json::to_value(&params).expect("json");
        Tpm2Kind.read(&stored).expect("as written");
        for (field, value) in [
            ("pcrs", serde_json::json!([11, 7])),
            ("pcrs", serde_json::json!([])),
            ("pcr_values", serde_json::json!(["00"])),
            ("pin_salt", serde_json::json!("00")),
            ("public", serde_json::json!("")),
            ("nv_index", serde_json::json!(5)),
        ] {
            let mut edited = stored.clone();
            edited[field] = value;
            assert!(Tpm2Kind.read(&edited).is_err(), "{field} edit must be refused");
        }
    }
}
