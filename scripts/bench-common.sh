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
