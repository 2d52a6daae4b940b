#!/usr/bin/env bash
# What protecting one request costs (RES-1, RES-2): access-token verification, one Cedar
# decision, and both, measured by criterion (release profile). Medians in microseconds go to
# bench/results/authz_decision.json.
source "$(dirname "$0")/lib.sh"
(cd "$root" && cargo bench -p palisade-authz --bench decision >&2)
python3 - "$root/target/criterion" "$results/authz_decision.json" <<'PY'
import json, os, platform, sys
criterion, out = sys.argv[1:]
names = {
    "verify access token (EdDSA)": "verify_us",
    "Cedar decision (read a followers-only post)": "decide_us",
    "verify and decide": "verify_and_decide_us",
}
doc = {"benchmark": "token verification and Cedar decision per request (criterion medians)",
       "machine": {"cores": os.cpu_count(), "system": platform.platform()}}
for name, key in names.items():
    estimates = json.load(open(os.path.join(criterion, name, "new", "estimates.json")))
    doc[key] = round(estimates["median"]["point_estimate"] / 1000, 1)
json.dump(doc, open(out, "w"), indent=2)
for name, key in names.items():
    print(f"{name:48}{doc[key]:>8.1f} µs")
PY
