#!/usr/bin/env bash
# The same commands run by two builds of keyward in one hyperfine run: this tree's release build
# and an earlier one (issue 25's "no command slower than today"). Build the earlier one from a
# worktree, for instance:
#   git worktree add /tmp/kw-before 5190a8e
#   (cd /tmp/kw-before && CARGO_TARGET_DIR=/tmp/kw-before-target cargo build --release -p keyward)
#   bash scripts/bench-before-after.sh /tmp/kw-before-target/release/keyward
# Each build works on its own copy of the same keybox: a plain slot, a tpm2 slot on a swtpm the
# script starts on loopback, and a LUKS2 image noted beside it. Every unlock's output is checked
# to be the key before anything is timed. Prints a Markdown table of medians, over ROUNDS rounds
# (5 by default) of RUNS runs each (40 by default).
# Needs: apt-get install hyperfine swtpm tpm2-tools cryptsetup-bin.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "${1:?usage: bench-before-after.sh path/to/earlier/keyward}")
for tool in hyperfine swtpm cryptsetup python3; do
  command -v "$tool" >/dev/null || { echo "bench-before-after: needs $tool (apt-get install hyperfine swtpm tpm2-tools cryptsetup-bin)" >&2; exit 1; }
done
runs=${RUNS:-40}
cargo build --release -q -p keyward
after=$PWD/target/release/keyward
source scripts/bench-common.sh
start_swtpm
dir=$work
cd "$dir"
umask 077
head -c 32 /dev/urandom > key
printf 'bench passphrase, not a secret\n' > passphrase
printf 'bench volume passphrase\n' > volume.pass
truncate -s 20M volume.img
cryptsetup luksFormat --batch-mode --type luks2 --key-file volume.pass --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 volume.img
export KEYWARD_KEYBOX=$dir/keybox.json
"$after" init --with passphrase --passphrase-file passphrase --import key --kdf-time-ms 50 --kdf-memory-mib 19 >/dev/null
"$after" enroll plain --unlock-passphrase-file passphrase >/dev/null
"$after" enroll tpm2 --pcrs 7 --unlock-passphrase-file passphrase >/dev/null
"$after" luks enroll volume.img --luks-key-file volume.pass --pbkdf pbkdf2 --pbkdf-force-iterations 1000 >/dev/null
for kw in "$before" "$after"; do
  "$kw" unlock --slot 2 --out - | cmp - key
  "$kw" unlock --slot 3 --out - | cmp - key
done

names=("keyward --version" "keyward unlock, plain slot" "keyward unlock, tpm2 slot" "keyward status (a LUKS2 volume noted)" "keyward luks status")
commands=("--version" "unlock --slot 2 --out -" "unlock --slot 3 --out -" "status" "luks status volume.img")
args=()
for c in "${commands[@]}"; do args+=("$before $c" "$after $c"); done
# This machine's speed drifts by tens of percent within minutes, and hyperfine times one command's
# runs in a row: so the whole set is timed in several rounds, and each ratio is the median of the
# rounds' ratios, each round's two medians taken minutes apart at most.
rounds=${ROUNDS:-5}
[ "$rounds" -ge 1 ] || { echo "bench-before-after: ROUNDS must be 1 or more" >&2; exit 1; }
for round in $(seq "$rounds"); do
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$dir/h$round.json" "${args[@]}" >/dev/null 2>&1
done
python3 - "$dir" "$rounds" "${names[@]}" <<'PY'
import json, statistics, sys
folder, rounds, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
results = [json.load(open(f"{folder}/h{n}.json"))["results"] for n in range(1, rounds + 1)]
print(f"| command | before | after | before ÷ after (median of {rounds} rounds, lowest–highest) |")
print("|---|---|---|---|")
for i, name in enumerate(names):
    b = [r[2 * i]["median"] * 1000 for r in results]
    a = [r[2 * i + 1]["median"] * 1000 for r in results]
    ratios = [x / y for x, y in zip(b, a)]
    print(f"| {name} | {statistics.median(b):.2f} ms | {statistics.median(a):.2f} ms "
          f"| {statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) |")
PY
