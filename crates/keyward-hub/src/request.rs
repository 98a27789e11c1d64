//! Signed requests. A box (or operator) signs method, path, body hash, timestamp, nonce and its
//! own name; the hub verifies the signature and the timestamp here, and refuses a nonce it has
//! seen (its store keeps them until they could no longer pass the timestamp check anyway).

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
    /// Base64 Ed25519 signature.
    pub signature: String,
}

/// What exactly is signed.
impl RequestSignature {
    /// Reads the four signature headers; `header` looks one up by name.
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
            signature: get(headers::SIGNATURE)?,
        })
    }
}

fn message(
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: i64,
    nonce: &str,
    signer: &str,
) -> Vec<u8> {
    let body_hash = keyward_core::encoding::to_hex(&Sha256::digest(body));
    format!(
        "keyward-request-v1\n{}\n{path}\n{body_hash}\n{timestamp}\n{nonce}\n{signer}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// Signs a request.
pub fn sign(
    identity: &SigningIdentity,
    signer: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> keyward_core::Result<RequestSignature> {
    let nonce = keyward_core::encoding::to_hex(&keyward_core::random::array::<16>()?);
    let signature = identity.sign(&message(method, path, body, now, &nonce, signer));
    Ok(RequestSignature {
        signer: signer.to_string(),
        timestamp: now,
        nonce,
        signature: keyward_core::encoding::to_base64(&signature),
    })
}

/// Verifies a request's signature under `key` and its timestamp against `now`. Replay (a nonce
/// seen before) is the store's to refuse.
pub fn verify(
    signed: &RequestSignature,
    key: &PublicKey,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), AuthError> {
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
    key.verify(
        &message(method, path, body, signed.timestamp, &signed.nonce, &signed.signer),
        &signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signed_part_is_bound() {
        let id = SigningIdentity::generate().expect("rng");
        let key = id.public();
        let s = sign(&id, "box-a", "POST", "/v1/escrows", b"body", 1000).expect("sign");
        assert!(verify(&s, &key, "POST", "/v1/escrows", b"body", 1000).is_ok());
        assert!(
            verify(&s, &key, "post", "/v1/escrows", b"body", 1010).is_ok(),
            "method case, small skew"
        );
        assert_eq!(
            verify(&s, &key, "GET", "/v1/escrows", b"body", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&s, &key, "POST", "/v1/other", b"body", 1000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&s, &key, "POST", "/v1/escrows", b"bodx", 1000),
            Err(AuthError::BadSignature)
        );
        let renamed = RequestSignature { signer: "box-b".into(), ..s.clone() };
        assert_eq!(
            verify(&renamed, &key, "POST", "/v1/escrows", b"body", 1000),
            Err(AuthError::BadSignature)
        );
        let other_nonce = RequestSignature { nonce: "00".repeat(16), ..s.clone() };
        assert_eq!(
            verify(&other_nonce, &key, "POST", "/v1/escrows", b"body", 1000),
            Err(AuthError::BadSignature)
        );
        assert!(matches!(
            verify(&s, &key, "POST", "/v1/escrows", b"body", 1000 + MAX_SKEW_SECS + 1),
            Err(AuthError::StaleTimestamp { .. })
        ));
    }
}
