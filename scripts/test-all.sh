#!/usr/bin/env bash
# Installs what keyward's tests need and runs every test: formatting, lints, the whole test suite
# with cargo-nextest, and a build of every fuzz target. This is the README's test command and
# what CI runs (through .ci/run). Safe to run again: installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the tests and fuzz build use. (Later issues add swtpm, softhsm2, cryptsetup,
# postgresql here.)
packages=(build-essential pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== fuzz targets build"
# Built with coverage but without a sanitizer (-s none), which the stable toolchain supports; this
# proves every target compiles and links against libFuzzer. Long runs happen outside CI
# (fuzz/README.md).
(cd fuzz && cargo fuzz build -s none --target-dir ../target/fuzz)

echo "== tests"
cargo nextest run --workspace --no-fail-fast
