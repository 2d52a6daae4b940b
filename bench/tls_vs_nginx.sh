#!/usr/bin/env bash
# TLS handshakes per second (a new connection per request) and keep-alive requests per second
# on /healthz: Palisade against nginx serving a static 200 over TLS with the same ECDSA P-256
# certificate, both driven by wrk in the same run. Three alternating rounds; medians and ratios
# go to bench/results/tls_vs_nginx.json, with what each side negotiated with wrk's OpenSSL
# (the system's: Debian 12's OpenSSL 3.0 has no ML-KEM, so Palisade's preferred hybrid group is
# not offered and both sides use a classical key exchange).
source "$(dirname "$0")/lib.sh"
need wrk wrk
need nginx nginx
build_release
work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
trap 'stop_pid "${palisade_pid:-}"; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT

# Request logs on both sides or on neither: by default nginx's `access_log off` and Palisade's
# per-request log lines off; LOGS=1 turns both on (the production defaults: nginx's combined
# access log to a file, Palisade's JSON lines to its output).
if [ "${LOGS:-0}" = 1 ]; then
  level="warn,palisade=info"; access_log="access_log $work/nginx-access.log;"
else
  level="warn,palisade::serve=info,palisade::cmd::serve=info"; access_log="access_log off;"
fi
start_palisade "$work/palisade" PALISADE_LOG__LEVEL="$level"
cert="$work/palisade/data/tls/dev-cert.pem"
key="$work/palisade/data/tls/dev-key.pem"
nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  $access_log
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /healthz { default_type application/json; return 200 '{"status":"ok"}'; }
  }
}
CONF
nginx -c "$work/nginx.conf"

# The same listener without the middleware stack, to show what the stack costs.
(cd "$root" && cargo build --release --example bare_healthz -p palisade-http >&2)
"$root/target/release/examples/bare_healthz" "$cert" "$key" >"$work/bare.addr" &
bare_pid=$!
trap 'stop_pid "${palisade_pid:-}"; stop_pid "$bare_pid"; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"' EXIT
until [ -s "$work/bare.addr" ]; do sleep 0.1; done
bare_addr=$(cat "$work/bare.addr")

# What each side negotiates with the OpenSSL wrk uses: protocol, suite, key exchange.
negotiated() { # negotiated HOST:PORT
  openssl s_client -brief -connect "$1" -servername localhost </dev/null 2>&1 |
    awk -F': ' '/^Protocol version/ {p=$2} /^Ciphersuite/ {c=$2} /^(Server Temp Key|Negotiated TLS1.3 group)/ {k=$2}
      END { printf "%s %s %s", p, c, k }'
}
palisade_tls=$(negotiated "$palisade_https")
nginx_tls=$(negotiated "127.0.0.1:$nginx_port")

duration=${DURATION:-10s}
declare -A runs
for round in 1 2 3; do
  for target in palisade nginx; do
    if [ $target = palisade ]; then url="https://$palisade_https/healthz"; else url="https://127.0.0.1:$nginx_port/healthz"; fi
    runs[$target-keepalive]+=" $(wrk_rps -t2 -c64 -d"$duration" "$url")"
    runs[$target-handshake]+=" $(wrk_rps -t2 -c32 -d"$duration" -H 'Connection: close' "$url")"
  done
  runs[bare-keepalive]+=" $(wrk_rps -t2 -c64 -d"$duration" "https://$bare_addr/healthz")"
done

out="$results/tls_vs_nginx.json"
[ "${LOGS:-0}" = 1 ] && out="$results/tls_vs_nginx-with-request-logs.json"
python3 - "$out" "$level" "${LOGS:-0}" "$palisade_tls" "$nginx_tls" \
  "${runs[palisade-keepalive]}" "${runs[nginx-keepalive]}" \
  "${runs[palisade-handshake]}" "${runs[nginx-handshake]}" "${runs[bare-keepalive]}" <<'PY'
import json, statistics, sys, platform, os
out, level, logs, palisade_tls, nginx_tls, pk, nk, ph, nh, bk = sys.argv[1:]
f = lambda s: [float(x) for x in s.split()]
pk, nk, ph, nh, bk = map(f, (pk, nk, ph, nh, bk))
m = statistics.median
doc = {
    "benchmark": "TLS on /healthz: Palisade vs nginx (wrk, same machine, same certificate)",
    "machine": {"cores": os.cpu_count(), "system": platform.platform()},
    "palisade_log_level": level,
    "request_logs": "on, both sides" if logs == "1" else "off, both sides",
    "negotiated_with_wrk": {"palisade": palisade_tls, "nginx": nginx_tls},
    "keepalive_rps": {"palisade": pk, "nginx": nk, "median_palisade": m(pk), "median_nginx": m(nk), "ratio": m(pk) / m(nk)},
    "keepalive_rps_listener_without_middleware": {"runs": bk, "median": m(bk), "ratio_to_nginx": m(bk) / m(nk)},
    "new_connection_rps": {"palisade": ph, "nginx": nh, "median_palisade": m(ph), "median_nginx": m(nh), "ratio": m(ph) / m(nh)},
}
json.dump(doc, open(out, "w"), indent=2)
print(f"{'':24}{'Palisade':>12}{'nginx':>12}{'ratio':>8}")
for k, label in (("keepalive_rps", "keep-alive req/s"), ("new_connection_rps", "new connection req/s")):
    d = doc[k]
    print(f"{label:24}{d['median_palisade']:>12.0f}{d['median_nginx']:>12.0f}{d['ratio']:>8.2f}")
print(f"negotiated: Palisade {palisade_tls}; nginx {nginx_tls}; request logs {doc['request_logs']}")
b = doc["keepalive_rps_listener_without_middleware"]
print(f"{'keep-alive, no stack':24}{b['median']:>12.0f}{'':>12}{b['ratio_to_nginx']:>8.2f}")
PY
