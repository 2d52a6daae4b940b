#!/usr/bin/env bash
# What protecting the home timeline costs (RES-1, RES-2, SOC-2): criterion medians of one page
# of 20 posts through the real API (allowances, token verification with its grant and account
# checks, the scope, a Cedar decision per post) and through the same page code with
# authentication and authorization taken out, on SQLite and, when PALISADE_TEST_POSTGRES_URL
# names a server, PostgreSQL. Results go to bench/results/timeline_overhead.json.
source "$(dirname "$0")/lib.sh"
# Arguments go to criterion (a filter: `PostgreSQL`); the results of both backends are read.
(cd "$root" && cargo bench -p palisade-social --features bench-unprotected --bench timeline -- "$@" >&2)
python3 - "$root/target/criterion" "$results/timeline_overhead.json" <<'PY'
import json, os, platform, sys
criterion, out = sys.argv[1:]
doc = {"benchmark": "home timeline page: protected vs the same handler unprotected (criterion medians, in process)",
       "machine": {"cores": os.cpu_count(), "system": platform.platform()}, "backends": {}}
def median(group, name):
    path = os.path.join(criterion, group, name, "new", "estimates.json")
    return json.load(open(path))["median"]["point_estimate"] / 1000
for backend in ["SQLite", "PostgreSQL"]:
    group = f"timeline page ({backend})"
    if not os.path.isdir(os.path.join(criterion, group)):
        continue
    protected = median(group, "protected")
    bare = median(group, "unprotected")
    authn = median(group, "authentication only (GET _api_me)")
    doc["backends"][backend] = {
        "protected_us": round(protected, 1), "unprotected_us": round(bare, 1),
        "authentication_only_us": round(authn, 1),
        "overhead_percent": round(100 * (protected - bare) / bare, 1),
    }
    print(f"{backend:11} protected {protected:8.1f} µs  unprotected {bare:8.1f} µs  "
          f"overhead {100 * (protected - bare) / bare:6.1f} %  (authentication alone {authn:.1f} µs)")
json.dump(doc, open(out, "w"), indent=2)
PY
