#!/usr/bin/env bash
# How long the scanners take on a running Palisade (release build, loopback, dev certificate):
#  - `palisade scan jwt --target` with a client_credentials token: the full active scan
#    (oracle calibration, every probe, each hit confirmed; nothing is found);
#  - `palisade scan tls` against testssl.sh 3.0.8 (Debian) doing the same work: protocols
#    (-p), server defaults and chain (-S), ciphers per protocol (-E), forward secrecy and
#    groups (-f), server preference (-P) and HTTP headers such as HSTS (-h).
# Three runs each, medians. Writes bench/results/scan_palisade.json.
source "$(dirname "$0")/lib.sh"
need testssl testssl.sh
build_release
work=$(mktemp -d /tmp/palisade-bench-scan.XXXXXX)
start_palisade "$work/palisade"
trap 'stop_pid $palisade_pid; rm -rf "$work"' EXIT
ca="$work/palisade/data/tls/dev-ca.pem"
cli() { PALISADE_DATA_DIR="$work/palisade/data" PALISADE_LOG__LEVEL=warn "$palisade_bin" "$@"; }
service=$(cli clients create --name bench-scan --grant client_credentials --scope social:read)
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$service")
secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$service")
token=$(curl -s --cacert "$ca" -u "$id:$secret" -d grant_type=client_credentials \
  "https://$palisade_https/oauth/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

seconds() { local start; start=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; echo "$(date +%s.%N) - $start" | bc; }
jwt=() tls=() ts=()
for _ in 1 2 3; do
  jwt+=("$(seconds sh -c "printf %s '$token' | '$palisade_bin' scan jwt - --target 'https://$palisade_https/api/me' --ca-cert '$ca' --quiet --format json -o '$work/jwt.json'")")
  tls+=("$(seconds "$palisade_bin" scan tls "$palisade_https" --ca-cert "$ca" --quiet --format json -o "$work/tls.json")")
  rm -f "$work/testssl.json" # testssl.sh refuses to overwrite its report
  ts+=("$(seconds testssl --quiet --warnings off --color 0 --add-ca "$ca" --jsonfile-pretty "$work/testssl.json" -p -S -E -f -P -h "$palisade_https")")
done

python3 - "$work" "$results/scan_palisade.json" "$(median "${jwt[@]}")" "$(median "${tls[@]}")" "$(median "${ts[@]}")" <<'PY'
import datetime, json, sys
work, out, jwt, tls, ts = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
above = lambda r: [f["rule"] for f in r["findings"] if f["severity"] != "info"]
jwt_report, tls_report = json.load(open(f"{work}/jwt.json")), json.load(open(f"{work}/tls.json"))
testssl = json.load(open(f"{work}/testssl.json"))
entries = [e for section in testssl["scanResult"][0].values() if isinstance(section, list)
           for e in section if isinstance(e, dict) and "severity" in e]
notes = [f'{e["id"]}: {e["finding"]}' for e in entries
         if e["severity"] not in ("OK", "INFO", "WARN")]
result = {
    "date": datetime.date.today().isoformat(),
    "target": "palisade serve (release), loopback, development certificate",
    "palisade_scan_jwt_active_seconds": round(jwt, 3),
    "palisade_scan_jwt_findings_above_info": above(jwt_report),
    "palisade_scan_tls_seconds": round(tls, 3),
    "palisade_scan_tls_findings_above_info": above(tls_report),
    "testssl_same_work_seconds": round(ts, 3),
    "testssl_flags": "-p -S -E -f -P -h",
    "testssl_findings_above_info": notes,
    "tls_speedup": round(ts / tls, 1),
}
json.dump(result, open(out, "w"), indent=2)
print(json.dumps(result, indent=2))
PY
