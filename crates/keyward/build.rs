//! The tpm2 helper exports its two OpenSSL context functions, so that the TSS's calls bind to
//! them (crates/keyward-tpm2-tss/src/openssl_context.rs says why).

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    for symbol in ["OSSL_LIB_CTX_new", "OSSL_LIB_CTX_free"] {
        println!(
            "cargo:rustc-link-arg-bin=keyward-tpm2-helper=-Wl,--export-dynamic-symbol={symbol}"
        );
    }
}
