//! The hub's decisions without a network (sans-I/O, as rustls tests its state machines): a
//! real SQLite store in a temporary folder, requests signed and replayed, statements redeemed
//! twice, versions gated.

use keyward_hub::api::PushRequest;
use keyward_hub::hub::{Hub, HubError};
use keyward_hub::request::{self, MAX_SKEW_SECS};
use keyward_hub::statement::{self, Statement};
use keyward_hub::store::Store;
use keyward_hub::{AuthError, SigningIdentity};

const NOW: i64 = 1_800_000_000;
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
    let hub = Hub::new(store, vec![operator.public()]);
    let token = statement::issue(
        &operator,
        Statement::Enrollment {
            box_name: "b1".into(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
        },
    );
    hub.enroll("b1", device.public(), &token, NOW).await.expect("enroll");
    Setup { hub, operator, device, _dir: dir }
}

fn push_body() -> (PushRequest, Vec<u8>) {
    let push = PushRequest {
        blob_format: "keyward-escrow-blob".into(),
        blob: "b3BhcXVl".into(),
        fingerprint: FP.into(),
        directive: serde_json::json!({}),
    };
    let body = serde_json::to_vec(&push).expect("json");
    (push, body)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn a_replayed_request_is_refused() {
    runtime().block_on(async {
        let s = setup().await;
        let (_, body) = push_body();
        let signed =
            request::sign(&s.device, "b1", "POST", "/v1/escrows", &body, NOW).expect("sign");
        assert_eq!(
            s.hub.authenticate(&signed, "POST", "/v1/escrows", &body, NOW).await.expect("first"),
            "b1"
        );
        let again = s.hub.authenticate(&signed, "POST", "/v1/escrows", &body, NOW + 1).await;
        assert!(
            matches!(again, Err(HubError::Refused(ref why)) if why.contains("replayed")),
            "{again:?}"
        );
    });
}

#[test]
fn stale_wrong_and_unknown_signers_are_refused() {
    runtime().block_on(async {
        let s = setup().await;
        let (_, body) = push_body();
        let stale =
            request::sign(&s.device, "b1", "POST", "/v1/escrows", &body, NOW - MAX_SKEW_SECS - 5)
                .expect("sign");
        let result = s.hub.authenticate(&stale, "POST", "/v1/escrows", &body, NOW).await;
        assert!(
            matches!(result, Err(HubError::Unauthenticated(AuthError::StaleTimestamp { .. }))),
            "{result:?}"
        );
        let impostor = SigningIdentity::generate().expect("rng");
        let forged =
            request::sign(&impostor, "b1", "POST", "/v1/escrows", &body, NOW).expect("sign");
        let result = s.hub.authenticate(&forged, "POST", "/v1/escrows", &body, NOW).await;
        assert!(
            matches!(result, Err(HubError::Unauthenticated(AuthError::BadSignature))),
            "{result:?}"
        );
        let unknown =
            request::sign(&s.device, "nobody", "POST", "/v1/escrows", &body, NOW).expect("sign");
        let result = s.hub.authenticate(&unknown, "POST", "/v1/escrows", &body, NOW).await;
        assert!(
            matches!(result, Err(HubError::Unauthenticated(AuthError::UnknownSigner))),
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
        let ticket = statement::issue(
            &s.operator,
            Statement::Recovery {
                box_name: "b1".into(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 60,
            },
        );
        assert_eq!(s.hub.recover(&ticket, NOW).await.expect("recover").version, 1);
        assert!(
            matches!(s.hub.recover(&ticket, NOW).await, Err(HubError::Refused(_))),
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
            },
        );
        let result = s.hub.enroll("b2", other.public(), &wrong_kind, NOW).await;
        assert!(
            matches!(result, Err(HubError::Unauthenticated(AuthError::WrongStatement { .. }))),
            "{result:?}"
        );
        // An approval for a version that is not pending changes nothing.
        let approval = statement::issue(
            &s.operator,
            Statement::Overwrite {
                box_name: "b1".into(),
                version: 1,
                fingerprint: FP.into(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 60,
            },
        );
        assert!(matches!(s.hub.approve(&approval, NOW).await, Err(HubError::Refused(_))));
    });
}

fn overwrite(s: &Setup, version: u64, fingerprint: &str) -> String {
    statement::issue(
        &s.operator,
        Statement::Overwrite {
            box_name: "b1".into(),
            version,
            fingerprint: fingerprint.into(),
            id: Statement::fresh_id().expect("rng"),
            expires: NOW + 60,
        },
    )
}

#[test]
fn an_enrollment_token_is_single_use_and_for_its_box_only() {
    runtime().block_on(async {
        let s = setup().await;
        let token = statement::issue(
            &s.operator,
            Statement::Enrollment {
                box_name: "b2".into(),
                id: Statement::fresh_id().expect("rng"),
                expires: NOW + 60,
            },
        );
        let other = SigningIdentity::generate().expect("rng");
        let result = s.hub.enroll("b3", other.public(), &token, NOW).await;
        assert!(
            matches!(result, Err(HubError::Unauthenticated(AuthError::WrongStatement { .. }))),
            "{result:?}"
        );
        s.hub.enroll("b2", other.public(), &token, NOW).await.expect("its own box");
        let again = s.hub.enroll("b2", other.public(), &token, NOW).await;
        assert!(matches!(again, Err(HubError::Refused(_))), "{again:?}");
    });
}

#[test]
fn an_approval_must_name_the_fingerprint_the_version_claims_and_one_version_is_active() {
    runtime().block_on(async {
        let s = setup().await;
        let (push, _) = push_body();
        for _ in 0..3 {
            s.hub.push("b1", &push, NOW).await.expect("push");
        }
        let other_fp = FP.replace("00:11", "ff:11");
        assert!(matches!(
            s.hub.approve(&overwrite(&s, 2, &other_fp), NOW).await,
            Err(HubError::Refused(_))
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
            matches!(s.hub.approve(&overwrite(&s, 2, FP), NOW).await, Err(HubError::Refused(_))),
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
        assert!(matches!(refused, Err(HubError::Unauthenticated(_))), "{refused:?}");
        assert!(s.hub.fetch_own("b1").await.is_ok(), "a refused order erases nothing");

        let order = deletion(&s, 1);
        assert_eq!(s.hub.delete(&order, NOW).await.expect("delete"), ("b1".to_string(), 1));
        assert!(matches!(s.hub.fetch_own("b1").await, Err(HubError::NotFound(_))));
        let replay = s.hub.delete(&order, NOW).await;
        assert!(matches!(replay, Err(HubError::Refused(_))), "{replay:?}");
        let twice = s.hub.delete(&deletion(&s, 1), NOW).await;
        assert!(matches!(twice, Err(HubError::Refused(_))), "{twice:?}");
        let missing = s.hub.delete(&deletion(&s, 7), NOW).await;
        assert!(matches!(missing, Err(HubError::Refused(_))), "{missing:?}");

        // After a deletion the box cannot make itself a new active escrow: a push waits for an
        // operator, as any push after the first.
        let (version, state) = {
            let answer = s.hub.push("b1", &push, NOW).await.expect("push v2");
            (answer.version, answer.state)
        };
        assert_eq!((version, state.as_str()), (2, "pending"));
        assert_eq!(s.hub.approve(&overwrite(&s, 2, FP), NOW).await.expect("approve"), 2);
        assert_eq!(s.hub.fetch_own("b1").await.expect("active").version, 2);

        // Each change sits in the log next to the statement that allowed it.
        let events: Vec<String> =
            s.hub.store().audit_log().await.expect("log").into_iter().map(|r| r.event).collect();
        let expected = [
            "token-used",
            "enroll",
            "push",
            "refused",
            "deletion-used",
            "delete",
            "refused",
            "deletion-used",
            "refused",
            "deletion-used",
            "refused",
            "push",
            "approval-used",
            "approve",
        ];
        assert_eq!(events, expected);
    });
}
