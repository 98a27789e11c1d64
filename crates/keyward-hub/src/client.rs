//! The hub's endpoints, on keyward-service's pinned, signing [`ServiceClient`].

use std::time::Duration;

use keyward_service::addresses::HubAddress;
use keyward_service::client::{ClientError, ServiceClient};
use keyward_service::text::from_server;
use keyward_service::{PublicKey, SigningIdentity};
use serde::de::DeserializeOwned;

use crate::api::{
    ActiveResponse, ApproveRequest, ApproveResponse, AuditResponse, BLOB_FORMATS, DeleteRequest,
    DeleteResponse, DrillRecorded, DrillReport, EnrollRequest, EscrowCopy, EscrowVersion,
    FleetResponse, HeaderListResponse, HeaderPushRequest, HeaderPushResponse, HeaderRecoverRequest,
    HeaderRecoverResponse, PushRequest, PushResponse, RecoverRequest, RecoverResponse,
    StatusResponse, is_blob_sha256,
};

/// Largest answer read from a hub: a recovery's answer holds every version the hub keeps of a
/// box — at most a few pending ones, and the superseded ones until an operator deletes them.
/// 16 MiB holds about 190 versions of the largest blob (64 KiB, base64 about 87 KiB), thousands
/// of real ones (under 2 KiB).
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Most pages of the fleet one listing reads (a million boxes at the hub's page size): a hub
/// that always names a next page cannot keep a client reading for ever.
pub const MAX_FLEET_PAGES: usize = 2_000;

/// The states an escrow version can be in.
const STATES: [&str; 4] = ["active", "pending", "superseded", "deleted"];

/// What the client checks of each text field of an answer before anything shows or uses it: a
/// hostile or broken hub's answer may put any text there, and these fields reach the terminal
/// (and `operator escrow-status` is what an operator approves from). The error names the field,
/// never the text.
fn check_answer<'a>(fields: impl IntoIterator<Item = AnswerField<'a>>) -> Result<(), String> {
    for field in fields {
        let ok = match field {
            AnswerField::Box { found, asked: Some(asked) } => found == asked,
            AnswerField::Box { found, asked: None } => {
                keyward_service::names::valid_box_name(found)
            }
            AnswerField::State(s) => STATES.contains(&s),
            AnswerField::Fingerprint(f) => f.parse::<keyward_core::Fingerprint>().is_ok(),
            AnswerField::Sha256(h) => is_blob_sha256(h),
            AnswerField::BlobFormat(f) => BLOB_FORMATS.contains(&f),
            AnswerField::Volume { found, asked } => {
                keyward_core::encoding::is_canonical_uuid(found)
                    && asked.is_none_or(|asked| found.eq_ignore_ascii_case(asked))
            }
        };
        if !ok {
            return Err(format!("its {} is not one", field.name()));
        }
    }
    Ok(())
}

/// A text field of an answer, by what it must be.
#[derive(Debug, Clone, Copy)]
enum AnswerField<'a> {
    /// The box the answer is about: the one asked for, if the request named one.
    Box {
        found: &'a str,
        asked: Option<&'a str>,
    },
    State(&'a str),
    Fingerprint(&'a str),
    Sha256(&'a str),
    BlobFormat(&'a str),
    /// A volume's UUID: the one asked for, if the request named one.
    Volume {
        found: &'a str,
        asked: Option<&'a str>,
    },
}

impl AnswerField<'_> {
    fn name(&self) -> &'static str {
        match self {
            AnswerField::Box { asked: Some(_), .. } => "box (the one asked for)",
            AnswerField::Box { asked: None, .. } => "box (a box name)",
            AnswerField::State(_) => "state (active, pending, superseded or deleted)",
            AnswerField::Fingerprint(_) => "fingerprint (32 colon-separated hex bytes)",
            AnswerField::Sha256(_) => "blob SHA-256 (64 lower-case hex digits)",
            AnswerField::BlobFormat(_) => "blob format (a known one)",
            AnswerField::Volume { asked: Some(_), .. } => "volume UUID (the one asked for)",
            AnswerField::Volume { asked: None, .. } => "volume UUID (a UUID)",
        }
    }
}

fn version_fields(v: &EscrowVersion) -> impl Iterator<Item = AnswerField<'_>> {
    [AnswerField::State(&v.state), AnswerField::Fingerprint(&v.fingerprint)]
        .into_iter()
        .chain(v.key_fingerprint.as_deref().map(AnswerField::Fingerprint))
        .chain(v.blob_sha256.as_deref().map(AnswerField::Sha256))
}

fn copy_fields(c: &EscrowCopy) -> [AnswerField<'_>; 4] {
    [
        AnswerField::State(&c.state),
        AnswerField::Fingerprint(&c.fingerprint),
        AnswerField::Sha256(&c.blob_sha256),
        AnswerField::BlobFormat(&c.blob_format),
    ]
}

/// A connection to one hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    service: ServiceClient,
}

impl HubClient {
    /// The hub's URL.
    pub fn url(&self) -> &str {
        self.service.url()
    }

    /// A malformed-answer error for this hub.
    pub fn bad_answer(&self, reason: impl Into<String>) -> ClientError {
        self.service.bad_answer(reason)
    }

    /// A client for the hub at `url` (`https://127.0.0.1:PORT`), trusting only the certificate
    /// with SHA-256 `pin`.
    pub fn new(url: &str, pin: [u8; 32]) -> Result<Self, ClientError> {
        let service = ServiceClient::new("hub", url, pin, Duration::from_secs(30))?;
        Ok(HubClient { service: service.with_max_answer(MAX_ANSWER_BYTES) })
    }

    /// Registers a box's identity with an enrollment token.
    pub async fn enroll(
        &self,
        box_name: &str,
        key: PublicKey,
        token: &str,
    ) -> Result<(), ClientError> {
        let body =
            EnrollRequest { box_name: box_name.into(), public_key: key, token: token.into() };
        let _: serde_json::Value =
            self.service.send(self.service.post_json("/v1/enroll", &body)).await?;
        Ok(())
    }

    /// Pushes an escrow version, signed by the box.
    pub async fn push(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
        push: &PushRequest,
    ) -> Result<PushResponse, ClientError> {
        let body = serde_json::to_vec(push).map_err(|e| self.service.bad_answer(e.to_string()))?;
        let answer: PushResponse = self
            .service
            .send_signed(reqwest::Method::POST, "/v1/escrows", body, box_name, identity)
            .await?;
        let fields = [AnswerField::State(&answer.state), AnswerField::Sha256(&answer.blob_sha256)];
        self.checked(check_answer(fields), answer)
    }

    /// `answer` if `check` passed; else the hub's answer is malformed.
    fn checked<T>(&self, check: Result<(), String>, answer: T) -> Result<T, ClientError> {
        check.map(|()| answer).map_err(|why| self.service.bad_answer(why))
    }

    /// A status answer, checked: for the box asked, every field what it must be.
    fn checked_status(
        &self,
        box_name: &str,
        answer: StatusResponse,
    ) -> Result<StatusResponse, ClientError> {
        let asked = AnswerField::Box { found: &answer.box_name, asked: Some(box_name) };
        let fields = answer.versions.iter().flat_map(version_fields);
        let check = check_answer(std::iter::once(asked).chain(fields));
        self.checked(check, answer)
    }

    /// A GET signed by `signer`.
    async fn signed_get<T: DeserializeOwned>(
        &self,
        path: &str,
        signer: &str,
        identity: &SigningIdentity,
    ) -> Result<T, ClientError> {
        self.service.send_signed(reqwest::Method::GET, path, Vec::new(), signer, identity).await
    }

    /// The box's escrow versions, signed by the box.
    pub async fn status(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<StatusResponse, ClientError> {
        let answer = self.signed_get("/v1/escrows", box_name, identity).await?;
        self.checked_status(box_name, answer)
    }

    /// A box's escrow versions, with their blobs' hashes, signed by an operator.
    pub async fn operator_status(
        &self,
        box_name: &str,
        operator: &SigningIdentity,
    ) -> Result<StatusResponse, ClientError> {
        // The name goes into the path: nothing else may.
        if !keyward_service::names::valid_box_name(box_name) {
            return Err(ClientError::NotABoxName { name: box_name.into() });
        }
        let path = format!("/v1/boxes/{box_name}/escrows");
        let answer = self.signed_get(&path, &operator.public().to_string(), operator).await?;
        self.checked_status(box_name, answer)
    }

    /// The box's own active escrow, signed by the box.
    pub async fn fetch_active(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<ActiveResponse, ClientError> {
        let answer: ActiveResponse =
            self.signed_get("/v1/escrows/active", box_name, identity).await?;
        let asked = AnswerField::Box { found: &answer.box_name, asked: Some(box_name) };
        let check = check_answer(std::iter::once(asked).chain(copy_fields(&answer.escrow)));
        self.checked(check, answer)
    }

    /// Sends an operator's overwrite approval.
    pub async fn approve(&self, approval: &str) -> Result<ApproveResponse, ClientError> {
        let body = ApproveRequest { approval: approval.into() };
        let answer: ApproveResponse =
            self.service.send(self.service.post_json("/v1/approvals", &body)).await?;
        self.checked(check_answer([AnswerField::State(&answer.state)]), answer)
    }

    /// Sends an operator's deletion order.
    pub async fn delete(&self, order: &str) -> Result<DeleteResponse, ClientError> {
        let body = DeleteRequest { deletion: order.into() };
        let answer: DeleteResponse =
            self.service.send(self.service.post_json("/v1/deletions", &body)).await?;
        let found = AnswerField::Box { found: &answer.box_name, asked: None };
        let check = check_answer([found, AnswerField::State(&answer.state)]);
        self.checked(check, answer)
    }

    /// Pushes a volume's sealed LUKS2 header backup, signed by the box.
    pub async fn push_header(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
        header: &HeaderPushRequest,
    ) -> Result<HeaderPushResponse, ClientError> {
        let body =
            serde_json::to_vec(header).map_err(|e| self.service.bad_answer(e.to_string()))?;
        let answer: HeaderPushResponse = self
            .service
            .send_signed(reqwest::Method::POST, "/v1/headers", body, box_name, identity)
            .await?;
        let fields = [
            AnswerField::Volume { found: &answer.uuid, asked: Some(&header.uuid) },
            AnswerField::Sha256(&answer.sha256),
        ];
        let evicted =
            answer.evicted.as_deref().map(|found| AnswerField::Volume { found, asked: None });
        self.checked(check_answer(fields.into_iter().chain(evicted)), answer)
    }

    /// What the hub holds of this box's header backups (signed by the box), each field
    /// checked for its form.
    pub async fn list_headers(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<HeaderListResponse, ClientError> {
        let answer: HeaderListResponse = self.signed_get("/v1/headers", box_name, identity).await?;
        let asked = AnswerField::Box { found: &answer.box_name, asked: Some(box_name) };
        let fields = answer.headers.iter().flat_map(|h| {
            [
                AnswerField::Volume { found: &h.uuid, asked: None },
                AnswerField::Fingerprint(&h.fingerprint),
                AnswerField::Sha256(&h.sha256),
            ]
            .into_iter()
            .chain(h.state.as_deref().map(AnswerField::Sha256))
        });
        let check = check_answer(std::iter::once(asked).chain(fields));
        self.checked(check, answer)
    }

    /// Fetches a volume's sealed header backup (the box's only one, if `uuid` is `None`) with
    /// a recovery ticket of its box, which the hub checks but does not use up.
    pub async fn recover_header(
        &self,
        ticket: &str,
        uuid: Option<&str>,
    ) -> Result<HeaderRecoverResponse, ClientError> {
        let body = HeaderRecoverRequest { ticket: ticket.into(), uuid: uuid.map(Into::into) };
        let answer: HeaderRecoverResponse =
            self.service.send(self.service.post_json("/v1/recoveries/headers", &body)).await?;
        let fields = [
            AnswerField::Box { found: &answer.box_name, asked: None },
            AnswerField::Volume { found: &answer.header.uuid, asked: uuid },
            AnswerField::Fingerprint(&answer.header.fingerprint),
            AnswerField::Sha256(&answer.header.sha256),
        ];
        self.checked(check_answer(fields), answer)
    }

    /// Reports a drill's result, signed by the box.
    pub async fn report_drill(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
        report: &DrillReport,
    ) -> Result<DrillRecorded, ClientError> {
        let body =
            serde_json::to_vec(report).map_err(|e| self.service.bad_answer(e.to_string()))?;
        self.service
            .send_signed(reqwest::Method::POST, "/v1/drills", body, box_name, identity)
            .await
    }

    /// Every box the hub knows, with its escrow, header backups and last drill, signed by an
    /// operator: page after page, at most [`MAX_FLEET_PAGES`] of them (`truncated` says when
    /// the hub had more still).
    pub async fn fleet(&self, operator: &SigningIdentity) -> Result<FleetResponse, ClientError> {
        let mut pages = FleetPages::default();
        let mut after = None;
        for _ in 0..MAX_FLEET_PAGES {
            let page = self.fleet_page(operator, after.as_deref()).await?;
            match pages.add(page).map_err(|why| self.service.bad_answer(why))? {
                Some(next) => after = Some(next),
                None => return Ok(pages.fleet),
            }
        }
        pages.fleet.truncated = true;
        Ok(pages.fleet)
    }

    /// One page of the fleet: the boxes after `after`, as many as the hub's page holds. Each
    /// box name is checked to be one (`next`, the page's last, is carried by the next page's
    /// query), and the fields the operator judges by too.
    async fn fleet_page(
        &self,
        operator: &SigningIdentity,
        after: Option<&str>,
    ) -> Result<FleetResponse, ClientError> {
        let path = match after {
            // A name goes into the query: nothing else may.
            Some(name) if !keyward_service::names::valid_box_name(name) => {
                return Err(ClientError::NotABoxName { name: name.into() });
            }
            Some(name) => format!("/v1/fleet?after={name}"),
            None => "/v1/fleet".to_string(),
        };
        let mut answer: FleetResponse =
            self.signed_get(&path, &operator.public().to_string(), operator).await?;
        // What boxes wrote is shown to the operator: nothing in it drives a terminal or
        // reorders the text around it, whatever the hub let through.
        for fleet_box in &mut answer.boxes {
            for at in &mut fleet_box.drill {
                let path = &mut at.path;
                for text in [&mut path.id, &mut path.name, &mut path.detail, &mut path.state] {
                    *text = from_server(text);
                }
            }
            for header in &mut fleet_box.headers {
                header.uuid = from_server(&header.uuid);
            }
        }
        // The next page begins after this one's last box, and is named only when there is one.
        let next_fits = answer.next.as_deref().is_none_or(|next| {
            answer.truncated && answer.boxes.last().is_some_and(|b| b.box_name == next)
        });
        if !next_fits {
            return Err(self
                .service
                .bad_answer("a fleet page names a next page it does not end with"));
        }
        let fields = answer.boxes.iter().flat_map(|b| {
            std::iter::once(AnswerField::Box { found: &b.box_name, asked: None })
                .chain(b.versions.iter().flat_map(version_fields))
        });
        let check = check_answer(fields);
        self.checked(check, answer)
    }

    /// The audit log since `since` (Unix seconds), of one box if named, signed by an operator.
    pub async fn audit(
        &self,
        operator: &SigningIdentity,
        box_name: Option<&str>,
        since: i64,
    ) -> Result<AuditResponse, ClientError> {
        // The name goes into the query: nothing else may.
        if let Some(name) = box_name
            && !keyward_service::names::valid_box_name(name)
        {
            return Err(ClientError::NotABoxName { name: name.into() });
        }
        let path = match box_name {
            Some(name) => format!("/v1/audit?since={since}&box={name}"),
            None => format!("/v1/audit?since={since}"),
        };
        self.signed_get(&path, &operator.public().to_string(), operator).await
    }

    /// Redeems a recovery ticket for every escrow version the hub holds of its box.
    pub async fn recover(&self, ticket: &str) -> Result<RecoverResponse, ClientError> {
        let body = RecoverRequest { ticket: ticket.into() };
        let answer: RecoverResponse =
            self.service.send(self.service.post_json("/v1/recoveries", &body)).await?;
        let found = AnswerField::Box { found: &answer.box_name, asked: None };
        let fields = answer.versions.iter().flat_map(copy_fields);
        let check = check_answer(std::iter::once(found).chain(fields));
        self.checked(check, answer)
    }
}

/// How long a hub that is not the last one listed has to answer before the next one is asked.
/// A hub answers a small request in milliseconds; one that takes longer is down or hanging
/// (a stopped process still accepts connections, and its TLS handshake never ends).
pub const FAILOVER_AFTER: Duration = Duration::from_millis(1500);

/// How long a hub that is not the last one has to take or serve a sealed header backup (up to
/// a few MiB) before the next is asked.
pub const HEADER_PATIENCE: Duration = Duration::from_secs(30);

/// The hubs of one fleet, which share one database so that any of them serves any box, tried
/// in the order listed: the next is asked when one cannot be reached, breaks off, does not
/// answer within [`FAILOVER_AFTER`], or fails on its side (5xx); the last one is given the
/// client's whole timeout. A refusal, a certificate that is not the pinned one, or an answer
/// that does not check is the answer and ends the call. Each hub has its own certificate and
/// pin, and a signed request is signed for the hub it goes to (its certificate is the
/// audience), so one hub cannot replay it at another.
#[derive(Debug, Clone)]
pub struct Hubs {
    clients: Vec<HubClient>,
}

impl Hubs {
    /// Clients for `hubs`, in order; an empty list or a pin that is not a SHA-256 is refused.
    pub fn new(hubs: &[HubAddress]) -> Result<Self, ClientError> {
        if hubs.is_empty() {
            return Err(ClientError::NoServer { service: "hub" });
        }
        let clients = hubs
            .iter()
            .map(|hub| {
                let pin = keyward_service::tls::parse_pin(&hub.fingerprint)
                    .ok_or_else(|| ClientError::BadPin { service: "hub", url: hub.url.clone() })?;
                HubClient::new(&hub.url, pin)
            })
            .collect::<Result<_, _>>()?;
        Ok(Hubs { clients })
    }

    /// The URLs, in order (for messages).
    pub fn urls(&self) -> Vec<&str> {
        self.clients.iter().map(HubClient::url).collect()
    }

    /// The first answer to `call`, asked of each hub in turn (see [`Hubs`]).
    pub async fn first_answer<T>(
        &self,
        call: impl AsyncFn(&HubClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.first_answer_within(FAILOVER_AFTER, call).await
    }

    /// [`Hubs::first_answer`], giving each hub but the last `patience` (for large uploads).
    pub async fn first_answer_within<T>(
        &self,
        patience: Duration,
        call: impl AsyncFn(&HubClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.ask_in_turn(Some(patience), ClientError::another_may_answer, call).await
    }

    /// The answer to a request that uses up an operator's statement (an approval, a deletion
    /// order, a recovery ticket's fetch): the next hub is asked only when the request surely
    /// never reached one (no connection, or its TLS handshake never finished), so a slow hub
    /// that carried it out is never asked to carry it out again (and refuse it as used).
    pub async fn answer_once<T>(
        &self,
        call: impl AsyncFn(&HubClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let unsent = |e: &ClientError| e.another_may_answer() && e.changed_nothing();
        self.ask_in_turn(None, unsent, call).await
    }

    /// Asks each hub in turn — each but the last for `patience` at most, if given — until one
    /// answers, or fails in a way `next` says another hub may do better.
    async fn ask_in_turn<T>(
        &self,
        patience: Option<Duration>,
        next: impl Fn(&ClientError) -> bool,
        call: impl AsyncFn(&HubClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut failures = Vec::new();
        let last = self.clients.len().saturating_sub(1);
        for (i, hub) in self.clients.iter().enumerate() {
            let outcome = match patience.filter(|_| i < last) {
                Some(patience) => match tokio::time::timeout(patience, call(hub)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(hub.service.no_answer_within(patience)),
                },
                None => call(hub).await,
            };
            match outcome {
                Err(e) if i < last && next(&e) => failures.push(e),
                Err(e) if !failures.is_empty() && next(&e) => failures.push(e),
                done => return done,
            }
        }
        match failures.len() {
            0 => Err(ClientError::NoServer { service: "hub" }),
            1 => Err(failures.remove(0)),
            _ => Err(ClientError::NoneAnswered { service: "hub", failures }),
        }
    }
}

/// The fleet as its pages come.
#[derive(Debug, Default)]
struct FleetPages {
    fleet: FleetResponse,
    seen: std::collections::HashSet<String>,
}

impl FleetPages {
    /// Adds a page: `Some(name)` the next page begins after, `None` when this was the last, or
    /// why the page cannot follow the ones before it.
    fn add(&mut self, page: FleetResponse) -> Result<Option<String>, String> {
        // The hub's database orders the names (its collation, not ours): a box listed twice is
        // a hub going round in circles.
        if let Some(again) = page.boxes.iter().find(|b| !self.seen.insert(b.box_name.clone())) {
            return Err(format!("the fleet lists box {} twice", again.box_name));
        }
        self.fleet.boxes.extend(page.boxes);
        // A hub of an older keyward lists one page and says only that it held more: the boxes
        // past it are not judged, and the fleet says so.
        self.fleet.truncated = page.truncated && page.next.is_none();
        Ok(page.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FleetBox;

    fn page(names: &[&str], next: Option<&str>, truncated: bool) -> FleetResponse {
        let boxes = names
            .iter()
            .map(|name| FleetBox {
                box_name: name.to_string(),
                versions: Vec::new(),
                headers: Vec::new(),
                drill: Vec::new(),
            })
            .collect();
        FleetResponse { boxes, truncated, next: next.map(str::to_string) }
    }

    /// Issue 24.3: pages add up to the whole fleet; a box listed twice is a bad answer; a hub
    /// that held more than it listed (an older one, or the last page read) leaves the fleet
    /// marked truncated, never whole.
    #[test]
    fn fleet_pages_add_up_and_an_incomplete_listing_says_so() {
        let mut pages = FleetPages::default();
        assert_eq!(pages.add(page(&["a", "b"], Some("b"), true)), Ok(Some("b".into())));
        assert_eq!(pages.add(page(&["c"], None, false)), Ok(None));
        let names: Vec<&str> = pages.fleet.boxes.iter().map(|b| b.box_name.as_str()).collect();
        assert_eq!((names.as_slice(), pages.fleet.truncated), (&["a", "b", "c"][..], false));

        let mut circling = FleetPages::default();
        circling.add(page(&["a", "b"], Some("b"), true)).expect("first page");
        let refused = circling.add(page(&["b", "c"], Some("c"), true)).expect_err("b twice");
        assert!(refused.contains("box b twice"), "{refused}");

        let mut older_hub = FleetPages::default();
        assert_eq!(older_hub.add(page(&["a"], None, true)), Ok(None));
        assert!(older_hub.fleet.truncated, "boxes past the answer are not judged");
    }

    #[test]
    fn an_answers_fields_must_be_what_they_claim_to_be() {
        let fp = ["ab"; 32].join(":");
        let hash = "0f".repeat(32);
        let good = [
            AnswerField::Box { found: "pve-07", asked: Some("pve-07") },
            AnswerField::State("pending"),
            AnswerField::Fingerprint(&fp),
            AnswerField::Sha256(&hash),
            AnswerField::BlobFormat("keyward-escrow-blob"),
        ];
        assert_eq!(check_answer(good), Ok(()));
        let forged_line = "active\nversion 9  active  pushed now";
        let bad = [
            AnswerField::Box { found: "pve-08", asked: Some("pve-07") },
            AnswerField::Box { found: "pve 07\x1b[2J", asked: None },
            AnswerField::State(forged_line),
            AnswerField::Fingerprint("ab:cd"),
            AnswerField::Sha256(&hash.to_uppercase()),
            AnswerField::BlobFormat("other"),
        ];
        for field in bad {
            let refused = check_answer([field]).expect_err("refused");
            assert!(!refused.contains('\n') && !refused.contains('\x1b'), "{refused}");
        }
    }
}
