//! Signed requests. A box, an owner or an operator signs method, path, body hash, timestamp,
//! nonce, its own name and the *audience*: the server the request is for, named by the SHA-256
//! of that server's TLS certificate (the hash the client pins). A server verifies the signature,
//! the timestamp and that it is the audience here, and refuses a nonce it has seen (it keeps
//! them until they could no longer pass the timestamp check anyway); so a request one server
//! received cannot be replayed to another — a peer cannot replay an owner's request to the
//! owner's other peers.

use sha2::{Digest, Sha256};

use crate::{AuthError, PublicKey, SigningIdentity};

/// The most a request's timestamp may differ from the hub's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// Header names.
pub mod headers {
    /// Who signs: a box name, or an operator's public key.
    pub const SIGNER: &str = "x-keyward-signer";
    /// Unix seconds.
    pub const TIMESTAMP: &str = "x-keyward-timestamp";
    /// 16 random bytes, hex.
    pub const NONCE: &str = "x-keyward-nonce";
    /// Ed25519 signature, base64.
    pub const SIGNATURE: &str = "x-keyward-signature";
    /// The server the request is for: its certificate's SHA-256, colon hex.
    pub const AUDIENCE: &str = "x-keyward-audience";
}

/// The signature part of a request, as carried in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSignature {
    /// Who signs.
    pub signer: String,
    /// Unix seconds at signing.
    pub timestamp: i64,
    /// Single-use random value.
    pub nonce: String,
    /// The server it is for (its certificate's SHA-256, colon hex).
    pub audience: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
}

impl RequestSignature {
    /// Reads the five signature headers; `header` looks one up by name.
    pub fn from_headers<'h>(
        header: impl Fn(&'static str) -> Option<&'h str>,
    ) -> Result<Self, AuthError> {
        let get = |name| header(name).map(str::to_string).ok_or(AuthError::Malformed(name));
        Ok(RequestSignature {
            signer: get(headers::SIGNER)?,
            timestamp: get(headers::TIMESTAMP)?
                .parse()
                .map_err(|_| AuthError::Malformed(headers::TIMESTAMP))?,
            nonce: get(headers::NONCE)?,
            audience: get(headers::AUDIENCE)?,
            signature: get(headers::SIGNATURE)?,
        })
    }
}

/// What exactly is signed.
fn message(signed: &RequestSignature, method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let body_hash = keyward_core::encoding::to_hex(&Sha256::digest(body));
    let RequestSignature { signer, timestamp, nonce, audience, .. } = signed;
    format!(
        "keyward-request-v2\n{}\n{path}\n{body_hash}\n{timestamp}\n{nonce}\n{signer}\n{audience}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// What a request is, before it is signed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// The path, with its query as sent.
    pub path: &'a str,
    /// The body's bytes.
    pub body: &'a [u8],
}

/// Signs a request for the server whose certificate hash is `audience`.
pub fn sign(
    identity: &SigningIdentity,
    signer: &str,
    audience: &str,
    request: Request<'_>,
    now: i64,
) -> keyward_core::Result<RequestSignature> {
    let (_, nonce) = crate::nonces::fresh()?;
    let mut signed = RequestSignature {
        signer: signer.to_string(),
        timestamp: now,
        nonce,
        audience: audience.to_string(),
        signature: String::new(),
    };
    let signature = identity.sign(&message(&signed, request.method, request.path, request.body));
    signed.signature = keyward_core::encoding::to_base64(&signature);
    Ok(signed)
}

/// Verifies a request's audience (it must be `audience`, this server), its signature under
/// `key` and its timestamp against `now`. Replay (a nonce seen before) is the caller's to
/// refuse.
pub fn verify(
    signed: &RequestSignature,
    key: &PublicKey,
    audience: &str,
    request: Request<'_>,
    now: i64,
) -> Result<(), AuthError> {
    if signed.audience != audience {
        return Err(AuthError::WrongAudience);
    }
    // abs_diff: a hostile timestamp (i64::MIN) must not overflow.
    let skew = now.abs_diff(signed.timestamp);
    if skew > MAX_SKEW_SECS.unsigned_abs() {
        let skew_secs = i64::try_from(skew).unwrap_or(i64::MAX);
        return Err(AuthError::StaleTimestamp { skew_secs, max_secs: MAX_SKEW_SECS });
    }
    if signed.nonce.len() != 32 || keyward_core::encoding::from_hex(&signed.nonce).is_none() {
        return Err(AuthError::Malformed("nonce"));
    }
    let signature = keyward_core::encoding::from_base64(&signed.signature)
        .ok_or(AuthError::Malformed("signature"))?;
    key.verify(&message(signed, request.method, request.path, request.body), &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = "aa:bb";

    fn req<'a>(method: &'a str, path: &'a str, body: &'a [u8]) -> Request<'a> {
        Request { method, path, body }
    }

    #[test]
    fn every_signed_part_is_bound() {
        let id = SigningIdentity::generate().expect("rng");
        let key = id.public();
        let s = sign(&id, "box-a", HUB, req("POST", "/v1/escrows", b"body"), 1000).expect("sign");
        let check = |s: &RequestSignature, audience: &str, r: Request<'_>, now: i64| {
            verify(s, &key, audience, r, now)
        };
        assert!(check(&s, HUB, req("POST", "/v1/escrows", b"body"), 1000).is_ok());
        assert!(
            check(&s, HUB, req("post", "/v1/escrows", b"body"), 1010).is_ok(),
            "method case, small skew"
        );
        let bad = Err(AuthError::BadSignature);
        assert_eq!(check(&s, HUB, req("GET", "/v1/escrows", b"body"), 1000), bad);
        assert_eq!(check(&s, HUB, req("POST", "/v1/other", b"body"), 1000), bad);
        assert_eq!(check(&s, HUB, req("POST", "/v1/escrows", b"bodx"), 1000), bad);
        let renamed = RequestSignature { signer: "box-b".into(), ..s.clone() };
        assert_eq!(check(&renamed, HUB, req("POST", "/v1/escrows", b"body"), 1000), bad);
        let other_nonce = RequestSignature { nonce: "00".repeat(16), ..s.clone() };
        assert_eq!(check(&other_nonce, HUB, req("POST", "/v1/escrows", b"body"), 1000), bad);
        let readdressed = RequestSignature { audience: "cc:dd".into(), ..s.clone() };
        assert_eq!(check(&readdressed, "cc:dd", req("POST", "/v1/escrows", b"body"), 1000), bad);
        assert_eq!(
            check(&s, "cc:dd", req("POST", "/v1/escrows", b"body"), 1000),
            Err(AuthError::WrongAudience),
            "another server refuses a request that was not for it"
        );
        assert!(matches!(
            check(&s, HUB, req("POST", "/v1/escrows", b"body"), 1000 + MAX_SKEW_SECS + 1),
            Err(AuthError::StaleTimestamp { .. })
        ));
    }
}
