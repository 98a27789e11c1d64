//! One module per subcommand. Each takes the parsed arguments and the context, calls the library,
//! and prints; none does crypto of its own.

pub mod agent;
pub mod backup;
pub mod dashboard;
pub mod demo;
pub mod drill;
pub mod enroll;
pub mod escrow;
pub mod fingerprint;
pub mod hub;
pub mod init;
pub mod list;
pub mod luks;
pub mod operator;
pub mod peer;
pub mod peers;
pub mod recover;
pub mod remove;
pub mod rotate;
pub mod sheet;
pub mod status;
pub mod unlock;
pub mod verify;
pub mod wait;
