//! The LUKS2 header reader (keyward_luks::header) and the journal read from it, on arbitrary
//! JSON metadata: never a panic; a token keyward reads writes back to JSON it reads the same;
//! a settled journal is always one committed token assigned to a keyslot that exists.

#![no_main]

use keyward_luks::header::{Header, TokenEntry};
use keyward_luks::journal::Journal;
use keyward_luks::token::{KeywardToken, TokenState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(metadata) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(header) = Header::from_metadata(&metadata) else { return };
    for entry in header.tokens.values() {
        if let TokenEntry::Keyward(Ok(token)) = entry {
            let again = KeywardToken::from_json(&token.to_json()).expect("a token read writes back");
            // The LUKS2 `keyslots` field is rewritten from the state; the rest is the same.
            assert_eq!(again.committed(), token.committed());
        }
    }
    let _ = header.keyslots_without_token();
    let _ = header.free_keyslot();
    if let Ok(Journal::Settled(entry)) = Journal::read(&header) {
        assert_eq!(entry.record.state, TokenState::Committed);
        assert!(header.keyslots.contains(&entry.record.keyslot));
        assert_eq!(entry.record.assigned, vec![entry.record.keyslot]);
    }
});
