# Shared helpers for the benchmark scripts: build, start and stop Palisade and nginx on
# loopback, run wrk, and take medians. Sourced, not run.
set -euo pipefail
bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$bench_dir")
results="$bench_dir/results"
mkdir -p "$results"

need() { # need BINARY PACKAGE
  command -v "$1" >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  }
}

# BENCH_PALISADE_BIN: measure an already built release binary instead of building one.
build_release() {
  if [ -n "${BENCH_PALISADE_BIN:-}" ]; then
    palisade_bin=$BENCH_PALISADE_BIN
    return
  fi
  (cd "$root" && cargo build --release --bin palisade >&2)
  palisade_bin="$root/target/release/palisade"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_palisade WORKDIR [ENV=VALUE ...]: starts the release server with its data in WORKDIR;
# sets palisade_pid, palisade_https and palisade_admin (host:port).
start_palisade() {
  local dir=$1; shift
  mkdir -p "$dir"
  # exec, so that $! is the server itself (its memory is measured through it)
  (cd "$dir" && exec env PALISADE_DATA_DIR="$dir/data" PALISADE_SERVER__HTTPS_LISTEN=127.0.0.1:0 \
    PALISADE_SERVER__HTTP_LISTEN=127.0.0.1:0 PALISADE_SERVER__ADMIN_LISTEN=127.0.0.1:0 \
    PALISADE_LOG__LEVEL=info "$@" "$palisade_bin" serve >"$dir/server.log" 2>&1) &
  palisade_pid=$!
  local deadline=$((SECONDS + 30))
  until grep -q '"palisade listening"' "$dir/server.log" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { cat "$dir/server.log" >&2; echo "palisade did not start" >&2; exit 1; }
    kill -0 "$palisade_pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    sleep 0.1
  done
  local fields
  fields=$(grep '"palisade listening"' "$dir/server.log" | python3 -c 'import json,sys; f = json.loads(sys.stdin.readline())["fields"]; print(f["https"], f["admin"])')
  read -r palisade_https palisade_admin <<<"$fields"
}

# poll_until SECONDS COMMAND...: runs COMMAND until it succeeds; fails after SECONDS.
poll_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wrk_rps ARGS...: runs wrk and prints requests/second.
wrk_rps() { wrk "$@" | awk '/Requests\/sec/ {print $2}'; }

# wrk_p99_ms ARGS...: runs wrk --latency and prints the 99th percentile in milliseconds.
wrk_p99_ms() {
  wrk --latency "$@" | awk '$1 == "99%" {
    v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
    if (unit == "us") v = v / 1000; else if (unit == "s") v = v * 1000; print v }'
}

median() { python3 -c 'import statistics,sys; print(statistics.median([float(x) for x in sys.argv[1:]]))' "$@"; }
