#!/usr/bin/env bash
# The real-time benchmarks (RTM-3..8), on a release build, the load generator
# (bench/realtime-load) in a process of its own spreading its connections over loopback source
# addresses. Every connection is authenticated: Palisade's by an account's session cookie from
# the site's Origin (checked against the database), the peers' by an HS256 token.
#
#   1. Idle memory: the server's resident memory per subscribed connection at 10,000 and
#      19,000 connections (this machine allows 20,000 open files per process).
#   2. Fan-out: deliveries per second to 10,000 subscribers of one channel, Palisade against
#      socket.io (two processes, one per core, sharing the room through its Redis adapter) and
#      a bare Node `ws` server (two processes, the subscribers split evenly), all over TLS with
#      the same certificate, NODE_ENV=production. Palisade's messages are posts made through
#      its API, each stored before it is delivered; the peers store nothing. A message is
#      published once every subscriber has all but 16 of those before it.
#   3. Direct messages: latency from the sender's socket to the receiver's, each message
#      stored before it is delivered, at 1,000, 5,000 and 10,000 messages per second over 100
#      conversations.
#   4. Reconnect storm: 10,000 subscribers lose their connections at once, five posts are made
#      while they are away, and all come back at once, resuming from their last offsets.
#
# A load test sends more from one account than a person would: the per-connection and
# per-user message rates are raised (RTM-6 limits, otherwise at their defaults), and the node
# may hold 19,500 connections. Results: bench/results/realtime.json and realtime.svg.
source "$(dirname "$0")/lib.sh"
need node nodejs
need npm npm
need jq jq
need redis-server redis-server
build_release
(cd "$root" && cargo build --release -p palisade-bench-realtime >&2)
load="$root/target/release/palisade-bench-realtime"
(cd "$bench_dir/realtime-peers" && { [ -d node_modules/socket.io ] || npm ci --no-audit --no-fund --silent; })
ulimit -n 20000
work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
pids=()
trap 'stop_pid "${palisade_pid:-}"; for p in "${pids[@]}"; do stop_pid "$p"; done; rm -rf "$work"' EXIT

subscribers=${SUBSCRIBERS:-10000}
start_palisade "$work/p" PALISADE_LOG__LEVEL="warn,palisade::cmd::serve=info" \
  PALISADE_REALTIME__MAX_CONNECTIONS=19500 PALISADE_REALTIME__MESSAGES_PER_MINUTE=60000 \
  PALISADE_REALTIME__USER_MESSAGES_PER_MINUTE=60000
ca="$work/p/data/tls/dev-ca.pem"
base="https://localhost:${palisade_https##*:}"
client_id=$(PALISADE_DATA_DIR="$work/p/data" PALISADE_LOG__LEVEL=warn "$palisade_bin" clients create \
  --name bench-realtime --auth-method none --grant authorization_code \
  --redirect-uri https://bench.invalid/cb --scope social:read --scope social:write --scope messages |
  jq -r .client_id)

echo "== accounts" >&2
# 600 accounts: 19,000 connections within the default 32 per account.
"$load" setup --ca "$ca" --base "$base" --accounts 600 --client-id "$client_id" --out "$work/population.json" >&2
echo "== idle memory" >&2
"$load" memory --ca "$ca" --population "$work/population.json" --pid "$palisade_pid" \
  --metrics "http://$palisade_admin/metrics" --counts 10000,19000 >"$work/memory.json"
echo "== fan-out: Palisade" >&2
"$load" fanout --ca "$ca" --subscribers "$subscribers" palisade --population "$work/population.json" \
  >"$work/fanout-palisade.json"
echo "== direct-message latency" >&2
"$load" latency --ca "$ca" --population "$work/population.json" --rates 1000,5000,10000 \
  >"$work/latency.json"
echo "== reconnect storm" >&2
"$load" storm --ca "$ca" --population "$work/population.json" --clients "$subscribers" >"$work/storm.json"
stop_pid "$palisade_pid"; palisade_pid=

# wait_for LOG PID: until the process logs that it listens.
wait_for() {
  local deadline=$((SECONDS + 30))
  until grep -q '^listening' "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] && kill -0 "$2" 2>/dev/null || { cat "$1" >&2; exit 1; }
    sleep 0.1
  done
}
secret=$(head -c 32 /dev/urandom | base64 -w0)
# peer SCRIPT [ENV=VALUE ...]: one process per core; sets ports.
peer() {
  local script=$1; shift
  ports=()
  for i in $(seq "$(nproc)"); do
    local port; port=$(free_port)
    (cd "$bench_dir/realtime-peers" && exec env NODE_ENV=production PORT="$port" BENCH_SECRET="$secret" \
      BENCH_CERT="$work/p/data/tls/dev-cert.pem" BENCH_KEY="$work/p/data/tls/dev-key.pem" "$@" \
      node "$script" >"$work/$script.$i.log" 2>&1) &
    pids+=($!)
    wait_for "$work/$script.$i.log" $!
    ports+=("$port")
  done
}
stop_peers() { for p in "${pids[@]}"; do stop_pid "$p"; done; pids=(); }

echo "== fan-out: ws" >&2
peer ws-server.mjs
"$load" fanout --ca "$ca" --subscribers "$subscribers" peer --flavor ws \
  --ports "$(IFS=,; echo "${ports[*]}")" --secret "$secret" >"$work/fanout-ws.json"
stop_peers

echo "== fan-out: socket.io" >&2
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
poll_until 30 redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { cat "$work/redis.log" >&2; exit 1; }
peer socketio-server.mjs REDIS_URL="redis://127.0.0.1:$redis_port"
"$load" fanout --ca "$ca" --subscribers "$subscribers" peer --flavor socketio \
  --ports "$(IFS=,; echo "${ports[*]}")" --secret "$secret" >"$work/fanout-socketio.json"
stop_peers

versions=$(cd "$bench_dir/realtime-peers" && node -p '["socket.io","ws","@socket.io/redis-adapter"].map(p => p + " " + require(p + "/package.json").version).join(", ") + ", Node " + process.versions.node')
python3 - "$results/realtime.json" "$work" "$versions" "$(nproc)" <<'PY'
import json, sys
out, work, versions, cores = sys.argv[1:]
load = lambda name: json.load(open(f"{work}/{name}.json"))
fanout = {name: load(f"fanout-{name}") for name in ("palisade", "ws", "socketio")}
best_peer = max(fanout["ws"]["median"], fanout["socketio"]["median"])
doc = {
    "memory": load("memory"),
    "fanout": fanout,
    "fanout_ratio_to_faster_peer": fanout["palisade"]["median"] / best_peer,
    "latency": load("latency"),
    "storm": load("storm"),
    "peers": {"versions": versions, "processes": int(cores), "NODE_ENV": "production"},
}
json.dump(doc, open(out, "w"), indent=2)
print(json.dumps(doc, indent=2))

# Two panels: fan-out deliveries per second, and latency percentiles by rate.
w, h = 760, 300
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         '<text x="20" y="20" font-weight="bold">Fan-out to 10,000 subscribers (deliveries/s, median)</text>']
bars = [("Palisade", fanout["palisade"]["median"], "#2b6cb0"), ("ws ×2", fanout["ws"]["median"], "#999"),
        ("socket.io ×2 + Redis", fanout["socketio"]["median"], "#bbb")]
top = max(v for _, v, _ in bars)
for i, (label, value, colour) in enumerate(bars):
    y = 40 + i * 40
    width = 220 * value / top
    parts.append(f'<text x="20" y="{y + 18}">{label}</text>')
    parts.append(f'<rect x="150" y="{y}" width="{width:.0f}" height="26" fill="{colour}"/>')
    parts.append(f'<text x="{155 + width:.0f}" y="{y + 18}">{value:,.0f}</text>')
parts.append('<text x="420" y="20" font-weight="bold">Direct-message latency (ms)</text>')
rates = doc["latency"]["rates"]
peak = max(max(r["p99_ms"] for r in rates), 5.0)
for i, r in enumerate(rates):
    x = 440 + i * 100
    for j, (key, colour) in enumerate((("p50_ms", "#90cdf4"), ("p99_ms", "#2b6cb0"))):
        height = 200 * r[key] / peak
        parts.append(f'<rect x="{x + j * 34}" y="{250 - height:.0f}" width="30" height="{height:.0f}" fill="{colour}"/>')
        parts.append(f'<text x="{x + j * 34}" y="{245 - height:.0f}" font-size="10">{r[key]:.2f}</text>')
    parts.append(f'<text x="{x}" y="270">{r["rate"]:,}/s</text>')
goal = 250 - 200 * 5.0 / peak
parts.append(f'<line x1="430" x2="{w - 10}" y1="{goal:.0f}" y2="{goal:.0f}" stroke="#c53030" stroke-dasharray="4"/>')
parts.append(f'<text x="{w - 90}" y="{goal - 4:.0f}" fill="#c53030">p99 goal 5 ms</text>')
parts.append('<text x="440" y="290" font-size="10">light: p50, dark: p99</text>')
parts.append("</svg>")
open(out.replace(".json", ".svg"), "w").write("\n".join(parts) + "\n")
PY
