//! TPM quotes for attested release (peers' `tpm-quote` policy): the box's attestation key — an
//! ECC P-256 restricted signing key derived from the TPM's owner seed, so the same key every
//! time without anything stored — signs a quote over a verifier's challenge and a PCR
//! selection; the verifier, with no TPM of its own, checks the signature, the challenge and
//! the PCR digest it was told at enrollment.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Data, EccScheme, HashScheme, PublicEccParametersBuilder, SignatureScheme,
};
use tss_esapi::traits::Marshall;

use crate::quoted::Quoted;
use crate::tpm::{Bank, Cause, Doing, PrimaryRole, Tpm, TpmFailure, selection};

/// A quote: the TPMS_ATTEST the TPM signed, and its ECDSA signature (r ‖ s, 32 bytes each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// r ‖ s.
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

impl Tpm {
    /// The attestation key's public point, SEC1 uncompressed (65 bytes).
    pub fn attestation_key(&mut self) -> Result<Vec<u8>, TpmFailure> {
        let (key, point) = self.attestation_key_handle()?;
        self.flush_now(key.into());
        Ok(point)
    }

    /// A quote by the attestation key over `challenge` and the PCRs `pcrs` of `bank`.
    pub fn quote(
        &mut self,
        challenge: &[u8],
        bank: Bank,
        pcrs: &[u8],
    ) -> Result<Quote, TpmFailure> {
        let (key, _) = self.attestation_key_handle()?;
        let selection = selection(bank, pcrs)?;
        let data = Data::try_from(challenge.to_vec()).doing("the quote's challenge")?;
        let scheme =
            SignatureScheme::EcDsa { hash_scheme: HashScheme::new(HashingAlgorithm::Sha256) };
        let quoted = self
            .context()
            .execute_with_nullauth_session(|ctx| ctx.quote(key, data, scheme, selection))
            .doing("cannot quote");
        // swtpm (no resource manager) has three object slots: nothing is kept between quotes.
        self.flush_now(key.into());
        let (attest, signature) = quoted?;
        let tss_esapi::structures::Signature::EcDsa(ecdsa) = signature else {
            return Err(failure("a signature of another scheme"));
        };
        let mut signature = Vec::with_capacity(64);
        for part in [ecdsa.signature_r().value(), ecdsa.signature_s().value()] {
            signature.extend_from_slice(
                &left_pad_32(part).ok_or_else(|| failure("an overlong signature"))?,
            );
        }
        Ok(Quote { attest: attest.marshall().doing("cannot marshal the quote")?, signature })
    }

    fn attestation_key_handle(
        &mut self,
    ) -> Result<(tss_esapi::handles::KeyHandle, Vec<u8>), TpmFailure> {
        let ecc = PublicEccParametersBuilder::new_unrestricted_signing_key(
            EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
            EccCurve::NistP256,
        )
        .with_restricted(true)
        .build()
        .doing("attestation key parameters")?;
        let created =
            self.ecc_primary(PrimaryRole::Attestation, ecc, "cannot create the attestation key")?;
        let tss_esapi::structures::Public::Ecc { unique, .. } = created.out_public else {
            return Err(failure("an attestation key that is not ECC"));
        };
        let mut point = vec![0x04];
        for part in [unique.x().value(), unique.y().value()] {
            point.extend_from_slice(
                &left_pad_32(part).ok_or_else(|| failure("an overlong key point"))?,
            );
        }
        Ok((created.key_handle, point))
    }
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

fn left_pad_32(bytes: &[u8]) -> Option<[u8; 32]> {
    let start = 32usize.checked_sub(bytes.len())?;
    let mut out = [0u8; 32];
    out[start..].copy_from_slice(bytes);
    Some(out)
}

/// An answer the TPM should not have given while quoting (or making the key).
fn failure(what: &'static str) -> TpmFailure {
    TpmFailure::local("cannot quote", Cause::Unexpected(what))
}
