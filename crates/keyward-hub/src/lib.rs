//! keyward-hub: the escrow hub. It stores, per enrolled box, opaque blobs it cannot open (K
//! wrapped under a recovery code it never sees) and the non-secret restore directive, and serves
//! every version it holds back to a fresh machine that presents an operator's recovery ticket.
//! Its decisions ([`hub`]) are plain async functions over its store ([`store`]); the HTTP
//! server ([`server`]) and client ([`client`]) are thin shells over keyward-service.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod client;
pub mod hub;
pub mod server;
pub mod store;
