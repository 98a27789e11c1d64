#!/usr/bin/env bash
# Unattended `keyward unlock` through a tpm2 slot (PCR 7), whole process, on a swtpm of its own,
# against the same work done two other ways on the same swtpm in the same run: `clevis decrypt`
# of a tpm2 pin (PCR 7) and the bare tpm2-tools sequence (createprimary + load + unseal). swtpm
# has no resource manager and three object slots, and each tool leaves what it loaded, so the
# tpm2-tools sequence flushes objects after each step and the policy session at the end
# (`tpm2_flushcontext -t`, `-l`); a bare flush is timed too, so the four flushes' share can be
# taken out. Every command's output is checked to be the key before anything is timed. Prints a
# Markdown table of medians.
# Needs: apt-get install hyperfine swtpm tpm2-tools clevis clevis-tpm2.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine swtpm tpm2_createprimary clevis; do
  command -v "$tool" >/dev/null || { echo "bench-tpm2: needs $tool (apt-get install hyperfine swtpm tpm2-tools clevis clevis-tpm2)" >&2; exit 1; }
done
runs=${RUNS:-100}
cargo build --release -q -p keyward
kw=$PWD/target/release/keyward
source scripts/bench-common.sh
start_swtpm
dir=$work
cd "$dir"
umask 077

# keyward: a keybox with a passphrase slot and a tpm2 slot on PCR 7.
head -c 32 /dev/urandom > key
printf 'bench passphrase, not a secret\n' > passphrase
export KEYWARD_KEYBOX=$dir/keybox.json
"$kw" init --with passphrase --passphrase-file passphrase --import key --kdf-time-ms 50 --kdf-memory-mib 19 >/dev/null
"$kw" enroll tpm2 --tpm2-device "$TPM2TOOLS_TCTI" --pcrs 7 --unlock-passphrase-file passphrase >/dev/null
"$kw" unlock --slot 2 --out - | cmp - key

# clevis: the same key in a tpm2 pin bound to PCR 7.
clevis encrypt tpm2 '{"pcr_bank":"sha256","pcr_ids":"7"}' < key > key.jwe
clevis decrypt < key.jwe | cmp - key

# tpm2-tools: a sealed object under the same ECC storage primary, with a PCR 7 policy.
tpm2_createprimary -Q -C o -G ecc -c primary.ctx
tpm2_createpolicy -Q --policy-pcr -l sha256:7 -L policy.dat
tpm2_create -Q -C primary.ctx -L policy.dat -i key -u seal.pub -r seal.priv
tpm2_flushcontext -t
tpm2_flushcontext -l
cat > tools.sh <<'SH'
set -e
tpm2_createprimary -Q -C o -G ecc -c primary.ctx; tpm2_flushcontext -t
tpm2_load -Q -C primary.ctx -u seal.pub -r seal.priv -c seal.ctx; tpm2_flushcontext -t
tpm2_unseal -c seal.ctx -p pcr:sha256:7; tpm2_flushcontext -t; tpm2_flushcontext -l
SH
bash tools.sh | cmp - key
# The same under the storage key keyward kept at the SRK handle (no createprimary).
tpm2_create -Q -C 0x81000001 -L policy.dat -i key -u seal-srk.pub -r seal-srk.priv
tpm2_flushcontext -t
tpm2_flushcontext -l
cat > tools-srk.sh <<'SH'
set -e
tpm2_load -Q -C 0x81000001 -u seal-srk.pub -r seal-srk.priv -c seal.ctx; tpm2_flushcontext -t
tpm2_unseal -c seal.ctx -p pcr:sha256:7; tpm2_flushcontext -t; tpm2_flushcontext -l
SH
bash tools-srk.sh | cmp - key

hyperfine -N --warmup 5 --runs "$runs" --export-json "$dir/tpm2.json" \
  "$kw unlock --slot 2 --out -" \
  "bash -c 'clevis decrypt < key.jwe'" \
  "bash tools.sh" \
  "bash tools-srk.sh" \
  "tpm2_flushcontext -t" >/dev/null
python3 - "$dir/tpm2.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ms = lambda x: x["median"] * 1000
kw, clevis, tools, tools_srk, flush = r
print("| command | median | mean ± σ | ratio (reference ÷ keyward) |")
print("|---|---|---|---|")
print(f"| keyward unlock, tpm2 slot (PCR 7) | {ms(kw):.1f} ms | {kw['mean']*1000:.1f} ± {kw['stddev']*1000:.1f} ms | 1 |")
print(f"| clevis decrypt, tpm2 pin (PCR 7) | {ms(clevis):.1f} ms | {clevis['mean']*1000:.1f} ± {clevis['stddev']*1000:.1f} ms | {ms(clevis)/ms(kw):.1f}x |")
print(f"| tpm2-tools createprimary + load + unseal, each with a flushcontext | {ms(tools):.1f} ms | {tools['mean']*1000:.1f} ± {tools['stddev']*1000:.1f} ms | {ms(tools)/ms(kw):.1f}x |")
print(f"| the same, less four bare `tpm2_flushcontext -t` ({ms(flush):.1f} ms each) | {ms(tools)-4*ms(flush):.1f} ms | | {(ms(tools)-4*ms(flush))/ms(kw):.1f}x |")
print(f"| tpm2-tools load + unseal under the SRK at 0x81000001 (as keyward), each with a flushcontext | {ms(tools_srk):.1f} ms | {tools_srk['mean']*1000:.1f} ± {tools_srk['stddev']*1000:.1f} ms | {ms(tools_srk)/ms(kw):.1f}x |")
print(f"| the same, less three bare flushes | {ms(tools_srk)-3*ms(flush):.1f} ms | | {(ms(tools_srk)-3*ms(flush))/ms(kw):.1f}x |")
PY
