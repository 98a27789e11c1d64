//! The hub's endpoints, on keyward-service's pinned, signing [`ServiceClient`].

use std::time::Duration;

use keyward_service::client::{ClientError, ServiceClient};
use keyward_service::{PublicKey, SigningIdentity};
use serde::de::DeserializeOwned;

use crate::api::{
    ActiveResponse, ApproveRequest, ApproveResponse, DeleteRequest, DeleteResponse, EnrollRequest,
    PushRequest, PushResponse, RecoverRequest, RecoverResponse, StatusResponse,
};

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
            .send_signed(reqwest::Method::POST, "/v1/escrows", body, box_name, identity)
            .await
    }

    /// A GET signed by `signer`.
    async fn signed_get<T: DeserializeOwned>(
        &self,
        path: &str,
        signer: &str,
        identity: &SigningIdentity,
    ) -> Result<T, ClientError> {
        self.service.send_signed(reqwest::Method::GET, path, Vec::new(), signer, identity).await
    }

    /// The box's escrow versions, signed by the box.
    pub async fn status(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<StatusResponse, ClientError> {
        self.signed_get("/v1/escrows", box_name, identity).await
    }

    /// A box's escrow versions, with their blobs' hashes, signed by an operator.
    pub async fn operator_status(
        &self,
        box_name: &str,
        operator: &SigningIdentity,
    ) -> Result<StatusResponse, ClientError> {
        if !keyward_service::names::valid_box_name(box_name) {
            return Err(self.service.bad_answer(format!("`{box_name}` cannot name a box")));
        }
        let path = format!("/v1/boxes/{box_name}/escrows");
        self.signed_get(&path, &operator.public().to_string(), operator).await
    }

    /// The box's own active escrow, signed by the box.
    pub async fn fetch_active(
        &self,
        box_name: &str,
        identity: &SigningIdentity,
    ) -> Result<ActiveResponse, ClientError> {
        self.signed_get("/v1/escrows/active", box_name, identity).await
    }

    /// Sends an operator's overwrite approval.
    pub async fn approve(&self, approval: &str) -> Result<ApproveResponse, ClientError> {
        let body = ApproveRequest { approval: approval.into() };
        self.service.send(self.service.post_json("/v1/approvals", &body)).await
    }

    /// Sends an operator's deletion order.
    pub async fn delete(&self, order: &str) -> Result<DeleteResponse, ClientError> {
        let body = DeleteRequest { deletion: order.into() };
        self.service.send(self.service.post_json("/v1/deletions", &body)).await
    }

    /// Redeems a recovery ticket for every escrow version the hub holds of its box.
    pub async fn recover(&self, ticket: &str) -> Result<RecoverResponse, ClientError> {
        let body = RecoverRequest { ticket: ticket.into() };
        self.service.send(self.service.post_json("/v1/recoveries", &body)).await
    }
}
