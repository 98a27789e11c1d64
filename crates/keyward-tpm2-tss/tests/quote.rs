//! Quotes from a real swtpm, checked as a peer checks them: only a fresh quote, by the enrolled
//! TPM, over the challenge given, with the enrolled PCR values, passes. A machine without swtpm
//! fails these tests, naming the package.

use keyward_tpm2::testing::Swtpm;
use keyward_tpm2::{Bank, QuoteError, pcr_digest, verify_quote};
use keyward_tpm2_tss::Tss;

/// The swtpm through the TSS in this process (the helper's side, without the pipe).
fn tss(swtpm: &Swtpm) -> Tss {
    Tss::open(&swtpm.tcti()).expect("reach the swtpm")
}

const PCRS: &[u8] = &[7, 11];

#[test]
fn only_a_fresh_quote_of_the_enrolled_tpm_and_pcr_values_verifies() {
    // SAFETY of the test: set before any TPM use, in this test's own process (nextest).
    unsafe { std::env::set_var("TSS2_LOG", "all+NONE") };
    let enrolled = Swtpm::start();
    let mut tpm = tss(&enrolled);
    // Enrollment: the key, the PCRs and their digest, as a peer stores them.
    let key = tpm.attestation_key().expect("attestation key");
    assert_eq!(tpm.attestation_key().expect("again"), key, "the same key every time");
    let values = tpm.pcr_values(Bank::Sha256, PCRS).expect("PCRs");
    let digest = pcr_digest(&values);

    let challenge = [7u8; 32];
    let quote = tpm.quote(&challenge, Bank::Sha256, PCRS).expect("quote");
    verify_quote(&key, &quote, &challenge, Bank::Sha256, PCRS, &digest).expect("a good quote");

    // A replay against another challenge.
    let other = [8u8; 32];
    assert_eq!(
        verify_quote(&key, &quote, &other, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::WrongChallenge)
    );
    // Another selection than enrolled.
    let narrower = tpm.quote(&challenge, Bank::Sha256, &[7]).expect("quote");
    assert_eq!(
        verify_quote(&key, &narrower, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::WrongPcrs)
    );
    // An edited quote.
    let mut edited = quote.clone();
    let last = edited.attest.len() - 1;
    edited.attest[last] ^= 1;
    assert_eq!(
        verify_quote(&key, &edited, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::BadSignature)
    );

    // Another TPM's quote, however good, is not the enrolled key's.
    let stranger = Swtpm::start();
    let foreign = tss(&stranger).quote(&challenge, Bank::Sha256, PCRS).expect("quote");
    assert_eq!(
        verify_quote(&key, &foreign, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::BadSignature)
    );

    // The enrolled TPM after a boot change: its quote is genuine but the values differ.
    drop(tpm);
    enrolled.extend(11);
    let changed = tss(&enrolled).quote(&challenge, Bank::Sha256, PCRS).expect("quote");
    assert_eq!(
        verify_quote(&key, &changed, &challenge, Bank::Sha256, PCRS, &digest),
        Err(QuoteError::PcrValuesChanged)
    );
}
