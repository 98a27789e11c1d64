//! The hub's HTTPS server: axum routes that unpack requests, call [`Hub`], and map its errors to
//! status codes. Logs (tracing) carry the route, the box name and the outcome — never a body.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::api::{ApproveRequest, EnrollRequest, ErrorResponse, PushRequest, RecoverRequest};
use crate::hub::{Hub, HubError};
use crate::request::{RequestSignature, headers};
use crate::{AuthError, PublicKey};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            HubError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            HubError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            HubError::Refused(_) => (StatusCode::FORBIDDEN, "refused"),
            HubError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            HubError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            HubError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        (status, Json(ErrorResponse { error: code.into(), message: self.to_string() }))
            .into_response()
    }
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

async fn authenticated(
    hub: &Hub,
    method: &Method,
    uri: &Uri,
    map: &HeaderMap,
    body: &[u8],
) -> Result<String, HubError> {
    let signed = signature_headers(map)?;
    hub.authenticate(&signed, method.as_str(), uri.path(), body, unix_now()).await
}

async fn enroll(State(hub): State<Arc<Hub>>, body: Bytes) -> Result<StatusCode, HubError> {
    let request: EnrollRequest = json(&body)?;
    hub.enroll(&request.box_name, request.public_key, &request.token, unix_now()).await?;
    tracing::info!(box_name = %request.box_name, "enrolled");
    Ok(StatusCode::CREATED)
}

async fn push(
    State(hub): State<Arc<Hub>>,
    method: Method,
    uri: Uri,
    map: HeaderMap,
    body: Bytes,
) -> Result<Response, HubError> {
    let box_name = authenticated(&hub, &method, &uri, &map, &body).await?;
    let request: PushRequest = json(&body)?;
    let answer = hub.push(&box_name, &request, unix_now()).await?;
    tracing::info!(%box_name, version = answer.version, state = %answer.state, "push");
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn status(
    State(hub): State<Arc<Hub>>,
    method: Method,
    uri: Uri,
    map: HeaderMap,
) -> Result<Response, HubError> {
    let box_name = authenticated(&hub, &method, &uri, &map, b"").await?;
    Ok(Json(hub.status(&box_name).await?).into_response())
}

async fn approve(State(hub): State<Arc<Hub>>, body: Bytes) -> Result<Response, HubError> {
    let request: ApproveRequest = json(&body)?;
    let version = hub.approve(&request.approval, unix_now()).await?;
    tracing::info!(version, "approved");
    Ok(Json(serde_json::json!({ "version": version, "state": "active" })).into_response())
}

async fn recover(State(hub): State<Arc<Hub>>, body: Bytes) -> Result<Response, HubError> {
    let request: RecoverRequest = json(&body)?;
    let answer = hub.recover(&request.ticket, unix_now()).await?;
    tracing::info!(box_name = %answer.box_name, version = answer.version, "recovery served");
    Ok(Json(answer).into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The routes.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/escrows", post(push).get(status))
        .route("/v1/approvals", post(approve))
        .route("/v1/recoveries", post(recover))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(hub)
}

/// Serves HTTPS on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, tls: rustls::ServerConfig, hub: Hub) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    axum_server::bind_rustls(addr, config).serve(router(Arc::new(hub)).into_make_service()).await
}

/// Parses the operators' public keys given to `hub init`.
pub fn parse_operators(texts: &[String]) -> Result<Vec<PublicKey>, AuthError> {
    texts.iter().map(|t| t.parse()).collect()
}
