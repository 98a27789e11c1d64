//! The peer's HTTPS routes: each unpacks its request and runs [`Peer`] inside keyward-service's
//! request shell (lockout, rate limits, refusal counts, metrics, read timeouts). Logs carry the
//! route, the share set and the outcome — never a share, a signature, a nonce or a ticket.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keyward_service::limits::RateLimits;
use keyward_service::metrics::Metrics;
use keyward_service::shell::{ServeOptions, Shell, SignedParts, json_body};
use keyward_service::{PublicKey, ServiceError, SourcePrefix, unix_now};

use crate::api::{
    DeleteSharesRequest, NonceQuery, ReleaseRequest, StatusResponse, StoreShareRequest,
};
use crate::peer::{Enrolling, Peer};
use crate::store::Stored;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The routes counted in `/metrics`.
pub const ROUTES: &[&str] = &["store", "status", "delete", "nonce", "release"];

struct ServerState {
    peer: Peer,
    shell: Shell,
}

impl ServerState {
    /// Runs a handler body in the shell (the peer's errors).
    async fn run(
        &self,
        route: &'static str,
        source: SocketAddr,
        body: impl Future<Output = Result<Response, ServiceError>>,
    ) -> Response {
        self.shell.run(route, source, body).await
    }

    /// The owner of a signed request (`None`: a signer this peer does not know; see
    /// `Peer::authenticate_owner`).
    async fn owner(
        &self,
        source: SocketAddr,
        signed: SignedParts<'_>,
        enrolling: Option<Enrolling<'_>>,
    ) -> Result<Option<PublicKey>, ServiceError> {
        let (signature, request) = signed.split()?;
        let prefix = SourcePrefix::from(source.ip());
        self.peer.authenticate_owner(&signature, request, prefix, enrolling, unix_now()).await
    }
}

type Shared = State<Arc<ServerState>>;
type Source = ConnectInfo<SocketAddr>;

async fn store(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .run("store", source, async {
            let request: StoreShareRequest = json_body(&body)?;
            let signed = SignedParts { method: &method, uri: &uri, headers: &map, body: &body };
            let enrolling = request
                .enrollment
                .as_deref()
                .map(|token| Enrolling { token, owner_name: &request.owner_name });
            let Some(owner) = state.owner(source, signed, enrolling).await? else {
                return Err(Peer::not_admitted(&request.owner_name));
            };
            let stored = state.peer.store_share(&owner, &request, unix_now()).await?;
            tracing::info!(share_set = %request.share_set, x = request.x, "share stored");
            let status = if stored == Stored::Added { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(serde_json::json!({ "share_set": request.share_set })))
                .into_response())
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
            let signed = SignedParts { method: &method, uri: &uri, headers: &map, body: b"" };
            // A signer this peer does not know holds nothing here.
            let answer = match state.owner(source, signed, None).await? {
                Some(owner) => state.peer.status(&owner).await?,
                None => StatusResponse { sets: Vec::new() },
            };
            Ok(Json(answer).into_response())
        })
        .await
}

async fn delete(
    State(state): Shared,
    ConnectInfo(source): Source,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .run("delete", source, async {
            let signed = SignedParts { method: &method, uri: &uri, headers: &map, body: &body };
            let owner = state.owner(source, signed, None).await?;
            let request: DeleteSharesRequest = json_body(&body)?;
            let Some(owner) = owner else {
                return Err(ServiceError::NotFound(format!(
                    "no share set {} of yours here",
                    request.share_set
                )));
            };
            state.peer.delete(&owner, &request.share_set).await?;
            tracing::info!(share_set = %request.share_set, "share deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

async fn nonce(
    State(state): Shared,
    ConnectInfo(source): Source,
    query: Result<Query<NonceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    state
        .run("nonce", source, async {
            let Ok(Query(query)) = query else {
                return Err(ServiceError::Malformed(
                    "ask with ?for=SHARE_SET or ?for=OWNER".into(),
                ));
            };
            let prefix = SourcePrefix::from(source.ip());
            Ok(Json(state.peer.nonce(prefix, &query.asked, unix_now()).await?).into_response())
        })
        .await
}

async fn release(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("release", source, async {
            let request: ReleaseRequest = json_body(&body)?;
            let now = unix_now();
            let answer = state.peer.release(&request, now).await?;
            let purpose = request.purpose;
            for share in &answer.shares {
                tracing::info!(share_set = %share.share_set, x = share.x, purpose = purpose.name(), "share released");
            }
            let response = Json(&answer).into_response();
            let peer = state.peer.clone();
            tokio::spawn(async move { peer.note_released(&answer, purpose, now).await });
            Ok(response)
        })
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): Shared) -> String {
    state.shell.metrics()
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/shares", post(store).get(status))
        .route("/v1/shares/delete", post(delete))
        .route("/v1/nonce", get(nonce))
        .route("/v1/release", post(release))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Logs the refusals the shell counted, once a minute, as one line (a peer keeps no audit log;
/// each refusal is also logged on its own, with its reason).
async fn log_refusals(state: Arc<ServerState>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        ticks.tick().await;
        let counts = state.shell.refusals().drain();
        if !counts.is_empty() {
            tracing::info!(counts = %keyward_service::refusals::summary(&counts), "refusals in the last minute");
        }
    }
}

/// Serves HTTPS on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    peer: Peer,
    limits: RateLimits,
    options: ServeOptions,
) -> std::io::Result<()> {
    let state = Arc::new(ServerState {
        peer,
        shell: Shell::new(limits, Metrics::new("keyward_peer", ROUTES)),
    });
    tokio::spawn(log_refusals(state.clone()));
    keyward_service::shell::serve_https(addr, tls, router(state), options, None).await
}
