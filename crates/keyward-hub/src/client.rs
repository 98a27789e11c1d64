//! Clients: HTTPS pinned to a server's certificate, JSON in and out, requests signed with an
//! identity — [`ServiceClient`], shared by the hub's client here and the peers' in
//! keyward-peer — and the hub's endpoints on it ([`HubClient`]).

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    ApproveRequest, DeleteRequest, DeleteResponse, EnrollRequest, ErrorResponse, PushRequest,
    PushResponse, RecoverRequest, RecoverResponse, StatusResponse,
};
use crate::request::{self, headers};
use crate::tls::{TlsError, pinned_client_config};
use crate::{PublicKey, SigningIdentity, unix_now};

/// Largest answer read from a server (the largest the API has is an escrow blob of 64 KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What a call to a hub or a peer can end in.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server cannot be reached (or its certificate is not the pinned one).
    #[error(
        "the {service} at {url} cannot be reached ({reason}); check the URL, that it runs, and the pinned certificate"
    )]
    Unavailable {
        /// `hub` or `peer`.
        service: &'static str,
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error.
    #[error("the {service} at {url} refused ({code}): {message}")]
    Refused {
        /// `hub` or `peer`.
        service: &'static str,
        /// Its URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's stable error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The answer is not what the API promises (or does not open as it must).
    #[error("the {service} at {url} answered something malformed: {reason}")]
    BadAnswer {
        /// `hub` or `peer`.
        service: &'static str,
        /// Its URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Randomness for a nonce failed.
    #[error(transparent)]
    Core(#[from] keyward_core::Error),
}

/// HTTPS with JSON to one server (a hub or a peer), trusting only its pinned certificate;
/// requests signed with an identity as docs/hub-api.md describes. The hub and peer clients
/// are its endpoints.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    service: &'static str,
    url: String,
    http: reqwest::Client,
}

impl ServiceClient {
    /// A client for the `service` (`hub`, `peer`) at `url` (`https://127.0.0.1:PORT`),
    /// trusting only the certificate with SHA-256 `pin`; each call gives up after `timeout`.
    pub fn new(
        service: &'static str,
        url: &str,
        pin: [u8; 32],
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let url = url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(pinned_client_config(pin)?)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClientError::Unavailable {
                service,
                url: url.clone(),
                reason: e.to_string(),
            })?;
        Ok(ServiceClient { service, url, http })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A malformed-answer error for this server.
    pub fn bad_answer(&self, reason: impl Into<String>) -> ClientError {
        ClientError::BadAnswer {
            service: self.service,
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// Sends a request and reads its JSON answer (`null` for an empty one).
    pub async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let unavailable = |e: reqwest::Error| ClientError::Unavailable {
            service: self.service,
            url: self.url.clone(),
            reason: error_chain(&e),
        };
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        // Read at most MAX_ANSWER_BYTES: a server cannot make the client hold more.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(self.bad_answer("an answer larger than any the API has"));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let error: ErrorResponse = serde_json::from_slice(&bytes).unwrap_or(ErrorResponse {
                error: "http".into(),
                message: format!("HTTP {status}"),
            });
            return Err(ClientError::Refused {
                service: self.service,
                url: self.url.clone(),
                status: status.as_u16(),
                code: error.error,
                message: error.message,
            });
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| self.bad_answer(e.to_string()))
    }

    /// A POST of `body` as JSON.
    pub fn post_json<B: Serialize>(&self, path: &str, body: &B) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).json(body)
    }

    /// A plain GET.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url))
    }

    /// A request signed by `identity` as `signer` (a box name at a hub, the owner's public key
    /// at a peer), over the method, path, body, a timestamp and a fresh nonce.
    pub fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        signer: &str,
        identity: &SigningIdentity,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let signature = request::sign(identity, signer, method.as_str(), path, &body, unix_now())?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.url))
            .header(headers::SIGNER, signature.signer)
            .header(headers::TIMESTAMP, signature.timestamp.to_string())
            .header(headers::NONCE, signature.nonce)
            .header(headers::SIGNATURE, signature.signature)
            .header("content-type", "application/json")
            .body(body))
    }
}

/// A connection to one hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    service: ServiceClient,
}

impl HubClient {
    /// A client for the hub at `url` (`https://127.0.0.1:PORT`), trusting only the certificate
    /// with SHA-256 `pin`.
    pub fn new(url: &str, pin: [u8; 32]) -> Result<Self, ClientError> {
        Ok(HubClient { service: ServiceClient::new("hub", url, pin, Duration::from_secs(30))? })
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
        self.service
            .send(self.service.signed(
                reqwest::Method::POST,
                "/v1/escrows",
                body,
                box_name,
                identity,
            )?)
            .await
    }

    /// A GET signed by the box.
    async fn signed_get<T: DeserializeOwned>(
        &self,
        path: &str,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<T, ClientError> {
        self.service
            .send(self.service.signed(
                reqwest::Method::GET,
                path,
                Vec::new(),
                box_name,
                identity,
            )?)
            .await
    }

    /// The box's escrow versions, signed by the box.
    pub async fn status(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<StatusResponse, ClientError> {
        self.signed_get("/v1/escrows", box_name, identity).await
    }

    /// The box's own active escrow, signed by the box.
    pub async fn fetch_active(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<RecoverResponse, ClientError> {
        self.signed_get("/v1/escrows/active", box_name, identity).await
    }

    /// Sends an operator's overwrite approval.
    pub async fn approve(&self, approval: &str) -> Result<u64, ClientError> {
        let body = ApproveRequest { approval: approval.into() };
        let answer: serde_json::Value =
            self.service.send(self.service.post_json("/v1/approvals", &body)).await?;
        answer["version"].as_u64().ok_or_else(|| self.service.bad_answer("no version"))
    }

    /// Sends an operator's deletion order.
    pub async fn delete(&self, order: &str) -> Result<DeleteResponse, ClientError> {
        self.service
            .send(
                self.service.post_json("/v1/deletions", &DeleteRequest { deletion: order.into() }),
            )
            .await
    }

    /// Redeems a recovery ticket for the box's active escrow.
    pub async fn recover(&self, ticket: &str) -> Result<RecoverResponse, ClientError> {
        self.service
            .send(
                self.service.post_json("/v1/recoveries", &RecoverRequest { ticket: ticket.into() }),
            )
            .await
    }
}

/// The error and its causes on one line (reqwest hides the TLS reason in its sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
