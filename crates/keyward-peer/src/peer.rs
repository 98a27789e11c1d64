//! What a peer decides, as plain async functions over its store (sans-I/O: the axum server
//! only moves bytes in and out): authenticate an owner's signed request (signature, audience,
//! replay), store — admitting an owner with an operator's enrollment token — list and delete an
//! owner's shares, hand out release nonces, and release a share to a requester whose proof
//! satisfies the owner's policy.

use std::sync::Arc;

use keyward_service::names::{BOX_NAME_RULE, valid_box_name};
use keyward_service::nonces::{self, NonceLimits, NonceTable, Tag, WhenFull};
use keyward_service::request::{self, MAX_SKEW_SECS, Request, RequestSignature};
use keyward_service::statement::{self, Statement};
use keyward_service::{AuthError, PublicKey, ServiceError, SourcePrefix};
use zeroize::Zeroizing;

use crate::api::{
    Attestation, NonceResponse, QuoteProof, ReleasePurpose, ReleaseRequest, ReleaseResponse,
    ReleasedShare, StatusResponse, StoreShareRequest, released_binding,
};
use crate::seal::{self, Purpose, SealSecret};
use crate::slot::ReleasePolicy;
use crate::store::{Admission, Quota, Store, Stored, StoredShare};
use keyward_tpm2::QuoteError;

/// How long a release nonce stays good.
pub const NONCE_TTL_SECS: i64 = 60;
/// Most release nonces outstanding at once (the oldest are forgotten beyond).
const MAX_RELEASE_NONCES: usize = 100_000;
/// Most release nonces outstanding for one source (its oldest are forgotten beyond).
pub const RELEASE_NONCES_PER_SOURCE: usize = 16;
/// Most release nonces outstanding for one thing asked for (a share set, an owner): more than
/// one source holds, so one source alone cannot push out another's.
pub const RELEASE_NONCES_PER_ASKED: usize = 4 * RELEASE_NONCES_PER_SOURCE;
/// Most owner-request nonces remembered (ten minutes of signed requests).
const MAX_REQUEST_NONCES: usize = 1_000_000;
/// Most of them from one source (over it: 429). Only known owners' requests, and those that bring
/// an operator's enrollment token, are recorded, so the table holds admitted owners' nonces;
/// this keeps one of them (or one source with its rate limit lifted) from filling it.
pub const REQUEST_NONCES_PER_SOURCE: usize = 8_000;

/// An operator's enrollment token an owner request brings, and the owner name it must be for.
#[derive(Debug, Clone, Copy)]
pub struct Enrolling<'a> {
    /// The token (statement text).
    pub token: &'a str,
    /// The name the request admits.
    pub owner_name: &'a str,
}

/// A peer: its store, its sealing key, the operators whose statements it accepts, its name as
/// the audience of signed requests (its certificate's SHA-256), each owner's quota, and its two
/// nonce tables.
#[derive(Clone)]
pub struct Peer {
    store: Store,
    seal_secret: Arc<SealSecret>,
    operators: Vec<PublicKey>,
    audience: String,
    quota: Quota,
    release_nonces: Arc<NonceTable>,
    request_nonces: Arc<NonceTable>,
}

fn is_hex_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// What a peer is made of.
pub struct PeerSetup {
    /// Its store.
    pub store: Store,
    /// Its long-term sealing key.
    pub seal_secret: SealSecret,
    /// The operators whose enrollment tokens and release tickets it accepts.
    pub operators: Vec<PublicKey>,
    /// Its certificate's SHA-256 (colon hex).
    pub audience: String,
    /// What each owner may keep here.
    pub quota: Quota,
}

impl Peer {
    /// A peer.
    pub fn new(setup: PeerSetup) -> Self {
        let PeerSetup { store, seal_secret, operators, audience, quota } = setup;
        Peer {
            store,
            seal_secret: Arc::new(seal_secret),
            operators,
            audience,
            quota,
            release_nonces: Arc::new(NonceTable::new(NonceLimits {
                capacity: MAX_RELEASE_NONCES,
                when_full: WhenFull::EvictOldest,
            })),
            request_nonces: Arc::new(NonceTable::new(NonceLimits {
                capacity: MAX_REQUEST_NONCES,
                when_full: WhenFull::Refuse,
            })),
        }
    }

    /// Checks an owner-signed request from `source` (the signer is the owner's public key):
    /// the signature, that it is for this peer, its timestamp, and — for an owner this peer
    /// knows, or one that brings an operator's enrollment token — that its nonce is new.
    ///
    /// `None` is a signer the peer does not know: anyone can make a key, so such a request's
    /// nonce is not kept (a flood of made-up keys cannot fill the table), and nothing may be
    /// done for it — it holds nothing here and may store nothing.
    pub async fn authenticate_owner(
        &self,
        signed: &RequestSignature,
        request: Request<'_>,
        source: SourcePrefix,
        enrolling: Option<Enrolling<'_>>,
        now: i64,
    ) -> Result<Option<PublicKey>, ServiceError> {
        let owner: PublicKey = signed.signer.parse()?;
        request::verify(signed, &owner, &self.audience, request, now)?;
        let nonce = nonces::parse(&signed.nonce)?;
        if !self.store.owner_known(&owner.to_string()).await? {
            match enrolling {
                Some(enrolling) => {
                    self.check_admission(enrolling.token, enrolling.owner_name, &owner, now)?;
                }
                None => return Ok(None),
            }
        }
        let source = format!("src:{source}");
        let tags = [Tag { value: &source, limit: REQUEST_NONCES_PER_SOURCE }];
        self.request_nonces.insert(nonce, &tags, now + 2 * MAX_SKEW_SECS, now)?;
        Ok(Some(owner))
    }

    /// The refusal for a store from a signer this peer does not know, without a token.
    pub fn not_admitted(owner_name: &str) -> ServiceError {
        ServiceError::Refused(format!(
            "{owner_name} is not admitted at this peer; give an operator's enrollment token for it (`--token-file F`)"
        ))
    }

    /// Stores a share that `owner` sealed to this peer. The share must open here (so a release
    /// can never fail for a share that was accepted) — and is kept sealed. An owner name new
    /// here is admitted only with an operator's enrollment token for it.
    pub async fn store_share(
        &self,
        owner: &PublicKey,
        request: &StoreShareRequest,
        now: i64,
    ) -> Result<Stored, ServiceError> {
        if !valid_box_name(&request.owner_name) {
            return Err(ServiceError::Malformed(format!("owner names are {BOX_NAME_RULE}")));
        }
        if !is_hex_id(&request.share_set) || request.keybox_id.len() > 64 {
            return Err(ServiceError::Malformed(
                "the share set is not 32 lower-case hex digits".into(),
            ));
        }
        if request.threshold < 2 || request.x == 0 {
            return Err(ServiceError::Malformed("threshold below 2 or share x of 0".into()));
        }
        if request.fingerprint.parse::<keyward_core::Fingerprint>().is_err() {
            return Err(ServiceError::Malformed(
                "the fingerprint is not 32 colon hex bytes".into(),
            ));
        }
        let owner_text = owner.to_string();
        let share = seal::open(
            &self.seal_secret,
            Purpose::StoredShare,
            &request.binding(&owner_text),
            &request.share,
        )
        .map_err(|e| {
            ServiceError::Malformed(format!("{e} (was it sealed to this peer's card?)"))
        })?;
        if share.first() != Some(&request.x) {
            return Err(ServiceError::Malformed("the sealed share's x differs from `x`".into()));
        }
        // A token matters only for a name not admitted yet: one that no longer verifies (it
        // expired since the first upload) does not stop an admitted owner's retry.
        let token = request
            .enrollment
            .as_deref()
            .map(|text| self.check_admission(text, &request.owner_name, owner, now));
        let admission = match &token {
            Some(Ok((token_id, replaces))) => {
                Some(Admission { token_id, replaces: replaces.as_deref() })
            }
            _ => None,
        };
        let name = &request.owner_name;
        match self.store.store_share(&owner_text, request, admission, self.quota, now).await? {
            Stored::NameTaken => Err(ServiceError::Conflict(format!(
                "the owner name {name} belongs to another identity here"
            ))),
            Stored::NotAdmitted => Err(match token {
                Some(Err(e)) => e,
                _ => Self::not_admitted(name),
            }),
            Stored::TokenUsed => Err(ServiceError::Refused(
                "this enrollment token (or takeover) was already used here".into(),
            )),
            Stored::TakeoverStale => Err(ServiceError::Refused(format!(
                "the owner name {name} is bound here to another identity than the one the takeover replaces (taken over since?); ask the operator for a new one"
            ))),
            Stored::SetTaken => {
                Err(ServiceError::Conflict(format!("share set {} exists here", request.share_set)))
            }
            Stored::OverQuota => Err(ServiceError::Refused(format!(
                "{name} holds as many share sets here as it may ({} sets, {} bytes); delete old ones first",
                self.quota.sets, self.quota.bytes
            ))),
            stored @ (Stored::Added | Stored::AlreadyThere) => Ok(stored),
        }
    }

    /// Verifies an operator's statement that admits `owner_name` for `owner`: an enrollment
    /// token for the name, or a takeover of the name by exactly this identity. Returns its id,
    /// and for a takeover the identity it replaces.
    fn check_admission(
        &self,
        text: &str,
        owner_name: &str,
        owner: &PublicKey,
        now: i64,
    ) -> Result<(String, Option<String>), ServiceError> {
        match statement::verify(text, &self.operators, now)?.statement {
            Statement::Enrollment { box_name, id, .. } if box_name == owner_name => Ok((id, None)),
            Statement::Takeover { box_name, replaces, identity, id, .. }
                if box_name == owner_name && identity == *owner =>
            {
                Ok((id, Some(replaces.to_string())))
            }
            other => Err(AuthError::WrongStatement {
                expected: format!(
                    "an enrollment token for {owner_name}, or its takeover by {owner}"
                ),
                found: match other {
                    Statement::Takeover { identity, .. } => {
                        format!("a takeover of {} by {identity}", other.box_name())
                    }
                    _ => format!("{} for {}", other.kind(), other.box_name()),
                },
            }
            .into()),
        }
    }

    /// The sets `owner` has here.
    pub async fn status(&self, owner: &PublicKey) -> Result<StatusResponse, ServiceError> {
        Ok(StatusResponse { sets: self.store.sets_of(&owner.to_string()).await? })
    }

    /// Deletes one of `owner`'s sets.
    pub async fn delete(&self, owner: &PublicKey, share_set: &str) -> Result<(), ServiceError> {
        if self.store.delete(&owner.to_string(), share_set).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!("no share set {share_set} of yours here")))
        }
    }

    /// A fresh single-use nonce for a release of `asked`, requested from `source`. Each source,
    /// and each thing asked for, holds only a few at once (its oldest forgotten first), so a
    /// flood cannot push out another requester's nonce.
    pub async fn nonce(
        &self,
        source: SourcePrefix,
        asked: &str,
        now: i64,
    ) -> Result<NonceResponse, ServiceError> {
        if asked.is_empty() || asked.len() > 64 {
            return Err(ServiceError::Malformed("`for` names a share set or an owner".into()));
        }
        let (nonce, text) = nonces::fresh().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let expires = now + NONCE_TTL_SECS;
        let (source_tag, asked_tag) = (format!("src:{source}"), format!("for:{asked}"));
        let tags = [
            Tag { value: &source_tag, limit: RELEASE_NONCES_PER_SOURCE },
            Tag { value: &asked_tag, limit: RELEASE_NONCES_PER_ASKED },
        ];
        self.release_nonces.insert(nonce, &tags, expires, now)?;
        // A set released only to a TPM quote says which PCRs to quote (its id is the box's own,
        // 128 random bits: naming it is already knowing it).
        let quote_pcrs = match self.store.share(asked).await? {
            Some(set) if set.request.policy == ReleasePolicy::TpmQuote => {
                set.request.attestation.map(|a| a.pcrs)
            }
            _ => None,
        };
        Ok(NonceResponse { nonce: text, expires, quote_pcrs })
    }

    /// Uses up a release nonce, which must have been asked for what the request asks.
    fn take_nonce(&self, text: &str, asked: &str, now: i64) -> Result<(), ServiceError> {
        let nonce = nonces::parse(text)?;
        let tags = self.release_nonces.take(&nonce, now)?;
        if !tags.iter().any(|t| t.strip_prefix("for:") == Some(asked)) {
            return Err(AuthError::Unproven(
                "the nonce was asked for another release; ask for one for this",
            )
            .into());
        }
        Ok(())
    }

    /// Releases shares to a requester whose proofs satisfy each set's policy, sealed to the
    /// requester's one-time key. The owner's signature covers one share set; a ticket names the
    /// owner and the requester, whose signature must come with it.
    pub async fn release(
        &self,
        request: &ReleaseRequest,
        now: i64,
    ) -> Result<ReleaseResponse, ServiceError> {
        let Some(asked) = request.asked() else {
            return Err(ServiceError::Malformed("name a share_set or an owner_name".into()));
        };
        self.take_nonce(&request.nonce, asked, now)?;
        if request.owner_signature.is_some() && request.share_set.is_none() {
            return Err(ServiceError::Malformed(
                "an owner's signature asks for one share_set".into(),
            ));
        }
        let sets: Vec<StoredShare> = match &request.share_set {
            Some(set) => self.store.share(set).await?.into_iter().collect(),
            None => self.store.shares_named(asked).await?,
        };
        let Some(first) = sets.first() else {
            // A guess at a set or a name counts as a failed proof (toward the lockout).
            return Err(AuthError::Unproven("no such share set or owner here").into());
        };
        // Every set of one request has one owner name (a name is bound to one identity).
        let ticket = match &request.ticket {
            Some(text) => {
                Some(self.check_ticket(text, request, &first.request.owner_name, asked, now)?)
            }
            None => None,
        };
        let owner_signed = match &request.owner_signature {
            Some(signature) => {
                // Only one set here: the request named it. Its owner must still hold the name:
                // a machine whose name was taken over gets nothing on its own word.
                let holder = self.store.holder_of(&first.request.owner_name).await?;
                if holder.as_deref() != Some(first.owner.as_str()) {
                    return Err(AuthError::TakenOver.into());
                }
                self.check_owner_signature(first, request, signature)?;
                true
            }
            None => false,
        };
        let mut quote_refused = None;
        let released: Vec<&StoredShare> = sets
            .iter()
            .filter(|set| {
                let quoted = match (&request.quote, &set.request.attestation) {
                    (Some(quote), Some(attestation)) => {
                        match check_quote(quote, attestation, request, asked) {
                            Ok(()) => true,
                            Err(why) => {
                                quote_refused = Some(why);
                                false
                            }
                        }
                    }
                    _ => false,
                };
                set.request.policy.allows(owner_signed, ticket.is_some(), quoted)
            })
            .collect();
        if released.is_empty() {
            return Err(AuthError::Unproven(
                quote_refused.unwrap_or("the proof given is not what the owner's policy asks for"),
            )
            .into());
        }
        let shares =
            released.iter().map(|set| self.reseal(set, request)).collect::<Result<Vec<_>, _>>()?;
        // A ticket's use is counted only once everything is ready to go out.
        if let Some((id, allowed)) = &ticket
            && !self.store.use_ticket(id, *allowed, now).await?
        {
            return Err(ServiceError::Refused(format!(
                "this release ticket was used here all {allowed} time(s) it allows"
            )));
        }
        Ok(ReleaseResponse { shares })
    }

    /// Counts the release of the sets of `answer`, a use apart from a drill, with its time (for
    /// `peers status`: the server calls this after answering, so the requester does not wait
    /// for its fsync).
    pub async fn note_released(&self, answer: &ReleaseResponse, purpose: ReleasePurpose, now: i64) {
        for share in &answer.shares {
            if let Err(e) = self.store.released(&share.share_set, purpose, now).await {
                tracing::warn!(error = %e, "cannot note a release time");
            }
        }
    }

    fn check_owner_signature(
        &self,
        set: &StoredShare,
        request: &ReleaseRequest,
        signature: &str,
    ) -> Result<(), ServiceError> {
        let owner: PublicKey = set.owner.parse()?;
        let signature = keyward_core::encoding::from_base64(signature)
            .ok_or(AuthError::Malformed("owner_signature"))?;
        owner.verify(&request.signed_message(&set.request.share_set), &signature)?;
        Ok(())
    }

    /// Verifies a peer release ticket for `owner_name` and its requester's signature over this
    /// request; returns the ticket's id and how many uses it allows (counted later).
    fn check_ticket(
        &self,
        text: &str,
        request: &ReleaseRequest,
        owner_name: &str,
        asked: &str,
        now: i64,
    ) -> Result<(String, u32), ServiceError> {
        let statement = statement::verify(text, &self.operators, now)?.statement;
        let allowed = statement.uses();
        let (requester, id) = match statement {
            Statement::PeerRelease { box_name, requester, id, .. } if box_name == owner_name => {
                (requester, id)
            }
            other => {
                return Err(AuthError::WrongStatement {
                    expected: format!("a peer release ticket for {owner_name}"),
                    found: format!("{} for {}", other.kind(), other.box_name()),
                }
                .into());
            }
        };
        let signature = request
            .requester_signature
            .as_deref()
            .and_then(keyward_core::encoding::from_base64)
            .ok_or(AuthError::Malformed("requester_signature (a ticket needs it)"))?;
        requester.verify(&request.signed_message(asked), &signature)?;
        Ok((id, allowed))
    }

    fn reseal(
        &self,
        set: &StoredShare,
        request: &ReleaseRequest,
    ) -> Result<ReleasedShare, ServiceError> {
        let share: Zeroizing<Vec<u8>> = seal::open(
            &self.seal_secret,
            Purpose::StoredShare,
            &set.request.binding(&set.owner),
            &set.request.share,
        )
        .map_err(|e| {
            ServiceError::Internal(format!("stored share {}: {e}", set.request.share_set))
        })?;
        let mut released = ReleasedShare {
            share_set: set.request.share_set.clone(),
            keybox_id: set.request.keybox_id.clone(),
            threshold: set.request.threshold,
            fingerprint: set.request.fingerprint.clone(),
            x: set.request.x,
            share: seal::Sealed { enc: String::new(), ct: String::new() },
        };
        released.share = seal::seal(
            &request.ephemeral,
            Purpose::Release,
            &released_binding(&request.nonce, &released),
            &share,
        )
        .map_err(|e| ServiceError::Malformed(format!("the one-time key: {e}")))?;
        Ok(released)
    }
}

/// Checks a TPM quote against a set's enrolled attestation: the enrolled key signed it, over this
/// request's challenge (nonce, what is asked, the answer's key), with the enrolled PCR values.
fn check_quote(
    quote: &QuoteProof,
    attestation: &Attestation,
    request: &ReleaseRequest,
    asked: &str,
) -> Result<(), &'static str> {
    use keyward_core::encoding::{from_base64, from_hex};
    let unreadable = "the TPM quote or the enrolled attestation does not read";
    let key = from_base64(&attestation.key).ok_or(unreadable)?;
    let digest = from_hex(&attestation.pcr_digest).ok_or(unreadable)?;
    let (bank, pcrs) = keyward_tpm2::parse_pcrs(&attestation.pcrs).ok_or(unreadable)?;
    let quote = keyward_tpm2::Quote {
        attest: from_base64(&quote.attest).ok_or(unreadable)?,
        signature: from_base64(&quote.signature).ok_or(unreadable)?,
    };
    let challenge = request.quote_challenge(asked);
    keyward_tpm2::verify_quote(&key, &quote, &challenge, bank, &pcrs, &digest).map_err(
        |e| match e {
            QuoteError::BadKey => "the enrolled attestation key is not a P-256 key",
            QuoteError::BadSignature => {
                "the TPM quote is not signed by the TPM enrolled with the share"
            }
            QuoteError::NotAQuote => "the attestation sent is not a TPM quote",
            QuoteError::WrongChallenge => "the TPM quote is over another nonce",
            QuoteError::WrongPcrs => "the TPM quote covers other PCRs than were enrolled",
            QuoteError::PcrValuesChanged => "the requester's PCR values are not the ones enrolled",
        },
    )
}
