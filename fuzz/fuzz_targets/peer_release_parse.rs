//! What a peer and a requester read from each other, on arbitrary bytes: a release request and a
//! release answer (JSON), the sealed share inside (HPKE open with a fixed key), and the share's
//! `x ‖ y` form. Nothing may panic; a sealed share that was not made for the key never opens.

#![no_main]

use keyward_core::shamir::Share;
use keyward_peer::api::{ReleaseRequest, ReleaseResponse, released_binding};
use keyward_peer::seal::{self, Purpose, SealSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<ReleaseRequest>(data) {
        let _ = serde_json::to_vec(&request);
    }
    if let Ok(answer) = serde_json::from_slice::<ReleaseResponse>(data) {
        let secret = SealSecret::from_file_bytes(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
            .expect("a fixed key");
        for released in &answer.shares {
            let binding = released_binding("00", released);
            assert!(seal::open(&secret, Purpose::Release, &binding, &released.share).is_err());
        }
    }
    if let Some(share) = Share::from_bytes(data) {
        assert_eq!(share.to_bytes().as_slice(), data);
    }
});
