#!/usr/bin/env bash
# Installs the Debian packages keyward needs to build: a C toolchain and pkg-config, and the C
# libraries it links with their headers, the TPM2 software stack (tss-esapi) and libcryptsetup
# (libcryptsetup-rs, whose bindings bindgen makes with libclang). Safe to run again: installs
# are skipped when present. Run as root, or with sudo available.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(build-essential pkg-config libtss2-dev libcryptsetup-dev libclang-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
