#!/usr/bin/env bash
# Palisade's Merkle tree against the ct-merkle crate on the same 1,000,000 entries in one run:
# build (leaf hashing included), inclusion and consistency proof generation, inclusion
# verification. Roots and proofs are checked byte-identical first. Three runs; medians of the
# ratios (ct-merkle time / Palisade time) to bench/results/audit_vs_ct_merkle.json.
source "$(dirname "$0")/lib.sh"
(cd "$root" && cargo build --release --example vs_ct_merkle -p palisade-audit >&2)
runs=()
for round in 1 2 3; do
  runs+=("$("$root/target/release/examples/vs_ct_merkle" "${ENTRIES:-1000000}")")
done
python3 - "$results/audit_vs_ct_merkle.json" "${runs[@]}" <<'PY'
import json, statistics, sys
out, *runs = sys.argv[1:]
runs = [json.loads(r) for r in runs]
keys = ["build_seconds", "inclusion_proof_us", "consistency_proof_us", "inclusion_verify_us"]
med = {k: {f: statistics.median(r[k][f] for r in runs) for f in ("palisade", "ct_merkle", "ratio")} for k in keys}
json.dump({"benchmark": "Merkle tree vs ct-merkle 0.3 (same inputs, one process)", "runs": runs, "median": med}, open(out, "w"), indent=2)
for k in keys:
    m = med[k]
    print(f"{k:22} palisade {m['palisade']:.3f}  ct-merkle {m['ct_merkle']:.3f}  ratio {m['ratio']:.2f}x")
PY
