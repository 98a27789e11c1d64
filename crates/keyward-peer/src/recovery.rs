//! Getting shares back from peers and putting K together: every peer is asked in parallel (a
//! nonce, then the proof), each answer is opened with the one-time key it was sealed to, and as
//! soon as a share set has enough answers whose combination has the expected fingerprint, the
//! key is returned. Answers still in flight get a short grace (as long as the key took, 0.25 to
//! 1 s) so a peer whose share does not fit is named too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keyward_core::shamir::Share;
use keyward_core::{DataKey, Fingerprint};
use keyward_hub::SigningIdentity;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use crate::api::{ReleaseRequest, ReleasedShare, release_message, released_binding};
use crate::card::PeerCard;
use crate::client::PeerClient;
use crate::reconstruct::{Answer, ReconstructError, reconstruct};
use crate::seal::{self, Purpose, SealSecret};
use keyward_hub::client::ClientError;

/// The proof a requester offers.
#[derive(Clone)]
pub enum Proof {
    /// The owner, after a restart: its identity signs over each peer's nonce, for one set.
    Owner {
        /// The owner's identity.
        identity: std::sync::Arc<SigningIdentity>,
        /// The share set its keybox records.
        share_set: String,
    },
    /// A fresh machine: an operator's release ticket for the owner's name (every current set
    /// of that owner is asked for).
    Ticket {
        /// The ticket text.
        ticket: std::sync::Arc<Zeroizing<String>>,
        /// The owner's name.
        owner_name: String,
    },
    /// Both (for the `both` policy).
    Both {
        /// The owner's identity.
        identity: std::sync::Arc<SigningIdentity>,
        /// The share set.
        share_set: String,
        /// The ticket text.
        ticket: std::sync::Arc<Zeroizing<String>>,
    },
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
    /// Peers report different fingerprints for the key and none was given to check against.
    #[error("the peers report different fingerprints for this key; give --expect-fingerprint")]
    FingerprintsDisagree,
}

struct Received {
    peer: String,
    released: ReleasedShare,
    share: Share,
}

/// Asks one peer for its share(s).
async fn ask(
    card: PeerCard,
    proof: Proof,
    timeout: Duration,
) -> Result<Vec<Received>, (String, ClientError)> {
    let peer = card.url.clone();
    let fail = |e| (peer.clone(), e);
    let client = PeerClient::new(&card, timeout).map_err(fail)?;
    let one_time = SealSecret::generate().map_err(|e| fail(ClientError::Core(e)))?;
    let nonce = client.nonce().await.map_err(fail)?.nonce;
    let ephemeral = one_time.public();
    let sign = |identity: &SigningIdentity, set: &str| {
        keyward_core::encoding::to_base64(&identity.sign(&release_message(&nonce, set, &ephemeral)))
    };
    let mut request = ReleaseRequest {
        nonce: nonce.clone(),
        ephemeral,
        share_set: None,
        owner_name: None,
        owner_signature: None,
        ticket: None,
    };
    match &proof {
        Proof::Owner { identity, share_set } => {
            request.owner_signature = Some(sign(identity, share_set));
            request.share_set = Some(share_set.clone());
        }
        Proof::Ticket { ticket, owner_name } => {
            request.ticket = Some(ticket.as_str().to_string());
            request.owner_name = Some(owner_name.clone());
        }
        Proof::Both { identity, share_set, ticket } => {
            request.owner_signature = Some(sign(identity, share_set));
            request.share_set = Some(share_set.clone());
            request.ticket = Some(ticket.as_str().to_string());
        }
    }
    let answer = client.release(&request).await.map_err(fail)?;
    let mut received = Vec::new();
    for released in answer.shares {
        let bad = |reason: &str| fail(client.bad_answer(reason));
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

/// Per share set: the shares so far.
#[derive(Default)]
struct SetAnswers {
    threshold: usize,
    fingerprints: Vec<String>,
    answers: Vec<Answer>,
}

impl SetAnswers {
    /// The fingerprint to look for: the one given, else the one every peer reported.
    fn expected(&self, given: Option<&Fingerprint>) -> Result<Fingerprint, GatherError> {
        if let Some(fp) = given {
            return Ok(*fp);
        }
        let first = self.fingerprints.first().ok_or(GatherError::FingerprintsDisagree)?;
        if self.fingerprints.iter().any(|f| f != first) {
            return Err(GatherError::FingerprintsDisagree);
        }
        first.parse().map_err(|_| GatherError::FingerprintsDisagree)
    }

    fn try_key(
        &self,
        given: Option<&Fingerprint>,
    ) -> Result<Option<(DataKey, Vec<String>)>, GatherError> {
        if self.threshold < 2 || self.answers.len() < self.threshold {
            return Ok(None);
        }
        let expected = self.expected(given)?;
        match reconstruct(&self.answers, self.threshold, &expected) {
            Ok(found) => Ok(Some((found.key, found.misfits))),
            Err(ReconstructError::TooFew { .. } | ReconstructError::NoFit { .. }) => Ok(None),
        }
    }
}

/// Asks every peer on `cards` with `proof` and puts the key together. `expected` is the
/// fingerprint the key must have (the keybox's, or the operator's); without it, the one all
/// answering peers report.
pub async fn gather(
    cards: &[PeerCard],
    proof: Proof,
    expected: Option<Fingerprint>,
    timeout: Duration,
) -> Result<Gathered, GatherError> {
    let started = Instant::now();
    let mut pending = JoinSet::new();
    for card in cards {
        pending.spawn(ask(card.clone(), proof.clone(), timeout));
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
                    set.threshold = usize::from(r.released.threshold);
                    set.fingerprints.push(r.released.fingerprint.clone());
                    set.answers.push(Answer { peer: r.peer, share: r.share });
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
            if let Some((key, misfits)) = set.try_key(expected.as_ref())? {
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
    match best {
        Some(set) if set.answers.len() >= set.threshold && set.threshold >= 2 => {
            Err(GatherError::NoFit {
                got: set.answers.len(),
                needed: set.threshold,
                expected: set.expected(expected.as_ref())?.to_string(),
            })
        }
        _ => Err(GatherError::TooFew {
            got: best.map_or(0, |s| s.answers.len()),
            needed: best.map_or(0, |s| s.threshold),
            silent,
        }),
    }
}
