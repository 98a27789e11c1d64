#!/usr/bin/env bash
# The fleet view at scale (issue 24): the whole `keyward operator fleet --json` (every page of
# `GET /v1/fleet`, each box judged) against a hub on SQLite holding 10^3 and 10^4 boxes, each with
# an active escrow and a drill report of 5 paths; and, in the same run, the floor: sqlite3 reading
# the same rows straight from the hub's database file (no TLS, no signing, no judging). Each is
# timed by hyperfine. Prints a Markdown table. Needs: apt-get install hyperfine sqlite3.
# BOXES="1000 10000" by default; RUNS overrides hyperfine's run count (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine sqlite3 python3; do
  command -v "$tool" >/dev/null || { echo "bench-fleet: needs $tool (apt-get install hyperfine sqlite3)" >&2; exit 1; }
done
boxes_list=${BOXES:-"1000 10000"}
runs=${RUNS:-10}
cargo build --release -q -p keyward
cargo build --release -q -p keyward-hub --example hub_seed
kw=$PWD/target/release/keyward
seed=$PWD/target/release/examples/hub_seed
source scripts/bench-common.sh

cd "$work"
op=$("$kw" operator keygen --out op.key --json | public_key)
fp=$("$kw" hub init --data hub --operator "$op" --json | python3 -c 'import json,sys;print(json.load(sys.stdin)["certificate_fingerprint"])')
median_ms() { python3 -c 'import json,sys;r=json.load(open(sys.argv[1]))["results"][0];print("%.1f" % (r["median"]*1000))' "$1"; }

# What the fleet reads of each box, as one query (the floor: one process, no per-box round trips).
floor_sql="SELECT b.name, e.version, e.state, e.fingerprint, d.path_id, d.state, d.detail, d.at FROM boxes b LEFT JOIN escrows e ON e.box_name = b.name LEFT JOIN drill_paths d ON d.box_name = b.name ORDER BY b.name"

echo "| boxes at the hub | \`keyward operator fleet --json\`, whole process | sqlite3 reading the same rows | ratio | per box |"
echo "|---|---|---|---|---|"
for n in $boxes_list; do
  rm -rf hub/hub.db*
  db="sqlite://$work/hub/hub.db?mode=rwc"
  "$seed" "$db" "$n" 2>/dev/null
  # A drill report of 5 paths per box, the newest an hour old.
  sqlite3 hub/hub.db "INSERT INTO drill_paths (box_name, path_id, name, state, detail, at) SELECT b.name, p.id, 'path ' || p.id, 'ok', 'opens; key 1a:2b:3c:4d:5e:6f:70:81', strftime('%s','now') - 3600 FROM boxes b, (SELECT 'slot:1' AS id UNION ALL SELECT 'slot:2' UNION ALL SELECT 'escrow' UNION ALL SELECT 'offline-fallback' UNION ALL SELECT 'luks:0b1c') p"
  port=$(free_port)
  KEYWARD_DATABASE_URL=$db "$kw" hub serve --data hub --listen 127.0.0.1:"$port" \
    --rate-per-source 0 --rate-per-box 0 2>/dev/null &
  pid=$!
  pids+=("$pid")
  wait_port "$port"
  fleet="$kw --json operator fleet --key op.key --hub https://127.0.0.1:$port --hub-fingerprint $fp"
  listed=$($fleet | python3 -c 'import json,sys;print(len(json.load(sys.stdin)["boxes"]))')
  [ "$listed" = "$n" ] || { echo "bench-fleet: the fleet listed $listed of $n boxes" >&2; exit 1; }
  hyperfine -N --warmup 1 --runs "$runs" --export-json fleet.json "$fleet" >/dev/null
  hyperfine -N --warmup 1 --runs "$runs" --export-json floor.json "sqlite3 hub/hub.db \"$floor_sql\"" >/dev/null
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  f=$(median_ms fleet.json)
  s=$(median_ms floor.json)
  echo "| $n ($(( (n + 499) / 500 )) page(s)) | $f ms | $s ms | $(python3 -c "print(f'{$f/$s:.1f}')")× | $(python3 -c "print(f'{$f*1000/$n:.0f}')") µs |"
done
