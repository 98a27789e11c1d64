//! What a peer decides, as plain async functions over its store: store, list and delete an
//! owner's shares (owner-signed requests), hand out nonces, and release a share to a requester
//! whose proof satisfies the owner's policy. The axum server only moves bytes in and out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyward_hub::statement::{self, Statement};
use keyward_hub::{AuthError, PublicKey};
use zeroize::Zeroizing;

use crate::api::{
    NonceResponse, ReleaseRequest, ReleaseResponse, ReleasedShare, StatusResponse,
    StoreShareRequest, release_message, released_binding,
};
use crate::seal::{self, Purpose, SealSecret};
use crate::store::{Store, StoreError, Stored, StoredShare};

/// How long a nonce stays good.
pub const NONCE_TTL_SECS: i64 = 60;
/// Most nonces outstanding at once; beyond that new ones are refused until old ones expire.
const MAX_NONCES: usize = 100_000;

/// Why a peer refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The request is not well formed.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A proof (signature, ticket, nonce) does not hold; counts toward the source's lockout.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated, but policy says no.
    #[error("refused: {0}")]
    Refused(String),
    /// Too many requests.
    #[error("rate limited: {0}")]
    RateLimited(String),
    /// No such share set.
    #[error("not found: {0}")]
    NotFound(String),
    /// The name or set belongs to someone else.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store failed, or a stored share no longer opens.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for PeerError {
    fn from(e: StoreError) -> Self {
        PeerError::Internal(e.to_string())
    }
}

impl From<AuthError> for PeerError {
    fn from(e: AuthError) -> Self {
        PeerError::Unauthenticated(e.to_string())
    }
}

impl PeerError {
    /// The reason alone, for the answer's message.
    pub fn reason(&self) -> String {
        match self {
            PeerError::Malformed(r)
            | PeerError::Refused(r)
            | PeerError::RateLimited(r)
            | PeerError::NotFound(r)
            | PeerError::Conflict(r) => r.clone(),
            PeerError::Unauthenticated(r) => format!("not authenticated: {r}"),
            PeerError::Internal(_) => "internal error".into(),
        }
    }
}

/// A peer: its store, its sealing key, the operators whose tickets it accepts, and the nonces
/// it has handed out.
#[derive(Clone)]
pub struct Peer {
    store: Store,
    seal_secret: Arc<SealSecret>,
    operators: Vec<PublicKey>,
    nonces: Arc<Mutex<HashMap<String, i64>>>,
}

fn is_hex_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Peer {
    /// A peer over `store`.
    pub fn new(store: Store, seal_secret: SealSecret, operators: Vec<PublicKey>) -> Self {
        Peer { store, seal_secret: Arc::new(seal_secret), operators, nonces: Arc::default() }
    }

    /// Stores a share that `owner` sealed to this peer. The share must open here (so a release
    /// can never fail for a share that was accepted) — and is kept sealed.
    pub async fn store_share(
        &self,
        owner: &PublicKey,
        request: &StoreShareRequest,
        now: i64,
    ) -> Result<Stored, PeerError> {
        let name_ok = keyward_hub::hub::valid_box_name(&request.owner_name);
        if !name_ok {
            return Err(PeerError::Malformed("owner names are 1–64 letters, digits, `-_.`".into()));
        }
        if !is_hex_id(&request.share_set) || request.keybox_id.len() > 64 {
            return Err(PeerError::Malformed(
                "the share set is not 32 lower-case hex digits".into(),
            ));
        }
        if request.threshold < 2 || request.x == 0 {
            return Err(PeerError::Malformed("threshold below 2 or share x of 0".into()));
        }
        if request.fingerprint.parse::<keyward_core::Fingerprint>().is_err() {
            return Err(PeerError::Malformed("the fingerprint is not 32 colon hex bytes".into()));
        }
        let owner_text = owner.to_string();
        let share = seal::open(
            &self.seal_secret,
            Purpose::StoredShare,
            &request.binding(&owner_text),
            &request.share,
        )
        .map_err(|e| PeerError::Malformed(format!("{e} (was it sealed to this peer's card?)")))?;
        if share.first() != Some(&request.x) {
            return Err(PeerError::Malformed("the sealed share's x differs from `x`".into()));
        }
        match self.store.store_share(&owner_text, request, now).await? {
            Stored::NameTaken => Err(PeerError::Conflict(format!(
                "the owner name {} belongs to another identity here",
                request.owner_name
            ))),
            Stored::SetTaken => {
                Err(PeerError::Conflict(format!("share set {} exists here", request.share_set)))
            }
            stored => Ok(stored),
        }
    }

    /// The sets `owner` has here.
    pub async fn status(&self, owner: &PublicKey) -> Result<StatusResponse, PeerError> {
        Ok(StatusResponse { sets: self.store.sets_of(&owner.to_string()).await? })
    }

    /// Deletes one of `owner`'s sets.
    pub async fn delete(&self, owner: &PublicKey, share_set: &str) -> Result<(), PeerError> {
        if self.store.delete(&owner.to_string(), share_set).await? {
            Ok(())
        } else {
            Err(PeerError::NotFound(format!("no share set {share_set} of yours here")))
        }
    }

    /// A fresh single-use nonce.
    pub fn nonce(&self, now: i64) -> Result<NonceResponse, PeerError> {
        let nonce = keyward_core::encoding::to_hex(
            &keyward_core::random::array::<16>().map_err(|e| PeerError::Internal(e.to_string()))?,
        );
        let expires = now + NONCE_TTL_SECS;
        let mut nonces =
            self.nonces.lock().map_err(|_| PeerError::Internal("nonce table".into()))?;
        if nonces.len() >= MAX_NONCES {
            nonces.retain(|_, until| *until >= now);
            if nonces.len() >= MAX_NONCES {
                return Err(PeerError::RateLimited("too many outstanding nonces".into()));
            }
        }
        nonces.insert(nonce.clone(), expires);
        Ok(NonceResponse { nonce, expires })
    }

    /// Uses up a nonce: `Ok` only once, and only before it expires.
    fn take_nonce(&self, nonce: &str, now: i64) -> Result<(), PeerError> {
        let mut nonces =
            self.nonces.lock().map_err(|_| PeerError::Internal("nonce table".into()))?;
        match nonces.remove(nonce) {
            Some(expires) if expires >= now => Ok(()),
            Some(_) => Err(PeerError::Unauthenticated("the nonce has expired; ask again".into())),
            None => Err(PeerError::Unauthenticated("unknown or already used nonce".into())),
        }
    }

    /// Releases shares to a requester whose proofs satisfy each set's policy, sealed to the
    /// requester's one-time key. The owner's signature covers one share set; a ticket names the
    /// owner and the requester, whose signature must come with it.
    pub async fn release(
        &self,
        request: &ReleaseRequest,
        now: i64,
    ) -> Result<ReleaseResponse, PeerError> {
        self.take_nonce(&request.nonce, now)?;
        if request.owner_signature.is_some() && request.share_set.is_none() {
            return Err(PeerError::Malformed("an owner's signature asks for one share_set".into()));
        }
        let sets: Vec<StoredShare> = match (&request.share_set, &request.owner_name) {
            (Some(set), _) => self.store.share(set).await?.into_iter().collect(),
            (None, Some(name)) => self.store.shares_named(name).await?,
            (None, None) => {
                return Err(PeerError::Malformed("name a share_set or an owner_name".into()));
            }
        };
        let (Some(first), Some(asked)) = (sets.first(), request.asked()) else {
            // A guess at a set or a name counts as a failed proof (toward the lockout).
            return Err(PeerError::Unauthenticated("no such share set or owner here".into()));
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
                // Only one set here: the request named it.
                self.check_owner_signature(first, request, signature)?;
                true
            }
            None => false,
        };
        let released: Vec<&StoredShare> = sets
            .iter()
            .filter(|set| set.request.policy.allows(owner_signed, ticket.is_some()))
            .collect();
        if released.is_empty() {
            return Err(PeerError::Unauthenticated(
                "the proof given is not what the owner's policy asks for".into(),
            ));
        }
        let shares =
            released.iter().map(|set| self.reseal(set, request)).collect::<Result<Vec<_>, _>>()?;
        // Used up only once everything is ready to go out.
        if let Some(id) = &ticket
            && !self.store.use_ticket(id, now).await?
        {
            return Err(PeerError::Refused("this release ticket was already used here".into()));
        }
        // When it was last released is for `peers status` only: note it after answering, so
        // the requester does not wait for its fsync.
        let (store, sets) = (self.store.clone(), shares.iter().map(|s| s.share_set.clone()));
        let sets: Vec<String> = sets.collect();
        tokio::spawn(async move {
            for set in sets {
                if let Err(e) = store.released(&set, now).await {
                    tracing::warn!(error = %e, "cannot note a release time");
                }
            }
        });
        Ok(ReleaseResponse { shares })
    }

    fn check_owner_signature(
        &self,
        set: &StoredShare,
        request: &ReleaseRequest,
        signature: &str,
    ) -> Result<(), PeerError> {
        let owner: PublicKey = set.owner.parse()?;
        let signature = keyward_core::encoding::from_base64(signature)
            .ok_or(AuthError::Malformed("owner_signature"))?;
        let message = release_message(&request.nonce, &set.request.share_set, &request.ephemeral);
        owner.verify(&message, &signature)?;
        Ok(())
    }

    /// Verifies a peer release ticket for `owner_name` and its requester's signature over this
    /// request; returns the ticket id (used up later).
    fn check_ticket(
        &self,
        text: &str,
        request: &ReleaseRequest,
        owner_name: &str,
        asked: &str,
        now: i64,
    ) -> Result<String, PeerError> {
        let verified = statement::verify(text, &self.operators, now)?;
        let (requester, id) = match verified.statement {
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
        requester
            .verify(&release_message(&request.nonce, asked, &request.ephemeral), &signature)?;
        Ok(id)
    }

    fn reseal(
        &self,
        set: &StoredShare,
        request: &ReleaseRequest,
    ) -> Result<ReleasedShare, PeerError> {
        let share: Zeroizing<Vec<u8>> = seal::open(
            &self.seal_secret,
            Purpose::StoredShare,
            &set.request.binding(&set.owner),
            &set.request.share,
        )
        .map_err(|e| PeerError::Internal(format!("stored share {}: {e}", set.request.share_set)))?;
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
        .map_err(|e| PeerError::Malformed(format!("the one-time key: {e}")))?;
        Ok(released)
    }
}
