#!/usr/bin/env bash
# Hub throughput and latency: signed fetches and pushes from 8 connections on loopback, with 10^3
# and 10^6 boxes stored, on SQLite (and PostgreSQL when KEYWARD_BENCH_POSTGRES names an admin URL),
# and in the same run tangd's GET /adv (Debian `tang`, one process per connection via socat, as
# packaged) as the reference. Every load is bounded: 10 s or 300,000 requests for fetches, 5 s or
# 20,000 for pushes. Prints a Markdown table. Needs: apt-get install tang socat.
# BOXES="1000 1000000" by default; SECONDS_FETCH / SECONDS_PUSH override the durations.
set -euo pipefail
cd "$(dirname "$0")/.."
boxes_list=${BOXES:-"1000 1000000"}
fetch_s=${SECONDS_FETCH:-10}
push_s=${SECONDS_PUSH:-5}
cargo build --release -q -p keyward
cargo build --release -q -p keyward-hub --example hub_seed --example hub_load
kw=$PWD/target/release/keyward
seed=$PWD/target/release/examples/hub_seed
load=$PWD/target/release/examples/hub_load
source scripts/bench-common.sh

cd "$work"
op=$("$kw" operator keygen --out op.key --json | public_key)
fp=$("$kw" hub init --data hub --operator "$op" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["certificate_fingerprint"])')

# CPU time (user + system, clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
row() { # label json [server-cpu-ticks]
  python3 - "$1" "$2" "${3:-}" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
cpu = "–"
if sys.argv[3] and r['requests']:
    per = int(sys.argv[3]) / int(sys.argv[4]) / r['requests'] * 1e6
    cpu = f"{per:.0f} µs ({2e6 / per:,.0f}/s)"
print(f"| {sys.argv[1]} | {r['rps']:.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {cpu} | {r['requests']} | {r['errors']} |")
PY
}
measure() { # label pid load-args...
  local label=$1 pid=$2 before out
  shift 2
  before=$(cpu_ticks "$pid")
  out=$("$load" "$@")
  row "$label" "$out" "$(( $(cpu_ticks "$pid") - before ))"
}

# "hub CPU per request" is the hub process's own user + system time divided by the requests it
# answered; the figure in brackets is what two cores would serve if the hub had them to itself
# (here the load generator and PostgreSQL share them).
echo "| load | requests/s | p50 | p99 | hub CPU per request (2-core capacity) | requests | errors |"
echo "|---|---|---|---|---|---|---|"
run_store() { # label database-url boxes
  local label=$1 url=$2 n=$3 port
  "$seed" "$url" "$n" 2>/dev/null
  port=$(free_port)
  # No rate limits and no cap on versions waiting for approval: the load pushes to each box many
  # times, and the cost measured is the push's, not the refusal's.
  KEYWARD_DATABASE_URL=$url "$kw" hub serve --data hub --listen 127.0.0.1:"$port" --rate-per-source 0 --rate-per-box 0 --max-pending-versions 1000000 2>/dev/null &
  pids+=($!); local hub=$!
  wait_port "$port"
  measure "$label, $n boxes, signed fetch" "$hub" fetch https://127.0.0.1:"$port" "$fp" "$n" --connections 8 --seconds "$fetch_s" --max 300000
  measure "$label, $n boxes, signed push" "$hub" push https://127.0.0.1:"$port" "$fp" "$n" --connections 8 --seconds "$push_s" --max 20000
  kill "$hub"; wait "$hub" 2>/dev/null || true
}
for n in $boxes_list; do
  run_store "SQLite" "sqlite://$work/hub-$n.db?mode=rwc" "$n"
  if [ -n "${KEYWARD_BENCH_POSTGRES:-}" ]; then
    psql "$KEYWARD_BENCH_POSTGRES" -qc "CREATE DATABASE kw_bench_${n}_$$" >/dev/null
    run_store "PostgreSQL" "${KEYWARD_BENCH_POSTGRES%/*}/kw_bench_${n}_$$" "$n"
  fi
done

if command -v socat >/dev/null && [ -x /usr/libexec/tangd ]; then
  mkdir -p tang && /usr/libexec/tangd-keygen tang >/dev/null 2>&1
  port=$(free_port)
  socat TCP-LISTEN:"$port",bind=127.0.0.1,reuseaddr,fork EXEC:"/usr/libexec/tangd $work/tang" 2>/dev/null &
  pids+=($!)
  wait_port "$port"
  row "tangd GET /adv (reference)" "$("$load" plain http://127.0.0.1:"$port"/adv --connections 8 --seconds "$fetch_s" --max 300000)"
else
  echo "| tangd GET /adv (reference) | not measured: apt-get install tang socat | | | | | |"
fi
