//! The peer client: keyward-service's [`ServiceClient`] (HTTPS pinned to the certificate on the
//! peer's card, requests signed for that peer, with the owner's public key as the signer) and
//! the peer's endpoints.

use std::time::Duration;

use keyward_service::SigningIdentity;
use keyward_service::client::{ClientError, ServiceClient};
use serde::Serialize;

use crate::api::{
    DeleteSharesRequest, NonceResponse, ReleaseRequest, ReleaseResponse, StatusResponse,
    StoreShareRequest,
};
use crate::card::PeerCard;

/// A connection to one peer.
#[derive(Debug, Clone)]
pub struct PeerClient {
    service: ServiceClient,
}

impl PeerClient {
    /// A client for the peer on `card`, trusting only its certificate; every call gives up
    /// after `timeout`.
    pub fn new(card: &PeerCard, timeout: Duration) -> Result<Self, ClientError> {
        let pin = card.pin().map_err(|e| ClientError::BadAnswer {
            service: "peer",
            url: card.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(PeerClient { service: ServiceClient::new("peer", &card.url, pin, timeout)? })
    }

    /// The peer's URL.
    pub fn url(&self) -> &str {
        self.service.url()
    }

    /// A malformed-answer error for this peer.
    pub fn bad_answer(&self, reason: impl Into<String>) -> ClientError {
        self.service.bad_answer(reason)
    }

    fn signed<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        owner: &SigningIdentity,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default();
        self.service.signed(method, path, body, &owner.public().to_string(), owner)
    }

    /// Stores a share (idempotent: the same share again is fine).
    pub async fn store_share(
        &self,
        owner: &SigningIdentity,
        share: &StoreShareRequest,
    ) -> Result<(), ClientError> {
        let request = self.signed(reqwest::Method::POST, "/v1/shares", Some(share), owner)?;
        self.service.send::<serde_json::Value>(request).await.map(drop)
    }

    /// The owner's sets at this peer.
    pub async fn status(&self, owner: &SigningIdentity) -> Result<StatusResponse, ClientError> {
        let request = self.signed::<()>(reqwest::Method::GET, "/v1/shares", None, owner)?;
        self.service.send(request).await
    }

    /// Deletes one of the owner's sets.
    pub async fn delete(
        &self,
        owner: &SigningIdentity,
        share_set: &str,
    ) -> Result<(), ClientError> {
        let body = DeleteSharesRequest { share_set: share_set.into() };
        let request =
            self.signed(reqwest::Method::POST, "/v1/shares/delete", Some(&body), owner)?;
        self.service.send::<serde_json::Value>(request).await.map(drop)
    }

    /// A fresh nonce for a release of `asked` (a share set, or an owner name: both are made of
    /// characters a URL carries as they are).
    pub async fn nonce(&self, asked: &str) -> Result<NonceResponse, ClientError> {
        if !keyward_service::names::valid_box_name(asked) {
            return Err(self.bad_answer(format!("`{asked}` cannot be asked for")));
        }
        self.service.send(self.service.get(&format!("/v1/nonce?for={asked}"))).await
    }

    /// Asks for shares with a proof.
    pub async fn release(&self, request: &ReleaseRequest) -> Result<ReleaseResponse, ClientError> {
        self.service.send(self.service.post_json("/v1/release", request)).await
    }
}
