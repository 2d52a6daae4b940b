#!/usr/bin/env bash
# Full mutual-TLS handshakes per second (TLS-5): Palisade's mTLS listener, which verifies the
# client's X.509-SVID against the internal CA and reads its SPIFFE ID, against nginx requiring
# client certificates from the same CA (`ssl_verify_client on`) and presenting an SVID of the
# same CA (ECDSA P-256 both). Both run on both cores and are driven by the same Rust client
# (bench/mtls-load: no session resumption, one GET /healthz per connection, X25519 since
# Debian's OpenSSL 3.0 in nginx has no ML-KEM), three alternating rounds. Then SVIDs signed per
# second by renewal over mTLS. Medians and ratios go to bench/results/mtls_vs_nginx.json.
source "$(dirname "$0")/lib.sh"
need nginx nginx
need openssl openssl
build_release
(cd "$root" && cargo build --release -p palisade-bench-mtls >&2)
load="$root/target/release/palisade-bench-mtls"
work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
trap 'stop_pid "${palisade_pid:-}"; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

domain=bench.test
ca_env=(PALISADE_CA__TRUST_DOMAIN=$domain PALISADE_CA__MTLS_LISTEN=127.0.0.1:0)
start_palisade "$work/palisade" "${ca_env[@]}" \
  PALISADE_LOG__LEVEL="warn,palisade::serve=info,palisade::cmd::serve=info"
mtls=$(grep '"palisade listening"' "$work/palisade/server.log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["fields"]["mtls"])')
cli() { (cd "$work/palisade" && env PALISADE_DATA_DIR="$work/palisade/data" "${ca_env[@]}" PALISADE_LOG__LEVEL=warn "$palisade_bin" "$@"); }
curl -sf --cacert "$work/palisade/data/tls/dev-ca.pem" "https://$palisade_https/ca/bundle.pem" >"$work/bundle.pem"

# svid NAME: a key and an SVID for spiffe://bench.test/bench/NAME, by join token and CSR.
svid() {
  local token
  token=$(cli ca join-token --spiffe-id "spiffe://$domain/bench/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=$1" \
    -keyout "$work/$1.key" -out "$work/$1.csr" 2>/dev/null
  python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' "$work/$1.csr" |
    curl -sf --cacert "$work/palisade/data/tls/dev-ca.pem" "https://$palisade_https/ca/svid" \
      -H "authorization: Bearer $token" -H 'content-type: application/json' --data-binary @- |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["certificate"], end="")' >"$work/$1.pem"
}
svid client
svid nginx

nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/nginx.pem;
    ssl_certificate_key $work/nginx.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate $work/bundle.pem;
    ssl_verify_client on;
    ssl_verify_depth 1;
    location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
CONF
nginx -c "$work/nginx.conf"

handshakes() { # handshakes ADDR [GROUPS]
  "$load" handshakes --addr "$1" --ca "$work/bundle.pem" --cert "$work/client.pem" \
    --key "$work/client.key" --connections 32 --seconds "${SECONDS_PER_RUN:-10}" --groups "${2:-x25519}"
}
declare -A runs
for round in 1 2 3; do
  runs[palisade]+=" $(handshakes "$mtls" | tee -a "$work/palisade.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["per_second"])')"
  runs[nginx]+=" $(handshakes "127.0.0.1:$nginx_port" | tee -a "$work/nginx.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["per_second"])')"
done
hybrid=$(handshakes "$mtls" default)
renewals=$("$load" renewals --base "https://$domain:${mtls##*:}" --addr "$mtls" --ca "$work/bundle.pem" --connections 8 \
  --cert "$work/client.pem" --key "$work/client.key" --csr "$work/client.csr" --seconds "${SECONDS_PER_RUN:-10}")

python3 - "$results/mtls_vs_nginx.json" "${runs[palisade]}" "${runs[nginx]}" \
  "$(head -1 "$work/palisade.jsonl")" "$(head -1 "$work/nginx.jsonl")" "$hybrid" "$renewals" <<'PY'
import json, statistics, sys, platform, os
out, p, n, p_first, n_first, hybrid, renewals = sys.argv[1:]
p, n = [float(x) for x in p.split()], [float(x) for x in n.split()]
m = statistics.median
doc = {
    "benchmark": "full mTLS handshakes per second (one GET /healthz per connection, no resumption): Palisade's mTLS listener vs nginx with ssl_verify_client, same CA, same client",
    "machine": {"cores": os.cpu_count(), "system": platform.platform()},
    "negotiated": {"palisade": json.loads(p_first)["negotiated"], "nginx": json.loads(n_first)["negotiated"]},
    "handshakes_per_second": {"palisade": p, "nginx": n, "median_palisade": m(p), "median_nginx": m(n), "ratio": m(p) / m(n)},
    "palisade_with_x25519mlkem768": json.loads(hybrid),
    "svid_renewals_per_second": json.loads(renewals),
}
json.dump(doc, open(out, "w"), indent=2)
h = doc["handshakes_per_second"]
print(f"mTLS handshakes/s: Palisade {h['median_palisade']:.0f}, nginx {h['median_nginx']:.0f}, ratio {h['ratio']:.2f}")
print(f"negotiated: {doc['negotiated']}")
print(f"Palisade with X25519MLKEM768: {doc['palisade_with_x25519mlkem768']['per_second']:.0f}/s ({doc['palisade_with_x25519mlkem768']['negotiated']})")
print(f"SVID renewals/s: {doc['svid_renewals_per_second']['per_second']:.0f} (failed {doc['svid_renewals_per_second']['failed']})")
PY
