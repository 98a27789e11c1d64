//! A small async runtime per client call (hub and peer clients); the servers' runtime is in
//! [`crate::serving`].

use std::future::Future;

use crate::exit::{CliError, CliResult};

/// Runs one async client operation to completion on a current-thread runtime.
pub fn block_on<T, E: Into<CliError>>(future: impl Future<Output = Result<T, E>>) -> CliResult<T> {
    keyward_box::runtime::client_runtime()?.block_on(future).map_err(Into::into)
}
