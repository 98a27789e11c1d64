#!/usr/bin/env bash
# Installs what keyward's tests need and runs every test: formatting, lints, the whole test suite
# with cargo-nextest, and a build of every fuzz target. This is the README's test command and
# what CI runs (through .ci/run). Safe to run again: installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: what keyward builds with (scripts/build-deps.sh), and what the tests use:
# PostgreSQL for the hub's scale-out store; SoftHSM2 for the pkcs11 slot; swtpm and tpm2-tools
# for the tpm2 slot; the cryptsetup CLI, which the LUKS2 tests check image files with, and
# e2fsprogs, whose mkfs.ext4 makes the filesystem a header restore must refuse; gdb for
# the agent's ptrace test, systemd for its socket-activation test and `systemd-analyze verify`
# of the drill's units, zbar-tools to decode the recovery sheet's QR code, chromium to look at the fleet dashboard (setpriv, for its other-uid
# tests, is in util-linux). A test that needs one and does not find it fails, naming the
# package.
bash scripts/build-deps.sh postgresql softhsm2 swtpm swtpm-tools tpm2-tools cryptsetup-bin e2fsprogs gdb systemd zbar-tools chromium

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# A build of everything below takes some gigabytes; a linker that runs out of disk dies of SIGBUS,
# which says nothing about disk, so the log starts with how much there is.
echo "== disk free where the build goes: $(df -h --output=avail . | tail -n 1 | tr -d ' ')"
if [ "${CI:-}" = "true" ]; then
  # A fresh clone builds everything once: incremental state would only take disk.
  export CARGO_INCREMENTAL=0
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
if [ "${CI:-}" = "true" ]; then
  # Nothing below uses the fuzz build; CI gives its disk back to the test build.
  rm -rf target/fuzz
fi

echo "== PostgreSQL for the hub tests (a private cluster on 127.0.0.1, removed afterwards)"
# Tests that need PostgreSQL read KEYWARD_TEST_POSTGRES and fail, naming it, when it is missing.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
pg_data=$(mktemp -d /tmp/keyward-pg.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" -eq 0 ]; then chown postgres "$pg_data"; fi
stop_pg() { as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pg_data"; }
trap stop_pg EXIT
as_pg "$pg_bin/initdb" -D "$pg_data" -A trust -U keyward >/dev/null
# The first free port from 55432 (a leftover server, or the distribution's own, may hold one).
pg_port=""
for port in $(seq 55432 55451); do
  if as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_data -c max_connections=300" start >/dev/null 2>&1; then
    pg_port=$port
    break
  fi
done
[ -n "$pg_port" ] || { echo "could not start PostgreSQL on 127.0.0.1:55432-55451:" >&2; cat "$pg_data/log" >&2; exit 1; }
export KEYWARD_TEST_POSTGRES="postgres://keyward@127.0.0.1:$pg_port/postgres"

echo "== tests"
cargo nextest run --workspace --no-fail-fast
