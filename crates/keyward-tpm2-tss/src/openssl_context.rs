//! One OpenSSL library context for the whole helper, where the TSS would make one per operation.
//!
//! tpm2-tss (3.2, Debian 12's; and every release since) creates a fresh `OSSL_LIB_CTX` for each
//! hash, random nonce and ephemeral key it makes, and frees it after: its own context rather
//! than OpenSSL's default, so a TPM provider loaded in the default context is never called back
//! for the TSS's own crypto (tpm2-tss commit ec58f0a4). With OpenSSL 3.0 a fresh context costs
//! about two million instructions — its name map is filled again, its default provider loaded,
//! its random generator seeded — and an unseal makes some thirty of them: three quarters of the
//! work of a TPM unlock (docs/BENCHMARKS.md, issue 25). tpm2-tss 4.0's callback API would let us
//! hand it our own crypto, but Debian 12 does not ship it.
//!
//! So the helper executable defines `OSSL_LIB_CTX_new` and `OSSL_LIB_CTX_free` itself. The
//! dynamic linker binds the TSS's calls to the executable's definitions first, as it does for
//! any symbol (the helper exports these two: `crates/keyward/build.rs`). The first call makes
//! one context with OpenSSL's own function, and every later call returns it; freeing it is
//! skipped. What the TSS meant is kept — a context of its own, apart from the default one —
//! made once per process instead of once per operation. Any other context is OpenSSL's as
//! before. The helper is single-threaded, and a context is safe to share between threads anyway.

use std::ffi::{CStr, c_void};
use std::sync::OnceLock;

/// The one context, as an address (a raw pointer is not `Sync`).
static SHARED: OnceLock<usize> = OnceLock::new();

/// OpenSSL's own function `name`, the definition after this executable's.
fn openssl(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only looks a symbol up.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// Every caller's context: the one made at the first call (or null, as OpenSSL's own returns
/// when it cannot make one, which the TSS reports as out of memory).
#[unsafe(no_mangle)]
pub extern "C" fn OSSL_LIB_CTX_new() -> *mut c_void {
    let shared = *SHARED.get_or_init(|| {
        let new = openssl(c"OSSL_LIB_CTX_new");
        if new.is_null() {
            return 0;
        }
        // SAFETY: `new` is libcrypto's `OSSL_LIB_CTX *OSSL_LIB_CTX_new(void)`.
        let new: extern "C" fn() -> *mut c_void = unsafe { std::mem::transmute(new) };
        new() as usize
    });
    shared as *mut c_void
}

/// Frees `context` unless it is the shared one, which lives as long as the process.
#[unsafe(no_mangle)]
pub extern "C" fn OSSL_LIB_CTX_free(context: *mut c_void) {
    if context.is_null() || SHARED.get().is_some_and(|&shared| shared == context as usize) {
        return;
    }
    let free = openssl(c"OSSL_LIB_CTX_free");
    if !free.is_null() {
        // SAFETY: `free` is libcrypto's `void OSSL_LIB_CTX_free(OSSL_LIB_CTX *)`, and `context`
        // is a context OpenSSL made that its caller gives up.
        let free: extern "C" fn(*mut c_void) = unsafe { std::mem::transmute(free) };
        free(context);
    }
}

/// Keeps the two definitions in the executable (nothing in Rust calls them).
pub fn keep() {
    let new: extern "C" fn() -> *mut c_void = OSSL_LIB_CTX_new;
    let free: extern "C" fn(*mut c_void) = OSSL_LIB_CTX_free;
    std::hint::black_box((new, free));
}
