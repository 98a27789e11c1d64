#!/usr/bin/env bash
# 3-of-5 peer recovery, whole process, on loopback: `keyward unlock --slot peers` (the box after
# a restart, proving its identity) and `keyward recover --peers` (a fresh machine with an
# operator's release ticket; a new ticket is signed before each run, outside the timing), and in
# the same run the reference `clevis decrypt` of an sss pin t=3 over 5 tangd servers (one tangd
# process per connection via socat, as packaged). hyperfine, 5 warm-up runs, RUNS (30) timed runs
# each. Needs: apt-get install hyperfine clevis tang socat. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-30}
for tool in hyperfine clevis socat; do
  command -v "$tool" >/dev/null || { echo "bench-peers.sh needs $tool (apt-get install hyperfine clevis tang socat)" >&2; exit 1; }
done
[ -x /usr/libexec/tangd ] || { echo "bench-peers.sh needs tangd (apt-get install tang)" >&2; exit 1; }
cargo build --release -q -p keyward
kw=$PWD/target/release/keyward
source scripts/bench-common.sh
cd "$work"
export HOME=$work KEYWARD_KEYBOX=$work/keybox.json

op=$("$kw" operator keygen --out op.key --json | public_key)
cards=()
for i in 1 2 3 4 5; do
  port=$(free_port)
  "$kw" peer init --data "peer$i" --url "https://127.0.0.1:$port" --operator "$op" >/dev/null
  "$kw" peer serve --data "peer$i" --listen "127.0.0.1:$port" 2>/dev/null &
  pids+=($!)
  wait_port "$port"
  cards+=("peer$i/peer-card.json")
done
head -c 32 /dev/urandom > key.bin
"$kw" init --with plain --import key.bin >/dev/null 2>&1
peer_args=(); for c in "${cards[@]}"; do peer_args+=(--peer "$c"); done
"$kw" operator enroll-token --box bench --key op.key --out token.txt >/dev/null
"$kw" enroll peers --threshold 3 --box bench --token-file token.txt "${peer_args[@]}" >/dev/null 2>&1

mkdir -p tang && /usr/libexec/tangd-keygen tang >/dev/null 2>&1
tang_urls=()
for i in 1 2 3 4 5; do
  port=$(free_port)
  socat TCP-LISTEN:"$port",bind=127.0.0.1,reuseaddr,fork EXEC:"/usr/libexec/tangd $work/tang" 2>/dev/null &
  pids+=($!)
  wait_port "$port"
  tang_urls+=("{\"url\":\"http://127.0.0.1:$port\"}")
done
pin="{\"t\":3,\"pins\":{\"tang\":[$(IFS=,; echo "${tang_urls[*]}")]}}"
clevis encrypt sss "$pin" -y < key.bin > key.jwe

req=$("$kw" operator keygen --out requester.key --json | public_key)
fp=$("$kw" fingerprint --short)
cat > ticket.sh <<SH
rm -f $work/t.txt && "$kw" operator approve-release --box bench --key $work/op.key --requester $req --out $work/t.txt >/dev/null
SH
hyperfine -N --warmup 5 --runs "$runs" --export-json times.json \
  -n unlock "$kw unlock --slot peers-2 --out -" \
  -n recover --prepare "sh $work/ticket.sh" "$kw recover --peers ${cards[*]} --box bench --ticket-file $work/t.txt --requester-key $work/requester.key --expect-fingerprint $fp --out -" \
  -n clevis "sh -c 'clevis decrypt < $work/key.jwe > /dev/null'" >/dev/null 2>&1
python3 - times.json <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ref = r["clevis"]["median"]
print("| command | median | mean ± sd | vs clevis |")
print("|---|---|---|---|")
for name, label in [("unlock", "keyward unlock --slot peers (3 of 5, identity proof)"),
                    ("recover", "keyward recover --peers (3 of 5, release ticket)"),
                    ("clevis", "clevis decrypt, sss t=3 over 5 tangd (reference)")]:
    x = r[name]
    print(f"| {label} | {x['median']*1000:.1f} ms | {x['mean']*1000:.1f} ± {x['stddev']*1000:.1f} ms | {ref / x['median']:.1f}× |")
PY
