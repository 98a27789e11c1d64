//! The hub's HTTPS server: axum routes that unpack requests, apply the rate limits, call [`Hub`],
//! count the outcome and map errors to status codes. Logs (tracing) carry the route, the box
//! name and the outcome — never a body, a token or a ticket.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::api::{
    ApproveRequest, DeleteRequest, DeleteResponse, EnrollRequest, ErrorResponse, PushRequest,
    RecoverRequest,
};
use crate::hub::{Hub, HubError};
use crate::limits::{RateLimiter, RateLimits};
use crate::metrics::Metrics;
use crate::request::{RequestSignature, headers};
use crate::{AuthError, unix_now};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler shares.
struct ServerState {
    hub: Hub,
    limiter: RateLimiter,
    metrics: Metrics,
}

type Shared = State<Arc<ServerState>>;
type Source = ConnectInfo<SocketAddr>;

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            HubError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            HubError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            HubError::Refused(_) => (StatusCode::FORBIDDEN, "refused"),
            HubError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            HubError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            HubError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            HubError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(ErrorResponse { error: code.into(), message: self.reason() })).into_response()
    }
}

/// Runs a handler body under the source's rate limit and counts its outcome.
async fn handle(
    state: &ServerState,
    route: &'static str,
    source: SocketAddr,
    body: impl Future<Output = Result<Response, HubError>>,
) -> Response {
    let ip = source.ip().to_string();
    let now = unix_now();
    let result = if state.limiter.locked_out(&ip, now) {
        Err(HubError::Refused(format!(
            "{ip} is locked out after repeated failed authentications; wait ten minutes"
        )))
    } else if !state.limiter.allow_source(&ip, now) {
        Err(HubError::RateLimited(format!("too many requests from {ip} this minute")))
    } else {
        body.await
    };
    if matches!(result, Err(HubError::Unauthenticated(_))) {
        state.limiter.record_failure(&ip, now);
    }
    let outcome = match &result {
        Ok(_) => "ok",
        Err(HubError::Store(_)) => "error",
        Err(_) => "refused",
    };
    state.metrics.count(route, outcome);
    if let Err(e) = &result
        && !matches!(e, HubError::Store(_))
    {
        tracing::info!(route, %source, reason = %e, "refused");
    }
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HubError> {
    serde_json::from_slice(body).map_err(|e| HubError::Malformed(e.to_string()))
}

fn signature_headers(map: &HeaderMap) -> Result<RequestSignature, HubError> {
    let get = |name: &'static str| {
        map.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(HubError::Unauthenticated(AuthError::Malformed(name)))
    };
    Ok(RequestSignature {
        signer: get(headers::SIGNER)?,
        timestamp: get(headers::TIMESTAMP)?
            .parse()
            .map_err(|_| AuthError::Malformed(headers::TIMESTAMP))?,
        nonce: get(headers::NONCE)?,
        signature: get(headers::SIGNATURE)?,
    })
}

/// Authenticates a box's signed request, then applies the box's rate limit.
async fn authenticated(
    state: &ServerState,
    method: &Method,
    uri: &Uri,
    map: &HeaderMap,
    body: &[u8],
) -> Result<String, HubError> {
    let signed = signature_headers(map)?;
    let now = unix_now();
    let box_name = state.hub.authenticate(&signed, method.as_str(), uri.path(), body, now).await?;
    if !state.limiter.allow_box(&box_name, now) {
        return Err(HubError::RateLimited(format!("too many requests for {box_name} this minute")));
    }
    Ok(box_name)
}

async fn enroll(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    handle(&state, "enroll", source, async {
        let request: EnrollRequest = json(&body)?;
        state.hub.enroll(&request.box_name, request.public_key, &request.token, unix_now()).await?;
        tracing::info!(box_name = %request.box_name, "enrolled");
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
    handle(&state, "push", source, async {
        let box_name = authenticated(&state, &method, &uri, &map, &body).await?;
        let request: PushRequest = json(&body)?;
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
    handle(&state, "status", source, async {
        let box_name = authenticated(&state, &method, &uri, &map, b"").await?;
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
    handle(&state, "fetch", source, async {
        let box_name = authenticated(&state, &method, &uri, &map, b"").await?;
        Ok(Json(state.hub.fetch_own(&box_name).await?).into_response())
    })
    .await
}

async fn approve(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    handle(&state, "approve", source, async {
        let request: ApproveRequest = json(&body)?;
        let version = state.hub.approve(&request.approval, unix_now()).await?;
        tracing::info!(version, "approved");
        Ok(Json(serde_json::json!({ "version": version, "state": "active" })).into_response())
    })
    .await
}

async fn delete(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    handle(&state, "delete", source, async {
        let request: DeleteRequest = json(&body)?;
        let (box_name, version) = state.hub.delete(&request.deletion, unix_now()).await?;
        tracing::info!(%box_name, version, "escrow version erased");
        Ok(Json(DeleteResponse { box_name, version, state: "deleted".into() }).into_response())
    })
    .await
}

async fn recover(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    handle(&state, "recover", source, async {
        let request: RecoverRequest = json(&body)?;
        let answer = state.hub.recover(&request.ticket, unix_now()).await?;
        tracing::info!(box_name = %answer.box_name, version = answer.version, "recovery served");
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

/// The routes.
fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/escrows", post(push).get(status))
        .route("/v1/escrows/active", get(fetch))
        .route("/v1/approvals", post(approve))
        .route("/v1/deletions", post(delete))
        .route("/v1/recoveries", post(recover))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves HTTPS on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    hub: Hub,
    limits: RateLimits,
) -> std::io::Result<()> {
    let state = Arc::new(ServerState {
        hub,
        limiter: RateLimiter::new(limits),
        metrics: Metrics::default(),
    });
    serve_https(addr, tls, router(state)).await
}

/// Serves `app` over HTTPS on `addr` (hub and peers alike), with the caller's address in each
/// request. TCP_NODELAY on every connection: an answer written in two segments would otherwise
/// wait for the client's delayed ACK (40 ms on Linux) before its second one goes out.
pub async fn serve_https(
    addr: SocketAddr,
    tls: rustls::ServerConfig,
    app: Router,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::bind(addr)
        .acceptor(acceptor)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
