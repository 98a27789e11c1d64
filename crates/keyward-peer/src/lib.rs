//! keyward-peer: peer backup providers. A node splits its data key k-of-n (Shamir, in
//! keyward-core), seals each share with HPKE to one peer and stores it there; a peer releases its
//! share only to a requester that proves itself over a fresh nonce (the owner's identity
//! signature, an operator's release ticket, or both, as the owner's policy says), sealed to a
//! one-time key the requester sent. No single peer, and no k-1 of them, can open the key.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod card;
pub mod client;
pub mod distribute;
pub mod journal;
pub mod peer;
pub mod reconstruct;
pub mod recovery;
pub mod reshare;
mod runtime;
pub mod seal;
pub mod server;
pub mod share_journal;
pub mod slot;
pub mod store;
