#!/usr/bin/env bash
# Durable audit appends over loopback HTTPS: `POST /audit/events` with an API key, each answer
# sent only after the event and its searchable row are committed with a signed checkpoint and
# the inclusion proof is computed. wrk, 256 connections, three rounds; medians to
# bench/results/audit_ingest.json. Logging at the production default (info: a line per request
# and per security event).
source "$(dirname "$0")/lib.sh"
need wrk wrk
build_release
work=$(mktemp -d)
trap 'stop_pid "${palisade_pid:-}"; rm -rf "$work"' EXIT
key="bench-ingest-key-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
digest=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
start_palisade "$work/palisade" PALISADE_AUDIT__INGEST_KEY_SHA256="[\"$digest\"]"
cat >"$work/ingest.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '{"action":"payments.refund.issued","outcome":"success","actor":"service-7","details":{"amount":12}}'
LUA
duration=${DURATION:-10s}
rps=() p99=()
for round in 1 2 3; do
  out=$(wrk --latency -t2 -c256 -d"$duration" -s "$work/ingest.lua" "https://$palisade_https/audit/events")
  grep -q "Non-2xx" <<<"$out" && { echo "$out" >&2; echo "ingest answered errors" >&2; exit 1; }
  rps+=("$(awk '/Requests\/sec/ {print $2}' <<<"$out")")
  p99+=("$(awk '$1 == "99%" { v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
    if (unit == "us") v = v / 1000; else if (unit == "s") v = v * 1000; print v }' <<<"$out")")
done
python3 - "$results/audit_ingest.json" "${rps[*]}" "${p99[*]}" <<'PY'
import json, statistics, sys
path, rps, p99 = sys.argv[1:]
rps = [float(x) for x in rps.split()]; p99 = [float(x) for x in p99.split()]
doc = {"benchmark": "POST /audit/events over loopback HTTPS (wrk -t2 -c256, SQLite, synchronous=FULL)",
       "rounds_requests_per_second": rps, "rounds_p99_ms": p99,
       "median_requests_per_second": statistics.median(rps), "median_p99_ms": statistics.median(p99)}
json.dump(doc, open(path, "w"), indent=2)
print(f"durable ingests/s over HTTPS  {doc['median_requests_per_second']:.0f} (goal >= 20000)")
print(f"p99 latency                   {doc['median_p99_ms']:.1f} ms")
PY
