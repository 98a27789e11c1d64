//! The start-up probes (examples/unlock_*.rs) are linked as keyward's executables are
//! (crates/keyward/build.rs), so that scripts/bench-startup.sh compares like with like.

fn main() {
    println!("cargo:rustc-link-arg-examples=-Wl,-z,pack-relative-relocs");
}
