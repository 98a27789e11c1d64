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
use crate::request::RequestSignature;
use crate::{AuthError, unix_now};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler shares.
struct ServerState {
    hub: Hub,
    limiter: RateLimiter,
    metrics: Metrics,
}

impl ServerState {
    /// [`handle`] with this server's limits and counters.
    async fn run(
        &self,
        route: &'static str,
        source: SocketAddr,
        body: impl Future<Output = Result<Response, HubError>>,
    ) -> Response {
        handle(&self.limiter, &self.metrics, route, source, body).await
    }
}

type Shared = State<Arc<ServerState>>;
type Source = ConnectInfo<SocketAddr>;

/// The families of refusal and failure a service answers with, each with its status and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400 `malformed`.
    Malformed,
    /// 401 `unauthenticated`: a failed proof, counted toward the source's lockout.
    Unauthenticated,
    /// 403 `refused`.
    Refused,
    /// 429 `rate-limited`.
    RateLimited,
    /// 404 `not-found`.
    NotFound,
    /// 409 `conflict`.
    Conflict,
    /// 500 `internal`: the server's own failure, logged with its detail, answered without it.
    Internal,
}

impl ErrorKind {
    fn status_and_code(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::Malformed => (StatusCode::BAD_REQUEST, "malformed"),
            ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ErrorKind::Refused => (StatusCode::FORBIDDEN, "refused"),
            ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// What the shared request handling needs to know of a service's errors (the hub's, a peer's).
pub trait ServiceError: IntoResponse + std::fmt::Display {
    /// The refusal for a source that is locked out.
    fn locked_out(reason: String) -> Self;
    /// The refusal for a source over its rate.
    fn rate_limited(reason: String) -> Self;
    /// Its family.
    fn kind(&self) -> ErrorKind;
    /// The reason alone, for the answer's message.
    fn reason(&self) -> String;
}

/// The answer for an error: its status, `{"error": code, "message": reason}`. Internal errors
/// are logged with their detail; the answer says only "internal error".
pub fn error_response(error: &impl ServiceError) -> Response {
    let (status, code) = error.kind().status_and_code();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %error, "request failed");
    }
    (status, Json(ErrorResponse { error: code.into(), message: error.reason() })).into_response()
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

impl ServiceError for HubError {
    fn locked_out(reason: String) -> Self {
        HubError::Refused(reason)
    }
    fn rate_limited(reason: String) -> Self {
        HubError::RateLimited(reason)
    }
    fn kind(&self) -> ErrorKind {
        match self {
            HubError::Malformed(_) => ErrorKind::Malformed,
            HubError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            HubError::Refused(_) => ErrorKind::Refused,
            HubError::RateLimited(_) => ErrorKind::RateLimited,
            HubError::NotFound(_) => ErrorKind::NotFound,
            HubError::Conflict(_) => ErrorKind::Conflict,
            HubError::Store(_) => ErrorKind::Internal,
        }
    }
    fn reason(&self) -> String {
        HubError::reason(self)
    }
}

/// Runs a handler body under the source's lockout and rate limit, counts failed proofs toward
/// the lockout, counts the outcome, and logs refusals (reason only, never a body).
pub async fn handle<E: ServiceError>(
    limiter: &RateLimiter,
    metrics: &Metrics,
    route: &'static str,
    source: SocketAddr,
    body: impl Future<Output = Result<Response, E>>,
) -> Response {
    let ip = source.ip().to_string();
    let now = unix_now();
    let result = if limiter.locked_out(&ip, now) {
        Err(E::locked_out(format!(
            "{ip} is locked out after repeated failed authentications; wait ten minutes"
        )))
    } else if !limiter.allow_source(&ip, now) {
        Err(E::rate_limited(format!("too many requests from {ip} this minute")))
    } else {
        body.await
    };
    if result.as_ref().is_err_and(|e| e.kind() == ErrorKind::Unauthenticated) {
        limiter.record_failure(&ip, now);
    }
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.kind() == ErrorKind::Internal => "error",
        Err(_) => "refused",
    };
    metrics.count(route, outcome);
    if let Err(e) = &result
        && e.kind() != ErrorKind::Internal
    {
        tracing::info!(route, %source, reason = %e, "refused");
    }
    result.unwrap_or_else(IntoResponse::into_response)
}

fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, HubError> {
    serde_json::from_slice(body).map_err(|e| HubError::Malformed(e.to_string()))
}

/// The signature headers of a request.
pub fn signature_headers(map: &HeaderMap) -> Result<RequestSignature, AuthError> {
    RequestSignature::from_headers(|name| map.get(name).and_then(|v| v.to_str().ok()))
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
    state
        .run("enroll", source, async {
            let request: EnrollRequest = json(&body)?;
            state
                .hub
                .enroll(&request.box_name, request.public_key, &request.token, unix_now())
                .await?;
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
    state
        .run("push", source, async {
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
    state
        .run("status", source, async {
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
    state
        .run("fetch", source, async {
            let box_name = authenticated(&state, &method, &uri, &map, b"").await?;
            Ok(Json(state.hub.fetch_own(&box_name).await?).into_response())
        })
        .await
}

async fn approve(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("approve", source, async {
            let request: ApproveRequest = json(&body)?;
            let version = state.hub.approve(&request.approval, unix_now()).await?;
            tracing::info!(version, "approved");
            Ok(Json(serde_json::json!({ "version": version, "state": "active" })).into_response())
        })
        .await
}

async fn delete(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state
        .run("delete", source, async {
            let request: DeleteRequest = json(&body)?;
            let (box_name, version) = state.hub.delete(&request.deletion, unix_now()).await?;
            tracing::info!(%box_name, version, "escrow version erased");
            Ok(Json(DeleteResponse { box_name, version, state: "deleted".into() }).into_response())
        })
        .await
}

async fn recover(State(state): Shared, ConnectInfo(source): Source, body: Bytes) -> Response {
    state.run("recover", source, async {
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
