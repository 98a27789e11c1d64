//! Operator statements and signed-request headers on arbitrary text: verifying must never
//! panic, and nothing made up verifies under a key that did not sign it.

#![no_main]

use keyward_service::request::RequestSignature;
use keyward_service::{SigningIdentity, statement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let operator = SigningIdentity::from_seed(&[7u8; 32]);
    // The fuzzer does not hold the operator's secret: nothing it writes may verify.
    assert!(statement::verify(text, &[operator.public()], 0).is_err());
    let _ = statement::peek(text);
    let mut lines = text.splitn(5, '\n');
    let fields: Vec<&str> = (0..5).map(|_| lines.next().unwrap_or("")).collect();
    let _ = RequestSignature::from_headers(|name| match name {
        "x-keyward-signer" => Some(fields[0]),
        "x-keyward-timestamp" => Some(fields[1]),
        "x-keyward-nonce" => Some(fields[2]),
        "x-keyward-audience" => Some(fields[3]),
        _ => Some(fields[4]),
    });
});
