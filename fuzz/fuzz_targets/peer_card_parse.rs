//! The peer card parser on arbitrary bytes: it must never panic, and an accepted card, written
//! back out, must read back to the same card (and the same slot record).

#![no_main]

use keyward_peer::card::PeerCard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = PeerCard::parse(data) {
        let again = PeerCard::parse(&card.to_file_bytes()).expect("a written card parses");
        assert_eq!(again, card);
        assert_eq!(PeerCard::from_record(&card.to_record()).expect("its record reads"), card);
    }
});
