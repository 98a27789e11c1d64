#!/usr/bin/env bash
# Whole-process `keyward unlock` with an unattended slot (plain, and a key file found at its
# recorded path), timed with hyperfine against the floor of starting a process at all (`cat` of
# the same key file) in the same run. Prints a Markdown table of medians.
# Needs: apt-get install hyperfine.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "bench-unlock: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
runs=${RUNS:-300}
cargo build --release -q -p keyward
kw=$PWD/target/release/keyward
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export KEYWARD_KEYBOX=$dir/plain.json
"$kw" init --with plain >/dev/null 2>&1
"$kw" --keybox "$dir/keyfile.json" init --with keyfile --keyfile "$dir/machine.key" >/dev/null
hyperfine -N --warmup 20 --runs "$runs" --export-json "$dir/unlock.json" \
  "$kw --keybox $dir/plain.json unlock --out -" \
  "$kw --keybox $dir/keyfile.json unlock --out -" \
  "cat $dir/machine.key" >/dev/null 2>&1
python3 - "$dir/unlock.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
names = ["keyward unlock, plain slot", "keyward unlock, key-file slot", "cat of the key file (process floor)"]
floor = r[2]["median"]
print("| command | median | mean ± σ | vs floor |")
print("|---|---|---|---|")
for name, x in zip(names, r):
    print(f"| {name} | {x['median']*1000:.2f} ms | {x['mean']*1000:.2f} ± {x['stddev']*1000:.2f} ms | {x['median']/floor:.1f}x |")
PY
