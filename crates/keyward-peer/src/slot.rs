//! The peers slot: K is split k-of-n (see [`keyward_core::shamir`]) and each share is held by one
//! peer node; the slot records who the peers are, the threshold, the share set and the release
//! policy — never a share. Its wrapped key is K under a KEK derived from K itself with HKDF, so
//! the slot is a verifier: a key put together from shares opens it only if it is exactly K (and
//! then the header MAC is checked as after any unlock). Knowing the slot gives nothing without
//! K, as with the fingerprint, which is also a function of K alone.
//!
//! Opened with a key already put together (`recover --peers`, a re-share), the slot checks it;
//! opened with nothing but the box's identity (the restart case, `unlock --slot`), it asks its
//! peers itself.

use std::sync::Arc;
use std::time::Duration;

use hkdf::Hkdf;
use keyward_core::kdf::{KEK_LEN, Kek};
use keyward_core::shamir::MAX_SHARES;
use keyward_core::slot::{
    Channel, Companion, Dropped, NewSlot, OpenContext, RetireStage, Retirement, SealContext, Slot,
    SlotError, SlotKind, SlotParams, Unlocker, typed_params,
};
use keyward_core::{DataKey, ExpectedFingerprint, IntegrityFailure};
use keyward_service::{SigningIdentity, unix_now};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::card::{CardError, PeerCard};
use crate::recovery::{self, Attester, GatherError, Gathered, Proof};
use crate::share_journal::{Disposal, PendingSet, ShareJournal};

/// The kind's name.
pub const PEERS: &str = "peers";

/// How long one peer may take to answer before it counts as unreachable.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);

const PEERS_INFO: &[u8] = b"keyward peers slot v1";
/// Longest peer field kept (a URL, a key, a certificate hash).
const MAX_FIELD: usize = 512;

/// Who may obtain a share from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleasePolicy {
    /// The owner's identity signature over the peer's nonce: the box itself, after a restart.
    Identity,
    /// An operator's release ticket: a fresh machine with an operator's approval.
    Operator,
    /// Both at once.
    Both,
    /// Either one: the box after a restart, or a fresh machine with a ticket.
    Either,
    /// The owner's identity signature and a fresh quote by the box's TPM over the peer's nonce,
    /// with the PCR values enrolled: the box itself, in its measured state.
    TpmQuote,
}

impl ReleasePolicy {
    /// Every policy, in display order.
    pub const ALL: [ReleasePolicy; 5] = [
        ReleasePolicy::Either,
        ReleasePolicy::Identity,
        ReleasePolicy::Operator,
        ReleasePolicy::Both,
        ReleasePolicy::TpmQuote,
    ];

    /// The name written in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ReleasePolicy::Identity => "identity",
            ReleasePolicy::Operator => "operator",
            ReleasePolicy::Both => "both",
            ReleasePolicy::Either => "either",
            ReleasePolicy::TpmQuote => "tpm-quote",
        }
    }

    /// Whether a request carrying these proofs satisfies the policy (`quoted`: a TPM quote that
    /// verified against the set's enrolled attestation).
    pub fn allows(self, owner_signed: bool, operator_ticket: bool, quoted: bool) -> bool {
        match self {
            ReleasePolicy::Identity => owner_signed,
            ReleasePolicy::Operator => operator_ticket,
            ReleasePolicy::Both => owner_signed && operator_ticket,
            ReleasePolicy::Either => owner_signed || operator_ticket,
            ReleasePolicy::TpmQuote => owner_signed && quoted,
        }
    }
}

impl std::fmt::Display for ReleasePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ReleasePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReleasePolicy::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            format!("unknown policy `{s}` (known: either, identity, operator, both, tpm-quote)")
        })
    }
}

/// One peer as the slot records it: what its card said when the share was stored.
pub use keyward_service::addresses::PeerRecord;

/// Parameters of a peers slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersParams {
    /// The name the peers know this box by (an operator's release ticket names it).
    pub owner: String,
    /// Shares needed to rebuild K.
    pub threshold: u8,
    /// The share set's id (32 hex digits); a re-share makes a new one.
    pub share_set: String,
    /// Who the peers release shares to.
    pub policy: ReleasePolicy,
    /// The peers, one share each.
    pub peers: Vec<PeerRecord>,
}

impl PeersParams {
    fn validate(&self) -> Result<(), IntegrityFailure> {
        let bad = |what: &str| Err(IntegrityFailure::Inconsistent(format!("peers slot: {what}")));
        let n = self.peers.len();
        if self.owner.is_empty() || self.owner.len() > 64 {
            return bad("owner name is empty or too long");
        }
        if self.threshold < 2 || usize::from(self.threshold) > n || n > usize::from(MAX_SHARES) {
            return bad("threshold and peer count out of range");
        }
        if self.share_set.len() != 32 || !self.share_set.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad("share set id is not 32 hex digits");
        }
        for (i, peer) in self.peers.iter().enumerate() {
            let fields = [&peer.url, &peer.identity, &peer.seal_key, &peer.certificate];
            if fields.iter().any(|f| f.is_empty() || f.len() > MAX_FIELD) {
                return bad("a peer field is empty or too long");
            }
            if self.peers[..i].iter().any(|p| p.identity == peer.identity) {
                return bad("a peer is listed twice");
            }
        }
        Ok(())
    }

    fn kek(&self, candidate: &DataKey) -> Result<Kek, IntegrityFailure> {
        let mut kek = Zeroizing::new([0u8; KEK_LEN]);
        Hkdf::<Sha256>::new(Some(self.share_set.as_bytes()), candidate.expose())
            .expand(PEERS_INFO, kek.as_mut_slice())
            .map_err(|_| IntegrityFailure::Inconsistent("HKDF output length".into()))?;
        Ok(kek)
    }

    /// A one-line description for `list`.
    pub fn describe(&self) -> String {
        format!(
            "{}-of-{} peers, share set {}, release: {}",
            self.threshold,
            self.peers.len(),
            &self.share_set[..8.min(self.share_set.len())],
            self.policy
        )
    }
}

impl PeersParams {
    /// The parameters of a peers slot's stored form (`None` for a slot of another kind).
    pub fn of(params: &SlotParams) -> Option<Result<PeersParams, IntegrityFailure>> {
        (params.kind == PEERS).then(|| {
            let read: PeersParams = typed_params(PEERS, &params.params)?;
            read.validate()?;
            Ok(read)
        })
    }

    /// The cards the slot recorded.
    pub fn cards(&self) -> Result<Vec<PeerCard>, CardError> {
        self.peers.iter().map(PeerCard::from_record).collect()
    }

    /// What the slot's peers want to see from a box that has only its own identity (and maybe
    /// an operator's release ticket).
    fn proof(
        &self,
        identity: SigningIdentity,
        ticket: Option<Zeroizing<String>>,
    ) -> Result<Proof, PeersSlotError> {
        let identity = Arc::new(identity);
        let share_set = self.share_set.clone();
        match (self.policy, ticket) {
            (ReleasePolicy::Operator, _) => Err(PeersSlotError::OperatorOnly),
            (ReleasePolicy::Both, None) => Err(PeersSlotError::TicketNeeded),
            (ReleasePolicy::Both, Some(ticket)) => {
                Ok(Proof::Both { identity, share_set, ticket: Arc::new(ticket) })
            }
            (ReleasePolicy::Identity | ReleasePolicy::Either, _) => {
                Ok(Proof::Owner { identity, share_set, attester: None })
            }
            (ReleasePolicy::TpmQuote, _) => Ok(Proof::Owner {
                identity,
                share_set,
                attester: Some(Arc::new(Attester::from_environment())),
            }),
        }
    }
}

/// The policy as text for messages.
pub fn policy_text(policy: ReleasePolicy) -> &'static str {
    match policy {
        ReleasePolicy::Either => "the box's identity or an operator's release ticket",
        ReleasePolicy::Identity => "the box's identity only",
        ReleasePolicy::Operator => "an operator's release ticket only",
        ReleasePolicy::Both => "the box's identity and an operator's release ticket together",
        ReleasePolicy::TpmQuote => "the box's identity with a fresh quote by its TPM",
    }
}

/// Why a peers slot could not ask its peers.
#[derive(Debug, thiserror::Error)]
pub enum PeersSlotError {
    /// The peers release only to an operator's ticket, which a box after a restart does not
    /// hold.
    #[error(
        "this slot's peers release shares only to an operator's release ticket; use `keyward recover --peers`"
    )]
    OperatorOnly,
    /// The peers want the box's identity and an operator's ticket, and no ticket was given.
    #[error(
        "this slot's peers want the box's identity and an operator's release ticket: add --release-ticket F (--unlock-release-ticket F)"
    )]
    TicketNeeded,
    /// The release ticket given is not text.
    #[error(
        "the release ticket is not text; give the file `keyward operator approve-release` wrote"
    )]
    TicketNotText,
    /// The box's identity file cannot be read.
    #[error("the box's identity: {0}")]
    Identity(String),
    /// A card the slot recorded cannot be used.
    #[error("the slot's record of a peer: {0}")]
    Card(#[from] CardError),
    /// Too few peers gave a share, or the shares do not give K.
    #[error(transparent)]
    Gather(#[from] GatherError),
    /// The async runtime for the peer calls could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl PeersSlotError {
    /// Which kind of failure it is: what the slot needs and was not given is a usage error.
    pub fn class(&self) -> keyward_core::ErrorClass {
        match self {
            PeersSlotError::OperatorOnly
            | PeersSlotError::TicketNeeded
            | PeersSlotError::TicketNotText
            | PeersSlotError::Identity(_) => keyward_core::ErrorClass::Usage,
            PeersSlotError::Card(e) => e.class(),
            PeersSlotError::Gather(e) => e.class(),
            PeersSlotError::Runtime(_) => keyward_core::ErrorClass::Internal,
        }
    }
}

keyward_core::classify_by_method!(PeersSlotError);

impl From<PeersSlotError> for SlotError {
    fn from(error: PeersSlotError) -> Self {
        SlotError::Other(Box::new(error))
    }
}

/// The peers kind. Register it (`keyward_core::slot::registry::register(&[&PeersKind])`) in a
/// program that opens peers slots.
#[derive(Debug)]
pub struct PeersKind;

impl SlotKind for PeersKind {
    fn name(&self) -> &'static str {
        PEERS
    }

    fn about(&self) -> &'static str {
        "The key split k-of-n among peer nodes (`enroll peers --threshold K --peer CARD…`); the box gets it back after a restart by proving its identity to the peers"
    }

    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        let params: PeersParams = typed_params(PEERS, params)?;
        params.validate()?;
        Ok(Box::new(params))
    }
}

impl Slot for PeersParams {
    fn channel(&self) -> Channel {
        Channel::Key
    }

    fn describe(&self) -> String {
        PeersParams::describe(self)
    }

    // The KEK is derived from a key whose fingerprint is K's.
    fn kek_is_vouched(&self) -> bool {
        true
    }

    fn facts(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([
            ("threshold".to_string(), Value::from(self.threshold)),
            ("peers".to_string(), Value::from(self.peers.len())),
            ("share_set".to_string(), Value::from(self.share_set.clone())),
            ("policy".to_string(), Value::from(self.policy.name())),
        ])
    }

    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        if let Some(Unlocker::Reconstructed(candidate)) = ctx.want(Channel::Key, None)? {
            return Ok(Some(self.kek(candidate)?));
        }
        // Asked with nothing in hand: a source that has the box's identity lets us ask the peers.
        let Some(identity) = ctx.secrets.companion(Companion::BoxIdentity)? else {
            return Ok(None);
        };
        let identity = SigningIdentity::from_file_bytes(&identity)
            .map_err(|e| PeersSlotError::Identity(e.to_string()))?;
        // Only a `both` policy takes the operator's ticket along with the box's own proof.
        let ticket = match self.policy {
            ReleasePolicy::Both => match ctx.secrets.companion(Companion::ReleaseTicket)? {
                Some(bytes) => Some(Zeroizing::new(
                    std::str::from_utf8(&bytes)
                        .map_err(|_| PeersSlotError::TicketNotText)?
                        .trim()
                        .to_string(),
                )),
                None => None,
            },
            _ => None,
        };
        let proof = self.proof(identity, ticket)?;
        let cards = self.cards().map_err(PeersSlotError::from)?;
        let expected = ExpectedFingerprint::Full(ctx.fingerprint);
        let gathered = crate::runtime::block_on(recovery::gather(
            &cards,
            proof,
            ctx.secrets.purpose().into(),
            &expected,
            Some(self.threshold),
            PEER_TIMEOUT,
        ))
        .map_err(PeersSlotError::Runtime)?
        .map_err(PeersSlotError::from)?;
        for line in report(&gathered) {
            ctx.secrets.notice(&line);
        }
        Ok(Some(self.kek(&gathered.key)?))
    }

    /// A removed slot's shares are deleted at its peers: noted in the share journal before the
    /// commit (so they go even if the command stops right after it), deleted after. A re-share,
    /// the one way a peers slot is replaced, notes and deletes its sets itself: it must note the
    /// new set before placing it.
    fn retire(&self, at: &mut Retirement<'_>) -> Result<(), SlotError> {
        if at.dropped != Dropped::Removed {
            return Ok(());
        }
        let journal = ShareJournal::beside(at.keybox);
        let RetireStage::Committed(keybox) = at.stage else {
            let set = PendingSet {
                share_set: self.share_set.clone(),
                peers: self.peers.clone(),
                since: unix_now(),
                disposal: Disposal::Removed,
            };
            return Ok(journal.note(set)?);
        };
        let identity = at.secrets.companion(Companion::BoxIdentity).and_then(|bytes| {
            let bytes = bytes.ok_or_else(|| PeersSlotError::Identity("not found".into()))?;
            SigningIdentity::from_file_bytes(&bytes)
                .map_err(|e| PeersSlotError::Identity(e.to_string()).into())
        });
        let identity = match identity {
            Ok(identity) => Arc::new(identity),
            Err(e) => {
                at.secrets.notice(&format!(
                    "the removed slot's shares stay at its peers for now ({e}); `keyward peers status` deletes them"
                ));
                return Ok(());
            }
        };
        let done = journal.clean_up(keybox, &identity)?;
        for (peer, set, why) in &done.failed {
            at.secrets.notice(&format!(
                "{peer} still holds share set {set} ({why}); `keyward peers status` tries again"
            ));
        }
        Ok(())
    }
}

/// What a person should hear about a gathering that worked: peers that gave nothing, shares
/// that did not fit.
pub fn report(gathered: &Gathered) -> Vec<String> {
    let misfits = gathered.misfits.iter().map(|misfit| {
        format!(
            "the share from {misfit} does not fit the key: that peer's store is damaged or it lies; re-share without it"
        )
    });
    let silent = gathered
        .silent
        .iter()
        .map(|silent| format!("no share from {}: {}", silent.peer, silent.reason));
    misfits.chain(silent).collect()
}

/// A new (or re-shared) peers slot: K itself, whose shares the peers listed already hold.
#[derive(Debug)]
pub struct NewPeersSlot {
    /// K (the slot checks that a reconstruction gives exactly this).
    pub key: DataKey,
    /// Peers, threshold, share set, policy.
    pub params: PeersParams,
}

impl NewSlot for NewPeersSlot {
    fn kind(&self) -> &'static str {
        PEERS
    }

    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        self.params.validate()?;
        Ok((SlotParams::new(PEERS, &self.params)?, self.params.kek(&self.key)?))
    }

    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::Reconstructed(&self.key)
    }
}
