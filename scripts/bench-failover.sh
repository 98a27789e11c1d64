#!/usr/bin/env bash
# Hubs that fail over (issue 23): two hubs of one fleet on one PostgreSQL database, each with a
# certificate of its own, and a box enrolled at both (the first one first).
#  1. The whole `keyward escrow status` (a box-signed request) with both hubs up, with the first
#     hub down (its port refuses connections) and with the first hub hanging (SIGSTOP: its
#     socket still takes connections and nothing answers), each timed by hyperfine in one run.
#  2. Signed pushes (hub_load, 5 s or 20,000 pushes, 10^3 boxes) from 8 connections to one hub,
#     against 4 connections to each of the two hubs at once.
# Needs: apt-get install hyperfine postgresql-client; KEYWARD_BENCH_POSTGRES, an admin URL of a
# PostgreSQL on 127.0.0.1 (scripts/test-all.sh starts one; its URL is KEYWARD_TEST_POSTGRES).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${KEYWARD_BENCH_POSTGRES:-}" ] || { echo "bench-failover: set KEYWARD_BENCH_POSTGRES to a PostgreSQL admin URL" >&2; exit 1; }
for tool in hyperfine psql python3; do
  command -v "$tool" >/dev/null || { echo "bench-failover: needs $tool (apt-get install hyperfine postgresql-client)" >&2; exit 1; }
done
runs=${RUNS:-20}
push_s=${SECONDS_PUSH:-5}
cargo build --release -q -p keyward
cargo build --release -q -p keyward-hub --example hub_seed --example hub_load
kw=$PWD/target/release/keyward
seed=$PWD/target/release/examples/hub_seed
load=$PWD/target/release/examples/hub_load
source scripts/bench-common.sh

cd "$work"
db="kw_bench_failover_$$"
psql "$KEYWARD_BENCH_POSTGRES" -qc "CREATE DATABASE $db" >/dev/null
url="${KEYWARD_BENCH_POSTGRES%/*}/$db"
cert() { python3 -c 'import json,sys;print(json.load(sys.stdin)["certificate_fingerprint"])'; }
op=$("$kw" operator keygen --out op.key --json | public_key)
fa=$("$kw" hub init --data hub-a --operator "$op" --json | cert)
fb=$("$kw" hub init --data hub-b --operator "$op" --json | cert)
pa=$(free_port)
pb=$(free_port)
serve() { # data port
  KEYWARD_DATABASE_URL=$url "$kw" hub serve --data "$1" --listen 127.0.0.1:"$2" \
    --rate-per-source 0 --rate-per-box 0 --max-pending-versions 1000000 2>/dev/null &
  pids+=($!)
  wait_port "$2"
}
serve hub-a "$pa"
hub_a=$!
serve hub-b "$pb"

export KEYWARD_KEYBOX=$work/keybox.json
head -c 32 /dev/urandom > key.bin
"$kw" init --with plain --import key.bin >/dev/null 2>&1
"$kw" operator enroll-token --box bench-box --key op.key --out token.txt >/dev/null
"$kw" escrow enroll --box bench-box --token-file token.txt \
  --hub "https://127.0.0.1:$pa" --hub-fingerprint "$fa" \
  --hub "https://127.0.0.1:$pb" --hub-fingerprint "$fb" >/dev/null

median_ms() { python3 -c 'import json,sys;r=json.load(open(sys.argv[1]))["results"][0];print("%.1f" % (r["median"]*1000))' "$1"; }
timed() { # json-file
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$1" "$kw escrow status" >/dev/null
}
timed up.json
kill -STOP "$hub_a"
timed hang.json
kill -CONT "$hub_a"
kill "$hub_a"
wait "$hub_a" 2>/dev/null || true
timed down.json

up=$(median_ms up.json)
echo "| \`keyward escrow status\`, whole process | median | against both hubs up |"
echo "|---|---|---|"
echo "| both hubs up (the first answers) | $up ms | 1.0× |"
for case in "first hub down (connection refused):down.json" "first hub hanging (SIGSTOP):hang.json"; do
  label=${case%%:*}
  ms=$(median_ms "${case##*:}")
  echo "| $label, the second answers | $ms ms | $(python3 -c "print(f'{$ms/$up:.1f}')")× |"
done

# Throughput: the same database and boxes, one hub against two.
serve hub-a "$pa"
"$seed" "$url" 1000 2>/dev/null
rps() { python3 -c 'import json,sys;print(json.loads(sys.argv[1])["rps"])' "$1"; }
errors() { python3 -c 'import json,sys;print(json.loads(sys.argv[1])["errors"])' "$1"; }
one=$("$load" push "https://127.0.0.1:$pa" "$fa" 1000 --connections 8 --seconds "$push_s" --max 20000)
"$load" push "https://127.0.0.1:$pa" "$fa" 1000 --connections 4 --seconds "$push_s" --max 10000 > a.json &
first=$!
"$load" push "https://127.0.0.1:$pb" "$fb" 1000 --connections 4 --seconds "$push_s" --max 10000 > b.json
wait "$first"
two_a=$(cat a.json)
two_b=$(cat b.json)
echo
echo "| signed pushes, 10^3 boxes, 8 connections | pushes/s | errors |"
echo "|---|---|---|"
echo "| one hub | $(rps "$one") | $(errors "$one") |"
echo "| two hubs, 4 connections each | $(python3 -c "print($(rps "$two_a") + $(rps "$two_b"))") ($(rps "$two_a") + $(rps "$two_b")) | $(( $(errors "$two_a") + $(errors "$two_b") )) |"
