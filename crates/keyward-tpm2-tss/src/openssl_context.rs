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
//! any symbol (the helper exports them: `crates/keyward/build.rs`). The first call makes one
//! context with OpenSSL's own function, and every later call returns it; freeing it is skipped.
//! What the TSS meant is kept — a context of its own, apart from the default one — made once per
//! process instead of once per operation. OpenSSL's own callers of `OSSL_LIB_CTX_new` (its makers
//! of a context from a dispatch table and of a provider's child context, which a provider loaded
//! by the system's openssl.cnf may call) bind to it too, so those two makers are wrapped and get
//! a fresh context inside, as before. The helper is single-threaded, and a context is safe to
//! share between threads anyway.

use std::cell::Cell;
use std::ffi::{CStr, c_void};
use std::sync::Mutex;

/// The one context, as an address (a raw pointer is not `Send`); 0 until it is made.
static SHARED: Mutex<usize> = Mutex::new(0);

thread_local! {
    /// Inside OpenSSL's own making of a context from a dispatch table or for a provider's child
    /// (`OSSL_LIB_CTX_new_from_dispatch`, `OSSL_LIB_CTX_new_child`): both start from
    /// `OSSL_LIB_CTX_new`, which must then be OpenSSL's own, a fresh context.
    static IN_OPENSSL_OWN: Cell<u32> = const { Cell::new(0) };
}

/// OpenSSL's own function `name`, the definition after this executable's.
fn openssl(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only looks a symbol up.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

/// A fresh context from OpenSSL's own `OSSL_LIB_CTX_new` (null if it cannot make one).
fn fresh_context() -> *mut c_void {
    let new = openssl(c"OSSL_LIB_CTX_new");
    if new.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `new` is libcrypto's `OSSL_LIB_CTX *OSSL_LIB_CTX_new(void)`.
    let new: extern "C" fn() -> *mut c_void = unsafe { std::mem::transmute(new) };
    new()
}

/// The TSS's context: the one made at the first call, or null, as OpenSSL's own returns when it
/// cannot make one (the TSS reports that as out of memory; the next call tries again). Inside
/// OpenSSL's own making of a context, a fresh one.
#[unsafe(no_mangle)]
pub extern "C" fn OSSL_LIB_CTX_new() -> *mut c_void {
    if IN_OPENSSL_OWN.with(|depth| depth.get() > 0) {
        return fresh_context();
    }
    let Ok(mut shared) = SHARED.lock() else { return fresh_context() };
    if *shared == 0 {
        *shared = fresh_context() as usize;
    }
    *shared as *mut c_void
}

/// Frees `context` unless it is the shared one, which lives as long as the process.
#[unsafe(no_mangle)]
pub extern "C" fn OSSL_LIB_CTX_free(context: *mut c_void) {
    let shared = SHARED.lock().map(|shared| *shared).unwrap_or(0);
    if context.is_null() || context as usize == shared {
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

/// The signature of OpenSSL's two context makers from a dispatch table.
type FromDispatch = extern "C" fn(*const c_void, *const c_void) -> *mut c_void;

/// OpenSSL's own `name` (one of the two makers from a dispatch table), called with the
/// `OSSL_LIB_CTX_new` inside it answering with a fresh context.
fn openssl_own_maker(name: &CStr, handle: *const c_void, dispatch: *const c_void) -> *mut c_void {
    let maker = openssl(name);
    if maker.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `maker` is libcrypto's `OSSL_LIB_CTX *NAME(const OSSL_CORE_HANDLE *, const
    // OSSL_DISPATCH *)`, and its arguments are passed on as they came.
    let maker: FromDispatch = unsafe { std::mem::transmute(maker) };
    IN_OPENSSL_OWN.with(|depth| depth.set(depth.get() + 1));
    let made = maker(handle, dispatch);
    IN_OPENSSL_OWN.with(|depth| depth.set(depth.get().saturating_sub(1)));
    made
}

/// OpenSSL's own, with a fresh context inside (see [`IN_OPENSSL_OWN`]).
#[unsafe(no_mangle)]
pub extern "C" fn OSSL_LIB_CTX_new_from_dispatch(
    handle: *const c_void,
    dispatch: *const c_void,
) -> *mut c_void {
    openssl_own_maker(c"OSSL_LIB_CTX_new_from_dispatch", handle, dispatch)
}

/// OpenSSL's own, with a fresh context inside (a provider's child context; see
/// [`IN_OPENSSL_OWN`]).
#[unsafe(no_mangle)]
pub extern "C" fn OSSL_LIB_CTX_new_child(
    handle: *const c_void,
    dispatch: *const c_void,
) -> *mut c_void {
    openssl_own_maker(c"OSSL_LIB_CTX_new_child", handle, dispatch)
}

/// Keeps the definitions in the executable (nothing in Rust calls them).
pub fn keep() {
    let new: extern "C" fn() -> *mut c_void = OSSL_LIB_CTX_new;
    let free: extern "C" fn(*mut c_void) = OSSL_LIB_CTX_free;
    let makers: [FromDispatch; 2] = [OSSL_LIB_CTX_new_from_dispatch, OSSL_LIB_CTX_new_child];
    std::hint::black_box((new, free, makers));
}
