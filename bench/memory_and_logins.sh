#!/usr/bin/env bash
# Idle resident memory of the server; logins per second with the default argon2id parameters;
# and the p99 latency of /healthz while 200 concurrent wrong logins flood the server.
# The flood (bench/login_flood.py) makes each attempt on a new connection from a new loopback
# address (127.x.y.z) for a made-up account: a distributed attack that per-account and
# per-address back-off cannot stop, the worst case for the server, since every attempt it
# admits costs a full password hash; the answers are counted by status (401 refused, 503 shed
# by the hashing gate). Throttling keeps its defaults. Results:
# bench/results/memory_and_logins.json.
source "$(dirname "$0")/lib.sh"
need wrk wrk
build_release
work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
trap 'stop_pid "${palisade_pid:-}"; rm -rf "$work"' EXIT

start_palisade "$work/p"
base="https://$palisade_https"
curl -sk "$base/healthz" >/dev/null
curl -sk "$base/login" >/dev/null
idle_kib=$(awk '/VmRSS/ {print $2}' "/proc/$palisade_pid/status")

# One account with a known password, and a CSRF cookie/token pair for the scripted logins.
jar="$work/jar"
curl -sk -c "$jar" "$base/signup" >/dev/null
csrf=$(awk '$6 == "__Host-palisade-csrf" {print $7}' "$jar")
curl -sk -b "$jar" -o /dev/null -H "origin: $base" \
  --data-urlencode "csrf=$csrf" --data-urlencode "email=bench@example.com" \
  --data-urlencode "password=correct horse battery staple" "$base/signup"

cat >"$work/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/x-www-form-urlencoded"
wrk.headers["cookie"] = "__Host-palisade-csrf=$csrf"
wrk.headers["origin"] = "$base"
wrk.body = "csrf=$csrf&email=bench%40example.com&password=correct+horse+battery+staple"
LUA

duration=${DURATION:-10s}
logins=(); p99=(); p99_quiet=(); floods=()
for round in 1 2 3; do
  logins+=("$(wrk_rps -t1 -c4 -d"$duration" -s "$work/login.lua" "$base/login")")
  p99_quiet+=("$(wrk_p99_ms -t1 -c8 -d"$duration" "$base/healthz")")
  python3 "$bench_dir/login_flood.py" 127.0.0.1 "${palisade_https##*:}" "$csrf" \
    "$((${duration%s} + 4))" 200 >"$work/flood.out" &
  flood=$!
  sleep 2 # let the flood reach full concurrency before measuring
  p99+=("$(wrk_p99_ms -t1 -c8 -d"$duration" "$base/healthz")")
  wait $flood
  floods+=("$(cat "$work/flood.out")")
done
slots=$(( $(nproc) / 2 )); [ $slots -ge 1 ] || slots=1

python3 - "$results/memory_and_logins.json" "$idle_kib" "$slots" "${logins[*]}" "${p99_quiet[*]}" "${p99[*]}" "${floods[@]}" <<'PY'
import json, statistics, sys, os
out, idle_kib, slots, logins, quiet, flood, *statuses = sys.argv[1:]
statuses = [json.loads(s) for s in statuses]
f = lambda s: [float(x) for x in s.split()]
logins, quiet, flood = f(logins), f(quiet), f(flood)
m = statistics.median
doc = {
    "benchmark": "idle memory, logins per second, /healthz p99 under a login flood (wrk)",
    "cores": os.cpu_count(),
    "hash_slots": int(slots),
    "idle_rss_mib": int(idle_kib) / 1024,
    "logins_per_second": logins, "median_logins_per_second": m(logins),
    "median_logins_per_second_per_hash_core": m(logins) / int(slots),
    "healthz_p99_ms_quiet": quiet, "median_healthz_p99_ms_quiet": m(quiet),
    "healthz_p99_ms_during_flood": flood, "median_healthz_p99_ms_during_flood": m(flood),
    "flood": "200 concurrent wrong logins, each on a new connection from a new 127.x.y.z address",
    "flood_answers_by_status": statuses,
}
json.dump(doc, open(out, "w"), indent=2)
print(f"idle RSS                         {doc['idle_rss_mib']:.1f} MiB   (goal <= 40)")
print(f"logins/s (argon2id defaults)     {m(logins):.0f}  ({doc['median_logins_per_second_per_hash_core']:.0f} per hashing core)")
print(f"/healthz p99, quiet              {m(quiet):.2f} ms")
print(f"/healthz p99, 200-login flood    {m(flood):.2f} ms   (goal <= 50)")
print(f"flood answers by status          {statuses}")
PY
