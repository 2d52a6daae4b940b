#!/usr/bin/env bash
# Durable audit appends over loopback HTTPS: `POST /audit/events` with an API key, each answer
# sent only after its events and their searchable rows are committed with a signed checkpoint,
# with one inclusion proof per event. One event per request (wrk, 256 connections), then bulk
# requests of 100 events (32 connections); three rounds each; medians to bench/results/audit_ingest.json. Logging
# at the production default (info: a line per request and per security event).
source "$(dirname "$0")/lib.sh"
need wrk wrk
build_release
work=$(mktemp -d)
trap 'stop_pid "${palisade_pid:-}"; rm -rf "$work"' EXIT
key="bench-ingest-key-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
start_palisade "$work/palisade" PALISADE_AUDIT__INGEST_KEY_SHA256="[\"$digest\"]"
event='{"action":"payments.refund.issued","outcome":"success","actor":"service-7","details":{"amount":12}}'
duration=${DURATION:-10s}
declare -A rps p99
for batch in 1 100; do
  if [ "$batch" = 1 ]; then body=$event; else
    body="[$(python3 -c "import sys; print(','.join([sys.argv[1]] * int(sys.argv[2])))" "$event" "$batch")]"
  fi
  cat >"$work/ingest.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '$body'
LUA
  for round in 1 2 3; do
    # Bulk clients hold 100 events per connection: fewer connections, the same events in flight.
    connections=$([ "$batch" = 1 ] && echo 256 || echo 32)
    out=$(wrk --latency -t2 -c"$connections" -d"$duration" -s "$work/ingest.lua" "https://$palisade_https/audit/events")
    grep -q "Non-2xx" <<<"$out" && { echo "$out" >&2; echo "ingest answered errors" >&2; exit 1; }
    rps[$batch]+=" $(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p99[$batch]+=" $(awk '$1 == "99%" { v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
      if (unit == "us") v = v / 1000; else if (unit == "s") v = v * 1000; print v }' <<<"$out")"
  done
done
python3 - "$results/audit_ingest.json" "${rps[1]}" "${p99[1]}" "${rps[100]}" "${p99[100]}" <<'PY'
import json, statistics, sys
path, r1, p1, r100, p100 = sys.argv[1:]
f = lambda s: [float(x) for x in s.split()]
doc = {"benchmark": "POST /audit/events over loopback HTTPS (wrk -t2; -c256 single, -c32 bulk; SQLite, synchronous=FULL)",
       "single": {"rounds_requests_per_second": f(r1), "rounds_p99_ms": f(p1),
                  "median_events_per_second": statistics.median(f(r1)), "median_p99_ms": statistics.median(f(p1))},
       "bulk_100": {"rounds_requests_per_second": f(r100), "rounds_p99_ms": f(p100),
                    "median_events_per_second": 100 * statistics.median(f(r100)), "median_p99_ms": statistics.median(f(p100))}}
json.dump(doc, open(path, "w"), indent=2)
print(f"durable events/s, one per request     {doc['single']['median_events_per_second']:.0f} (p99 {doc['single']['median_p99_ms']:.1f} ms)")
print(f"durable events/s, 100 per request     {doc['bulk_100']['median_events_per_second']:.0f} (p99 {doc['bulk_100']['median_p99_ms']:.1f} ms)  (goal >= 20000)")
PY
