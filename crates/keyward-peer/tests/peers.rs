//! Peers in process: real HTTPS servers on 127.0.0.1 (each its own SQLite store), driven through
//! the library — the release protocol's refusals and lockout, a re-share that drops a peer, and
//! a simulated crash at every step of a re-share.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use keyward_core::keybox::NewKeybox;
use keyward_core::operations::{self, Authorization};
use keyward_core::shamir::{self, Share};
use keyward_core::slot::{PeersParams, ReleasePolicy, SlotParams};
use keyward_core::store::sim::{FolderAfterCrash, SimFs};
use keyward_core::{DataKey, ExpectedFingerprint, Keybox, SlotId, SlotSecret, Store, Unlocker};
use keyward_hub::client::ClientError;
use keyward_hub::limits::RateLimits;
use keyward_hub::statement::{self, Statement};
use keyward_hub::{SigningIdentity, tls};
use keyward_peer::api::{ReleaseRequest, StoreShareRequest, release_message, released_binding};
use keyward_peer::card::PeerCard;
use keyward_peer::client::PeerClient;
use keyward_peer::distribute::{Owner, distribute};
use keyward_peer::peer::{NONCE_TTL_SECS, Peer, PeerError};
use keyward_peer::recovery::{self, Proof};
use keyward_peer::reshare::{self, ReshareError, ReshareStep};
use keyward_peer::seal::{self, Purpose, SealSecret};
use keyward_peer::store::Store as PeerStore;
use zeroize::Zeroizing;

const TIMEOUT: Duration = Duration::from_secs(5);
const KEY: [u8; 32] = *b"peer-test-canary-key-0123456789!";

fn key() -> DataKey {
    DataKey::import(Zeroizing::new(KEY.to_vec())).expect("key")
}

/// Peer servers running on a runtime of their own.
struct Peers {
    runtime: tokio::runtime::Runtime,
    cards: Vec<PeerCard>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn start_peer(operators: Vec<keyward_hub::PublicKey>) -> (PeerCard, tempfile::TempDir) {
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
        fingerprint,
    );
    let peer = Peer::new(store, seal_secret, operators);
    let limits = RateLimits { per_source: 0, per_box: 0 };
    tokio::spawn(async move { keyward_peer::server::serve(addr, config, peer, limits).await });
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (card, dir)
}

impl Peers {
    fn start(n: usize, operators: &[keyward_hub::PublicKey]) -> Peers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let started: Vec<_> = runtime.block_on(async {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(start_peer(operators.to_vec()).await);
            }
            out
        });
        let (cards, dirs) = started.into_iter().unzip();
        Peers { runtime, cards, _dirs: dirs }
    }
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn owner(name: &str) -> Owner {
    Owner {
        identity: Arc::new(SigningIdentity::generate().expect("rng")),
        name: name.into(),
        keybox_id: "00".repeat(16),
    }
}

/// Asks one peer for its share of `set`, with the owner's proof; the share, opened.
async fn fetch_share(card: &PeerCard, identity: &SigningIdentity, set: &str) -> Share {
    let client = PeerClient::new(card, TIMEOUT).expect("client");
    let one_time = SealSecret::generate().expect("rng");
    let nonce = client.nonce().await.expect("nonce").nonce;
    let message = release_message(&nonce, set, &one_time.public());
    let request = ReleaseRequest {
        nonce: nonce.clone(),
        ephemeral: one_time.public(),
        share_set: Some(set.into()),
        owner_name: None,
        owner_signature: Some(keyward_core::encoding::to_base64(&identity.sign(&message))),
        ticket: None,
        requester_signature: None,
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
    let peers = Peers::start(4, &[]);
    let rt = client_runtime();
    rt.block_on(async {
        let owner = owner("box-a");
        let first = &peers.cards[..3];
        let old = distribute(&key(), first, 2, ReleasePolicy::Either, &owner, TIMEOUT)
            .await
            .expect("distribute");
        // The peer about to be removed keeps a copy of its share (it ignores the deletion).
        let kept = fetch_share(&peers.cards[2], &owner.identity, &old.share_set).await;

        let sim = SimFs::new();
        let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
        let (slot, _) = keybox_with_peers_slot(&store, &old);
        let cards = [peers.cards[0].clone(), peers.cards[1].clone(), peers.cards[3].clone()];
        let done = reshare::reshare(&store, slot, &key(), &old, &cards, 2, &owner, TIMEOUT, |_| {
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

/// A keybox on `store` with a plain slot and a peers slot recording `params`.
fn keybox_with_peers_slot(store: &Store<'_>, params: &PeersParams) -> (SlotId, Keybox) {
    operations::init(store, NewKeybox::new(key(), "peers", Some("plain")), &SlotSecret::Plain)
        .expect("init");
    let auth = Authorization { unlocker: Unlocker::Unattended, slot: None };
    let secret = SlotSecret::Peers { key: key(), params: params.clone() };
    let (next, id) = operations::enroll(store, &auth, Some("peers"), &secret).expect("enroll");
    (id, next.keybox().clone())
}

/// The share set the keybox on `disk` records, and that its peers still give back the key.
async fn recorded_set_is_usable(disk: &SimFs, owner: &Owner) -> String {
    let store = Store::new(disk, std::path::Path::new("/sim/keybox.json"));
    let keybox = store.load().expect("a keybox is there");
    let (id, params) = keybox
        .slots()
        .iter()
        .find_map(|s| match &s.protection {
            SlotParams::Peers(p) => Some((s.id, p.clone())),
            _ => None,
        })
        .expect("a peers slot");
    let cards: Vec<PeerCard> =
        params.peers.iter().map(|r| PeerCard::from_record(r).expect("card")).collect();
    let proof =
        Proof::Owner { identity: owner.identity.clone(), share_set: params.share_set.clone() };
    let expected = ExpectedFingerprint::Full(keybox.fingerprint());
    let gathered = recovery::gather(&cards, proof, &expected, Some(params.threshold), TIMEOUT)
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
    let peers = Peers::start(4, &[]);
    let rt = client_runtime();
    rt.block_on(async {
        // How many file-system steps the commit takes.
        let owner = owner("box-crash");
        let old = distribute(&key(), &peers.cards[..3], 2, ReleasePolicy::Either, &owner, TIMEOUT)
            .await
            .expect("distribute");
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
            let result = reshare::reshare(
                &store,
                SlotId(2),
                &key(),
                &old,
                &new_cards,
                2,
                &owner,
                TIMEOUT,
                |step| {
                    if step == ReshareStep::Committed {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )
            .await;
            assert!(matches!(result, Err(ReshareError::Stopped(ReshareStep::Committed))));
            sim.steps() - before
        };
        assert!(commit_steps > 0);

        // Stopped between the network steps.
        for stop in [ReshareStep::NewSharesStored, ReshareStep::Committed] {
            let sim = fresh();
            let store = Store::new(&sim, std::path::Path::new("/sim/keybox.json"));
            let result = reshare::reshare(
                &store,
                SlotId(2),
                &key(),
                &old,
                &new_cards,
                2,
                &owner,
                TIMEOUT,
                |step| {
                    if step == stop { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                },
            )
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
                let result = reshare::reshare(
                    &store,
                    SlotId(2),
                    &key(),
                    &old,
                    &new_cards,
                    2,
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

async fn held(policy: ReleasePolicy) -> Held {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = PeerStore::open(&dir.path().join("peer.db")).await.expect("store");
    let seal_secret = SealSecret::generate().expect("rng");
    let seal_key = seal_secret.public();
    let operator = SigningIdentity::generate().expect("rng");
    let peer = Peer::new(store, seal_secret, vec![operator.public()]);
    let owner = SigningIdentity::generate().expect("rng");
    let shares = shamir::split(&KEY, 2, 3).expect("split");
    let mut request = StoreShareRequest {
        owner_name: "box-p".into(),
        keybox_id: "11".repeat(16),
        share_set: "ab".repeat(16),
        threshold: 2,
        policy,
        fingerprint: key().fingerprint().to_string(),
        x: shares[0].x,
        share: seal::Sealed { enc: String::new(), ct: String::new() },
    };
    request.share = seal::seal(
        &seal_key,
        Purpose::StoredShare,
        &request.binding(&owner.public().to_string()),
        &shares[0].to_bytes(),
    )
    .expect("seal");
    peer.store_share(&owner.public(), &request, NOW).await.expect("stored");
    Held { peer, owner, operator, share_set: request.share_set, _dir: dir }
}

/// `signer`'s signature over what `request` asks, its nonce and its one-time key.
fn signature(signer: &SigningIdentity, request: &ReleaseRequest) -> String {
    let asked = request.asked().expect("asks for something");
    let message = release_message(&request.nonce, asked, &request.ephemeral);
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
        },
    )
}

fn unauthenticated<T: std::fmt::Debug>(result: Result<T, PeerError>, what: &str) {
    assert!(matches!(result, Err(PeerError::Unauthenticated(_))), "{what}: {result:?}");
}

#[test]
fn a_release_needs_a_fresh_nonce_and_the_proof_the_policy_asks_for() {
    client_runtime().block_on(async {
        let h = held(ReleasePolicy::Either).await;
        let set = h.share_set.clone();
        // The owner's proof over a fresh nonce: released, once.
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
        let request = signed_request(&h.owner, &nonce, &set);
        assert_eq!(h.peer.release(&request, NOW).await.expect("released").shares.len(), 1);
        unauthenticated(h.peer.release(&request, NOW).await, "a replayed proof");
        // An expired nonce.
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
        let late = signed_request(&h.owner, &nonce, &set);
        unauthenticated(h.peer.release(&late, NOW + NONCE_TTL_SECS + 1).await, "an expired nonce");
        // Someone else's identity, and a made-up nonce.
        let stranger = SigningIdentity::generate().expect("rng");
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
        unauthenticated(
            h.peer.release(&signed_request(&stranger, &nonce, &set), NOW).await,
            "a wrong identity",
        );
        unauthenticated(
            h.peer.release(&signed_request(&h.owner, &"00".repeat(16), &set), NOW).await,
            "a nonce this peer never gave",
        );
        // A share set that is not there (a signature over it is no proof of anything).
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
        unauthenticated(
            h.peer.release(&signed_request(&h.owner, &nonce, &"cd".repeat(16)), NOW).await,
            "a wrong share set",
        );
        // A signature over one set used for another (the nonce and key are bound too).
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
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
            let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
            unauthenticated(h.peer.release(&by_ticket(nonce, &for_box, signer), NOW).await, what);
        }
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
        h.peer.release(&by_ticket(nonce, &for_box, Some(&fresh)), NOW).await.expect("released");
        let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
        let again = h.peer.release(&by_ticket(nonce, &for_box, Some(&fresh)), NOW).await;
        assert!(matches!(again, Err(PeerError::Refused(_))), "{again:?}");
        // A ticket for another box, and one signed by the owner rather than an operator.
        for (text, what) in [
            (ticket("box-q", &fresh, &h.operator), "a ticket for another box"),
            (ticket("box-p", &fresh, &h.owner), "a ticket not signed by an operator"),
        ] {
            let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
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
                    let nonce = h.peer.nonce(NOW).expect("nonce").nonce;
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
    let peers = Peers::start(1, &[]);
    let rt = client_runtime();
    rt.block_on(async {
        let client = PeerClient::new(&peers.cards[0], TIMEOUT).expect("client");
        let stranger = SigningIdentity::generate().expect("rng");
        let mut last = None;
        for _ in 0..keyward_hub::limits::LOCKOUT_AFTER + 1 {
            let nonce = client.nonce().await.map(|n| n.nonce).unwrap_or_default();
            let one_time = SealSecret::generate().expect("rng");
            let message = release_message(&nonce, &"ab".repeat(16), &one_time.public());
            let request = ReleaseRequest {
                nonce,
                ephemeral: one_time.public(),
                share_set: Some("ab".repeat(16)),
                owner_name: None,
                owner_signature: Some(keyward_core::encoding::to_base64(&stranger.sign(&message))),
                ticket: None,
                requester_signature: None,
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
        assert!(matches!(client.nonce().await, Err(ClientError::Refused { status: 403, .. })));
    });
    drop(peers.runtime);
}
