//! A slot kind's device work in a process of its own.
//!
//! Some kinds reach their device through a C library that is costly to load: the TSS and, through
//! it, OpenSSL for tpm2; libcryptsetup and its dependencies for LUKS2. Linked into `keyward`, the
//! loader would resolve every one of their symbols at the start of every process (full RELRO),
//! whatever the command. So such a kind ships a helper executable beside `keyward`, started only
//! when the kind's device is used, and the kind speaks to it over a pair of pipes:
//!
//! - [`Helper`] is the caller's side: it starts the helper and makes one call at a time;
//! - [`serve`] is the helper's side: it answers calls until its input closes;
//! - [`frame`] is what crosses the pipes (docs/formats/helper.md);
//! - [`SecretBytes`] carries a secret in a call or an answer, wiped when dropped.
//!
//! What each call means is the kind's own: its crate defines the call and answer types.

#![deny(missing_docs)]

mod caller;
pub mod frame;
pub mod path_bytes;
mod secret;
mod server;

pub use caller::{Helper, HelperError, locate};
pub use secret::SecretBytes;
pub use server::serve;
