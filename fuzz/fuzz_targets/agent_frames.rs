//! The agent's wire protocol on arbitrary bytes: frames read from a stream, requests parsed
//! from a frame, responses as a client reads them. Nothing may panic; a request that parses
//! must be of this protocol version.

#![no_main]

use keyward_agent::protocol::{self, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    while let Ok(frame) = protocol::read_frame(&mut stream) {
        if let Ok(request) = protocol::parse_request(&frame) {
            assert_eq!(request.version, protocol::VERSION);
        }
        let _ = serde_json::from_slice::<Response>(&frame);
    }
    if let Ok(request) = protocol::parse_request(data) {
        assert_eq!(request.format, protocol::FORMAT);
    }
});
