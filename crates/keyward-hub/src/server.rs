//! The hub's HTTPS routes: each unpacks its request, runs [`Hub`] inside keyward-service's
//! request shell (lockout, rate limits, refusal counts, metrics) and answers JSON. Logs carry
//! the route, the box name and the outcome — never a body, a token or a ticket. Once a minute
//! the refusals the shell counted go into the audit log as one record.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keyward_service::limits::RateLimits;
use keyward_service::metrics::Metrics;
use keyward_service::shell::{
    LargeRoute, ServeOptions, Shell, SignedParts, UploadGate, claimed_signer, json_body,
};
use keyward_service::{ServiceError, SourcePrefix, unix_now};

use crate::api::{
    ApproveRequest, ApproveResponse, AuditQuery, DeleteRequest, DeleteResponse, DrillReport,
    EnrollRequest, FleetQuery, HeaderPushRequest, HeaderRecoverRequest, PushRequest,
    RecoverRequest,
};
use crate::hub::{Enrolled, Hub, Principal};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Sealed LUKS2 header backups, the one kind of body larger than [`MAX_BODY_BYTES`]: up to
/// [`crate::hub::MAX_SEALED_HEADER_BYTES`] as base64 in JSON, a few at once.
pub const HEADER_UPLOADS: LargeRoute = LargeRoute {
    path: "/v1/headers",
    // The base64 and the JSON around it (a UUID, a fingerprint, a state, field names).
    max_body_bytes: crate::hub::MAX_SEALED_HEADER_BASE64 + 4096,
    body_timeout: Duration::from_secs(120),
    at_once: 4,
    // 512 kbit/s: the largest header (5.6 MB as base64) in under 90 s.
    floor_bytes_per_sec: 64 * 1024,
    floor_grace: Duration::from_secs(5),
};
/// The routes counted in `/metrics`.
pub const ROUTES: &[&str] = &[
    "enroll",
    "push",
    "status",
    "fetch",
    "approve",
    "delete",
    "recover",
    "operator-status",
    "header-push",
    "header-list",
    "header-recover",
    "drill",
    "fleet",
    "audit",
];
/// How often counted refusals are written to the audit log.
pub const REFUSAL_AUDIT_INTERVAL: Duration = Duration::from_secs(60);

/// What every handler shares.
struct ServerState {
    hub: Hub,
    shell: Shell,
    /// The boxes' proof ages as last read, and when (Unix seconds).
    proof_metrics: std::sync::Mutex<Option<(i64, String)>>,
}

type Shared = State<Arc<ServerState>>;
type Source = ConnectInfo<SocketAddr>;

impl ServerState {
    /// Runs a handler body in the shell (the hub's errors).
    async fn run(
        &self,
        route: &'static str,
        source: SocketAddr,
        body: impl Future<Output = Result<Response, ServiceError>>,
    ) -> Response {
        self.shell.run(route, source, body).await
    }

    /// Authenticates a signed request.
    async fn principal(&self, signed: SignedParts<'_>) -> Result<Principal, ServiceError> {
        let (signature, request) = signed.split()?;
        self.hub.authenticate(&signature, request, unix_now()).await
    }

    /// A box's signed request, then the box's rate limit.
    async fn a_box(&self, signed: SignedParts<'_>) -> Result<String, ServiceError> {
        match self.principal(signed).await? {
            Principal::Box(name) if self.shell.allow_box(&name, unix_now()) => Ok(name),
            Principal::Box(name) => {
                Err(ServiceError::RateLimited(format!("too many requests for {name} this minute")))
            }
            Principal::Operator(_) => {
                Err(ServiceError::Refused("this call is a box's, not an operator's".into()))
            }
        }
    }

    /// An operator's signed request.
    async fn an_operator(&self, signed: SignedParts<'_>) -> Result<(), ServiceError> {
        match self.principal(signed).await? {
            Principal::Operator(_) => Ok(()),
            Principal::Box(_) => {
                Err(ServiceError::Refused("this call is an operator's, not a box's".into()))
            }
        }
    }
}

async fn enroll(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("enroll", source, async {
            let request: EnrollRequest = json_body(&body)?;
            let enrolled = state
                .hub
                .enroll(&request.box_name, request.public_key, &request.token, unix_now())
                .await?;
            match enrolled {
                Enrolled::New => tracing::info!(box_name = %request.box_name, "enrolled"),
                Enrolled::TakenOver => tracing::info!(box_name = %request.box_name, "taken over"),
            }
            Ok(StatusCode::CREATED.into_response())
        })
        .await
}

async fn push(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .run("push", source, async {
            let box_name = state
                .a_box(SignedParts { method: &method, uri: &uri, headers: &map, body: &body })
                .await?;
            let request: PushRequest = json_body(&body)?;
            let answer = state.hub.push(&box_name, &request, unix_now()).await?;
            tracing::info!(%box_name, version = answer.version, state = %answer.state, "push");
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        })
        .await
}

async fn status(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
) -> Response {
    state
        .run("status", source, async {
            let box_name = state
                .a_box(SignedParts { method: &method, uri: &uri, headers: &map, body: b"" })
                .await?;
            Ok(Json(state.hub.status(&box_name).await?).into_response())
        })
        .await
}

async fn fetch(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
) -> Response {
    state
        .run("fetch", source, async {
            let box_name = state
                .a_box(SignedParts { method: &method, uri: &uri, headers: &map, body: b"" })
                .await?;
            Ok(Json(state.hub.fetch_own(&box_name).await?).into_response())
        })
        .await
}

async fn operator_status(
    State(state): Shared,
    ConnectInfo(source): Source,
    Path(box_name): Path<String>,
    method: Method,
    uri: Uri,
    map: HeaderMap,
) -> Response {
    state
        .run("operator-status", source, async {
            state
                .an_operator(SignedParts { method: &method, uri: &uri, headers: &map, body: b"" })
                .await?;
            Ok(Json(state.hub.status(&box_name).await?).into_response())
        })
        .await
}

async fn approve(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("approve", source, async {
            let request: ApproveRequest = json_body(&body)?;
            let version = state.hub.approve(&request.approval, unix_now()).await?;
            tracing::info!(version, "approved");
            Ok(Json(ApproveResponse { version, state: "active".into() }).into_response())
        })
        .await
}

async fn delete(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("delete", source, async {
            let request: DeleteRequest = json_body(&body)?;
            let (box_name, version) = state.hub.delete(&request.deletion, unix_now()).await?;
            tracing::info!(%box_name, version, "escrow version erased");
            Ok(Json(DeleteResponse { box_name, version, state: "deleted".into() }).into_response())
        })
        .await
}

async fn recover(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("recover", source, async {
            let request: RecoverRequest = json_body(&body)?;
            let answer = state.hub.recover(&request.ticket, unix_now()).await?;
            tracing::info!(
                box_name = %answer.box_name,
                versions = answer.versions.len(),
                ticket_use = answer.ticket_use,
                "recovery served"
            );
            Ok(Json(answer).into_response())
        })
        .await
}

async fn push_header(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .run("header-push", source, async {
            let box_name = state
                .a_box(SignedParts { method: &method, uri: &uri, headers: &map, body: &body })
                .await?;
            let request: HeaderPushRequest = json_body(&body)?;
            let answer = state.hub.push_header(&box_name, &request, unix_now()).await?;
            tracing::info!(%box_name, uuid = %answer.uuid, replaced = answer.replaced, "header backup");
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        })
        .await
}

async fn list_headers(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
) -> Response {
    state
        .run("header-list", source, async {
            let box_name = state
                .a_box(SignedParts { method: &method, uri: &uri, headers: &map, body: b"" })
                .await?;
            Ok(Json(state.hub.list_headers(&box_name).await?).into_response())
        })
        .await
}

async fn recover_header(
    State(state): Shared,
    ConnectInfo(source): Source,
    body: Bytes,
) -> Response {
    state
        .run("header-recover", source, async {
            let request: HeaderRecoverRequest = json_body(&body)?;
            let answer =
                state.hub.recover_header(&request.ticket, request.uuid.as_deref(), unix_now()).await?;
            tracing::info!(box_name = %answer.box_name, uuid = %answer.header.uuid, "header backup served");
            Ok(Json(answer).into_response())
        })
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The request counts, and per box the age of its newest proof (read from the database at most
/// once every [`PROOF_METRICS_EVERY`]: the route is open to anyone, and a scrape a second must not
/// be a query a second).
async fn metrics(State(state): Shared) -> String {
    let mut text = state.shell.metrics();
    if !state.hub.metrics_per_box() {
        return text;
    }
    let now = unix_now();
    let cached = state.proof_metrics.lock().map(|c| c.clone()).unwrap_or_default();
    let proofs = match cached {
        Some((at, text)) if now - at < PROOF_METRICS_EVERY => text,
        _ => match state.hub.proof_metrics(now).await {
            Ok(fresh) => {
                if let Ok(mut cache) = state.proof_metrics.lock() {
                    *cache = Some((now, fresh.clone()));
                }
                fresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the boxes' proof ages");
                String::new()
            }
        },
    };
    text.push_str(&proofs);
    text
}

/// How long the boxes' proof ages are served from memory.
const PROOF_METRICS_EVERY: i64 = 15;

async fn audit(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    query: axum::extract::Query<AuditQuery>,
) -> Response {
    state
        .run("audit", source, async {
            state
                .an_operator(SignedParts { method: &method, uri: &uri, headers: &map, body: b"" })
                .await?;
            Ok(Json(state.hub.audit(&query).await?).into_response())
        })
        .await
}

async fn report_drill(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .run("drill", source, async {
            let box_name = state
                .a_box(SignedParts { method: &method, uri: &uri, headers: &map, body: &body })
                .await?;
            let report: DrillReport = json_body(&body)?;
            let recorded = state.hub.record_drill(&box_name, &report, unix_now()).await?;
            tracing::info!(%box_name, paths = recorded.paths, "drill");
            Ok((StatusCode::CREATED, Json(recorded)).into_response())
        })
        .await
}

async fn fleet(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    query: axum::extract::Query<FleetQuery>,
) -> Response {
    state
        .run("fleet", source, async {
            state
                .an_operator(SignedParts { method: &method, uri: &uri, headers: &map, body: b"" })
                .await?;
            Ok(Json(state.hub.fleet(&query).await?).into_response())
        })
        .await
}

/// The routes.
fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/escrows", post(push).get(status))
        .route("/v1/escrows/active", get(fetch))
        .route("/v1/boxes/{box}/escrows", get(operator_status))
        .route("/v1/approvals", post(approve))
        .route("/v1/deletions", post(delete))
        .route("/v1/recoveries", post(recover))
        .route("/v1/headers", post(push_header).get(list_headers))
        .route("/v1/recoveries/headers", post(recover_header))
        .route("/v1/drills", post(report_drill))
        .route("/v1/fleet", get(fleet))
        .route("/v1/audit", get(audit))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// A header upload takes a turn only when it names a box the hub knows that is not locked out
/// or over its rate: four slow strangers cannot hold every turn.
impl UploadGate for ServerState {
    fn admit<'a>(
        &'a self,
        source: SourcePrefix,
        headers: &'a HeaderMap,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), ServiceError>> + Send + 'a>> {
        Box::pin(async move {
            let signer = claimed_signer(headers);
            let known = match signer {
                Some(signer) => self.hub.is_known_box(signer).await?,
                None => false,
            };
            self.shell.admit_upload("header-push", source, signer, known, unix_now())
        })
    }
}

/// Writes the shell's refusal counts to the audit log every [`REFUSAL_AUDIT_INTERVAL`].
async fn audit_refusals(state: Arc<ServerState>) {
    let mut ticks = tokio::time::interval(REFUSAL_AUDIT_INTERVAL);
    loop {
        ticks.tick().await;
        let counts = state.shell.refusals().drain();
        if let Err(e) = state.hub.audit_refusals(&counts, unix_now()).await {
            tracing::warn!(error = %e, "cannot audit the refusals of the last minute");
        }
    }
}

/// Serves HTTPS on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    hub: Hub,
    limits: RateLimits,
    options: ServeOptions,
) -> std::io::Result<()> {
    let options = ServeOptions { large_route: Some(HEADER_UPLOADS), ..options };
    let state = Arc::new(ServerState {
        hub,
        shell: Shell::new(limits, Metrics::new("keyward_hub", ROUTES)),
        proof_metrics: std::sync::Mutex::new(None),
    });
    tokio::spawn(audit_refusals(state.clone()));
    let gate: Arc<dyn UploadGate> = state.clone();
    keyward_service::shell::serve_https(addr, tls, router(state), options, Some(gate)).await
}
