#!/usr/bin/env bash
# What jwt_tool and `palisade scan jwt` each find on the same deliberately weak targets (the
# loopback verifiers of crates/palisade-scan/tests/support/targets.rs, started by the
# weak-targets example), with the same token for both. jwt_tool runs every mode (`-M at`)
# without a proxy; a jwt_tool hit is a forged token answered 2xx (it has no verdict of its
# own), its resends of the original token excepted, or a cracked secret. Also times each
# full scan.
#
# jwt_tool is not in a package registry: BENCH_JWT_TOOL names a script that runs it
# non-interactively (default /opt/jwt_tool/jwt_tool.sh: a checkout of ticarpi/jwt_tool 2.2.7
# with a virtualenv of termcolor, cprint, pycryptodomex and requests, HOME set to a
# writable directory, and `proxy = False` in its jwtconf.ini).
#
# Writes bench/results/jwt_scanners.json.
source "$(dirname "$0")/lib.sh"
jwt_tool=${BENCH_JWT_TOOL:-/opt/jwt_tool/jwt_tool.sh}
[ -x "$jwt_tool" ] || { echo "no jwt_tool at $jwt_tool (see the comment at the top)" >&2; exit 1; }
build_release
(cd "$root" && cargo build -q -p palisade-scan --example weak-targets >&2)

work=$(mktemp -d /tmp/palisade-bench-scanners.XXXXXX)
mkfifo "$work/hold"
"$root/target/debug/examples/weak-targets" <"$work/hold" >"$work/targets.jsonl" &
targets_pid=$!
exec 3>"$work/hold"
trap 'exec 3>&-; stop_pid $targets_pid; rm -rf "$work"' EXIT
poll_until 30 sh -c "[ \$(wc -l <'$work/targets.jsonl') -ge 8 ]"

i=0
while read -r line; do
  i=$((i + 1))
  url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["url"])' "$line")
  token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$line")
  start=$(date +%s.%N)
  yes Y | "$jwt_tool" -t "$url" -rh "Authorization: Bearer $token" -M at -np >"$work/jwt_tool.$i" 2>&1 || true
  echo "$(date +%s.%N) - $start" | bc >"$work/jwt_tool_seconds.$i"
  start=$(date +%s.%N)
  "$palisade_bin" scan jwt - --target "$url" --format json --quiet <<<"$token" >"$work/palisade.$i" || true
  echo "$(date +%s.%N) - $start" | bc >"$work/palisade_seconds.$i"
done <"$work/targets.jsonl"

python3 - "$work" "$results/jwt_scanners.json" <<'EOF'
import datetime, json, re, sys
work, out = sys.argv[1], sys.argv[2]
ansi = re.compile(r"\x1b\[[0-9;]*m")
baseline = ("Sending token", "Prescan:", "Persistence check")
rows = []
for i, line in enumerate(open(f"{work}/targets.jsonl"), 1):
    flaw = json.loads(line)["flaw"]
    text = ansi.sub("", open(f"{work}/jwt_tool.{i}", errors="replace").read())
    original_id = next((m.group(1) for m in re.finditer(r"^(jwttool_\w+) Sending token", text, re.M)), None)
    hits = set()
    for m in re.finditer(r"^(jwttool_\w+) (.*?) Response Code: (2\d\d)", text, re.M):
        ident, label = m.group(1), m.group(2)
        if label.startswith(baseline) or ident == original_id:
            continue
        hits.add(re.sub(r"\s+", " ", label))
    if "CORRECT key" in text:
        hits.add("secret cracked")
    report = json.load(open(f"{work}/palisade.{i}"))
    found = sorted({f"{f['rule']} ({f['severity']})" for f in report["findings"] if f["severity"] != "info"})
    rows.append({
        "target": flaw,
        "jwt_tool": sorted(hits),
        "jwt_tool_seconds": round(float(open(f"{work}/jwt_tool_seconds.{i}").read()), 2),
        "palisade": found,
        "palisade_seconds": round(float(open(f"{work}/palisade_seconds.{i}").read()), 2),
    })
result = {"date": datetime.date.today().isoformat(), "jwt_tool": "2.2.7 (-M at -np)", "targets": rows}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
EOF
