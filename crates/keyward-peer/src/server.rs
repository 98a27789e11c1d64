//! The peer's HTTPS server: axum routes that apply the rate limits and lockout, check owner
//! signatures, call [`Peer`], count the outcome and map errors to status codes. Logs carry the
//! route, the share set and the outcome — never a share, a signature, a nonce or a ticket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keyward_hub::limits::{RateLimiter, RateLimits};
use keyward_hub::metrics::Metrics;
use keyward_hub::request::{self, MAX_SKEW_SECS};
use keyward_hub::server::{ErrorKind, ServiceError, error_response, handle, signature_headers};
use keyward_hub::{PublicKey, unix_now};
use serde::de::DeserializeOwned;

use crate::api::{DeleteSharesRequest, ReleaseRequest, StoreShareRequest};
use crate::peer::{Peer, PeerError};
use crate::store::Stored;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The routes counted in `/metrics`.
pub const ROUTES: &[&str] = &["store", "status", "delete", "nonce", "release"];
/// Most request nonces remembered (ten minutes of signed requests).
const MAX_REQUEST_NONCES: usize = 1_000_000;

struct ServerState {
    peer: Peer,
    limiter: RateLimiter,
    metrics: Metrics,
    /// Nonces of owner-signed requests seen in their ±5-minute window (replays refused).
    request_nonces: Mutex<HashMap<String, i64>>,
}

impl ServerState {
    /// [`handle`] with this server's limits and counters.
    async fn run(
        &self,
        route: &'static str,
        source: SocketAddr,
        body: impl Future<Output = Result<Response, PeerError>>,
    ) -> Response {
        handle(&self.limiter, &self.metrics, route, source, body).await
    }
}

type Shared = State<Arc<ServerState>>;
type Source = ConnectInfo<SocketAddr>;

impl IntoResponse for PeerError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

impl ServiceError for PeerError {
    fn locked_out(reason: String) -> Self {
        PeerError::Refused(reason)
    }
    fn rate_limited(reason: String) -> Self {
        PeerError::RateLimited(reason)
    }
    fn kind(&self) -> ErrorKind {
        match self {
            PeerError::Malformed(_) => ErrorKind::Malformed,
            PeerError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            PeerError::Refused(_) => ErrorKind::Refused,
            PeerError::RateLimited(_) => ErrorKind::RateLimited,
            PeerError::NotFound(_) => ErrorKind::NotFound,
            PeerError::Conflict(_) => ErrorKind::Conflict,
            PeerError::Internal(_) => ErrorKind::Internal,
        }
    }
    fn reason(&self) -> String {
        PeerError::reason(self)
    }
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, PeerError> {
    serde_json::from_slice(body).map_err(|e| PeerError::Malformed(e.to_string()))
}

/// Checks an owner-signed request; the signer header is the owner's public key.
fn owner(
    state: &ServerState,
    method: &Method,
    uri: &Uri,
    map: &HeaderMap,
    body: &[u8],
) -> Result<PublicKey, PeerError> {
    let signed = signature_headers(map)?;
    let key: PublicKey = signed.signer.parse()?;
    let now = unix_now();
    request::verify(&signed, &key, method.as_str(), uri.path(), body, now)?;
    let mut seen =
        state.request_nonces.lock().map_err(|_| PeerError::Internal("nonce table".into()))?;
    if seen.len() >= MAX_REQUEST_NONCES / 2 {
        seen.retain(|_, until| *until >= now);
    }
    if seen.len() >= MAX_REQUEST_NONCES {
        return Err(PeerError::RateLimited("too many signed requests; try again later".into()));
    }
    if seen.insert(signed.nonce, now + 2 * MAX_SKEW_SECS).is_some() {
        return Err(PeerError::Unauthenticated("replayed request (nonce already seen)".into()));
    }
    Ok(key)
}

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
            let owner = owner(&state, &method, &uri, &map, &body)?;
            let request: StoreShareRequest = json(&body)?;
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
            let owner = owner(&state, &method, &uri, &map, b"")?;
            Ok(Json(state.peer.status(&owner).await?).into_response())
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
            let owner = owner(&state, &method, &uri, &map, &body)?;
            let request: DeleteSharesRequest = json(&body)?;
            state.peer.delete(&owner, &request.share_set).await?;
            tracing::info!(share_set = %request.share_set, "share deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        })
        .await
}

async fn nonce(State(state): Shared, ConnectInfo(source): Source) -> Response {
    state
        .run("nonce", source, async { Ok(Json(state.peer.nonce(unix_now())?).into_response()) })
        .await
}

async fn release(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("release", source, async {
            let request: ReleaseRequest = json(&body)?;
            let answer = state.peer.release(&request, unix_now()).await?;
            for share in &answer.shares {
                tracing::info!(share_set = %share.share_set, x = share.x, "share released");
            }
            Ok(Json(answer).into_response())
        })
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): Shared) -> String {
    state.metrics.render()
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/shares", post(store).get(status))
        .route("/v1/shares/delete", post(delete))
        .route("/v1/nonce", get(nonce))
        .route("/v1/release", post(release))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves HTTPS on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    peer: Peer,
    limits: RateLimits,
) -> std::io::Result<()> {
    let state = Arc::new(ServerState {
        peer,
        limiter: RateLimiter::new(limits),
        metrics: Metrics::new("keyward_peer", ROUTES),
        request_nonces: Mutex::default(),
    });
    keyward_hub::server::serve_https(addr, tls, router(state)).await
}
