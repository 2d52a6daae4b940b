#!/usr/bin/env bash
# The audit log at scale (default 10 million entries, ENTRIES to change): opening, inclusion and
# consistency proof generation (warm), offline proof verification on one core, and a full
# `verify` from the database and from an export. The built log is kept in SCALE_DIR between
# runs. Results to bench/results/audit_scale.json.
source "$(dirname "$0")/lib.sh"
(cd "$root" && cargo build --release --example audit_scale -p palisade-audit >&2)
scale_dir=${SCALE_DIR:-/tmp/palisade-audit-scale}
out=$("$root/target/release/examples/audit_scale" "${ENTRIES:-10000000}" "$scale_dir")
python3 - "$results/audit_scale.json" "$out" <<'PY'
import json, sys
path, out = sys.argv[1:]
r = json.loads(out)
r["benchmark"] = "audit log at scale (SQLite, release build, one run)"
json.dump(r, open(path, "w"), indent=2)
print(f"entries                         {r['entries']}")
print(f"open (rebuild tree)             {r['open_seconds']:.1f} s")
print(f"inclusion proof p50 / p99       {r['inclusion_proof_us']['p50']:.1f} / {r['inclusion_proof_us']['p99']:.1f} us (goal p99 <= 50)")
print(f"consistency proof p50 / p99     {r['consistency_proof_us']['p50']:.1f} / {r['consistency_proof_us']['p99']:.1f} us")
print(f"proof verifications / s / core  {r['inclusion_verifications_per_second_one_core']:.0f} (goal >= 100000)")
print(f"full verify from the database   {r['full_verify_seconds']:.1f} s (goal <= 10)")
print(f"full verify from an export      {r['full_verify_from_export_seconds']:.1f} s")
PY
