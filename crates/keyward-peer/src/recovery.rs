//! Getting shares back from peers and putting K together: every peer is asked in parallel (a
//! nonce, then the proof), each answer is opened with the one-time key it was sealed to, and as
//! soon as a share set has enough shares, from distinct peers, whose combination has the
//! expected fingerprint, the key is returned. Answers still in flight get a short grace (as long
//! as the key took, 0.25 to 1 s) so a peer whose share does not fit is named too.
//!
//! What a peer claims about a share (its set, threshold, fingerprint) is never trusted: the
//! fingerprint to look for comes from the caller (the keybox, or the operator), each peer counts
//! once per set, and a set is tried at every threshold its answers claim.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_core::shamir::Share;
use keyward_core::{DataKey, ExpectedFingerprint};
use keyward_service::SigningIdentity;
use keyward_service::client::ClientError;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::api::{
    QuoteProof, ReleasePurpose, ReleaseRequest, ReleasedShare, quote_challenge, release_message,
    released_binding,
};
use crate::card::PeerCard;
use crate::client::PeerClient;
use crate::reconstruct::{Answer, reconstruct};
use crate::seal::{self, Purpose, SealSecret};

/// Most shares one peer's answer may carry (one per set of the owner it holds; a crashed
/// re-share can leave two).
const MAX_SHARES_PER_ANSWER: usize = 4;

/// The proof a requester offers.
#[derive(Clone)]
pub enum Proof {
    /// The owner, after a restart: its identity signs over each peer's nonce, for one set.
    Owner {
        /// The owner's identity.
        identity: Arc<SigningIdentity>,
        /// The share set its keybox records.
        share_set: String,
        /// For a `tpm-quote` set: the box's TPM, which quotes the PCRs a peer asks for.
        attester: Option<Arc<Attester>>,
    },
    /// A fresh machine: an operator's release ticket for the owner's name, which names this
    /// machine's requester key (every set of that owner a peer holds is asked for).
    Ticket {
        /// The ticket text.
        ticket: Arc<Zeroizing<String>>,
        /// The owner's name.
        owner_name: String,
        /// The requester key the ticket names.
        requester: Arc<SigningIdentity>,
    },
    /// The owner's identity and a ticket naming it as the requester (the `both` policy).
    Both {
        /// The owner's identity.
        identity: Arc<SigningIdentity>,
        /// The share set.
        share_set: String,
        /// The ticket text.
        ticket: Arc<Zeroizing<String>>,
    },
}

impl Proof {
    /// What its requests ask for: the set, or the owner's name.
    fn asked(&self) -> &str {
        match self {
            Proof::Owner { share_set, .. } | Proof::Both { share_set, .. } => share_set,
            Proof::Ticket { owner_name, .. } => owner_name,
        }
    }

    /// The one set asked for, if the proof names one.
    fn share_set(&self) -> Option<&str> {
        match self {
            Proof::Owner { share_set, .. } | Proof::Both { share_set, .. } => Some(share_set),
            Proof::Ticket { .. } => None,
        }
    }

    /// The box's TPM, if the proof brings quotes.
    fn attester(&self) -> Option<&Attester> {
        match self {
            Proof::Owner { attester, .. } => attester.as_deref(),
            _ => None,
        }
    }

    /// The release request for `nonce`, for `purpose`, answered sealed to `ephemeral`.
    fn request(
        &self,
        nonce: &str,
        ephemeral: crate::seal::SealPublicKey,
        quote: Option<QuoteProof>,
        purpose: ReleasePurpose,
    ) -> ReleaseRequest {
        let sign = |identity: &SigningIdentity, asked: &str| {
            keyward_core::encoding::to_base64(
                &identity.sign(&release_message(nonce, asked, &ephemeral, purpose)),
            )
        };
        let mut request = ReleaseRequest {
            nonce: nonce.to_string(),
            ephemeral,
            share_set: None,
            owner_name: None,
            owner_signature: None,
            ticket: None,
            requester_signature: None,
            quote,
            purpose,
        };
        match self {
            Proof::Owner { identity, share_set, .. } => {
                request.owner_signature = Some(sign(identity, share_set));
                request.share_set = Some(share_set.clone());
            }
            Proof::Ticket { ticket, owner_name, requester } => {
                request.ticket = Some(ticket.as_str().to_string());
                request.requester_signature = Some(sign(requester, owner_name));
                request.owner_name = Some(owner_name.clone());
            }
            Proof::Both { identity, share_set, ticket } => {
                request.owner_signature = Some(sign(identity, share_set));
                request.requester_signature = request.owner_signature.clone();
                request.ticket = Some(ticket.as_str().to_string());
                request.share_set = Some(share_set.clone());
            }
        }
        request
    }
}

/// The box's TPM, quoting for `tpm-quote` releases: the one `KEYWARD_TPM2_DEVICE` names, else
/// /dev/tpmrm0 (the box's own TPM, as at enrollment).
#[derive(Debug, Clone)]
pub struct Attester {
    device: String,
}

impl Attester {
    /// The TPM this process is told to use.
    pub fn from_environment() -> Self {
        let device = std::env::var(keyward_tpm2::DEVICE_VARIABLE)
            .unwrap_or_else(|_| keyward_tpm2::DEFAULT_DEVICE.to_string());
        Attester { device }
    }

    /// A quote over `challenge` of the PCRs `pcrs` (`sha256:7+11`).
    fn quote(&self, challenge: &[u8], pcrs: &str) -> Result<QuoteProof, ClientError> {
        let unavailable = |reason: String| ClientError::Unavailable {
            service: "TPM",
            url: self.device.clone(),
            reason,
            may_have_arrived: false,
        };
        let (bank, pcrs) = keyward_tpm2::parse_pcrs(pcrs)
            .ok_or_else(|| unavailable(format!("a peer asked for PCRs `{pcrs}`")))?;
        let mut tpm =
            keyward_tpm2::Tpm::open(&self.device).map_err(|e| unavailable(e.to_string()))?;
        let quote = tpm.quote(challenge, bank, &pcrs).map_err(|e| unavailable(e.to_string()))?;
        Ok(QuoteProof {
            attest: keyward_core::encoding::to_base64(&quote.attest),
            signature: keyward_core::encoding::to_base64(&quote.signature),
        })
    }
}

/// A peer that gave no share, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silent {
    /// The peer's URL.
    pub peer: String,
    /// Why: unreachable, refused, or its answer did not open.
    pub reason: String,
    /// It could not be reached at all (as opposed to answering with a refusal).
    pub unreachable: bool,
}

/// A key put together from peers.
#[derive(Debug)]
pub struct Gathered {
    /// The key.
    pub key: DataKey,
    /// The share set it came from.
    pub share_set: String,
    /// Peers whose shares did not fit the key.
    pub misfits: Vec<String>,
    /// Peers that gave nothing.
    pub silent: Vec<Silent>,
}

/// Why no key came out.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    /// Not enough shares arrived.
    #[error("{}", if *needed == 0 { "no peer gave a share".to_string() } else { format!("only {got} of the {needed} shares needed arrived") })]
    TooFew {
        /// Shares that arrived (for the best set).
        got: usize,
        /// The threshold (0 if no share arrived at all).
        needed: usize,
        /// Peers that gave nothing.
        silent: Vec<Silent>,
    },
    /// Enough shares, but none of their combinations has the expected fingerprint.
    #[error("no {needed} of the {got} shares give the key with fingerprint {expected}")]
    NoFit {
        /// Shares that arrived.
        got: usize,
        /// The threshold.
        needed: usize,
        /// The fingerprint looked for.
        expected: String,
    },
}

impl GatherError {
    /// Which kind of failure it is: refusals (a policy, a lockout) are what to fix first; else
    /// too many peers are down; shares that give no key with the fingerprint are damage.
    pub fn class(&self) -> keyward_core::ErrorClass {
        match self {
            GatherError::TooFew { silent, .. } if silent.iter().any(|s| !s.unreachable) => {
                keyward_core::ErrorClass::Refused
            }
            GatherError::TooFew { .. } => keyward_core::ErrorClass::Unavailable,
            GatherError::NoFit { .. } => keyward_core::ErrorClass::Integrity,
        }
    }
}

keyward_core::classify_by_method!(GatherError);

struct Received {
    peer: String,
    released: ReleasedShare,
    share: Share,
}

/// Asks one peer for its share(s).
async fn ask(
    card: PeerCard,
    proof: Proof,
    purpose: ReleasePurpose,
    timeout: Duration,
) -> Result<Vec<Received>, (String, ClientError)> {
    let peer = card.url.clone();
    let fail = |e| (peer.clone(), e);
    let client = PeerClient::new(&card, timeout).map_err(fail)?;
    let one_time = SealSecret::generate().map_err(|e| fail(ClientError::Core(e)))?;
    let offered = client.nonce(proof.asked()).await.map_err(fail)?;
    let nonce = offered.nonce;
    // A peer that releases only to a TPM quote names the PCRs; the box's TPM quotes them over
    // this very request.
    let quote = match (&offered.quote_pcrs, proof.attester()) {
        (Some(pcrs), Some(attester)) => {
            let challenge = quote_challenge(&nonce, proof.asked(), &one_time.public(), purpose);
            Some(attester.quote(&challenge, pcrs).map_err(fail)?)
        }
        _ => None,
    };
    let request = proof.request(&nonce, one_time.public(), quote, purpose);
    let answer = client.release(&request).await.map_err(fail)?;
    if answer.shares.len() > MAX_SHARES_PER_ANSWER {
        return Err(fail(client.bad_answer("more shares than any owner has sets")));
    }
    let mut received = Vec::new();
    for released in answer.shares {
        let bad = |reason: &str| fail(client.bad_answer(reason));
        if proof.share_set().is_some_and(|asked| asked != released.share_set) {
            return Err(bad("a share of a set that was not asked for"));
        }
        let bytes = seal::open(
            &one_time,
            Purpose::Release,
            &released_binding(&nonce, &released),
            &released.share,
        )
        .map_err(|e| bad(&e.to_string()))?;
        let share = Share::from_bytes(&bytes).ok_or_else(|| bad("an empty share"))?;
        if share.x != released.x {
            return Err(bad("the share's x differs from the one announced"));
        }
        received.push(Received { peer: peer.clone(), released, share });
    }
    Ok(received)
}

/// Per share set: one share per peer, and the thresholds claimed.
#[derive(Default)]
struct SetAnswers {
    thresholds: BTreeSet<usize>,
    answers: Vec<Answer>,
}

impl SetAnswers {
    fn add(&mut self, peer: String, threshold: u8, share: Share) {
        if self.answers.iter().any(|a| a.peer == peer) {
            return;
        }
        self.thresholds.insert(usize::from(threshold));
        self.answers.push(Answer { peer, share });
    }

    /// The key, if enough shares fit: at the threshold given, else at each one claimed.
    fn try_key(
        &self,
        known: Option<usize>,
        expected: &ExpectedFingerprint,
    ) -> Option<(DataKey, Vec<String>)> {
        let thresholds: Vec<usize> = match known {
            Some(k) => vec![k],
            None => self.thresholds.iter().copied().filter(|k| *k >= 2).collect(),
        };
        thresholds.into_iter().filter(|k| self.answers.len() >= *k).find_map(|k| {
            reconstruct(&self.answers, k, expected).ok().map(|found| (found.key, found.misfits))
        })
    }
}

/// Asks every peer on `cards` with `proof`, for `purpose`, and puts the key together: it must
/// have the `expected` fingerprint (the keybox's, or the one the operator recorded).
/// `threshold` is the one the keybox records, if any.
pub async fn gather(
    cards: &[PeerCard],
    proof: Proof,
    purpose: ReleasePurpose,
    expected: &ExpectedFingerprint,
    threshold: Option<u8>,
    timeout: Duration,
) -> Result<Gathered, GatherError> {
    let known = threshold.map(usize::from);
    let started = Instant::now();
    let mut pending = JoinSet::new();
    for card in cards {
        pending.spawn(ask(card.clone(), proof.clone(), purpose, timeout));
    }
    let mut sets: BTreeMap<String, SetAnswers> = BTreeMap::new();
    let mut silent = Vec::new();
    let mut found: Option<(String, DataKey, Vec<String>)> = None;
    let mut grace_until: Option<Instant> = None;
    loop {
        let next = match grace_until {
            Some(until) => match tokio::time::timeout_at(until.into(), pending.join_next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
            None => pending.join_next().await,
        };
        let Some(joined) = next else { break };
        match joined {
            Ok(Ok(received)) => {
                for r in received {
                    let set = sets.entry(r.released.share_set.clone()).or_default();
                    set.add(r.peer, r.released.threshold, r.share);
                }
            }
            Ok(Err((peer, error))) => {
                let unreachable = matches!(error, ClientError::Unavailable { .. });
                silent.push(Silent { peer, reason: error.to_string(), unreachable });
            }
            Err(join) => silent.push(Silent {
                peer: "a peer".into(),
                reason: join.to_string(),
                unreachable: true,
            }),
        }
        // Whenever a set could be complete, try it (again: more answers may name a misfit).
        for (id, set) in &sets {
            if let Some((key, misfits)) = set.try_key(known, expected) {
                let better = found.as_ref().is_none_or(|(_, _, m)| misfits.len() >= m.len());
                if better {
                    found = Some((id.clone(), key, misfits));
                }
            }
        }
        if found.is_some() && grace_until.is_none() {
            // Give answers in flight as long again as the key took (at least a quarter, at
            // most a whole second), so a misfit among them is named. It costs nothing when
            // every peer has answered, and peers that are down fail at once.
            let grace = started.elapsed().clamp(Duration::from_millis(250), Duration::from_secs(1));
            grace_until = Some(Instant::now() + grace);
        }
    }
    pending.abort_all();
    if let Some((share_set, key, misfits)) = found {
        return Ok(Gathered { key, share_set, misfits, silent });
    }
    let best = sets.values().max_by_key(|s| s.answers.len());
    let needed = |s: &SetAnswers| known.or_else(|| s.thresholds.first().copied()).unwrap_or(0);
    match best {
        Some(set) if needed(set) >= 2 && set.answers.len() >= needed(set) => {
            Err(GatherError::NoFit {
                got: set.answers.len(),
                needed: needed(set),
                expected: expected.to_string(),
            })
        }
        _ => Err(GatherError::TooFew {
            got: best.map_or(0, |s| s.answers.len()),
            needed: best.map_or(known.unwrap_or(0), needed),
            silent,
        }),
    }
}
