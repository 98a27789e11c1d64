//! Link flags for keyward's executables.

fn main() {
    // Relative relocations packed (DT_RELR): the loader reads a table of a few KiB instead of
    // 650 KiB at every start. Full RELRO and PIE are unchanged. Needs binutils 2.38 to link and
    // glibc 2.36 to run (Debian 12 has 2.40 and 2.36).
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // The start-up probes (examples/unlock_*.rs) are linked the same way, so that
    // scripts/bench-startup.sh compares like with like.
    println!("cargo:rustc-link-arg-examples=-Wl,-z,pack-relative-relocs");
    // The tpm2 helper exports its OpenSSL context functions, so that the TSS's calls bind to
    // them (crates/keyward-tpm2-tss/src/openssl_context.rs says why).
    for symbol in [
        "OSSL_LIB_CTX_new",
        "OSSL_LIB_CTX_free",
        "OSSL_LIB_CTX_new_from_dispatch",
        "OSSL_LIB_CTX_new_child",
    ] {
        println!(
            "cargo:rustc-link-arg-bin=keyward-tpm2-helper=-Wl,--export-dynamic-symbol={symbol}"
        );
    }
}
