#!/usr/bin/env bash
# keyward luks enroll and rotate against the same work done with cryptsetup's CLI, at equal
# PBKDF parameters, in the same run (docs/BENCHMARKS.md):
#   enroll: luksAddKey (opened by the user's passphrase) + token import;
#   rotate: luksAddKey (opened by the keyslot to replace) + token import + luksKillSlot.
# Each run starts from a fresh copy of a prepared image (hyperfine --prepare, not timed).
# Usage: bash scripts/bench-luks.sh [path/to/keyward]. Needs: apt-get install hyperfine cryptsetup-bin.
set -euo pipefail
for tool in hyperfine cryptsetup; do
  command -v "$tool" >/dev/null || { echo "bench-luks: needs $tool (apt-get install hyperfine cryptsetup-bin)" >&2; exit 1; }
done
keyward=$(realpath "${1:-target/release/keyward}")
[ -x "$keyward" ] || { echo "bench-luks: build keyward first (cargo build --release -p keyward)" >&2; exit 1; }
runs=${RUNS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export KEYWARD_KEYBOX=$work/keybox.json
"$keyward" init --with plain >/dev/null 2>&1

# One PBKDF for every keyslot either tool adds: argon2id, 4 passes, 256 MiB, 2 threads (a
# realistic cost, fixed so no benchmark varies between runs).
kdf=(--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 262144 --pbkdf-parallel 2)
printf '%s' 'user passphrase' > user.pass
printf '%s' 'a second passphrase, as keyward would derive one' > second.pass
printf '%s' 'a third passphrase' > third.pass
truncate -s 20M formatted.img
cryptsetup luksFormat --type luks2 --batch-mode --key-file user.pass "${kdf[@]}" formatted.img
# keyward's enrolled image, and cryptsetup's: keyslot 1 with a token naming it.
cp formatted.img keyward-enrolled.img
"$keyward" luks enroll keyward-enrolled.img --luks-key-file user.pass "${kdf[@]}" >/dev/null
cp formatted.img cryptsetup-enrolled.img
cryptsetup luksAddKey --batch-mode --key-file user.pass --new-keyfile second.pass --new-key-slot 1 "${kdf[@]}" cryptsetup-enrolled.img
"$keyward" luks passphrase keyward-enrolled.img --out - >/dev/null
cryptsetup token export --token-id 0 keyward-enrolled.img > token-1.json
cryptsetup token import --json-file token-1.json --key-slot 1 cryptsetup-enrolled.img
python3 - <<'PY'
import json
t = json.load(open("token-1.json"))
t.update(keyslots=["2"], keyslot=2, sequence=2)
json.dump(t, open("token-2.json", "w"))
PY

hyperfine --runs "$runs" --warmup 1 --export-markdown enroll.md \
  --prepare 'cp formatted.img v.img' \
  -n 'keyward luks enroll' "$keyward luks enroll v.img --luks-key-file user.pass ${kdf[*]}" \
  -n 'cryptsetup luksAddKey + token import' \
  "cryptsetup luksAddKey --batch-mode --key-file user.pass --new-keyfile second.pass --new-key-slot 1 ${kdf[*]} v.img && cryptsetup token import --json-file token-1.json --key-slot 1 v.img" >/dev/null
hyperfine --runs "$runs" --warmup 1 --export-markdown rotate.md \
  --prepare 'cp keyward-enrolled.img k.img && cp cryptsetup-enrolled.img c.img' \
  -n 'keyward luks rotate' "$keyward luks rotate k.img ${kdf[*]}" \
  -n 'cryptsetup luksAddKey + token import + luksKillSlot' \
  "cryptsetup luksAddKey --batch-mode --key-file second.pass --key-slot 1 --new-keyfile third.pass --new-key-slot 2 ${kdf[*]} c.img && cryptsetup token import --json-file token-2.json --key-slot 2 c.img && cryptsetup luksKillSlot --batch-mode c.img 1 && cryptsetup token remove --token-id 0 c.img" >/dev/null
cat enroll.md
echo
cat rotate.md
