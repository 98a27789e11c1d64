//! A small async runtime per client call (hub and peer clients), for workflows that are
//! synchronous to their callers.

use std::future::Future;

use crate::error::{BoxError, BoxResult};

/// A current-thread runtime for one client call.
pub fn client_runtime() -> BoxResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(BoxError::Runtime)
}

/// Runs one async client operation to completion on a current-thread runtime.
pub fn block_on<T, E: Into<BoxError>>(future: impl Future<Output = Result<T, E>>) -> BoxResult<T> {
    client_runtime()?.block_on(future).map_err(Into::into)
}
