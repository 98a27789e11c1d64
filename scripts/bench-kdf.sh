#!/usr/bin/env bash
# KDF speed at equal parameters, keyward-core (RustCrypto) vs the C references, as whole
# processes, in one run on this machine: the Debian `argon2` CLI for argon2id and `openssl kdf`
# for scrypt. Checks that both sides derive the same bytes, then times them with hyperfine and
# prints a Markdown table of medians and ratios (reference time / keyward time: >1 means keyward
# is faster). Needs: apt-get install argon2 hyperfine openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in argon2:argon2 hyperfine:hyperfine openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null || { echo "bench-kdf: needs ${tool%%:*} (apt-get install ${tool#*:})" >&2; exit 1; }
done
runs=${RUNS:-7}
cargo build --release -q -p keyward-core --example kdf
kdf=target/release/examples/kdf
salt=keywardbenchsalt
pass=benchmark-password
cores=$(nproc)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

row() { # name keyward-cmd reference-cmd
  local name=$1 ours=$2 ref=$3
  local a b
  a=$(bash -c "$ours")
  b=$(bash -c "$ref" | tr -d ':\n ' | tr 'A-F' 'a-f')
  if [ "$a" != "$b" ]; then echo "MISMATCH for $name: $a vs $b" >&2; exit 1; fi
  # Both commands run under the same shell, so its start-up cost is on both sides.
  hyperfine --warmup 1 --runs "$runs" --export-json "$out/$name.json" "$ours" "$ref" >/dev/null
  python3 - "$name" "$out/$name.json" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))["results"]
ours, ref = r[0]["median"], r[1]["median"]
print(f"| {name} | {ours*1000:.0f} ms | {ref*1000:.0f} ms | {ref/ours:.2f}x |")
PY
}

echo "| parameters | keyward-core | reference | ratio |"
echo "|---|---|---|---|"
for p in 1 "$cores"; do
  row "argon2id m=256MiB t=3 p=$p" \
    "printf %s $pass | $kdf argon2id $salt 262144 3 $p" \
    "printf %s $pass | argon2 $salt -id -t 3 -k 262144 -p $p -l 32 -r"
done
row "scrypt N=2^16 r=8 p=1" \
  "printf %s $pass | $kdf scrypt $salt 16 8 1" \
  "openssl kdf -keylen 32 -kdfopt pass:$pass -kdfopt salt:$salt -kdfopt n:65536 -kdfopt r:8 -kdfopt p:1 SCRYPT"
row "scrypt N=2^16 r=8 p=$cores" \
  "printf %s $pass | $kdf scrypt $salt 16 8 $cores" \
  "openssl kdf -keylen 32 -kdfopt pass:$pass -kdfopt salt:$salt -kdfopt n:65536 -kdfopt r:8 -kdfopt p:$cores SCRYPT"
