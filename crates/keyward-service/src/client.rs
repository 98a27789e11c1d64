//! The client side of every service: HTTPS pinned to one server's certificate, JSON in and out,
//! requests signed with an identity for that server ([`ServiceClient`]). The hub's and the
//! peers' clients are their endpoints on it.
//!
//! What the client refuses before anything is sent: a URL that is not `https://` (a key
//! request in the clear, or a downgrade, is never an option). What it refuses after: a
//! certificate that is not the pinned one (its own error, naming both hashes: the connection may
//! be intercepted), a redirect (never followed: the pin names one server), and an answer larger
//! than any the API has.

use keyward_core::ErrorClass;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::ErrorResponse;
use crate::request::{self, Request, headers};
use crate::text::from_server;
use crate::tls::{PinWitness, TlsError, pinned_client_config};
use crate::{SigningIdentity, unix_now};

/// Largest answer read from a server unless a client says otherwise ([`ServiceClient::with_max_answer`]):
/// a peer's answers hold at most a few sealed shares.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// What a call to a hub or a peer can end in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A name that cannot go into a request (it is checked before anything is sent).
    #[error("`{name}` cannot name a box ({})", crate::names::BOX_NAME_RULE)]
    NotABoxName {
        /// The name given.
        name: String,
    },
    /// The URL is not `https://`; nothing was sent.
    #[error("{url} is not an https:// URL; keyward talks to a {service} over HTTPS only")]
    NotHttps {
        /// `hub` or `peer`.
        service: &'static str,
        /// The URL given.
        url: String,
    },
    /// No server of the service was given to ask.
    #[error(
        "no {service} to ask: name one (--hub URL --hub-fingerprint HEX, a profile, or a ticket that lists them)"
    )]
    NoServer {
        /// `hub`.
        service: &'static str,
    },
    /// The pin given for a server is not a certificate's SHA-256; nothing was sent.
    #[error(
        "the pin given for the {service} at {url} is not a certificate's SHA-256 (32 bytes as hex)"
    )]
    BadPin {
        /// `hub` or `peer`.
        service: &'static str,
        /// Its URL.
        url: String,
    },
    /// The server presented another certificate than the pinned one.
    #[error(
        "the {service} at {url} presented certificate {found}, not the pinned {expected}: the connection may be intercepted (or the {service}'s certificate was replaced); nothing was sent — check the fingerprint with whoever runs it"
    )]
    PinMismatch {
        /// `hub` or `peer`.
        service: &'static str,
        /// Its URL.
        url: String,
        /// The pinned hash (colon hex).
        expected: String,
        /// The hash of the certificate presented (colon hex).
        found: String,
    },
    /// The server cannot be reached.
    #[error("the {service} at {url} cannot be reached ({reason}); check the URL and that it runs")]
    Unavailable {
        /// `hub` or `peer`.
        service: &'static str,
        /// Its URL.
        url: String,
        /// Why.
        reason: String,
        /// Whether the request may have reached the server: the connection was made, then
        /// timed out or broke before an answer came.
        may_have_arrived: bool,
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
    /// Several servers of one service were asked in turn, and none answered (each could not be
    /// reached, did not answer in time, or failed on its side).
    #[error("no {service} answered: {}; check that one of them runs", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoneAnswered {
        /// `hub`.
        service: &'static str,
        /// What each one did, in the order they were asked.
        failures: Vec<ClientError>,
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

impl ClientError {
    /// Which kind of failure it is: unreachable is unavailable; a refusal by the server's
    /// policy (authentication, a used or expired ticket, a lockout, a limit, a size) is a
    /// refusal, except the families its status names (missing, conflicting, malformed, the
    /// server giving up waiting); an answer that does not parse or check is an integrity failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            ClientError::NotHttps { .. }
            | ClientError::NotABoxName { .. }
            | ClientError::BadPin { .. }
            | ClientError::NoServer { .. } => ErrorClass::Usage,
            ClientError::PinMismatch { .. } => ErrorClass::CertificateMismatch,
            ClientError::Unavailable { .. } | ClientError::NoneAnswered { .. } => {
                ErrorClass::Unavailable
            }
            ClientError::Refused { status, .. } => match status {
                // The server gave up waiting for the request: the network, not the request.
                408 => ErrorClass::Unavailable,
                404 => ErrorClass::NotFound,
                409 => ErrorClass::Conflict,
                400 => ErrorClass::Usage,
                401 | 403 | 413 | 429 => ErrorClass::Refused,
                _ => ErrorClass::Internal,
            },
            ClientError::BadAnswer { .. } => ErrorClass::Integrity,
            ClientError::Tls(_) => ErrorClass::Internal,
            ClientError::Core(e) => e.class(),
        }
    }

    /// Whether the request surely changed nothing at the server: it was never sent (a refused
    /// URL or name, another certificate, no connection), or the server answered with a refusal
    /// (a 4xx other than 408: hub and peers write nothing for a request they refuse).
    pub fn changed_nothing(&self) -> bool {
        match self {
            ClientError::NotABoxName { .. }
            | ClientError::NotHttps { .. }
            | ClientError::BadPin { .. }
            | ClientError::NoServer { .. }
            | ClientError::PinMismatch { .. }
            | ClientError::Tls(_) => true,
            ClientError::Unavailable { may_have_arrived, .. } => !may_have_arrived,
            ClientError::NoneAnswered { failures, .. } => {
                failures.iter().all(ClientError::changed_nothing)
            }
            ClientError::Refused { status, .. } => (400..500).contains(status) && *status != 408,
            ClientError::BadAnswer { .. } | ClientError::Core(_) => false,
        }
    }
}

impl ClientError {
    /// Whether another server of the same service might answer where this one did not: it
    /// could not be reached, broke off, did not answer in time, or failed on its own side
    /// (5xx). A refusal, a certificate that is not the pinned one, or a bad answer is the
    /// answer: asking elsewhere would hide it.
    pub fn another_may_answer(&self) -> bool {
        match self {
            ClientError::Unavailable { .. } => true,
            ClientError::Refused { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }
}

/// HTTPS with JSON to one server (a hub or a peer), trusting only its pinned certificate;
/// requests signed with an identity as docs/hub-api.md describes.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    service: &'static str,
    url: String,
    pin: [u8; 32],
    witness: PinWitness,
    http: reqwest::Client,
    max_answer: usize,
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
        if !url.starts_with("https://") {
            return Err(ClientError::NotHttps { service, url });
        }
        let (tls, witness) = pinned_client_config(pin)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClientError::Unavailable {
                service,
                url: url.clone(),
                reason: e.to_string(),
                may_have_arrived: false,
            })?;
        Ok(ServiceClient { service, url, pin, witness, http, max_answer: DEFAULT_MAX_ANSWER_BYTES })
    }

    /// The same client, reading answers of up to `bytes`.
    pub fn with_max_answer(self, bytes: usize) -> Self {
        ServiceClient { max_answer: bytes, ..self }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pinned certificate hash, colon hex: the audience of signed requests.
    pub fn audience(&self) -> String {
        keyward_core::fingerprint::colon_hex(&self.pin)
    }

    /// The error for a call that had no answer within `waited`.
    pub fn no_answer_within(&self, waited: Duration) -> ClientError {
        ClientError::Unavailable {
            service: self.service,
            url: self.url.clone(),
            reason: format!("no answer within {:.1} s", waited.as_secs_f64()),
            may_have_arrived: true,
        }
    }

    /// A malformed-answer error for this server.
    pub fn bad_answer(&self, reason: impl Into<String>) -> ClientError {
        ClientError::BadAnswer {
            service: self.service,
            url: self.url.clone(),
            reason: reason.into(),
        }
    }

    /// The error for a request that did not get an answer: a certificate that is not the pinned
    /// one if that is what happened, else "cannot be reached".
    fn unanswered(&self, error: &reqwest::Error) -> ClientError {
        match self.witness.mismatch() {
            Some(found) => ClientError::PinMismatch {
                service: self.service,
                url: self.url.clone(),
                expected: keyward_core::fingerprint::colon_hex(&self.pin),
                found: keyward_core::fingerprint::colon_hex(&found),
            },
            None => ClientError::Unavailable {
                service: self.service,
                url: self.url.clone(),
                reason: error_chain(error),
                may_have_arrived: !error.is_connect(),
            },
        }
    }

    /// Sends a request and reads its JSON answer (`null` for an empty one).
    pub async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.witness.clear();
        let mut response = request.send().await.map_err(|e| self.unanswered(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(self.bad_answer(format!(
                "HTTP {status}, a redirect; keyward never follows one (the pinned certificate names this server only)"
            )));
        }
        // Read at most `max_answer` bytes: a server cannot make the client hold more.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unanswered(&e))? {
            if bytes.len() + chunk.len() > self.max_answer {
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
                code: from_server(&error.error),
                message: from_server(&error.message),
            });
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| self.bad_answer(from_server(&e.to_string())))
    }

    /// A POST of `body` as JSON.
    pub fn post_json<B: Serialize>(&self, path: &str, body: &B) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url)).json(body)
    }

    /// A plain GET (`path` may carry a query).
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.url))
    }

    /// A request signed by `identity` as `signer` (a box name at a hub, an owner's or
    /// operator's public key) for this server, over the method, path, body, a timestamp and a
    /// fresh nonce.
    pub fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        signer: &str,
        identity: &SigningIdentity,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let what = Request { method: method.as_str(), path, body: &body };
        let signature = request::sign(identity, signer, &self.audience(), what, unix_now())?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.url))
            .header(headers::SIGNER, signature.signer)
            .header(headers::TIMESTAMP, signature.timestamp.to_string())
            .header(headers::NONCE, signature.nonce)
            .header(headers::AUDIENCE, signature.audience)
            .header(headers::SIGNATURE, signature.signature)
            .header("content-type", "application/json")
            .body(body))
    }

    /// A signed request whose JSON answer is read.
    pub async fn send_signed<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        signer: &str,
        identity: &SigningIdentity,
    ) -> Result<T, ClientError> {
        self.send(self.signed(method, path, body, signer, identity)?).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_before_anything_is_sent() {
        let refused =
            ServiceClient::new("hub", "http://127.0.0.1:1", [0; 32], Duration::from_secs(1));
        assert!(matches!(refused, Err(ClientError::NotHttps { .. })), "{refused:?}");
    }
}

keyward_core::classify_by_method!(ClientError);
