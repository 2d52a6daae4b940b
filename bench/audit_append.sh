#!/usr/bin/env bash
# The Merkle log layer alone: durable appends of ready-made entries per second in process, and
# the time from append to inclusion in a signed checkpoint (each acknowledgement comes after its
# batch and checkpoint are committed). What it leaves out: a security event's searchable row
# and the sealing of its payload under the subject's key, which `Auditor::record` adds before
# the append (bench/audit_ingest.sh measures events through the server). Three runs; medians to
# bench/results/audit_append.json.
source "$(dirname "$0")/lib.sh"
(cd "$root" && cargo build --release --example append_throughput -p palisade-audit >&2)
runs=()
for round in 1 2 3; do
  runs+=("$("$root/target/release/examples/append_throughput" "${ENTRIES:-200000}" "${WRITERS:-512}")")
done
python3 - "$results/audit_append.json" "${runs[@]}" <<'PY'
import json, statistics, sys
out, *runs = sys.argv[1:]
runs = [json.loads(r) for r in runs]
m = lambda k: statistics.median(r[k] for r in runs)
doc = {"benchmark": "Merkle log layer: durable appends of ready-made entries in process (SQLite, WAL, synchronous=FULL); no searchable rows, no payload sealing", "runs": runs,
       "median_appends_per_second": m("appends_per_second"), "median_append_to_checkpoint_p99_ms": m("append_to_checkpoint_p99_ms")}
json.dump(doc, open(out, "w"), indent=2)
print(f"durable appends/s          {doc['median_appends_per_second']:.0f}   (goal >= 50000)")
print(f"append -> checkpoint p99   {doc['median_append_to_checkpoint_p99_ms']:.1f} ms (goal <= 1000)")
PY
