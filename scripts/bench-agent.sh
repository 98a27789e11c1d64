#!/usr/bin/env bash
# The key agent's cached `get`: in-process (the agent's client in a bounded loop, one connection
# per request, examples/roundtrip.rs) and whole process (`keyward agent get --out -`,
# hyperfine), against `keyctl pipe` of a `user` key of the same size in the same run. Every
# command's output is checked to be the key before anything is timed. Prints a Markdown table.
# Needs: apt-get install hyperfine keyutils.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine keyctl python3; do
  command -v "$tool" >/dev/null || { echo "bench-agent: needs $tool (apt-get install hyperfine keyutils)" >&2; exit 1; }
done
runs=${RUNS:-500}
cargo build --release -q -p keyward
cargo build --release -q -p keyward-agent --example roundtrip
kw=$PWD/target/release/keyward
roundtrip=$PWD/target/release/examples/roundtrip
dir=$(mktemp -d)
cd "$dir"
umask 077
export KEYWARD_KEYBOX=$dir/keybox.json
head -c 32 /dev/urandom > key
"$kw" init --with plain --import key >/dev/null 2>&1
"$kw" agent serve --ttl 24h --socket "$dir/agent.sock" --audit "$dir/audit.log" 2>/dev/null &
agent=$!
keyid=$(keyctl padd user "keyward-bench-$$" @u < key)
trap 'kill $agent 2>/dev/null; keyctl unlink "$keyid" @u >/dev/null 2>&1; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$dir/agent.sock" ] && break; sleep 0.05; done

"$kw" agent get --socket "$dir/agent.sock" --out - | cmp - key
keyctl pipe "$keyid" | cmp - key

in_process=$("$roundtrip" "$dir/agent.sock" 20000)
hyperfine -N --warmup 50 --runs "$runs" --export-json "$dir/h.json" \
  -n 'keyward agent get --out -' "$kw agent get --socket $dir/agent.sock --out -" \
  -n 'keyctl pipe' "keyctl pipe $keyid" >&2
python3 - "$dir/h.json" "$in_process" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ms = lambda name: results[name]["median"] * 1000
agent, keyctl = ms("keyward agent get --out -"), ms("keyctl pipe")
print("| what | median | ratio |")
print("|---|---|---|")
print(f"| in-process round trip (agent client, one connection per get) | {sys.argv[2]} | |")
print(f"| `keyward agent get --out -` (whole process) | {agent:.2f} ms | {agent / keyctl:.2f}× `keyctl pipe` |")
print(f"| `keyctl pipe` (same 32-byte key, `user` key in @u) | {keyctl:.2f} ms | 1 |")
PY
