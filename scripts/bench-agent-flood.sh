#!/usr/bin/env bash
# The key agent under attack: legitimate `get`s (in-process, the agent's own client,
# crates/keyward-agent/examples/flood.rs) with nobody else there, then while uid 65534 (refused)
# floods the agent with connections and uid 65533 (allowed) holds 100 half-sent request frames.
# Prints the share served and the median and p99 round trip of each. Run as root: the attackers
# are processes of other uids. N=5000 gets each by default.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench-agent-flood: run as root (the attackers run as other uids)" >&2; exit 1; }
count=${N:-5000}
cargo build --release -q -p keyward
cargo build --release -q -p keyward-agent --example flood
kw=$PWD/target/release/keyward
flood=$PWD/target/release/examples/flood
dir=$(mktemp -d)
chmod 711 "$dir"
mkdir -m 755 "$dir/shared"
export KEYWARD_KEYBOX=$dir/keybox.json
head -c 32 /dev/urandom > "$dir/key"
"$kw" init --with plain --import "$dir/key" >/dev/null 2>&1
"$kw" agent serve --ttl 24h --socket "$dir/shared/agent.sock" --allow uid:0 --allow uid:65533 --audit "$dir/audit.log" 2>/dev/null &
agent=$!
trap 'kill $agent 2>/dev/null; rm -rf "$dir"' EXIT
"$kw" wait "$dir/shared/agent.sock"
"$kw" agent get --socket "$dir/shared/agent.sock" --out - | cmp - "$dir/key"
"$flood" "$dir/shared/agent.sock" 65534 65533 "$count"
echo "audit lines written: $(wc -l < "$dir/audit.log")"
