//! TPM quotes for attested release (peers' `tpm-quote` policy): the box's attestation key — an
//! ECC P-256 restricted signing key derived from the TPM's owner seed, so the same key every
//! time without anything stored — signs a quote over a verifier's challenge and a PCR
//! selection (the helper makes it: [`crate::Tpm::quote`]); the verifier, with no TPM of its own,
//! checks the signature, the challenge and the PCR digest it was told at enrollment. Nothing
//! here uses the TSS.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::quoted::Quoted;
use crate::tpm::Bank;

/// A quote: the TPMS_ATTEST the TPM signed, and its ECDSA signature (r ‖ s, 32 bytes each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST.
    #[serde(with = "keyward_core::encoding::base64_bytes")]
    pub attest: Vec<u8>,
    /// r ‖ s.
    #[serde(with = "keyward_core::encoding::base64_bytes")]
    pub signature: Vec<u8>,
}

/// Why a quote is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// The enrolled key is not a P-256 public key.
    #[error("the attestation key enrolled is not a P-256 public key")]
    BadKey,
    /// The signature does not verify under the enrolled key (another TPM, an edited quote).
    #[error("the quote is not signed by the attestation key enrolled with the share")]
    BadSignature,
    /// Not a quote, or not one a TPM produced.
    #[error("the attestation is not a TPM quote")]
    NotAQuote,
    /// Signed over another challenge (a replay).
    #[error("the quote is over another challenge")]
    WrongChallenge,
    /// Over another PCR selection than enrolled.
    #[error("the quote covers other PCRs than were enrolled")]
    WrongPcrs,
    /// The PCR values differ from those enrolled.
    #[error("the requester's PCR values are not the ones enrolled")]
    PcrValuesChanged,
}

/// The PCR digest a quote of `values` carries: SHA-256 over the values in order (the hash of
/// the attestation key's scheme).
pub fn pcr_digest(values: &[Vec<u8>]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for value in values {
        hash.update(value);
    }
    hash.finalize().to_vec()
}

/// Checks `quote` as a verifier: signed by `key` (SEC1), a TPM-made quote over `challenge` and
/// exactly the PCRs `pcrs` (sorted, without repeats, as [`crate::parse_pcrs`] gives them) of
/// `bank`, with the PCR digest `expected_digest`. Nothing of the TPM stack is used.
pub fn verify_quote(
    key: &[u8],
    quote: &Quote,
    challenge: &[u8],
    bank: Bank,
    pcrs: &[u8],
    expected_digest: &[u8],
) -> Result<(), QuoteError> {
    let key = VerifyingKey::from_sec1_bytes(key).map_err(|_| QuoteError::BadKey)?;
    let signature =
        Signature::from_slice(&quote.signature).map_err(|_| QuoteError::BadSignature)?;
    key.verify(&quote.attest, &signature).map_err(|_| QuoteError::BadSignature)?;
    // Signed by the key: now what it says.
    let quoted = Quoted::parse(&quote.attest).ok_or(QuoteError::NotAQuote)?;
    if quoted.challenge != challenge {
        return Err(QuoteError::WrongChallenge);
    }
    if !quoted.covers_exactly(bank, pcrs) {
        return Err(QuoteError::WrongPcrs);
    }
    if quoted.pcr_digest != expected_digest {
        return Err(QuoteError::PcrValuesChanged);
    }
    Ok(())
}
