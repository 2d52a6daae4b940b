#!/usr/bin/env bash
# What the route guards cost (issue 11): `GET /api/me` requests per second with a client's own
# access token, on the build before the core rewrite (BEFORE_REV, default 5f1ed5f: the
# principal inside the OAuth provider, no guards) and on this checkout, both release builds,
# driven by wrk in the same run (10 s per run, 2 threads, 64 keep-alive connections, three
# alternating rounds, medians). Rate limits are raised out of the way on both and per-request
# log lines are off. Results go to bench/results/api_me_before_after.json.
source "$(dirname "$0")/lib.sh"
need wrk wrk
need jq jq
before_rev=${BEFORE_REV:-5f1ed5f}
duration=${DURATION:-10s}

# The earlier build in a worktree of its own, cached under target/ between runs.
before_src="$root/target/bench-before/$before_rev"
if [ ! -x "$before_src/target/release/palisade" ]; then
  rm -rf "$before_src"
  git -C "$root" worktree prune
  git -C "$root" worktree add --detach "$before_src" "$before_rev" >&2
  (cd "$before_src" && CARGO_TARGET_DIR="$before_src/target" cargo build --release --bin palisade >&2)
fi
before_bin="$before_src/target/release/palisade"
build_release
after_bin=$palisade_bin

work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do stop_pid "$p"; done; rm -rf "$work"' EXIT

declare -A url token
for side in before after; do
  if [ $side = before ]; then palisade_bin=$before_bin; else palisade_bin=$after_bin; fi
  start_palisade "$work/$side" PALISADE_LOG__LEVEL="warn,palisade::serve=info,palisade::cmd::serve=info" \
    PALISADE_API__REQUESTS_PER_MINUTE=1000000000 PALISADE_API__CLIENT_REQUESTS_PER_MINUTE=1000000000 \
    PALISADE_API__NETWORK_REQUESTS_PER_MINUTE=1000000000
  pids+=("$palisade_pid")
  client=$(PALISADE_DATA_DIR="$work/$side/data" PALISADE_LOG__LEVEL=error "$palisade_bin" \
    clients create --name bench-api --grant client_credentials --scope social:read)
  id=$(jq -r .client_id <<<"$client")
  secret=$(jq -r .client_secret <<<"$client")
  url[$side]="https://$palisade_https/api/me"
  token[$side]=$(curl -sk -u "$id:$secret" -d "grant_type=client_credentials&scope=social:read" \
    "https://$palisade_https/oauth/token" | jq -r .access_token)
  answer=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer ${token[$side]}" "${url[$side]}")
  [ "$answer" = 200 ] || { echo "$side: GET /api/me answered $answer" >&2; exit 1; }
  # Warm-up, discarded.
  wrk -t2 -c64 -d3s -H "Authorization: Bearer ${token[$side]}" "${url[$side]}" >/dev/null
done

declare -A runs
for round in 1 2 3; do
  for side in before after; do
    runs[$side]+=" $(wrk_rps -t2 -c64 -d"$duration" -H "Authorization: Bearer ${token[$side]}" "${url[$side]}")"
  done
done
python3 - "$results/api_me_before_after.json" "$before_rev" "$(git -C "$root" rev-parse --short HEAD)" \
  "${runs[before]}" "${runs[after]}" <<'PY'
import json, os, platform, statistics, sys
out, before_rev, after_rev, before, after = sys.argv[1:]
before = [float(x) for x in before.split()]
after = [float(x) for x in after.split()]
b, a = statistics.median(before), statistics.median(after)
doc = {"benchmark": "GET /api/me with a client's access token, keep-alive, wrk -t2 -c64 (medians of three rounds)",
       "machine": {"cores": os.cpu_count(), "system": platform.platform()},
       "before": {"rev": before_rev, "requests_per_second": round(b), "runs": before},
       "after": {"rev": after_rev, "requests_per_second": round(a), "runs": after},
       "ratio_after_to_before": round(a / b, 3)}
json.dump(doc, open(out, "w"), indent=2)
print(f"GET /api/me  before ({before_rev}) {b:,.0f} req/s  after ({after_rev}) {a:,.0f} req/s  ratio {a / b:.2f}")
PY
