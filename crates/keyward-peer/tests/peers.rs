//! Peers in process: real HTTPS servers on 127.0.0.1 (each its own SQLite store), driven through
//! the library — the release protocol's refusals and lockout, a re-share that drops a peer, and
//! a simulated crash at every step of a re-share.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::keybox::NewKeybox;
use keyward_core::operations::{self, Authorization};
use keyward_core::shamir::{self, Share};
use keyward_core::slot::{NewPlain, registry};
use keyward_core::store::sim::{FolderAfterCrash, SimFs};
use keyward_core::{DataKey, ExpectedFingerprint, Keybox, SlotId, Store, Unlocker};
use keyward_peer::api::{
    Attestation, QuoteProof, ReleasePurpose, ReleaseRequest, StoreShareRequest, release_message,
    released_binding,
};
use keyward_peer::card::PeerCard;
use keyward_peer::client::PeerClient;
use keyward_peer::distribute::{Owner, Split, distribute, new_share_set};
use keyward_peer::peer::{
    Enrolling, NONCE_TTL_SECS, Peer, PeerSetup, RELEASE_NONCES_PER_SOURCE,
    REQUEST_NONCES_PER_SOURCE,
};
use keyward_peer::recovery::{self, Proof};
use keyward_peer::reshare::{self, ReshareError, ReshareStep};
use keyward_peer::seal::{self, Purpose, SealSecret};
use keyward_peer::slot::{NewPeersSlot, PeersKind, PeersParams, ReleasePolicy};
use keyward_peer::store::{Quota, Store as PeerStore, Stored};
use keyward_service::client::ClientError;
use keyward_service::limits::RateLimits;
use keyward_service::request::{self, Request};
use keyward_service::shell::ServeOptions;
use keyward_service::statement::{self, Statement};
use keyward_service::{ServiceError, SigningIdentity, SourcePrefix, tls};
use zeroize::Zeroizing;

const TIMEOUT: Duration = Duration::from_secs(5);
const KEY: [u8; 32] = *b"peer-test-canary-key-0123456789!";

fn key() -> DataKey {
    DataKey::import(Zeroizing::new(KEY.to_vec())).expect("key")
}

/// Peer servers running on a runtime of their own, trusting one operator.
struct Peers {
    runtime: tokio::runtime::Runtime,
    cards: Vec<PeerCard>,
    operator: SigningIdentity,
    _dirs: Vec<tempfile::TempDir>,
}

async fn start_peer(operators: Vec<keyward_service::PublicKey>) -> (PeerCard, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PeerStore::open(&dir.path().join("peer.db")).await.expect("store");
    let seal_secret = SealSecret::generate().expect("rng");
    let identity = SigningIdentity::generate().expect("rng");
    let certificate = tls::generate_certificate().expect("cert");
    let fingerprint = tls::certificate_fingerprint(&certificate.cert_pem).expect("fp");
    let config = tls::server_config(&certificate.cert_pem, &certificate.key_pem).expect("tls");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let card = PeerCard::new(
        &format!("https://{addr}"),
        identity.public(),
        seal_secret.public(),
        fingerprint.clone(),
    );
    let peer = Peer::new(PeerSetup {
        store,
        seal_secret,
        operators,
        audience: fingerprint,
        quota: Quota::default(),
    });
    let limits = RateLimits { per_source: 0, per_box: 0 };
    let options = ServeOptions::new(keyward_peer::server::MAX_BODY_BYTES);
    tokio::spawn(async move {
        keyward_peer::server::serve(addr, config.config, peer, limits, options).await
    });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (card, dir)
}

impl Peers {
    fn start(n: usize) -> Peers {
        let operator = SigningIdentity::generate().expect("rng");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let started: Vec<_> = runtime.block_on(async {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(start_peer(vec![operator.public()]).await);
            }
            out
        });
        let (cards, dirs) = started.into_iter().unzip();
        Peers { runtime, cards, operator, _dirs: dirs }
    }

    /// An owner admitted by this operator's enrollment token (good at every peer, once each).
    fn owner(&self, name: &str) -> Owner {
        Owner { enrollment: Some(enrollment_token(name, &self.operator)), ..owner(name) }
    }
}

/// An operator's enrollment token for `name`.
fn enrollment_token(name: &str, operator: &SigningIdentity) -> String {
    enrollment_token_at(name, operator, keyward_service::unix_now())
}

/// An operator's enrollment token for `name`, good for ten minutes from `now`.
fn enrollment_token_at(name: &str, operator: &SigningIdentity, now: i64) -> String {
    statement::issue(
        operator,
        Statement::Enrollment {
            box_name: name.into(),
            id: Statement::fresh_id().expect("rng"),
            expires: now + 600,
        },
    )
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// An owner with no enrollment token.
fn owner(name: &str) -> Owner {
    Owner {
        identity: Arc::new(SigningIdentity::generate().expect("rng")),
        name: name.into(),
        keybox_id: "00".repeat(16),
        enrollment: None,
    }
}

/// A 2-of-n split among `cards` with a fresh set id.
async fn split_among(cards: &[PeerCard], owner: &Owner) -> PeersParams {
    let set = new_share_set().expect("rng");
    let split = Split {
        cards,
        threshold: 2,
        policy: ReleasePolicy::Either,
        share_set: &set,
        attestation: None,
    };
    distribute(&key(), split, owner, TIMEOUT).await.expect("distribute")
}

/// Asks one peer for its share of `set`, with the owner's proof; the share, opened.
async fn fetch_share(card: &PeerCard, identity: &SigningIdentity, set: &str) -> Share {
    let client = PeerClient::new(card, TIMEOUT).expect("client");
    let one_time = SealSecret::generate().expect("rng");
    let nonce = client.nonce(set).await.expect("nonce").nonce;
    let message = release_message(&nonce, set, &one_time.public(), ReleasePurpose::Use);
    let request = ReleaseRequest {
        nonce: nonce.clone(),
        ephemeral: one_time.public(),
        share_set: Some(set.into()),
        owner_name: None,
        owner_signature: Some(keyward_core::encoding::to_base64(&identity.sign(&message))),
        ticket: None,
        requester_signature: None,
        quote: None,
        purpose: ReleasePurpose::Use,
    };
    let answer = client.release(&request).await.expect("release");
    let released = &answer.shares[0];
    let bytes = seal::open(
        &one_time,
        Purpose::Release,
        &released_binding(&nonce, released),
        &released.share,
    )
    .expect("opens");
    Share::from_bytes(&bytes).expect("share")
}

#[test]
fn shares_of_a_removed_peer_do_not_combine_with_the_new_set() {
    let peers = Peers::start(4);
    let rt = client_runtime();
    rt.block_on(async {
        let owner = peers.owner("box-a");
        let first = &peers.cards[..3];
        let old = split_among(first, &owner).await;
        // The peer about to be removed keeps a copy of its share (it ignores the deletion).
        let kept = fetch_share(&peers.cards[2], &owner.identity, &old.share_set).await;

        let sim = SimFs::new();
        let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
        let (slot, _) = keybox_with_peers_slot(&store, &old);
        let cards = [peers.cards[0].clone(), peers.cards[1].clone(), peers.cards[3].clone()];
        let set = new_share_set().expect("rng");
        let split = Split {
            cards: &cards,
            threshold: 2,
            policy: old.policy,
            share_set: &set,
            attestation: None,
        };
        let done = reshare::reshare(&store, slot, &key(), &old, split, &owner, TIMEOUT, |_| {
            ControlFlow::Continue(())
        })
        .await
        .expect("reshare");
        assert!(done.undeleted.is_empty(), "{:?}", done.undeleted);
        assert_ne!(done.params.share_set, old.share_set);
        for card in &cards {
            let new = fetch_share(card, &owner.identity, &done.params.share_set).await;
            let mixed = shamir::combine(&[kept.clone(), new]).map(|k| k.to_vec());
            assert!(
                mixed.is_err() || mixed.as_deref() != Ok(&KEY[..]),
                "an old share and a new one must not give the key"
            );
        }
        // The old set is gone at every old peer, the removed one included.
        for card in first {
            let status =
                PeerClient::new(card, TIMEOUT).expect("client").status(&owner.identity).await;
            let sets = status.expect("status").sets;
            assert!(sets.iter().all(|s| s.share_set != old.share_set), "{sets:?}");
        }
    });
    drop(peers.runtime);
}

/// The peers kind is keyward-peer's: a program that opens peers slots registers it.
fn register_peers_kind() {
    registry::register(&[&PeersKind]).expect("one list of kinds per test process");
}

/// A keybox on `store` with a plain slot and a peers slot recording `params`.
fn keybox_with_peers_slot(store: &Store<'_>, params: &PeersParams) -> (SlotId, Keybox) {
    register_peers_kind();
    operations::init(store, NewKeybox::new(key(), "peers", Some("plain")), &NewPlain)
        .expect("init");
    let auth = Authorization::Secret { unlocker: Unlocker::Unattended, slot: None };
    let secret = NewPeersSlot { key: key(), params: params.clone() };
    let (next, id) = operations::enroll(store, &auth, Some("peers"), &secret).expect("enroll");
    (id, next.keybox().clone())
}

/// The share set the keybox on `disk` records, and that its peers still give back the key.
async fn recorded_set_is_usable(disk: &SimFs, owner: &Owner) -> String {
    register_peers_kind();
    let store = Store::new(disk, std::path::Path::new("/sim/keybox.json"));
    let keybox = store.load().expect("a keybox is there");
    let (id, params) = keybox
        .slots()
        .iter()
        .find_map(|s| Some((s.id, PeersParams::of(&s.protection)?.expect("peers params"))))
        .expect("a peers slot");
    let cards: Vec<PeerCard> =
        params.peers.iter().map(|r| PeerCard::from_record(r).expect("card")).collect();
    let proof = Proof::Owner {
        identity: owner.identity.clone(),
        share_set: params.share_set.clone(),
        attester: None,
    };
    let expected = ExpectedFingerprint::Full(keybox.fingerprint());
    let gathered = recovery::gather(
        &cards,
        proof,
        ReleasePurpose::Use,
        &expected,
        Some(params.threshold),
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("the recorded set {} is not usable: {e}", params.share_set));
    let opened = keybox
        .unlock(&Unlocker::Reconstructed(&gathered.key), Some(id), store.path())
        .expect("the peers slot opens with it");
    assert_eq!(opened.key().expose(), KEY);
    params.share_set
}

#[test]
fn a_crash_at_any_step_of_a_reshare_leaves_a_usable_set() {
    let peers = Peers::start(4);
    let rt = client_runtime();
    rt.block_on(async {
        // How many file-system steps the commit takes.
        let owner = peers.owner("box-crash");
        let old = split_among(&peers.cards[..3], &owner).await;
        let new_cards = [peers.cards[0].clone(), peers.cards[1].clone(), peers.cards[3].clone()];
        let base = {
            let sim = SimFs::new();
            let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
            keybox_with_peers_slot(&store, &old);
            sim.files()
        };
        let fresh = || {
            let sim = SimFs::new();
            for (path, data) in &base {
                sim.put(path, data);
            }
            sim
        };
        // (Stopped right after the commit, so the old shares stay for the runs below.)
        let commit_steps = {
            let sim = fresh();
            let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
            let before = sim.steps();
            let set = new_share_set().expect("rng");
            let split = Split {
                cards: &new_cards,
                threshold: 2,
                policy: old.policy,
                share_set: &set,
                attestation: None,
            };
            let result =
                reshare::reshare(&store, SlotId(2), &key(), &old, split, &owner, TIMEOUT, |step| {
                    if step == ReshareStep::Committed {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .await;
            assert!(matches!(result, Err(ReshareError::Stopped(ReshareStep::Committed))));
            sim.steps() - before
        };
        assert!(commit_steps > 0);

        // Stopped between the network steps.
        for stop in [ReshareStep::NewSharesStored, ReshareStep::Committed] {
            let sim = fresh();
            let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
            let set = new_share_set().expect("rng");
            let split = Split {
                cards: &new_cards,
                threshold: 2,
                policy: old.policy,
                share_set: &set,
                attestation: None,
            };
            let result =
                reshare::reshare(&store, SlotId(2), &key(), &old, split, &owner, TIMEOUT, |step| {
                    if step == stop { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                })
                .await;
            assert!(matches!(result, Err(ReshareError::Stopped(s)) if s == stop));
            let set = recorded_set_is_usable(&sim, &owner).await;
            assert_eq!(set == old.share_set, stop == ReshareStep::NewSharesStored, "{stop:?}");
        }
        // A power cut at every step of the commit, with either folder outcome.
        let mut seen = std::collections::HashSet::new();
        for n in 0..commit_steps {
            for folder in [FolderAfterCrash::AsLastSynced, FolderAfterCrash::AsLastSeen] {
                let sim = fresh();
                let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
                sim.crash_at(sim.steps() + n);
                let set = new_share_set().expect("rng");
                let split = Split {
                    cards: &new_cards,
                    threshold: 2,
                    policy: old.policy,
                    share_set: &set,
                    attestation: None,
                };
                let result = reshare::reshare(
                    &store,
                    SlotId(2),
                    &key(),
                    &old,
                    split,
                    &owner,
                    TIMEOUT,
                    |_| ControlFlow::Continue(()),
                )
                .await;
                assert!(result.is_err(), "step {n} crashed");
                let set = recorded_set_is_usable(&sim.after_power_cut(folder), &owner).await;
                seen.insert(set == old.share_set);
            }
        }
        assert_eq!(seen.len(), 2, "the power cuts left the old set recorded and the new one");
    });
    drop(peers.runtime);
}

// ---- The release protocol, without HTTP (the clock is the test's). ----

const NOW: i64 = 1_900_000_000;

struct Held {
    peer: Peer,
    owner: SigningIdentity,
    operator: SigningIdentity,
    share_set: String,
    _dir: tempfile::TempDir,
}

/// The audience of the in-process peers (their certificate's hash; any text does here).
const AUDIENCE: &str = "aa:bb:cc";

async fn peer_in(
    dir: &tempfile::TempDir,
    operator: &SigningIdentity,
    quota: Quota,
) -> (Peer, seal::SealPublicKey) {
    let store = PeerStore::open(&dir.path().join("peer.db")).await.expect("store");
    let seal_secret = SealSecret::generate().expect("rng");
    let seal_key = seal_secret.public();
    let peer = Peer::new(PeerSetup {
        store,
        seal_secret,
        operators: vec![operator.public()],
        audience: AUDIENCE.into(),
        quota,
    });
    (peer, seal_key)
}

/// A share request of `owner` for `name`, sealed to `seal_key`, in set `set`.
fn share_request(
    owner: &SigningIdentity,
    name: &str,
    set: &str,
    seal_key: &seal::SealPublicKey,
    policy: ReleasePolicy,
    enrollment: Option<String>,
) -> StoreShareRequest {
    let shares = shamir::split(&KEY, 2, 3).expect("split");
    let mut request = StoreShareRequest {
        owner_name: name.into(),
        keybox_id: "11".repeat(16),
        share_set: set.into(),
        threshold: 2,
        policy,
        fingerprint: key().fingerprint().to_string(),
        x: shares[0].x,
        share: seal::Sealed { enc: String::new(), ct: String::new() },
        enrollment,
        attestation: None,
    };
    request.share = seal::seal(
        seal_key,
        Purpose::StoredShare,
        &request.binding(&owner.public().to_string()),
        &shares[0].to_bytes(),
    )
    .expect("seal");
    request
}

async fn held(policy: ReleasePolicy) -> Held {
    held_with(policy, None).await
}

/// A peer holding one share of `policy`, stored with `attestation`.
async fn held_with(policy: ReleasePolicy, attestation: Option<Attestation>) -> Held {
    let dir = tempfile::tempdir().expect("tempdir");
    let operator = SigningIdentity::generate().expect("rng");
    let (peer, seal_key) = peer_in(&dir, &operator, Quota::default()).await;
    let owner = SigningIdentity::generate().expect("rng");
    let token = statement::issue(
        &operator,
        Statement::Enrollment {
            box_name: "box-p".into(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 600,
        },
    );
    let mut request =
        share_request(&owner, "box-p", &"ab".repeat(16), &seal_key, policy, Some(token));
    if attestation.is_some() {
        // The attestation is bound into the sealed share: sealed again with it.
        request.attestation = attestation;
        let shares = shamir::split(&KEY, 2, 3).expect("split");
        request.share = seal::seal(
            &seal_key,
            Purpose::StoredShare,
            &request.binding(&owner.public().to_string()),
            &shares[0].to_bytes(),
        )
        .expect("seal");
    }
    peer.store_share(&owner.public(), &request, NOW).await.expect("stored");
    Held { peer, owner, operator, share_set: request.share_set, _dir: dir }
}

/// A nonce from `peer` for a release of `asked`, asked from 10.0.0.1.
async fn nonce_for(peer: &Peer, asked: &str) -> String {
    peer.nonce(SourcePrefix::V4([10, 0, 0, 1]), asked, NOW).await.expect("nonce").nonce
}

/// `signer`'s signature over what `request` asks, its nonce and its one-time key.
fn signature(signer: &SigningIdentity, request: &ReleaseRequest) -> String {
    let asked = request.asked().expect("asks for something");
    let message = request.signed_message(asked);
    keyward_core::encoding::to_base64(&signer.sign(&message))
}

fn signed_request(signer: &SigningIdentity, nonce: &str, set: &str) -> ReleaseRequest {
    let mut request = ReleaseRequest {
        nonce: nonce.into(),
        ephemeral: SealSecret::generate().expect("rng").public(),
        share_set: Some(set.into()),
        owner_name: None,
        owner_signature: None,
        ticket: None,
        requester_signature: None,
        quote: None,
        purpose: ReleasePurpose::Use,
    };
    request.owner_signature = Some(signature(signer, &request));
    request
}

/// A release ticket for `box_name` naming `requester`, signed by `signer`.
fn ticket(box_name: &str, requester: &SigningIdentity, signer: &SigningIdentity) -> String {
    statement::issue(
        signer,
        Statement::PeerRelease {
            box_name: box_name.into(),
            requester: requester.public(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 600,
            uses: 1,
            peers: Vec::new(),
        },
    )
}

fn unauthenticated<T: std::fmt::Debug>(result: Result<T, ServiceError>, what: &str) {
    assert!(matches!(result, Err(ServiceError::Unauthenticated(_))), "{what}: {result:?}");
}

/// Issue 24.1: a drill's release is signed as a drill (its own domain), so a signature for a
/// drill cannot be passed off as one for a use, nor a use's as a drill's; the peer counts each
/// apart, with its time.
#[test]
fn a_drill_is_signed_as_one_and_counted_apart_from_a_use() {
    client_runtime().block_on(async {
        let h = held(ReleasePolicy::Either).await;
        let set = h.share_set.clone();
        let owner = h.owner.public();
        let drill = |nonce: &str| {
            let mut request = signed_request(&h.owner, nonce, &set);
            request.purpose = ReleasePurpose::Drill;
            request.owner_signature = Some(signature(&h.owner, &request));
            request
        };
        // Relabelled either way after signing: the signature no longer holds.
        let mut relabelled = drill(&nonce_for(&h.peer, &set).await);
        relabelled.purpose = ReleasePurpose::Use;
        unauthenticated(h.peer.release(&relabelled, NOW).await, "a drill passed off as a use");
        let mut relabelled = signed_request(&h.owner, &nonce_for(&h.peer, &set).await, &set);
        relabelled.purpose = ReleasePurpose::Drill;
        unauthenticated(h.peer.release(&relabelled, NOW).await, "a use passed off as a drill");
        // Two drills and a use, each counted as what it was.
        for at in [NOW, NOW + 1] {
            let answer = h.peer.release(&drill(&nonce_for(&h.peer, &set).await), at).await;
            h.peer
                .note_released(&answer.expect("a drill's release"), ReleasePurpose::Drill, at)
                .await;
        }
        let request = signed_request(&h.owner, &nonce_for(&h.peer, &set).await, &set);
        let answer = h.peer.release(&request, NOW + 2).await.expect("a use's release");
        h.peer.note_released(&answer, ReleasePurpose::Use, NOW + 2).await;
        let status = h.peer.status(&owner).await.expect("status");
        let info = &status.sets[0];
        assert_eq!((info.drills, info.last_drilled), (Some(2), Some(NOW + 1)), "{info:?}");
        assert_eq!((info.releases, info.last_released), (Some(1), Some(NOW + 2)), "{info:?}");
    });
}

#[test]
fn a_release_needs_a_fresh_nonce_and_the_proof_the_policy_asks_for() {
    client_runtime().block_on(async {
        let h = held(ReleasePolicy::Either).await;
        let set = h.share_set.clone();
        // The owner's proof over a fresh nonce: released, once.
        let nonce = nonce_for(&h.peer, &set).await;
        let request = signed_request(&h.owner, &nonce, &set);
        assert_eq!(h.peer.release(&request, NOW).await.expect("released").shares.len(), 1);
        unauthenticated(h.peer.release(&request, NOW).await, "a replayed proof");
        // An expired nonce.
        let nonce = nonce_for(&h.peer, &set).await;
        let late = signed_request(&h.owner, &nonce, &set);
        unauthenticated(h.peer.release(&late, NOW + NONCE_TTL_SECS + 1).await, "an expired nonce");
        // Someone else's identity, and a made-up nonce.
        let stranger = SigningIdentity::generate().expect("rng");
        let nonce = nonce_for(&h.peer, &set).await;
        unauthenticated(
            h.peer.release(&signed_request(&stranger, &nonce, &set), NOW).await,
            "a wrong identity",
        );
        unauthenticated(
            h.peer.release(&signed_request(&h.owner, &"00".repeat(16), &set), NOW).await,
            "a nonce this peer never gave",
        );
        // A share set that is not there (a signature over it is no proof of anything).
        let nonce = nonce_for(&h.peer, &"cd".repeat(16)).await;
        unauthenticated(
            h.peer.release(&signed_request(&h.owner, &nonce, &"cd".repeat(16)), NOW).await,
            "a wrong share set",
        );
        // A signature over one set used for another (the nonce and key are bound too).
        let nonce = nonce_for(&h.peer, &"cd".repeat(16)).await;
        let mut moved = signed_request(&h.owner, &nonce, &"cd".repeat(16));
        moved.share_set = Some(set.clone());
        unauthenticated(h.peer.release(&moved, NOW).await, "a signature over another set");

        // An operator's ticket for this box, naming a fresh machine's key: released, once at
        // this peer, and only to that machine.
        let fresh = SigningIdentity::generate().expect("rng");
        let for_box = ticket("box-p", &fresh, &h.operator);
        let by_ticket = |nonce: String, text: &str, signer: Option<&SigningIdentity>| {
            let mut request = ReleaseRequest {
                nonce,
                ephemeral: SealSecret::generate().expect("rng").public(),
                share_set: None,
                owner_name: Some("box-p".into()),
                owner_signature: None,
                ticket: Some(text.into()),
                requester_signature: None,
                quote: None,
                purpose: ReleasePurpose::Use,
            };
            request.requester_signature = signer.map(|s| signature(s, &request));
            request
        };
        // Another holder of the ticket (a peer it was shown to) cannot use it, nor can anyone
        // without a signature at all.
        let someone = SigningIdentity::generate().expect("rng");
        for (signer, what) in
            [(Some(&someone), "the ticket from someone else"), (None, "no signature")]
        {
            let nonce = nonce_for(&h.peer, "box-p").await;
            unauthenticated(h.peer.release(&by_ticket(nonce, &for_box, signer), NOW).await, what);
        }
        let nonce = nonce_for(&h.peer, "box-p").await;
        h.peer.release(&by_ticket(nonce, &for_box, Some(&fresh)), NOW).await.expect("released");
        let nonce = nonce_for(&h.peer, "box-p").await;
        let again = h.peer.release(&by_ticket(nonce, &for_box, Some(&fresh)), NOW).await;
        assert!(matches!(again, Err(ServiceError::Refused(_))), "{again:?}");
        // A ticket for another box, and one signed by the owner rather than an operator.
        for (text, what) in [
            (ticket("box-q", &fresh, &h.operator), "a ticket for another box"),
            (ticket("box-p", &fresh, &h.owner), "a ticket not signed by an operator"),
        ] {
            let nonce = nonce_for(&h.peer, "box-p").await;
            unauthenticated(
                h.peer.release(&by_ticket(nonce, &text, Some(&fresh)), NOW).await,
                what,
            );
        }
    });
}

#[test]
fn each_policy_asks_for_its_own_proofs() {
    client_runtime().block_on(async {
        for (policy, by_owner, by_ticket, by_both) in [
            (ReleasePolicy::Identity, true, false, true),
            (ReleasePolicy::Operator, false, true, true),
            (ReleasePolicy::Both, false, false, true),
            (ReleasePolicy::Either, true, true, true),
        ] {
            let h = held(policy).await;
            let attempt = |signature: bool, ticketed: bool| {
                let h = &h;
                async move {
                    let nonce = nonce_for(&h.peer, &h.share_set).await;
                    // The ticket names the box itself as the requester (the `both` case).
                    let mut request = signed_request(&h.owner, &nonce, &h.share_set);
                    if ticketed {
                        request.ticket = Some(ticket("box-p", &h.owner, &h.operator));
                        request.requester_signature = request.owner_signature.clone();
                    }
                    if !signature {
                        request.owner_signature = None;
                    }
                    h.peer.release(&request, NOW).await.is_ok()
                }
            };
            assert_eq!(attempt(true, false).await, by_owner, "{policy}: owner alone");
            assert_eq!(attempt(false, true).await, by_ticket, "{policy}: ticket alone");
            assert_eq!(attempt(true, true).await, by_both, "{policy}: both");
        }
    });
}

#[test]
fn repeated_failed_proofs_lock_the_source_out() {
    let peers = Peers::start(1);
    let rt = client_runtime();
    rt.block_on(async {
        let client = PeerClient::new(&peers.cards[0], TIMEOUT).expect("client");
        let stranger = SigningIdentity::generate().expect("rng");
        let mut last = None;
        for _ in 0..keyward_service::limits::LOCKOUT_AFTER + 1 {
            let nonce = client.nonce(&"ab".repeat(16)).await.map(|n| n.nonce).unwrap_or_default();
            let one_time = SealSecret::generate().expect("rng");
            let message =
                release_message(&nonce, &"ab".repeat(16), &one_time.public(), ReleasePurpose::Use);
            let request = ReleaseRequest {
                nonce,
                ephemeral: one_time.public(),
                share_set: Some("ab".repeat(16)),
                owner_name: None,
                owner_signature: Some(keyward_core::encoding::to_base64(&stranger.sign(&message))),
                ticket: None,
                requester_signature: None,
                quote: None,
                purpose: ReleasePurpose::Use,
            };
            last = Some(client.release(&request).await);
        }
        match last {
            Some(Err(ClientError::Refused { status: 403, message, .. })) => {
                assert!(message.contains("locked out"), "{message}");
            }
            other => panic!("expected a lockout, got {other:?}"),
        }
        // Even a nonce is refused while it holds.
        assert!(matches!(
            client.nonce(&"ab".repeat(16)).await,
            Err(ClientError::Refused { status: 403, .. })
        ));
    });
    drop(peers.runtime);
}

#[test]
fn an_owner_is_admitted_only_with_an_operators_token_for_its_name() {
    client_runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let operator = SigningIdentity::generate().expect("rng");
        let (peer, seal_key) = peer_in(&dir, &operator, Quota::default()).await;
        let owner = SigningIdentity::generate().expect("rng");
        let token = |name: &str, signer: &SigningIdentity| {
            statement::issue(
                signer,
                Statement::Enrollment {
                    box_name: name.into(),
                    id: Statement::fresh_id().expect("rng"),
                    expires: NOW + 600,
                },
            )
        };
        let request = |set: &str, enrollment: Option<String>| {
            share_request(&owner, "box-a", set, &seal_key, ReleasePolicy::Either, enrollment)
        };
        let refused =
            peer.store_share(&owner.public(), &request(&"01".repeat(16), None), NOW).await;
        assert!(
            matches!(refused, Err(ServiceError::Refused(ref why)) if why.contains("not admitted")),
            "{refused:?}"
        );
        for (text, what) in [
            (token("box-b", &operator), "a token for another name"),
            (token("box-a", &owner), "a token not signed by an operator"),
        ] {
            let result = peer
                .store_share(&owner.public(), &request(&"02".repeat(16), Some(text)), NOW)
                .await;
            unauthenticated(result, what);
        }
        let admitted = request(&"03".repeat(16), Some(token("box-a", &operator)));
        assert_eq!(
            peer.store_share(&owner.public(), &admitted, NOW).await.expect("admitted"),
            Stored::Added
        );
        // Admitted once, the owner needs no token again; another identity cannot take the name,
        // whatever token it brings.
        peer.store_share(&owner.public(), &request(&"04".repeat(16), None), NOW)
            .await
            .expect("a second set");
        let other = SigningIdentity::generate().expect("rng");
        let taken = share_request(
            &other,
            "box-a",
            &"05".repeat(16),
            &seal_key,
            ReleasePolicy::Either,
            Some(token("box-a", &operator)),
        );
        let result = peer.store_share(&other.public(), &taken, NOW).await;
        assert!(matches!(result, Err(ServiceError::Conflict(_))), "{result:?}");
    });
}

#[test]
fn an_owner_over_its_quota_is_refused_and_a_retried_upload_is_not() {
    client_runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let operator = SigningIdentity::generate().expect("rng");
        let (peer, seal_key) = peer_in(&dir, &operator, Quota { sets: 2, bytes: 1 << 20 }).await;
        let owner = SigningIdentity::generate().expect("rng");
        let token = statement::issue(
            &operator,
            Statement::Enrollment {
                box_name: "box-q".into(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 600,
            },
        );
        let mut requests = Vec::new();
        for (i, set) in ["0a", "0b", "0c"].iter().enumerate() {
            let enrollment = (i == 0).then(|| token.clone());
            requests.push(share_request(
                &owner,
                "box-q",
                &set.repeat(16),
                &seal_key,
                ReleasePolicy::Either,
                enrollment,
            ));
        }
        peer.store_share(&owner.public(), &requests[0], NOW).await.expect("first");
        peer.store_share(&owner.public(), &requests[1], NOW).await.expect("second");
        let over = peer.store_share(&owner.public(), &requests[2], NOW).await;
        assert!(
            matches!(over, Err(ServiceError::Refused(ref why)) if why.contains("as many share sets")),
            "{over:?}"
        );
        let again = peer.store_share(&owner.public(), &requests[1], NOW).await.expect("a retry");
        assert_eq!(again, Stored::AlreadyThere);
        // Room again once a set is deleted.
        peer.delete(&owner.public(), &requests[0].share_set).await.expect("delete");
        peer.store_share(&owner.public(), &requests[2], NOW)
            .await
            .expect("third, after a deletion");
    });
}

#[test]
fn an_owners_request_to_one_peer_is_refused_by_another_and_not_replayed() {
    client_runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let operator = SigningIdentity::generate().expect("rng");
        let (peer, _) = peer_in(&dir, &operator, Quota::default()).await;
        let owner = SigningIdentity::generate().expect("rng");
        let signer = owner.public().to_string();
        let what = Request { method: "POST", path: "/v1/shares", body: b"{}" };
        let token = enrollment_token_at("pve-01", &operator, NOW);
        let enrolling = Some(Enrolling { token: &token, owner_name: "pve-01" });
        let source = SourcePrefix::V4([10, 0, 0, 2]);
        // Signed for another peer (another certificate): a peer it was sent to cannot use it here.
        let elsewhere = request::sign(&owner, &signer, "11:22:33", what, NOW).expect("sign");
        unauthenticated(
            peer.authenticate_owner(&elsewhere, what, source, enrolling, NOW).await,
            "a request for another peer",
        );
        let here = request::sign(&owner, &signer, AUDIENCE, what, NOW).expect("sign");
        let first = peer.authenticate_owner(&here, what, source, enrolling, NOW).await;
        assert_eq!(first.expect("for this peer"), Some(owner.public()));
        unauthenticated(
            peer.authenticate_owner(&here, what, source, enrolling, NOW + 1).await,
            "a replay",
        );
    });
}

#[test]
fn a_strangers_nonces_are_not_kept_and_an_admitted_owner_is_still_served() {
    client_runtime().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let operator = SigningIdentity::generate().expect("rng");
        let (peer, _) = peer_in(&dir, &operator, Quota::default()).await;
        let source = SourcePrefix::V4([10, 0, 0, 3]);
        let what = Request { method: "GET", path: "/v1/shares", body: b"" };
        // Made-up keys, far more than one source may have nonces kept: none is kept, none is
        // refused for a full table, and none is anyone the peer will act for.
        let count = REQUEST_NONCES_PER_SOURCE + 10;
        let stranger = SigningIdentity::generate().expect("rng");
        let signer = stranger.public().to_string();
        for i in 0..count {
            let signed = request::sign(&stranger, &signer, AUDIENCE, what, NOW).expect("sign");
            let known = peer.authenticate_owner(&signed, what, source, None, NOW).await;
            assert_eq!(known.expect("verified"), None, "request {i}");
        }
        // A token that does not verify is a failed proof, not a stranger.
        let bogus = Some(Enrolling { token: "kwst1.not-a-token", owner_name: "pve-02" });
        let signed = request::sign(&stranger, &signer, AUDIENCE, what, NOW).expect("sign");
        unauthenticated(
            peer.authenticate_owner(&signed, what, source, bogus, NOW).await,
            "a bogus token",
        );
        // An admitted owner from the same source is still served.
        let token = enrollment_token_at("pve-02", &operator, NOW);
        let enrolling = Some(Enrolling { token: &token, owner_name: "pve-02" });
        let owner = SigningIdentity::generate().expect("rng");
        let signed =
            request::sign(&owner, &owner.public().to_string(), AUDIENCE, what, NOW).expect("sign");
        let admitted = peer.authenticate_owner(&signed, what, source, enrolling, NOW).await;
        assert_eq!(admitted.expect("admitted"), Some(owner.public()));
    });
}

#[test]
fn a_nonce_flood_from_one_source_does_not_push_out_a_requesters_nonce() {
    client_runtime().block_on(async {
        let h = held(ReleasePolicy::Either).await;
        let requester = SourcePrefix::V4([10, 0, 0, 1]);
        let mine = h.peer.nonce(requester, &h.share_set, NOW).await.expect("nonce").nonce;
        let flooder = SourcePrefix::V4([192, 0, 2, 66]);
        for _ in 0..1000 * RELEASE_NONCES_PER_SOURCE {
            h.peer.nonce(flooder, &h.share_set, NOW).await.expect("a flooder's nonce");
        }
        let request = signed_request(&h.owner, &mine, &h.share_set);
        h.peer.release(&request, NOW).await.expect("the requester's nonce still works");
        // A nonce asked for one set does not serve a release of another.
        let other = nonce_for(&h.peer, "box-p").await;
        let mut misused = signed_request(&h.owner, &other, &h.share_set);
        misused.nonce = other;
        unauthenticated(h.peer.release(&misused, NOW).await, "a nonce asked for something else");
    });
}

#[test]
fn a_release_ticket_allows_its_uses_at_a_peer_and_no_more() {
    client_runtime().block_on(async {
        let h = held(ReleasePolicy::Operator).await;
        let fresh = SigningIdentity::generate().expect("rng");
        let text = statement::issue(
            &h.operator,
            Statement::PeerRelease {
                box_name: "box-p".into(),
                requester: fresh.public(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 600,
                uses: 2,
                peers: Vec::new(),
            },
        );
        let release = |text: String| {
            let h = &h;
            let fresh = &fresh;
            async move {
                let mut request = ReleaseRequest {
                    nonce: nonce_for(&h.peer, "box-p").await,
                    ephemeral: SealSecret::generate().expect("rng").public(),
                    share_set: None,
                    owner_name: Some("box-p".into()),
                    owner_signature: None,
                    ticket: Some(text),
                    requester_signature: None,
                    quote: None,
                    purpose: ReleasePurpose::Use,
                };
                request.requester_signature = Some(signature(fresh, &request));
                h.peer.release(&request, NOW).await
            }
        };
        release(text.clone()).await.expect("first use");
        release(text.clone()).await.expect("second use (a mistyped fingerprint costs one)");
        let third = release(text).await;
        assert!(
            matches!(third, Err(ServiceError::Refused(ref why)) if why.contains("2 time")),
            "{third:?}"
        );
    });
}

mod tpm_quote {
    use keyward_core::encoding::{to_base64, to_hex};
    use keyward_tpm2::testing::Swtpm;
    use keyward_tpm2::{Bank, Tpm, pcr_digest};

    use super::*;

    const PCRS: &[u8] = &[7];

    /// The release request of `h`'s owner for `nonce`, with a quote by `tpm` over it.
    fn quoted_request(h: &Held, tpm: &mut Tpm, nonce: &str) -> ReleaseRequest {
        let mut request = signed_request(&h.owner, nonce, &h.share_set);
        let challenge = request.quote_challenge(&h.share_set);
        let quote = tpm.quote(&challenge, Bank::Sha256, PCRS).expect("quote");
        request.quote = Some(QuoteProof {
            attest: to_base64(&quote.attest),
            signature: to_base64(&quote.signature),
        });
        request
    }

    fn refused_because<T: std::fmt::Debug>(result: Result<T, ServiceError>, why: &str) {
        match result {
            Err(ServiceError::Unauthenticated(text)) => {
                assert!(text.to_string().contains(why), "{text} should say {why}")
            }
            other => panic!("expected a refusal saying {why}: {other:?}"),
        }
    }

    #[test]
    fn a_tpm_quote_set_is_released_only_to_a_fresh_quote_of_the_enrolled_tpm_in_its_state() {
        // SAFETY of the test: set before any TPM use, in this test's own process (nextest).
        unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
        client_runtime().block_on(async {
            let box_tpm = Swtpm::start();
            let mut tpm = box_tpm.tpm();
            let values = tpm.pcr_values(Bank::Sha256, PCRS).expect("PCRs");
            let attestation = Attestation {
                key: to_base64(&tpm.attestation_key().expect("attestation key")),
                pcrs: "sha256:7".into(),
                pcr_digest: to_hex(&pcr_digest(&values)),
            };
            let h = held_with(ReleasePolicy::TpmQuote, Some(attestation)).await;
            let offered = h
                .peer
                .nonce(SourcePrefix::V4([10, 0, 0, 1]), &h.share_set, NOW)
                .await
                .expect("nonce");
            assert_eq!(offered.quote_pcrs.as_deref(), Some("sha256:7"), "the peer names the PCRs");

            // The owner's signature alone is not enough.
            refused_because(
                h.peer.release(&signed_request(&h.owner, &offered.nonce, &h.share_set), NOW).await,
                "policy",
            );
            // With a fresh quote by the enrolled TPM: released.
            let nonce = nonce_for(&h.peer, &h.share_set).await;
            let good = quoted_request(&h, &mut tpm, &nonce);
            assert_eq!(h.peer.release(&good, NOW).await.expect("released").shares.len(), 1);

            // That quote again, with another nonce (and key): over another challenge.
            let nonce = nonce_for(&h.peer, &h.share_set).await;
            let mut replay = signed_request(&h.owner, &nonce, &h.share_set);
            replay.quote = good.quote.clone();
            refused_because(h.peer.release(&replay, NOW).await, "over another nonce");

            // A quote by another TPM.
            let stranger = Swtpm::start();
            let nonce = nonce_for(&h.peer, &h.share_set).await;
            let foreign = quoted_request(&h, &mut stranger.tpm(), &nonce);
            refused_because(h.peer.release(&foreign, NOW).await, "not signed by the TPM enrolled");

            // The enrolled TPM after a boot change.
            drop(tpm);
            box_tpm.extend(7);
            let nonce = nonce_for(&h.peer, &h.share_set).await;
            let changed = quoted_request(&h, &mut box_tpm.tpm(), &nonce);
            refused_because(h.peer.release(&changed, NOW).await, "PCR values");
        });
    }
}
