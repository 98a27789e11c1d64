//! Quotes for attested release (peers' `tpm-quote` policy): the attestation key — an ECC P-256
//! restricted signing key derived from the TPM's owner seed, so the same key every time without
//! anything stored — signs a quote over a verifier's challenge and a PCR selection. The
//! verifier's side is the kind's own (`keyward_tpm2::verify_quote`), without a TSS.

use keyward_tpm2::{Cause, Quote, TpmFailure};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Data, EccScheme, HashScheme, PublicEccParametersBuilder, SignatureScheme,
};
use tss_esapi::traits::Marshall;

use crate::tss::{Doing, EMPTY_AUTH, PrimaryRole, Tss, selection};

impl Tss {
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
        bank: keyward_tpm2::Bank,
        pcrs: &[u8],
    ) -> Result<Quote, TpmFailure> {
        let (key, _) = self.attestation_key_handle()?;
        let selection = selection(bank, pcrs)?;
        let data = Data::try_from(challenge.to_vec()).doing("the quote's challenge")?;
        let scheme =
            SignatureScheme::EcDsa { hash_scheme: HashScheme::new(HashingAlgorithm::Sha256) };
        let quoted = self
            .context()
            .execute_with_session(EMPTY_AUTH, |ctx| ctx.quote(key, data, scheme, selection))
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

fn left_pad_32(bytes: &[u8]) -> Option<[u8; 32]> {
    let start = 32usize.checked_sub(bytes.len())?;
    let mut out = [0u8; 32];
    out[start..].copy_from_slice(bytes);
    Some(out)
}

/// An answer the TPM should not have given while quoting (or making the key).
fn failure(what: &str) -> TpmFailure {
    TpmFailure::local("cannot quote", Cause::Unexpected(what.to_string()))
}
