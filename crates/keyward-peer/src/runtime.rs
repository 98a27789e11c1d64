//! A current-thread runtime for one call to the peers from synchronous code (a slot opening, a
//! journal entry finished): the peer client is async, its callers here are not.

use std::future::Future;

/// Runs `future` to completion on a runtime of its own; `Err` only if no runtime can be made.
pub(crate) fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(runtime.block_on(future))
}
