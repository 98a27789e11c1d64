//! The hub client: HTTPS pinned to the hub's certificate, box requests signed with the box's
//! identity. Shared by every command that talks to a hub.

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

/// What a hub call can end in.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub cannot be reached (or its certificate is not the pinned one).
    #[error(
        "the hub at {url} cannot be reached ({reason}); check the URL, that it runs, and the pinned certificate"
    )]
    Unavailable {
        /// The hub URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The hub answered with an error.
    #[error("the hub refused ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The hub's stable error code.
        code: String,
        /// The hub's message.
        message: String,
    },
    /// The answer is not what the API promises.
    #[error("the hub's answer is malformed: {0}")]
    BadAnswer(String),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Randomness for the nonce failed.
    #[error(transparent)]
    Core(#[from] keyward_core::Error),
}

/// A connection to one hub.
#[derive(Debug, Clone)]
pub struct HubClient {
    url: String,
    http: reqwest::Client,
}

impl HubClient {
    /// A client for the hub at `url` (`https://127.0.0.1:PORT`), trusting only the certificate
    /// with SHA-256 `pin`.
    pub fn new(url: &str, pin: [u8; 32]) -> Result<Self, ClientError> {
        let tls = pinned_client_config(pin)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Unavailable { url: url.into(), reason: e.to_string() })?;
        Ok(HubClient { url: url.trim_end_matches('/').to_string(), http })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unavailable {
            url: self.url.clone(),
            reason: error_chain(&e),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| ClientError::Unavailable {
            url: self.url.clone(),
            reason: error_chain(&e),
        })?;
        if !status.is_success() {
            let error: ErrorResponse = serde_json::from_slice(&bytes).unwrap_or(ErrorResponse {
                error: "http".into(),
                message: format!("HTTP {status}"),
            });
            return Err(ClientError::Refused {
                status: status.as_u16(),
                code: error.error,
                message: error.message,
            });
        }
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            return serde_json::from_slice(b"null")
                .map_err(|e| ClientError::BadAnswer(e.to_string()));
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    fn post_json<B: Serialize>(&self, path: &str, body: &B) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).json(body)
    }

    fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let signature =
            request::sign(identity, box_name, method.as_str(), path, &body, unix_now())?;
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

    /// Registers a box's identity with an enrollment token.
    pub async fn enroll(
        &self,
        box_name: &str,
        key: PublicKey,
        token: &str,
    ) -> Result<(), ClientError> {
        let body =
            EnrollRequest { box_name: box_name.into(), public_key: key, token: token.into() };
        let _: serde_json::Value = self.send(self.post_json("/v1/enroll", &body)).await?;
        Ok(())
    }

    /// Pushes an escrow version, signed by the box.
    pub async fn push(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
        push: &PushRequest,
    ) -> Result<PushResponse, ClientError> {
        let body = serde_json::to_vec(push).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.send(self.signed(reqwest::Method::POST, "/v1/escrows", body, box_name, identity)?)
            .await
    }

    /// A GET signed by the box.
    async fn signed_get<T: DeserializeOwned>(
        &self,
        path: &str,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<T, ClientError> {
        self.send(self.signed(reqwest::Method::GET, path, Vec::new(), box_name, identity)?).await
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
        let answer: serde_json::Value = self
            .send(self.post_json("/v1/approvals", &ApproveRequest { approval: approval.into() }))
            .await?;
        answer["version"].as_u64().ok_or_else(|| ClientError::BadAnswer("no version".into()))
    }

    /// Sends an operator's deletion order.
    pub async fn delete(&self, order: &str) -> Result<DeleteResponse, ClientError> {
        self.send(self.post_json("/v1/deletions", &DeleteRequest { deletion: order.into() })).await
    }

    /// Redeems a recovery ticket for the box's active escrow.
    pub async fn recover(&self, ticket: &str) -> Result<RecoverResponse, ClientError> {
        self.send(self.post_json("/v1/recoveries", &RecoverRequest { ticket: ticket.into() })).await
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
