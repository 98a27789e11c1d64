//! The hub's decisions without a network (sans-I/O, as rustls tests its state machines): a
//! real SQLite store in a temporary folder, requests signed and replayed, statements redeemed
//! twice, versions gated.

use keyward_hub::api::{FleetQuery, HeaderPushRequest, PushRequest, blob_sha256};
use keyward_hub::hub::{Hub, Principal};
use keyward_hub::store::Store;
use keyward_service::refusals::RefusalCount;
use keyward_service::request::{self, MAX_SKEW_SECS, Request};
use keyward_service::statement::{self, Statement};
use keyward_service::{AuthError, ServiceError, SigningIdentity};

const NOW: i64 = 1_800_000_000;
/// The hub's name as the audience of signed requests (its certificate's hash; any text here).
const AUDIENCE: &str = "aa:bb:cc";
const FP: &str = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";

struct Setup {
    hub: Hub,
    operator: SigningIdentity,
    device: SigningIdentity,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display());
    let store = Store::connect(&url).await.expect("store");
    let operator = SigningIdentity::generate().expect("rng");
    let device = SigningIdentity::generate().expect("rng");
    let hub = Hub::new(store, vec![operator.public()], AUDIENCE.into());
    let token = enrollment_token(&operator, "b1");
    hub.enroll("b1", device.public(), &token, NOW).await.expect("enroll");
    Setup { hub, operator, device, _dir: dir }
}

/// An enrollment token for `box_name`, valid for a minute, signed by `operator`.
fn enrollment_token(operator: &SigningIdentity, box_name: &str) -> String {
    statement::issue(
        operator,
        Statement::Enrollment {
            box_name: box_name.into(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
        },
    )
}

/// The blob every test pushes ("opaque", base64) and its SHA-256.
const BLOB: &str = "b3BhcXVl";

fn blob_hash() -> String {
    blob_sha256(b"opaque")
}

fn push_body() -> (PushRequest, Vec<u8>) {
    push_of(BLOB)
}

/// A push of the usual blob whose directive says `n`: a version of its own.
fn push_numbered(n: u32) -> PushRequest {
    PushRequest { directive: serde_json::json!({ "n": n }), ..push_body().0 }
}

fn push_of(blob: &str) -> (PushRequest, Vec<u8>) {
    let push = PushRequest {
        blob_format: "keyward-escrow-blob".into(),
        blob: blob.into(),
        fingerprint: FP.into(),
        key_fingerprint: None,
        directive: serde_json::json!({}),
    };
    let body = serde_json::to_vec(&push).expect("json");
    (push, body)
}

fn post(body: &[u8]) -> Request<'_> {
    Request { method: "POST", path: "/v1/escrows", body }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn a_replayed_request_is_refused() {
    runtime().block_on(async {
        let s = setup().await;
        let (_, body) = push_body();
        let signed = request::sign(&s.device, "b1", AUDIENCE, post(&body), NOW).expect("sign");
        assert_eq!(
            s.hub.authenticate(&signed, post(&body), NOW).await.expect("first"),
            Principal::Box("b1".into())
        );
        let again = s.hub.authenticate(&signed, post(&body), NOW + 1).await;
        assert!(
            matches!(again, Err(ServiceError::Unauthenticated(AuthError::Replayed))),
            "{again:?}"
        );
        // A request signed for another server is not this hub's.
        let elsewhere = request::sign(&s.device, "b1", "11:22", post(&body), NOW).expect("sign");
        let result = s.hub.authenticate(&elsewhere, post(&body), NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::WrongAudience))),
            "{result:?}"
        );
    });
}

#[test]
fn stale_wrong_and_unknown_signers_are_refused() {
    runtime().block_on(async {
        let s = setup().await;
        let (_, body) = push_body();
        let stale = request::sign(&s.device, "b1", AUDIENCE, post(&body), NOW - MAX_SKEW_SECS - 5)
            .expect("sign");
        let result = s.hub.authenticate(&stale, post(&body), NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::StaleTimestamp { .. }))),
            "{result:?}"
        );
        let impostor = SigningIdentity::generate().expect("rng");
        let forged = request::sign(&impostor, "b1", AUDIENCE, post(&body), NOW).expect("sign");
        let result = s.hub.authenticate(&forged, post(&body), NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::BadSignature))),
            "{result:?}"
        );
        let unknown = request::sign(&s.device, "nobody", AUDIENCE, post(&body), NOW).expect("sign");
        let result = s.hub.authenticate(&unknown, post(&body), NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::UnknownSigner))),
            "{result:?}"
        );
    });
}

#[test]
fn tokens_and_tickets_are_single_use_and_bound_to_their_box_and_kind() {
    runtime().block_on(async {
        let s = setup().await;
        let (push, _) = push_body();
        s.hub.push("b1", &push, NOW).await.expect("push");
        let ticket = recovery_ticket(&s, 1);
        assert_eq!(s.hub.recover(&ticket, NOW).await.expect("recover").versions[0].version, 1);
        assert!(
            matches!(s.hub.recover(&ticket, NOW).await, Err(ServiceError::Refused(_))),
            "used twice"
        );
        // A recovery ticket is not an enrollment token.
        let other = SigningIdentity::generate().expect("rng");
        let wrong_kind = statement::issue(
            &s.operator,
            Statement::Recovery {
                box_name: "b2".into(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 60,
                uses: 1,
                hubs: Vec::new(),
            },
        );
        let result = s.hub.enroll("b2", other.public(), &wrong_kind, NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::WrongStatement { .. }))),
            "{result:?}"
        );
        // An approval for a version that is not pending changes nothing.
        let approval = statement::issue(
            &s.operator,
            Statement::Overwrite {
                box_name: "b1".into(),
                version: 1,
                fingerprint: FP.into(),
                blob_sha256: blob_hash(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 60,
            },
        );
        assert!(matches!(s.hub.approve(&approval, NOW).await, Err(ServiceError::Refused(_))));
    });
}

fn overwrite(s: &Setup, version: u64, fingerprint: &str) -> String {
    overwrite_of(s, version, fingerprint, &blob_hash())
}

fn overwrite_of(s: &Setup, version: u64, fingerprint: &str, hash: &str) -> String {
    statement::issue(
        &s.operator,
        Statement::Overwrite {
            box_name: "b1".into(),
            version,
            fingerprint: fingerprint.into(),
            blob_sha256: hash.into(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
        },
    )
}

fn recovery_ticket(s: &Setup, uses: u32) -> String {
    statement::issue(
        &s.operator,
        Statement::Recovery {
            box_name: "b1".into(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
            uses,
            hubs: Vec::new(),
        },
    )
}

#[test]
fn an_enrollment_token_is_single_use_and_for_its_box_only() {
    runtime().block_on(async {
        let s = setup().await;
        let token = enrollment_token(&s.operator, "b2");
        let other = SigningIdentity::generate().expect("rng");
        let result = s.hub.enroll("b3", other.public(), &token, NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::WrongStatement { .. }))),
            "{result:?}"
        );
        s.hub.enroll("b2", other.public(), &token, NOW).await.expect("its own box");
        // Asked again by the identity it enrolled (at another hub, its answer lost): the same
        // answer, nothing used. Anyone else: the name is taken.
        s.hub.enroll("b2", other.public(), &token, NOW).await.expect("the same identity again");
        let third = SigningIdentity::generate().expect("rng");
        let again = s.hub.enroll("b2", third.public(), &token, NOW).await;
        assert!(matches!(again, Err(ServiceError::Conflict(_))), "{again:?}");
        // Used once, and the log holds that one use.
        let log = s.hub.store().audit_log().await.expect("audit");
        let uses =
            log.iter().filter(|r| r.event == "token-used" && r.box_name.as_deref() == Some("b2"));
        assert_eq!(uses.count(), 1);
    });
}

#[test]
fn an_approval_must_name_the_fingerprint_the_version_claims_and_one_version_is_active() {
    runtime().block_on(async {
        let s = setup().await;
        for n in 0..3 {
            s.hub.push("b1", &push_numbered(n), NOW).await.expect("push");
        }
        let other_fp = FP.replace("00:11", "ff:11");
        assert!(matches!(
            s.hub.approve(&overwrite(&s, 2, &other_fp), NOW).await,
            Err(ServiceError::Refused(_))
        ));
        assert_eq!(s.hub.approve(&overwrite(&s, 2, FP), NOW).await.expect("approve v2"), 2);
        assert_eq!(s.hub.approve(&overwrite(&s, 3, FP), NOW).await.expect("approve v3"), 3);
        let states: Vec<String> = s
            .hub
            .status("b1")
            .await
            .expect("status")
            .versions
            .into_iter()
            .map(|v| v.state)
            .collect();
        assert_eq!(states, ["superseded", "superseded", "active"]);
        assert!(
            matches!(
                s.hub.approve(&overwrite(&s, 2, FP), NOW).await,
                Err(ServiceError::Refused(_))
            ),
            "v2 is no longer pending"
        );
    });
}

fn deletion(s: &Setup, version: u64) -> String {
    statement::issue(
        &s.operator,
        Statement::Deletion {
            box_name: "b1".into(),
            version,
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
        },
    )
}

#[test]
fn only_an_operator_deletion_order_erases_a_version_and_the_log_tells_every_step() {
    runtime().block_on(async {
        let s = setup().await;
        let (push, _) = push_body();
        s.hub.push("b1", &push, NOW).await.expect("push v1");
        // The box's own key signs a perfectly formed order: it is not an operator's.
        let by_box = statement::issue(
            &s.device,
            Statement::Deletion {
                box_name: "b1".into(),
                version: 1,
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 60,
            },
        );
        let refused = s.hub.delete(&by_box, NOW).await;
        assert!(matches!(refused, Err(ServiceError::Unauthenticated(_))), "{refused:?}");
        assert!(s.hub.fetch_own("b1").await.is_ok(), "a refused order erases nothing");

        let order = deletion(&s, 1);
        assert_eq!(s.hub.delete(&order, NOW).await.expect("delete"), ("b1".to_string(), 1));
        assert!(matches!(s.hub.fetch_own("b1").await, Err(ServiceError::NotFound(_))));
        let replay = s.hub.delete(&order, NOW).await;
        assert!(matches!(replay, Err(ServiceError::Refused(_))), "{replay:?}");
        let twice = s.hub.delete(&deletion(&s, 1), NOW).await;
        assert!(matches!(twice, Err(ServiceError::Refused(_))), "{twice:?}");
        let missing = s.hub.delete(&deletion(&s, 7), NOW).await;
        assert!(matches!(missing, Err(ServiceError::Refused(_))), "{missing:?}");

        // After a deletion the box cannot make itself a new active escrow: a push waits for an
        // operator, as any push after the first.
        let (version, state) = {
            let answer = s.hub.push("b1", &push, NOW).await.expect("push v2");
            (answer.version, answer.state)
        };
        assert_eq!((version, state.as_str()), (2, "pending"));
        assert_eq!(s.hub.approve(&overwrite(&s, 2, FP), NOW).await.expect("approve"), 2);
        assert_eq!(s.hub.fetch_own("b1").await.expect("active").escrow.version, 2);

        // Each change sits in the log next to the statement that allowed it.
        let events: Vec<String> =
            s.hub.store().audit_log().await.expect("log").into_iter().map(|r| r.event).collect();
        // Refusals are not rows of their own: the shell counts them, and one `refusals` row
        // tells of a minute's worth.
        let expected = [
            "token-used",
            "enroll",
            "push",
            "deletion-used",
            "delete",
            "deletion-used",
            "deletion-used",
            "push",
            "approval-used",
            "approve",
        ];
        assert_eq!(events, expected);
        let counts = [RefusalCount { route: "delete", code: "refused", count: 3 }];
        s.hub.audit_refusals(&counts, NOW).await.expect("audit refusals");
        let last = s.hub.store().audit_log().await.expect("log").pop().expect("a row");
        assert_eq!((last.event.as_str(), last.detail.as_str()), ("refusals", "delete refused ×3"));
    });
}

#[test]
fn an_approval_names_the_blob_and_no_version_is_lost_to_it() {
    runtime().block_on(async {
        let s = setup().await;
        let (push, _) = push_body();
        s.hub.push("b1", &push, NOW).await.expect("v1, the owner's");
        // A compromised box pushes another blob; the operator approves the hash shown to them,
        // which is not that blob's: nothing changes.
        let (attacker, _) = push_of("YXR0YWNrZXI=");
        let answer = s.hub.push("b1", &attacker, NOW).await.expect("v2");
        assert_eq!(answer.blob_sha256, blob_sha256(b"attacker"));
        let refused = s.hub.approve(&overwrite_of(&s, 2, FP, &blob_hash()), NOW).await;
        assert!(
            matches!(refused, Err(ServiceError::Refused(ref why)) if why.contains("SHA-256")),
            "{refused:?}"
        );
        // Approved by its own hash (a routine approval), it is active — and v1 is still held, so
        // a recovery finds the owner's version too, newest first.
        s.hub.approve(&overwrite_of(&s, 2, FP, &answer.blob_sha256), NOW).await.expect("approved");
        let served = s.hub.recover(&recovery_ticket(&s, 1), NOW).await.expect("recover");
        let versions: Vec<(u64, &str)> =
            served.versions.iter().map(|v| (v.version, v.state.as_str())).collect();
        assert_eq!(versions, [(2, "active"), (1, "superseded")]);
        assert_eq!(served.versions[1].blob, BLOB);
        assert_eq!(served.versions[1].blob_sha256, blob_hash());
        // The operator's view shows every hash.
        let status = s.hub.status("b1").await.expect("status");
        let hashes: Vec<Option<String>> =
            status.versions.into_iter().map(|v| v.blob_sha256).collect();
        assert_eq!(hashes, [Some(blob_hash()), Some(answer.blob_sha256)]);
    });
}

#[test]
fn a_ticket_allows_its_uses_each_audited_and_no_more() {
    runtime().block_on(async {
        let s = setup().await;
        let (push, _) = push_body();
        s.hub.push("b1", &push, NOW).await.expect("push");
        let ticket = recovery_ticket(&s, 3);
        for n in 1..=3 {
            let served = s.hub.recover(&ticket, NOW).await.expect("a use");
            assert_eq!((served.ticket_use, served.ticket_uses), (n, 3));
        }
        let fourth = s.hub.recover(&ticket, NOW).await;
        assert!(
            matches!(fourth, Err(ServiceError::Refused(ref why)) if why.contains("all 3 times")),
            "{fourth:?}"
        );
        let used: Vec<String> = s
            .hub
            .store()
            .audit_log()
            .await
            .expect("log")
            .into_iter()
            .filter(|r| r.event == "ticket-used")
            .map(|r| r.detail)
            .collect();
        assert_eq!(
            used,
            [
                "a recovery ticket, use 1 of 3",
                "a recovery ticket, use 2 of 3",
                "a recovery ticket, use 3 of 3"
            ]
        );
    });
}

#[test]
fn an_operator_signs_requests_with_its_own_key_and_a_box_cannot_pose_as_one() {
    runtime().block_on(async {
        let s = setup().await;
        let get = Request { method: "GET", path: "/v1/boxes/b1/escrows", body: b"" };
        let signer = s.operator.public().to_string();
        let signed = request::sign(&s.operator, &signer, AUDIENCE, get, NOW).expect("sign");
        assert_eq!(
            s.hub.authenticate(&signed, get, NOW).await.expect("operator"),
            Principal::Operator(s.operator.public())
        );
        // The box's key named as if it were an operator's.
        let posing = request::sign(&s.device, &s.device.public().to_string(), AUDIENCE, get, NOW)
            .expect("sign");
        let result = s.hub.authenticate(&posing, get, NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::UnknownSigner))),
            "{result:?}"
        );
    });
}

#[test]
fn an_enrollment_token_the_schema_allows_is_a_failed_proof_not_malformed() {
    runtime().block_on(async {
        let s = setup().await;
        // docs/openapi.json allows any token text up to 4096 characters: one that is not a
        // statement is a failed proof (401), not a malformed request (400).
        let other = SigningIdentity::generate().expect("rng");
        for token in ["", "not a statement", "kwst1.e30.AAAA", &"x".repeat(4096)] {
            let result = s.hub.enroll("b9", other.public(), token, NOW).await;
            assert!(
                matches!(result, Err(ServiceError::Unauthenticated(_))),
                "{token:.20}: {result:?}"
            );
        }
    });
}

fn header_of(uuid: &str, sealed: &[u8]) -> HeaderPushRequest {
    HeaderPushRequest {
        uuid: uuid.into(),
        fingerprint: FP.into(),
        sealed: keyward_core::encoding::to_base64(sealed),
        state: Some("5e".repeat(32)),
    }
}

fn volume(n: usize) -> String {
    format!("{n:08x}-abcd-4ef0-8000-00000000000a")
}

#[test]
fn a_volumes_header_backup_is_replaced_served_for_a_ticket_without_using_it_and_audited() {
    runtime().block_on(async {
        let s = setup().await;
        let first = s.hub.push_header("b1", &header_of(&volume(1), b"one"), NOW).await;
        let first = first.expect("push");
        assert_eq!((first.replaced, first.sha256), (false, blob_sha256(b"one")));
        // The UUID is kept lower-case, so one volume is never two rows.
        let upper = volume(1).to_uppercase();
        let second = s.hub.push_header("b1", &header_of(&upper, b"two"), NOW).await;
        assert!(second.expect("push").replaced);

        // A one-use ticket serves it any number of times and is still there for the key.
        let ticket = recovery_ticket(&s, 1);
        for _ in 0..3 {
            let served = s.hub.recover_header(&ticket, Some(&volume(1)), NOW).await;
            let served = served.expect("served");
            assert_eq!(
                (served.box_name.as_str(), served.header.sha256),
                ("b1", blob_sha256(b"two"))
            );
        }
        let only = s.hub.recover_header(&ticket, None, NOW).await.expect("the only volume");
        assert_eq!(only.header.uuid, volume(1));
        s.hub.push("b1", &push_body().0, NOW).await.expect("push");
        s.hub.recover(&ticket, NOW).await.expect("the ticket's one use is still there");

        let unknown = s.hub.recover_header(&ticket, Some(&volume(9)), NOW).await;
        assert!(matches!(unknown, Err(ServiceError::NotFound(_))), "{unknown:?}");
        s.hub.push_header("b1", &header_of(&volume(2), b"b"), NOW).await.expect("push");
        let which = s.hub.recover_header(&ticket, None, NOW).await;
        assert!(
            matches!(which, Err(ServiceError::Refused(ref why)) if why.contains(&volume(2))),
            "two volumes: the UUIDs are named {which:?}"
        );
        // A statement of another kind, or an expired ticket, serves nothing.
        let other = enrollment_token(&s.operator, "b1");
        assert!(s.hub.recover_header(&other, Some(&volume(1)), NOW).await.is_err());
        let expired = s.hub.recover_header(&ticket, Some(&volume(1)), NOW + 3600).await;
        assert!(expired.is_err());

        let events: Vec<(String, String)> = s
            .hub
            .store()
            .audit_log()
            .await
            .expect("log")
            .into_iter()
            .filter(|r| r.event.starts_with("header-"))
            .map(|r| (r.event, r.detail))
            .collect();
        assert_eq!(events.iter().filter(|(e, _)| e == "header-served").count(), 4);
        assert!(events[1].1.contains("replaced"), "{events:?}");
        for (_, detail) in &events {
            assert!(!detail.contains(&keyward_core::encoding::to_base64(b"two")), "{detail}");
        }
    });
}

#[test]
fn header_backups_are_bounded_in_size_and_in_volumes_the_oldest_making_room() {
    runtime().block_on(async {
        let s = setup().await;
        let big = vec![0u8; keyward_hub::hub::MAX_SEALED_HEADER_BYTES + 1024];
        let too_big = s.hub.push_header("b1", &header_of(&volume(1), &big), NOW).await;
        assert!(matches!(too_big, Err(ServiceError::Refused(_))), "{too_big:?}");
        for bad in ["not-a-uuid", "", &volume(1)[..35], &format!("{}x", &volume(1)[..35])] {
            let refused = s.hub.push_header("b1", &header_of(bad, b"x"), NOW).await;
            assert!(matches!(refused, Err(ServiceError::Malformed(_))), "{bad}: {refused:?}");
        }
        // Issue 22.5: an empty sealed header and an upper-case fingerprint were accepted.
        let empty = s.hub.push_header("b1", &header_of(&volume(1), b""), NOW).await;
        assert!(matches!(empty, Err(ServiceError::Malformed(_))), "{empty:?}");
        for fingerprint in ["ab:cd".to_string(), FP.to_uppercase()] {
            let mut bad_fp = header_of(&volume(1), b"x");
            bad_fp.fingerprint = fingerprint;
            let refused = s.hub.push_header("b1", &bad_fp, NOW).await;
            assert!(matches!(refused, Err(ServiceError::Malformed(_))), "{refused:?}");
        }
        for state in ["5E".repeat(32), "5e".repeat(31), String::new()] {
            let mut bad_state = header_of(&volume(1), b"x");
            bad_state.state = Some(state);
            let refused = s.hub.push_header("b1", &bad_state, NOW).await;
            assert!(matches!(refused, Err(ServiceError::Malformed(_))), "{refused:?}");
        }
        assert!(s.hub.list_headers("b1").await.expect("list").headers.is_empty(), "none kept");
        for n in 0..keyward_hub::hub::MAX_HEADER_VOLUMES {
            let at = NOW + n as i64;
            let pushed = s.hub.push_header("b1", &header_of(&volume(n), b"x"), at).await;
            assert_eq!(pushed.expect("room").evicted, None);
        }
        // A volume it holds is replaced, nothing dropped; one more drops the oldest.
        let again = s.hub.push_header("b1", &header_of(&volume(1), b"y"), NOW + 100).await;
        assert_eq!(again.expect("replace").evicted, None);
        let more = s.hub.push_header("b1", &header_of(&volume(99), b"x"), NOW + 101).await;
        assert_eq!(more.expect("room made").evicted, Some(volume(0)));
        // The box reads back what it holds, each with the state it was pushed with; the
        // evicted volume's state went with it.
        let held = s.hub.list_headers("b1").await.expect("list").headers;
        assert_eq!(held.len(), keyward_hub::hub::MAX_HEADER_VOLUMES);
        assert!(held.iter().all(|h| h.uuid != volume(0) && h.state == Some("5e".repeat(32))));
        let mut without = header_of(&volume(99), b"z");
        without.state = None;
        s.hub.push_header("b1", &without, NOW + 102).await.expect("an older box's push");
        let held = s.hub.list_headers("b1").await.expect("list").headers;
        assert_eq!(held.iter().find(|h| h.uuid == volume(99)).map(|h| h.state.clone()), Some(None));
        let ticket = recovery_ticket(&s, 1);
        let gone = s.hub.recover_header(&ticket, Some(&volume(0)), NOW).await;
        assert!(matches!(gone, Err(ServiceError::NotFound(_))), "{gone:?}");
        let log = s.hub.store().audit_log().await.expect("log");
        assert!(log.iter().any(|r| r.event == "header-evicted" && r.detail.contains(&volume(0))));
    });
}

/// An operator's takeover of `box_name` from `replaces` by `identity`, valid for a minute.
fn takeover(
    s: &Setup,
    box_name: &str,
    replaces: &SigningIdentity,
    identity: &SigningIdentity,
) -> String {
    statement::issue(
        &s.operator,
        Statement::Takeover {
            box_name: box_name.into(),
            replaces: replaces.public(),
            identity: identity.public(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
        },
    )
}

/// Issue 23.1: a replacement machine takes the box's name over with an operator's takeover
/// that names the identity it replaces and its own. The escrow versions and header backups
/// stay; the old identity is refused from then on; the takeover is audited (in the
/// transaction that uses it) and works once, for that identity only, and only while the name
/// is still the replaced identity's: an older takeover cannot move it back.
#[test]
fn a_takeover_moves_the_name_to_the_identity_it_names_and_keeps_what_the_box_had() {
    runtime().block_on(async {
        let s = setup().await;
        let (push, body) = push_body();
        s.hub.push("b1", &push, NOW).await.expect("push");
        let uuid = volume(1);
        s.hub.push_header("b1", &header_of(&uuid, b"sealed"), NOW).await.expect("header");
        // The old machine's identity is cached by a request of its own first.
        let before = request::sign(&s.device, "b1", AUDIENCE, post(&body), NOW).expect("sign");
        s.hub.authenticate(&before, post(&body), NOW).await.expect("the old identity, before");
        assert_eq!(
            s.hub.status("b1").await.expect("status").identity,
            Some(s.device.public().to_string()),
            "the operator sees what a takeover replaces"
        );

        let replacement = SigningIdentity::generate().expect("rng");
        let lost = SigningIdentity::generate().expect("rng");
        let text = takeover(&s, "b1", &s.device, &replacement);
        let older = takeover(&s, "b1", &s.device, &lost);
        // Only the identity it names can use it, and an enrollment token cannot move a name
        // (nor is it spent trying).
        let stranger = SigningIdentity::generate().expect("rng");
        let result = s.hub.enroll("b1", stranger.public(), &text, NOW).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::WrongStatement { .. }))),
            "{result:?}"
        );
        let token = enrollment_token(&s.operator, "b1");
        let result = s.hub.enroll("b1", replacement.public(), &token, NOW).await;
        assert!(matches!(result, Err(ServiceError::Conflict(_))), "{result:?}");

        let done = s.hub.enroll("b1", replacement.public(), &text, NOW).await.expect("takeover");
        assert_eq!(done, keyward_hub::hub::Enrolled::TakenOver);
        // The same machine asking again (its answer lost) is answered the same, using nothing.
        assert_eq!(
            s.hub.enroll("b1", replacement.public(), &text, NOW).await.expect("idempotent"),
            keyward_hub::hub::Enrolled::TakenOver
        );
        // A takeover that replaces the old identity is void now that the name moved on.
        let stale = s.hub.enroll("b1", lost.public(), &older, NOW).await;
        assert!(matches!(stale, Err(ServiceError::Refused(_))), "{stale:?}");
        let other = SigningIdentity::generate().expect("rng");
        let result = s
            .hub
            .enroll("b1", other.public(), &takeover(&s, "b1", &replacement, &other), NOW)
            .await;
        assert!(result.is_ok(), "a new takeover moves it again: {result:?}");
        let reused = s.hub.enroll("b1", replacement.public(), &text, NOW).await;
        assert!(matches!(reused, Err(ServiceError::Refused(_))), "single use: {reused:?}");
        let back = takeover(&s, "b1", &other, &replacement);
        s.hub.enroll("b1", replacement.public(), &back, NOW).await.expect("moved back");

        let old = request::sign(&s.device, "b1", AUDIENCE, post(&body), NOW + 1).expect("sign");
        let result = s.hub.authenticate(&old, post(&body), NOW + 1).await;
        assert!(
            matches!(result, Err(ServiceError::Unauthenticated(AuthError::BadSignature))),
            "the old identity is refused: {result:?}"
        );
        let new = request::sign(&replacement, "b1", AUDIENCE, post(&body), NOW + 1).expect("sign");
        assert_eq!(
            s.hub.authenticate(&new, post(&body), NOW + 1).await.expect("the new identity"),
            Principal::Box("b1".into())
        );
        let versions = s.hub.status("b1").await.expect("status").versions;
        assert_eq!(versions.len(), 1, "the escrow versions stay");
        let headers = s.hub.list_headers("b1").await.expect("headers").headers;
        assert_eq!(headers.len(), 1, "the header backups stay");
        assert_eq!(headers[0].uuid, uuid);

        // A takeover of a name nobody enrolled enrolls nothing.
        let result =
            s.hub.enroll("b9", other.public(), &takeover(&s, "b9", &s.device, &other), NOW).await;
        assert!(matches!(result, Err(ServiceError::NotFound(_))), "{result:?}");

        let log = s.hub.store().audit_log().await.expect("audit");
        let tokens = log.iter().filter(|r| r.event == "token-used").count();
        assert_eq!(tokens, 1, "the setup's token only: one for a taken name is not spent");
        let moves: Vec<_> = log.iter().filter(|r| r.event == "takeover").collect();
        assert_eq!(moves.len(), 3, "each takeover audited");
        assert!(moves[0].detail.contains(&s.device.public().to_string()), "{:?}", moves[0]);
        assert!(moves[0].detail.contains(&replacement.public().to_string()), "{:?}", moves[0]);
    });
}

/// Issue 23.6: a push retried at the next hub after the first took it (its answer lost) is
/// recognised as the version it became, active or pending; a version deleted since, or another
/// directive, makes a new one.
#[test]
fn a_push_of_the_same_blob_and_directive_is_the_version_it_became() {
    runtime().block_on(async {
        let s = setup().await;
        let first = s.hub.push("b1", &push_numbered(1), NOW).await.expect("v1");
        let again = s.hub.push("b1", &push_numbered(1), NOW).await.expect("v1 again");
        assert_eq!((again.version, again.state.as_str()), (1, "active"));
        assert_eq!(again.blob_sha256, first.blob_sha256);
        let second = s.hub.push("b1", &push_numbered(2), NOW).await.expect("v2");
        assert_eq!((second.version, second.state.as_str()), (2, "pending"));
        let retried = s.hub.push("b1", &push_numbered(2), NOW).await.expect("v2 again");
        assert_eq!((retried.version, retried.state.as_str()), (2, "pending"));
        assert_eq!(s.hub.status("b1").await.expect("status").versions.len(), 2);
        let pushes = s.hub.store().audit_log().await.expect("log");
        assert_eq!(pushes.iter().filter(|r| r.event == "push").count(), 2, "nothing added");
    });
}

/// Issues 24.2 and 24.3: a box's drill report is kept path by path (the last one replacing the
/// one before), audited, refused when it is not what a drill writes; the fleet shows it; the
/// audit log can be read from a time on, for one box; `/metrics` has one proof age per box.
#[test]
fn a_drill_report_is_kept_audited_shown_in_the_fleet_and_metered() {
    use keyward_hub::api::{AuditQuery, DrillPath, DrillReport};
    runtime().block_on(async {
        let s = setup().await;
        let path = |id: &str, state: &str| DrillPath {
            id: id.into(),
            name: format!("path {id}"),
            state: state.into(),
            detail: "words".into(),
        };
        let report =
            DrillReport { version: 1, paths: vec![path("slot:1", "ok"), path("escrow", "broken")] };
        s.hub.record_drill("b1", &report, NOW).await.expect("recorded");
        let newer = DrillReport { version: 1, paths: vec![path("slot:1", "ok")] };
        s.hub.record_drill("b1", &newer, NOW + 10).await.expect("recorded");
        let fleet = s.hub.fleet(&FleetQuery::default()).await.expect("fleet");
        assert_eq!(fleet.boxes.len(), 1);
        assert_eq!(fleet.boxes[0].drill.len(), 1, "the last report replaces the one before");
        assert_eq!(fleet.boxes[0].drill[0].at, NOW + 10);

        for bad in [
            DrillReport { version: 2, paths: vec![] },
            DrillReport { version: 1, paths: vec![path("slot 1", "ok")] },
            DrillReport { version: 1, paths: vec![path("slot:1", "fine")] },
            DrillReport {
                version: 1,
                paths: vec![DrillPath { detail: "a\nforged line".into(), ..path("x", "ok") }],
            },
            // A bidi override would show the operator "ok" where the box wrote "ko".
            DrillReport {
                version: 1,
                paths: vec![DrillPath { name: "path \u{202E}ko".into(), ..path("x", "ok") }],
            },
        ] {
            assert!(s.hub.record_drill("b1", &bad, NOW).await.is_err(), "{bad:?}");
        }
        let audit = s
            .hub
            .audit(&AuditQuery { since: NOW, box_name: Some("b1".into()) })
            .await
            .expect("audit");
        let drills: Vec<&str> = audit
            .records
            .iter()
            .filter(|r| r.event == "drill")
            .map(|r| r.detail.as_str())
            .collect();
        assert_eq!(
            drills,
            ["1 ok, 1 broken (escrow), 0 not proven", "1 ok, 0 broken, 0 not proven"]
        );
        let later =
            s.hub.audit(&AuditQuery { since: NOW + 5, box_name: None }).await.expect("audit");
        assert!(later.records.iter().all(|r| r.at >= NOW + 5));
        let metrics = s.hub.proof_metrics(NOW + 70).await.expect("metrics");
        assert!(metrics.contains("keyward_hub_box_proof_age_seconds{box=\"b1\"} 60"), "{metrics}");
        assert!(metrics.contains("keyward_hub_box_broken_paths{box=\"b1\"} 0"), "{metrics}");
    });
}

/// Issue 24.3: the fleet comes in pages by name, each naming where the next begins, so a fleet
/// of any size is listed whole; a page is never larger than the hub's page size, whatever is
/// asked, and a name that is none is refused.
#[test]
fn the_fleet_comes_in_pages_by_name_each_naming_the_next() {
    runtime().block_on(async {
        let s = setup().await;
        let hub = s.hub.clone().with_fleet_page(3);
        for n in 2..=7 {
            let name = format!("b{n}");
            let device = SigningIdentity::generate().expect("rng");
            let token = enrollment_token(&s.operator, &name);
            hub.enroll(&name, device.public(), &token, NOW).await.expect("enroll");
        }
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let query = FleetQuery { after: after.clone(), limit: None };
            let page = hub.fleet(&query).await.expect("a page");
            assert_eq!(page.truncated, page.next.is_some());
            pages.push(page.boxes.iter().map(|b| b.box_name.clone()).collect::<Vec<_>>());
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
            assert!(pages.len() < 10, "the pages end");
        }
        assert_eq!(pages, [vec!["b1", "b2", "b3"], vec!["b4", "b5", "b6"], vec!["b7"]]);
        // Smaller pages when asked; never larger than the hub's.
        let query = |limit| FleetQuery { after: None, limit: Some(limit) };
        assert_eq!(hub.fleet(&query(1)).await.expect("page").boxes.len(), 1);
        assert_eq!(hub.fleet(&query(0)).await.expect("page").boxes.len(), 1);
        assert_eq!(hub.fleet(&query(1_000)).await.expect("page").boxes.len(), 3);
        let bad = FleetQuery { after: Some("no such name!".into()), limit: None };
        assert!(matches!(hub.fleet(&bad).await, Err(ServiceError::Malformed(_))));
    });
}
