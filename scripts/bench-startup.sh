#!/usr/bin/env bash
# What starting keyward costs, and where it goes (issue 25): the whole `keyward --version` and
# `keyward unlock` of a plain slot, against the floor of starting a process at all (`cat` of the
# key file), and a hello-world Rust program built the way keyward is (PIE, full RELRO) linked to
# nothing more, to the TPM stack (libtss2-esys, -tctildr, -mu), to libcryptsetup, and to both:
# what each set of shared libraries adds to every process that loads them, whatever it does.
# And keyward's unlock path alone, in executables that hold nothing else (crates/keyward's
# examples unlock_core_kinds and unlock_every_kind): what the rest of keyward's code adds to the
# start of every command. All timed by hyperfine in rounds (below), with the page faults of each
# (perf stat). Prints a Markdown table. Needs: apt-get install hyperfine linux-perf, and the -dev packages
# scripts/build-deps.sh installs (libtss2-dev, libcryptsetup-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine perf rustc python3; do
  command -v "$tool" >/dev/null || { echo "bench-startup: needs $tool (apt-get install hyperfine linux-perf)" >&2; exit 1; }
done
runs=${RUNS:-100}
cargo build --release -q -p keyward
cargo build --release -q -p keyward --example unlock_core_kinds --example unlock_every_kind
examples=$PWD/target/release/examples
kw=$PWD/target/release/keyward
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

echo 'fn main() { println!("hello"); }' > hello.rs
hello() { # name libraries...
  local name=$1
  shift
  local args=(-O -C link-arg=-Wl,-z,relro,-z,now -C link-arg=-Wl,--no-as-needed)
  for lib in "$@"; do args+=(-C "link-arg=-l$lib"); done
  rustc "${args[@]}" hello.rs -o "$name"
}
hello hello-bare
hello hello-tss tss2-esys tss2-tctildr tss2-mu
hello hello-cryptsetup cryptsetup
hello hello-all tss2-esys tss2-tctildr tss2-mu cryptsetup

export KEYWARD_KEYBOX=$dir/plain.json
head -c 32 /dev/urandom > key.bin
"$kw" init --with plain --import key.bin >/dev/null 2>&1
[ "$("$kw" unlock --out - | od -An -tx1)" = "$(od -An -tx1 key.bin)" ] || { echo "bench-startup: unlock gave another key" >&2; exit 1; }

for probe in unlock_core_kinds unlock_every_kind; do
  [ "$("$examples/$probe" plain.json | od -An -tx1)" = "$(od -An -tx1 key.bin)" ] || { echo "bench-startup: $probe gave another key" >&2; exit 1; }
done

names=("cat of the key file (process floor)" "hello world, no library" "hello world + the TPM stack" "hello world + libcryptsetup" "hello world + both" "the unlock path alone, keyward-core's kinds" "the unlock path alone, every kind" "keyward --version" "keyward unlock, plain slot")
commands=("cat key.bin" ./hello-bare ./hello-tss ./hello-cryptsetup ./hello-all "$examples/unlock_core_kinds plain.json" "$examples/unlock_every_kind plain.json" "$kw --version" "$kw unlock --out -")
# The machine's speed drifts within minutes and hyperfine times one command's runs in a row, so
# the set is timed in ROUNDS rounds (5 by default) and each ratio is the median of the rounds'.
rounds=${ROUNDS:-5}
[ "$rounds" -ge 1 ] || { echo "bench-startup: ROUNDS must be 1 or more" >&2; exit 1; }
for round in $(seq "$rounds"); do
  hyperfine -N --warmup 20 --runs "$runs" --export-json "startup$round.json" "${commands[@]}" >/dev/null 2>&1
done
faults=()
for c in "${commands[@]}"; do
  # shellcheck disable=SC2086
  faults+=("$(perf stat -x, -e page-faults -r 20 $c 2>&1 >/dev/null | awk -F, '/page-faults/{print $1}')")
done
python3 - "$rounds" "${names[@]}" -- "${faults[@]}" <<'PY'
import json, statistics, sys
rounds, args = int(sys.argv[1]), sys.argv[2:]
split = args.index("--")
names, faults = args[:split], args[split + 1:]
results = [json.load(open(f"startup{n}.json"))["results"] for n in range(1, rounds + 1)]
print(f"| process | median | vs the floor (median of {rounds} rounds, lowest–highest) | page faults |")
print("|---|---|---|---|")
for i, (name, f) in enumerate(zip(names, faults)):
    times = [r[i]["median"] * 1000 for r in results]
    ratios = [r[i]["median"] / r[0]["median"] for r in results]
    print(f"| {name} | {statistics.median(times):.2f} ms | {statistics.median(ratios):.2f}× "
          f"({min(ratios):.2f}–{max(ratios):.2f}) | {f} |")
PY
