//! The TPM through tss-esapi, in the helper's process: reach the TPM by a TCTI string, find the
//! storage key (kept at the SRK handle, else re-derived from the template), seal and unseal a
//! secret under a PCR (and PIN) policy with salted, encrypted sessions, and keep a monotonic NV
//! counter. Every transient object and session is flushed when the [`Tss`] is dropped, so a TPM
//! without a resource manager (swtpm) does not fill up.

use std::path::Path;
use std::str::FromStr;

use keyward_tpm2::{Bank, Cause, Lockout, ResponseCode, Sealed, TpmFailure, Unreachable};
use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::{
    NvIndexAttributes, NvIndexAttributesBuilder, ObjectAttributesBuilder, SessionAttributesBuilder,
};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::{CapabilityType, NvIndexType, PropertyTag, SessionType};
use tss_esapi::handles::{
    KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PersistentTpmHandle, SessionHandle,
    TpmHandle,
};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth, Provision};
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::CreatePrimaryKeyResult;
use tss_esapi::structures::{
    Auth, CapabilityData, Digest, EccPoint, KeyedHashScheme, NvPublicBuilder, PcrSelectionList,
    PcrSlot, Private, Public, PublicBuilder, PublicEccParameters, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::{DeviceConfig, NetworkTPMConfig};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMA_NV;
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

/// The TCG's handle for the storage root key, which systemd-cryptenroll also uses: kept in the
/// TPM, it spares re-deriving the primary key at every unseal.
const SRK_HANDLE: u32 = 0x8100_0001;

/// Owner NV indices keyward picks its counters from (TCG's owner range is 0x01000000–0x013FFFFF;
/// this is a 64 Ki window in it, drawn at random so two keyboxes do not collide).
const NV_INDEX_BASE: u32 = 0x0138_0000;
const NV_INDEX_SPAN: u32 = 0x0001_0000;

/// The session for an authorisation that is empty (the storage and attestation keys', the NV
/// counters', the owner hierarchy's when it has none): a password session with the empty
/// password. tss-esapi's `execute_with_nullauth_session` would start and flush an unsalted HMAC
/// session for each such command — two more TPM commands each, and the TSS's crypto — which
/// protects nothing here: with no salt and no authorisation value its keys come from the nonces
/// alone, which anyone on the bus sees. The secrets cross in the salted sessions of `seal` and
/// `unseal`.
pub(crate) const EMPTY_AUTH: Option<AuthSession> = Some(AuthSession::Password);

/// The attributes of the NV counters keyward defines: a counter, read and written with its own
/// (empty) authorisation, outside the dictionary-attack lockout.
fn counter_attributes() -> Result<NvIndexAttributes, TpmFailure> {
    NvIndexAttributesBuilder::new()
        .with_nv_index_type(NvIndexType::Counter)
        .with_auth_read(true)
        .with_auth_write(true)
        .with_no_da(true)
        .build()
        .doing("NV counter attributes")
}

/// The TPM name of keyward's counter at `index` once it has been written (as `define_counter`
/// leaves it): the name algorithm, then the SHA-256 of its public area (TPM 2.0 Library, Part 1,
/// "Names"; Part 2, TPMS_NV_PUBLIC), as the TSS computes it from the public area it reads. Any
/// other index at `index` — an ordinary one put in the counter's place — has another name.
pub(crate) fn counter_name(index: u32) -> Result<Vec<u8>, TpmFailure> {
    /// TPMA_NV_WRITTEN (Part 2, "TPMA_NV"): set by the TPM at the first write.
    const WRITTEN: u32 = 1 << 29;
    /// TPM_ALG_SHA256.
    const SHA256: u16 = 0x000B;
    let attributes = TPMA_NV::try_from(counter_attributes()?).doing("NV counter attributes")?;
    let mut public = Vec::with_capacity(14);
    public.extend_from_slice(&index.to_be_bytes());
    public.extend_from_slice(&SHA256.to_be_bytes());
    public.extend_from_slice(&(attributes | WRITTEN).to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes()); // authPolicy: empty
    public.extend_from_slice(&8u16.to_be_bytes()); // dataSize
    let mut name = SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(&public));
    Ok(name)
}

/// The TSS's hash algorithm for a bank.
pub(crate) fn algorithm(bank: Bank) -> HashingAlgorithm {
    match bank {
        Bank::Sha1 => HashingAlgorithm::Sha1,
        Bank::Sha256 => HashingAlgorithm::Sha256,
        Bank::Sha384 => HashingAlgorithm::Sha384,
    }
}

/// A TSS error as the kind sees it: the response code it acts on, and the TSS's words.
pub(crate) fn tss_cause(error: &tss_esapi::Error) -> Cause {
    let code = match error {
        tss_esapi::Error::Tss2Error(rc) => rc.kind().map(response_code),
        tss_esapi::Error::WrapperError(_) => None,
    };
    Cause::Tss { code, text: error.to_string() }
}

fn response_code(kind: Tss2ResponseCodeKind) -> ResponseCode {
    use Tss2ResponseCodeKind as Code;
    match kind {
        Code::Retry
        | Code::Yielded
        | Code::Canceled
        | Code::NvRate
        | Code::ObjectMemory
        | Code::SessionMemory => ResponseCode::Busy,
        Code::Lockout => ResponseCode::Lockout,
        Code::Handle => ResponseCode::Handle,
        Code::PolicyFail => ResponseCode::PolicyFail,
        Code::PcrChanged => ResponseCode::PcrChanged,
        _ => ResponseCode::Other,
    }
}

pub(crate) trait Doing<T> {
    fn doing(self, what: &'static str) -> Result<T, TpmFailure>;
}

impl<T> Doing<T> for tss_esapi::Result<T> {
    fn doing(self, what: &'static str) -> Result<T, TpmFailure> {
        self.map_err(|error| TpmFailure::local(what, tss_cause(&error)))
    }
}

/// What a primary key this crate makes is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrimaryRole {
    /// The storage key sealed objects live under (it decrypts).
    Storage,
    /// The key that signs quotes (it signs).
    Attestation,
}

/// An open ESAPI context to one TPM.
pub struct Tss {
    ctx: Context,
    /// Transient objects and sessions, flushed on drop.
    transient: Vec<ObjectHandle>,
}

impl Tss {
    /// Connects to `device`: a device path (`/dev/tpmrm0`) or a TCTI string
    /// (`swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpm0`, `tabrmd:`).
    pub fn open(device: &str) -> Result<Tss, Unreachable> {
        if device.starts_with('/') && !Path::new(device).exists() {
            return Err(Unreachable::NoDevice(device.to_string()));
        }
        let tcti = tcti(device).map_err(|_| Unreachable::BadTcti(device.to_string()))?;
        let ctx = Context::new(tcti).map_err(|error| Unreachable::Connect {
            device: device.to_string(),
            error: error.to_string(),
        })?;
        Ok(Tss { ctx, transient: Vec::new() })
    }

    /// The current values of `pcrs` in `bank`, in the order given.
    pub fn pcr_values(&mut self, bank: Bank, pcrs: &[u8]) -> Result<Vec<Vec<u8>>, TpmFailure> {
        let mut values = Vec::with_capacity(pcrs.len());
        for &pcr in pcrs {
            let selection = selection(bank, &[pcr])?;
            let (_, _, digests) = self
                .ctx
                .execute_without_session(|ctx| ctx.pcr_read(selection))
                .doing("cannot read the PCRs")?;
            let value = digests.value().first().map(|d| d.value().to_vec()).unwrap_or_default();
            values.push(value);
        }
        Ok(values)
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
        let (primary, parent_name) = self.storage_key(None)?;
        let trial = self.policy_session(None, SessionType::Trial)?;
        self.apply_policy(trial, bank, pcrs, auth.is_some())?;
        let digest = self
            .ctx
            .execute_without_session(|ctx| ctx.policy_get_digest(trial))
            .doing("cannot compute the policy")?;
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            // Only the policy opens it, and a wrong PIN counts toward the lockout (no noDA).
            .with_user_with_auth(false)
            .with_admin_with_policy(true)
            .with_no_da(false)
            .build()
            .doing("sealed object attributes")?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_auth_policy(digest)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
            .doing("sealed object template")?;
        let auth =
            auth.map(|a| Auth::try_from(a.to_vec())).transpose().doing("the PIN's digest")?;
        let data = SensitiveData::try_from(secret.to_vec()).doing("the secret to seal")?;
        // The secret goes to the TPM encrypted: a session salted to the primary key, with
        // parameter encryption both ways.
        let session = self.hmac_session(primary)?;
        let created = self
            .ctx
            .execute_with_session(Some(session), |ctx| {
                ctx.create(primary, public, auth, Some(data), None, None)
            })
            .doing("cannot seal the secret")?;
        Ok(Sealed {
            public: created.out_public.marshall().doing("cannot marshal the sealed object")?,
            private: created.out_private.value().to_vec(),
            parent_name,
        })
    }

    /// Unseals: loads the object under the re-created primary key, satisfies its policy in a
    /// salted session whose response is encrypted (the secret never crosses the bus in the
    /// clear), and returns the secret.
    pub fn unseal(
        &mut self,
        sealed: &Sealed,
        bank: Bank,
        pcrs: &[u8],
        auth: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, TpmFailure> {
        let (primary, _) = self.storage_key(Some(&sealed.parent_name))?;
        let damaged = |what, error: tss_esapi::Error| {
            TpmFailure::local(what, Cause::BadSealedObject(error.to_string()))
        };
        let public = Public::unmarshall(&sealed.public)
            .map_err(|e| damaged("the sealed object's public part", e))?;
        let private = Private::try_from(sealed.private.clone())
            .map_err(|e| damaged("the sealed object's private part", e))?;
        // The private part is already encrypted to the storage key: loading it needs no
        // session of its own, only the storage key's empty authorisation. Under the storage
        // key it was sealed under (its name checked above), a refusal of the object's bytes
        // means they were changed; any other failure is the TPM's.
        let object = self
            .ctx
            .execute_with_session(EMPTY_AUTH, |ctx| ctx.load(primary, private, public))
            .map_err(|error| match &error {
                tss_esapi::Error::Tss2Error(rc) if !rc.kind().is_some_and(refuses_the_object) => {
                    TpmFailure::local("cannot load the sealed object", tss_cause(&error))
                }
                _ => damaged("cannot load the sealed object", error),
            })?;
        self.transient.push(object.into());
        if let Some(auth) = auth {
            let auth = Auth::try_from(auth.to_vec()).doing("the PIN's digest")?;
            self.ctx.tr_set_auth(object.into(), auth).doing("the PIN's digest")?;
        }
        let policy = self.policy_session(Some(primary), SessionType::Policy)?;
        self.apply_policy(policy, bank, pcrs, auth.is_some())?;
        // The response (the secret) encrypted; and the session closed by the unseal itself.
        let (attributes, mask) =
            SessionAttributesBuilder::new().with_encrypt(true).with_continue_session(false).build();
        self.ctx
            .tr_sess_set_attributes(policy.into(), attributes, mask)
            .doing("cannot set up the policy session")?;
        let secret = self
            .ctx
            .execute_with_session(Some(policy.into()), |ctx| ctx.unseal(object.into()))
            .map_err(|error| match error {
                // At the unseal, a failed authorisation is the object's own: the PIN.
                tss_esapi::Error::Tss2Error(rc)
                    if matches!(
                        rc.kind(),
                        Some(Tss2ResponseCodeKind::AuthFail | Tss2ResponseCodeKind::BadAuth)
                    ) =>
                {
                    TpmFailure::local("cannot unseal", Cause::WrongAuth)
                }
                error => TpmFailure::local("cannot unseal", tss_cause(&error)),
            })?;
        // The TPM closed the policy session after the unseal (it was not marked to continue):
        // flushing it again would only cost a round trip to be told so. Its handle is closed
        // here, or tss-esapi would flush it when the context drops. (After a failure it is still
        // open, and flushed with the rest.)
        let mut closed: ObjectHandle = SessionHandle::from(AuthSession::from(policy)).into();
        self.transient.retain(|handle| *handle != closed);
        let _ = self.ctx.tr_close(&mut closed);
        Ok(Zeroizing::new(secret.value().to_vec()))
    }

    /// Defines a new NV counter (readable and writable with an empty authorisation, outside the
    /// lockout) at a free index, and increments it once so it can be read. Returns its index.
    pub fn define_counter(&mut self) -> Result<u32, TpmFailure> {
        for _ in 0..16 {
            let index = NV_INDEX_BASE + random_below(NV_INDEX_SPAN);
            let handle = NvIndexTpmHandle::new(index).doing("an NV index")?;
            let attributes = counter_attributes()?;
            let public = NvPublicBuilder::new()
                .with_nv_index(handle)
                .with_index_name_algorithm(HashingAlgorithm::Sha256)
                .with_index_attributes(attributes)
                .with_data_area_size(8)
                .build()
                .doing("NV counter template")?;
            match self.ctx.execute_with_session(EMPTY_AUTH, |ctx| {
                ctx.nv_define_space(Provision::Owner, None, public)
            }) {
                Ok(nv) => {
                    self.increment_handle(nv)?;
                    let mut object: ObjectHandle = nv.into();
                    let _ = self.ctx.tr_close(&mut object);
                    return Ok(index);
                }
                Err(tss_esapi::Error::Tss2Error(rc))
                    if rc.kind() == Some(Tss2ResponseCodeKind::NvDefined) =>
                {
                    continue;
                }
                Err(error) => {
                    return Err(TpmFailure::local(
                        "cannot define an NV counter",
                        tss_cause(&error),
                    ));
                }
            }
        }
        Err(TpmFailure::local(
            "cannot define an NV counter",
            Cause::Unexpected("every index tried in use".into()),
        ))
    }

    /// The counter's value. An index there that is not a counter is refused: an ordinary index
    /// put in its place could be written back to an older value (a counter only goes up, and a
    /// new one starts at the highest any counter of this TPM ever had).
    pub fn counter(&mut self, index: u32) -> Result<u64, TpmFailure> {
        let nv = self.nv_handle(index)?;
        let read = self.read_counter(index, nv);
        let mut object: ObjectHandle = nv.into();
        let _ = self.ctx.tr_close(&mut object);
        read
    }

    fn read_counter(&mut self, index: u32, nv: NvIndexHandle) -> Result<u64, TpmFailure> {
        // The index's public area was read to find it; its name says whether it is one of
        // keyward's counters. Only an index of another name is read again, to tell why.
        let name = self.ctx.tr_get_name(nv.into()).doing("the NV index's name")?;
        if name.value() != counter_name(index)?.as_slice() {
            let (public, _) = self
                .ctx
                .execute_without_session(|ctx| ctx.nv_read_public(nv))
                .doing("cannot read the NV index")?;
            let is_counter =
                public.attributes().index_type().is_ok_and(|kind| kind == NvIndexType::Counter);
            if !is_counter {
                return Err(TpmFailure::local("cannot read the NV counter", Cause::NotACounter));
            }
        }
        let read = self
            .ctx
            .execute_with_session(EMPTY_AUTH, |ctx| ctx.nv_read(NvAuth::NvIndex(nv), nv, 8, 0))
            .doing("cannot read the NV counter")?;
        let bytes: [u8; 8] = read.value().try_into().map_err(|_| {
            TpmFailure::local(
                "cannot read the NV counter",
                Cause::Unexpected("a short read".into()),
            )
        })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Deletes the counter at `index` (with the owner hierarchy's empty authorisation). The TPM
    /// remembers its value: a counter defined at any index afterwards starts at the highest
    /// value any counter of this TPM ever had (TPM 2.0 Library, Part 1, "NV Counters").
    pub fn undefine_counter(&mut self, index: u32) -> Result<(), TpmFailure> {
        let nv = self.nv_handle(index)?;
        self.ctx
            .execute_with_session(EMPTY_AUTH, |ctx| ctx.nv_undefine_space(Provision::Owner, nv))
            .doing("cannot delete the NV counter")
    }

    /// Whether this TPM's storage key is the one named `name`: tells a TPM that was cleared or
    /// replaced (another storage key) from the same TPM with one NV index gone.
    pub fn has_storage_key(&mut self, name: &[u8]) -> Result<bool, TpmFailure> {
        match self.storage_key(Some(name)) {
            Ok(_) => Ok(true),
            Err(failure) if matches!(failure.cause, Cause::OtherStorageKey) => Ok(false),
            Err(failure) => Err(failure),
        }
    }

    /// Adds one to the counter.
    pub fn increment(&mut self, index: u32) -> Result<(), TpmFailure> {
        let nv = self.nv_handle(index)?;
        let result = self.increment_handle(nv);
        let mut object: ObjectHandle = nv.into();
        let _ = self.ctx.tr_close(&mut object);
        result
    }

    /// The dictionary-attack state, if the TPM says.
    pub fn lockout(&mut self) -> Option<Lockout> {
        let (data, _) = self
            .ctx
            .execute_without_session(|ctx| {
                ctx.get_capability(
                    CapabilityType::TpmProperties,
                    PropertyTag::LockoutCounter.into(),
                    3,
                )
            })
            .ok()?;
        let CapabilityData::TpmProperties(properties) = data else { return None };
        let value = |tag| properties.find(tag).map(|p| p.value());
        Some(Lockout {
            failures: value(PropertyTag::LockoutCounter)?,
            max_failures: value(PropertyTag::MaxAuthFail)?,
            interval_s: value(PropertyTag::LockoutInterval)?,
        })
    }

    /// The ESAPI context, for the other TPM modules of this crate.
    pub(crate) fn context(&mut self) -> &mut Context {
        &mut self.ctx
    }

    /// Flushes `handle` now (and forgets it for the drop).
    pub(crate) fn flush_now(&mut self, handle: ObjectHandle) {
        self.transient.retain(|kept| *kept != handle);
        let _ = self.ctx.flush_context(handle);
    }

    fn increment_handle(&mut self, nv: NvIndexHandle) -> Result<(), TpmFailure> {
        self.ctx
            .execute_with_session(EMPTY_AUTH, |ctx| ctx.nv_increment(NvAuth::NvIndex(nv), nv))
            .doing("cannot increment the NV counter")
    }

    fn nv_handle(&mut self, index: u32) -> Result<NvIndexHandle, TpmFailure> {
        let handle = NvIndexTpmHandle::new(index).doing("an NV index")?;
        let object = self
            .ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(handle)))
            .doing("cannot find the NV counter")?;
        Ok(object.into())
    }

    /// The storage key: the one kept at the SRK handle, else the primary key re-derived from the
    /// template. Sealing (`expected` absent) keeps a new primary at the SRK handle when there is
    /// none (if the owner hierarchy allows it); unsealing refuses a key whose name is not the one
    /// the object was sealed under — the salt of the session must go to the TPM's own key.
    fn storage_key(&mut self, expected: Option<&[u8]>) -> Result<(KeyHandle, Vec<u8>), TpmFailure> {
        let srk = PersistentTpmHandle::new(SRK_HANDLE).doing("the SRK handle")?;
        let kept = self
            .ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::Persistent(srk)));
        let name = |tpm: &mut Tss, key: KeyHandle| {
            tpm.ctx.tr_get_name(key.into()).map(|n| n.value().to_vec()).doing("the key's name")
        };
        if let Ok(key) = kept {
            let key = KeyHandle::from(key);
            let kept_name = name(self, key)?;
            if expected.is_none_or(|e| e == kept_name.as_slice()) {
                return Ok((key, kept_name));
            }
        }
        let primary = self.primary()?;
        let primary_name = name(self, primary)?;
        if expected.is_some_and(|e| e != primary_name.as_slice()) {
            return Err(TpmFailure::local("cannot load the sealed object", Cause::OtherStorageKey));
        }
        if expected.is_none() && kept.is_err() {
            // Best effort: an owner hierarchy with a password keeps the primary transient.
            let _ = self.ctx.execute_with_session(EMPTY_AUTH, |ctx| {
                ctx.evict_control(Provision::Owner, primary.into(), Persistent::Persistent(srk))
            });
        }
        Ok((primary, primary_name))
    }

    /// The storage primary key under the owner hierarchy, from the TCG's ECC P-256 storage
    /// template (as systemd-cryptenroll uses): the same key every time, from the TPM's seed.
    fn primary(&mut self) -> Result<KeyHandle, TpmFailure> {
        let ecc = PublicEccParametersBuilder::new_restricted_decryption_key(
            SymmetricDefinitionObject::AES_128_CFB,
            EccCurve::NistP256,
        )
        .build()
        .doing("primary key parameters")?;
        let created =
            self.ecc_primary(PrimaryRole::Storage, ecc, "cannot create the storage primary key")?;
        Ok(created.key_handle)
    }

    /// A P-256 primary key under the owner hierarchy with `attributes` and `ecc` and a zero
    /// unique field: derived from the owner seed, so the same key every time. Flushed on drop.
    pub(crate) fn ecc_primary(
        &mut self,
        role: PrimaryRole,
        ecc: PublicEccParameters,
        what: &'static str,
    ) -> Result<CreatePrimaryKeyResult, TpmFailure> {
        // Both are fixed to this TPM, made inside it, restricted, used without a password and
        // outside the dictionary-attack lockout; one decrypts (stores), the other signs.
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_no_da(true)
            .with_restricted(true)
            .with_decrypt(role == PrimaryRole::Storage)
            .with_sign_encrypt(role == PrimaryRole::Attestation)
            .build()
            .doing("primary key attributes")?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_ecc_parameters(ecc)
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .doing("a primary key template")?;
        let created = self
            .ctx
            .execute_with_session(EMPTY_AUTH, |ctx| {
                ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .doing(what)?;
        self.transient.push(created.key_handle.into());
        Ok(created)
    }

    /// An HMAC session salted to `primary`, encrypting the first parameter both ways.
    fn hmac_session(&mut self, primary: KeyHandle) -> Result<AuthSession, TpmFailure> {
        let session = self.start_session(Some(primary), SessionType::Hmac)?;
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .with_continue_session(true)
            .build();
        self.ctx
            .tr_sess_set_attributes(session, attributes, mask)
            .doing("cannot set up the session")?;
        Ok(session)
    }

    fn policy_session(
        &mut self,
        salt: Option<KeyHandle>,
        kind: SessionType,
    ) -> Result<PolicySession, TpmFailure> {
        let session = self.start_session(salt, kind)?;
        PolicySession::try_from(session).doing("a policy session")
    }

    fn start_session(
        &mut self,
        salt: Option<KeyHandle>,
        kind: SessionType,
    ) -> Result<AuthSession, TpmFailure> {
        let session = self
            .ctx
            .execute_without_session(|ctx| {
                ctx.start_auth_session(
                    salt,
                    None,
                    None,
                    kind,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
            })
            .doing("cannot start a session")?
            .ok_or(TpmFailure::local(
                "cannot start a session",
                Cause::Unexpected("no session handle".into()),
            ))?;
        self.transient.push(SessionHandle::from(session).into());
        Ok(session)
    }

    fn apply_policy(
        &mut self,
        session: PolicySession,
        bank: Bank,
        pcrs: &[u8],
        with_auth: bool,
    ) -> Result<(), TpmFailure> {
        let selection = selection(bank, pcrs)?;
        self.ctx
            .execute_without_session(|ctx| {
                ctx.policy_pcr(session, Digest::default(), selection)?;
                if with_auth {
                    ctx.policy_auth_value(session)?;
                }
                Ok(())
            })
            .doing("cannot apply the PCR policy")
    }
}

impl Drop for Tss {
    fn drop(&mut self) {
        for handle in self.transient.drain(..).rev() {
            // A session the TPM closed itself after its command is already gone: ignored.
            let _ = self.ctx.flush_context(handle);
        }
    }
}

/// The TCTI `device` names. tss-esapi's own parser compiles six regular expressions for any
/// string, a sixth of a TPM unlock's work: a device path (the usual case) needs none, a network
/// TPM only its two for host and port.
fn tcti(device: &str) -> tss_esapi::Result<TctiNameConf> {
    let (name, config) = match device.split_once(':') {
        _ if device.starts_with('/') => ("device", device),
        Some((name, config)) => (name, config),
        None => (device, ""),
    };
    Ok(match name {
        "device" => TctiNameConf::Device(DeviceConfig::from_str(config)?),
        "swtpm" => TctiNameConf::Swtpm(NetworkTPMConfig::from_str(config)?),
        "mssim" => TctiNameConf::Mssim(NetworkTPMConfig::from_str(config)?),
        _ => TctiNameConf::from_str(device)?,
    })
}

pub(crate) fn selection(bank: Bank, pcrs: &[u8]) -> Result<PcrSelectionList, TpmFailure> {
    let slots = pcrs
        .iter()
        .map(|&pcr| {
            let bit = 1u32.checked_shl(u32::from(pcr)).ok_or_else(|| {
                TpmFailure::local("a PCR index", Cause::Unexpected(format!("PCR {pcr}")))
            })?;
            PcrSlot::try_from(bit).doing("a PCR index")
        })
        .collect::<Result<Vec<_>, TpmFailure>>()?;
    PcrSelectionList::builder()
        .with_selection(algorithm(bank), &slots)
        .build()
        .doing("a PCR selection")
}

/// Whether a response code is TPM2_Load refusing an object's bytes (TPM 2.0 Library, Part 3,
/// "TPM2_Load"): its integrity value, a size or value out of range, attributes, algorithms or
/// parameters its public area may not have. Anything else (busy, out of memory, in failure
/// mode) is not evidence that the object changed.
fn refuses_the_object(kind: Tss2ResponseCodeKind) -> bool {
    use Tss2ResponseCodeKind as Code;
    matches!(
        kind,
        Code::Integrity
            | Code::Size
            | Code::Value
            | Code::Range
            | Code::Attributes
            | Code::Hash
            | Code::Type
            | Code::Scheme
            | Code::Symmetric
            | Code::Asymmetric
            | Code::Kdf
            | Code::Mode
            | Code::Key
            | Code::KeySize
            | Code::Curve
            | Code::EccPoint
            | Code::Sensitive
            | Code::Selector
            | Code::Insufficient
            | Code::ReservedBits
            | Code::Policy
            | Code::Binding
    )
}

fn random_below(bound: u32) -> u32 {
    keyward_core::random::below(bound).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use keyward_tpm2::testing::Swtpm;

    use super::*;

    #[test]
    fn a_counter_keyward_defines_has_the_name_keyward_computes_and_another_index_does_not() {
        let swtpm = Swtpm::start();
        let mut tss = Tss::open(&swtpm.tcti()).expect("reach the swtpm");
        let index = tss.define_counter().expect("a counter");
        let nv = tss.nv_handle(index).expect("find it");
        let name = tss.ctx.tr_get_name(nv.into()).expect("its name");
        assert_eq!(name.value(), counter_name(index).expect("computed"));
        assert_ne!(
            counter_name(index + 1).expect("computed"),
            counter_name(index).expect("computed")
        );
        assert_eq!(tss.counter(index).expect("read"), 1);
    }
}
