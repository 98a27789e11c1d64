//! The peer client: HTTPS pinned to the certificate on the peer's card; owner requests signed
//! with the owner's identity (the hub's request signing); release requests carrying a proof and
//! a one-time key.

use std::time::Duration;

use keyward_hub::request::{self, headers};
use keyward_hub::tls::{TlsError, pinned_client_config};
use keyward_hub::{SigningIdentity, unix_now};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    DeleteSharesRequest, ErrorResponse, NonceResponse, ReleaseRequest, ReleaseResponse,
    StatusResponse, StoreShareRequest,
};
use crate::card::PeerCard;

/// What a peer call can end in.
#[derive(Debug, thiserror::Error)]
pub enum PeerClientError {
    /// The peer cannot be reached (or its certificate is not the one on its card).
    #[error("the peer at {url} cannot be reached ({reason})")]
    Unavailable {
        /// The peer URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The peer answered with an error.
    #[error("the peer at {url} refused ({code}): {message}")]
    Refused {
        /// The peer URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// The peer's message.
        message: String,
    },
    /// The answer is not what the API promises.
    #[error("the peer at {url} answered something malformed: {reason}")]
    BadAnswer {
        /// The peer URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Randomness failed.
    #[error(transparent)]
    Core(#[from] keyward_core::Error),
}

/// A connection to one peer.
#[derive(Debug, Clone)]
pub struct PeerClient {
    url: String,
    http: reqwest::Client,
}

impl PeerClient {
    /// A client for the peer on `card`, trusting only its certificate; every call gives up
    /// after `timeout`.
    pub fn new(card: &PeerCard, timeout: Duration) -> Result<Self, PeerClientError> {
        let url = card.url.clone();
        let pin = card
            .pin()
            .map_err(|e| PeerClientError::BadAnswer { url: url.clone(), reason: e.to_string() })?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(pinned_client_config(pin)?)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| PeerClientError::Unavailable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        Ok(PeerClient { url, http })
    }

    /// The peer's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, PeerClientError> {
        let unavailable = |e: reqwest::Error| PeerClientError::Unavailable {
            url: self.url.clone(),
            reason: error_chain(&e),
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unavailable)?;
        if !status.is_success() {
            let error: ErrorResponse = serde_json::from_slice(&bytes).unwrap_or(ErrorResponse {
                error: "http".into(),
                message: format!("HTTP {status}"),
            });
            return Err(PeerClientError::Refused {
                url: self.url.clone(),
                status: status.as_u16(),
                code: error.error,
                message: error.message,
            });
        }
        let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
        serde_json::from_slice(bytes).map_err(|e| PeerClientError::BadAnswer {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    fn signed<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        owner: &SigningIdentity,
    ) -> Result<reqwest::RequestBuilder, PeerClientError> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        let signer = owner.public().to_string();
        let signature = request::sign(owner, &signer, method.as_str(), path, &body, unix_now())?;
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

    /// Stores a share (idempotent: the same share again is fine).
    pub async fn store_share(
        &self,
        owner: &SigningIdentity,
        share: &StoreShareRequest,
    ) -> Result<(), PeerClientError> {
        let request = self.signed(reqwest::Method::POST, "/v1/shares", Some(share), owner)?;
        self.send::<serde_json::Value>(request).await.map(drop)
    }

    /// The owner's sets at this peer.
    pub async fn status(&self, owner: &SigningIdentity) -> Result<StatusResponse, PeerClientError> {
        let request = self.signed::<()>(reqwest::Method::GET, "/v1/shares", None, owner)?;
        self.send(request).await
    }

    /// Deletes one of the owner's sets.
    pub async fn delete(
        &self,
        owner: &SigningIdentity,
        share_set: &str,
    ) -> Result<(), PeerClientError> {
        let body = DeleteSharesRequest { share_set: share_set.into() };
        let request =
            self.signed(reqwest::Method::POST, "/v1/shares/delete", Some(&body), owner)?;
        self.send::<serde_json::Value>(request).await.map(drop)
    }

    /// A fresh nonce.
    pub async fn nonce(&self) -> Result<NonceResponse, PeerClientError> {
        self.send(self.http.get(format!("{}/v1/nonce", self.url))).await
    }

    /// Asks for shares with a proof.
    pub async fn release(
        &self,
        request: &ReleaseRequest,
    ) -> Result<ReleaseResponse, PeerClientError> {
        self.send(self.http.post(format!("{}/v1/release", self.url)).json(request)).await
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
