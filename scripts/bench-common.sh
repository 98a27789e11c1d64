# Sourced by the bench scripts that start servers: a work folder removed at exit, the servers
# started in the background (their pids in `pids`, killed at exit), free ports on 127.0.0.1,
# and a bounded wait for a port to listen.
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
# The public key an `operator keygen --json` printed.
public_key() { python3 -c 'import json,sys;print(json.load(sys.stdin)["public_key"])'; }
# A swtpm of the bench's own on two free adjacent ports of 127.0.0.1 (commands, control), its
# state in $work/swtpm; exports its TCTI for keyward (KEYWARD_TPM2_DEVICE) and tpm2-tools
# (TPM2TOOLS_TCTI), with the TSS's own logging off.
start_swtpm() {
  local port
  port=$(python3 -c 'import socket
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError: pass')
  mkdir -p "$work/swtpm"
  swtpm socket --tpm2 --flags not-need-init,startup-clear --tpmstate dir="$work/swtpm" \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 &
  pids+=($!)
  export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port" TSS2_LOG=all+NONE
  export KEYWARD_TPM2_DEVICE=$TPM2TOOLS_TCTI
  wait_port "$port"
}
