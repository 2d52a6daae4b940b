#!/usr/bin/env bash
# The token endpoint: Palisade against node-oidc-provider (the certified OpenID provider of
# Node) configured alike (bench/oidc-provider/server.mjs: HTTPS with the same certificate, a
# client_secret_basic client, RFC 9068 access tokens signed with EdDSA, 10 minutes) and run as
# in production — NODE_ENV=production, one worker per core — both driven by wrk in the same
# run: a warm-up round of each, discarded, then three alternating rounds. Each side's tokens
# are checked to be EdDSA JWTs first. Then Palisade's introspection and full
# authorization-code + PKCE flows per second with a signed-in session (authorize with
# remembered consent, then the code exchange; a flow counts only when it ends with tokens).
# Medians and ratios go to bench/results/oauth_vs_oidc_provider.json.
#
# Introspection has no like-for-like peer figure: oidc-provider introspects only tokens it
# stores (opaque ones), and a stateless one-worker-per-core deployment has no shared store,
# while Palisade's access tokens are JWTs it verifies. Its figure is reported alone.
#
# Palisade records every issuance in its Merkle audit log, fsynced before the answer, and keeps
# codes and grants in SQLite; oidc-provider keeps its state in memory and audits nothing.
# Request log lines are off on both sides.
source "$(dirname "$0")/lib.sh"
need wrk wrk
need jq jq
need node nodejs
need npm npm
build_release
(cd "$bench_dir/oidc-provider" && { [ -d node_modules/oidc-provider ] || npm ci --no-audit --no-fund --silent; })
work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
trap 'stop_pid "${palisade_pid:-}"; stop_pid "${op_pid:-}"; rm -rf "$work"' EXIT

start_palisade "$work/palisade" PALISADE_LOG__LEVEL="warn,palisade::serve=info,palisade::cmd::serve=info"
cli() { PALISADE_DATA_DIR="$work/palisade/data" PALISADE_LOG__LEVEL=warn "$palisade_bin" "$@"; }
service=$(cli clients create --name bench-service --grant client_credentials --scope audit:write)
client_id=$(jq -r .client_id <<<"$service")
client_secret=$(jq -r .client_secret <<<"$service")
basic=$(printf '%s:%s' "$client_id" "$client_secret" | base64 -w0)

op_port=$(free_port)
(cd "$bench_dir/oidc-provider" && exec env NODE_ENV=production PORT="$op_port" CERT="$work/palisade/data/tls/dev-cert.pem" \
  KEY="$work/palisade/data/tls/dev-key.pem" CLIENT_ID="$client_id" CLIENT_SECRET="$client_secret" \
  node server.mjs >"$work/op.log" 2>&1) &
op_pid=$!
deadline=$((SECONDS + 30))
until grep -q '^listening' "$work/op.log" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] && kill -0 "$op_pid" 2>/dev/null || { cat "$work/op.log" >&2; exit 1; }
  sleep 0.1
done

palisade_url="https://$palisade_https"
op_url="https://127.0.0.1:$op_port"
token_of() { # token_of URL PATH [FORM]: an access token from client_credentials
  curl -sk -u "$client_id:$client_secret" -d "grant_type=client_credentials&scope=audit:write${3:-}" "$1$2" | jq -r .access_token
}
alg_of() { # the `alg` of a JWT's header
  python3 -c 'import base64, json, sys; h = sys.argv[1].split(".")[0]; print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["alg"])' "$1"
}
palisade_token=$(token_of "$palisade_url" /oauth/token)
op_token=$(token_of "$op_url" /token)
[ "$(alg_of "$palisade_token")" = EdDSA ] && [ "$(alg_of "$op_token")" = EdDSA ] || {
  echo "both sides must issue EdDSA JWTs" >&2; exit 1; }
[ "$(curl -sk -u "$client_id:$client_secret" -d "token=$palisade_token" "$palisade_url/oauth/introspect" | jq .active)" = true ]
op_workers=$(sed -n 's/^listening \([0-9]*\) workers$/\1/p' "$work/op.log")

cat >"$work/post.lua" <<'LUA'
-- POSTs BODY with Basic credentials; counts answers other than 200.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
local threads = {}
function setup(thread) table.insert(threads, thread) end
bad = 0
function response(status) if status ~= 200 then bad = bad + 1 end end
function done()
  local n = 0
  for _, t in ipairs(threads) do n = n + t:get("bad") end
  if n > 0 then io.stderr:write(string.format("%d answers were not 200\n", n)); os.exit(1) end
end
LUA

duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
declare -A rps p99
run() { # run NAME URL BODY
  local out
  out=$(BODY=$3 BASIC=$basic wrk --latency -t2 -c"$connections" -d"$duration" -s "$work/post.lua" "$2")
  rps[$1]+=" $(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p99[$1]+=" $(awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
    if (u == "us") v = v / 1000; else if (u == "s") v = v * 1000; print v }' <<<"$out")"
}
issue="grant_type=client_credentials&scope=audit:write"
# Warm-up: JIT, caches and connection pools on both sides; its figures are dropped.
run warmup "$palisade_url/oauth/token" "$issue"
run warmup "$op_url/token" "$issue"
for round in 1 2 3; do
  run palisade-issue "$palisade_url/oauth/token" "$issue"
  run op-issue "$op_url/token" "$issue"
  run palisade-introspect "$palisade_url/oauth/introspect" "token=$palisade_token"
done

# Full flows: a user signed in once, a public client whose consent is remembered; each flow is
# GET /oauth/authorize (answered with a code at once) and POST /oauth/token with the verifier.
email="bench-$RANDOM@example.com"
printf 'correct horse battery staple\n' | cli admin create-user --email "$email" >/dev/null
app=$(cli clients create --name bench-app --auth-method none --grant authorization_code \
  --scope openid --redirect-uri https://app.example/cb)
app_id=$(jq -r .client_id <<<"$app")
verifier=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
flow=$(python3 - "$palisade_url" "$email" "$app_id" "$verifier" <<'PY'
# Signs in as a browser would and consents once; prints the session cookie and the
# authorization request's path.
import base64, hashlib, html, http.client, re, ssl, sys, urllib.parse
base, email, client_id, verifier = sys.argv[1:]
host = urllib.parse.urlsplit(base).netloc
ctx = ssl._create_unverified_context()
cookies = {}
def call(method, path, form=None):
    conn = http.client.HTTPSConnection(host, context=ctx)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "Origin": base,
               "Sec-Fetch-Site": "same-origin"}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body, headers)
    r = conn.getresponse()
    for value in r.headers.get_all("Set-Cookie") or []:
        name, rest = value.split("=", 1)
        cookies[name] = rest.split(";", 1)[0]
    return r.status, r.getheader("Location") or "", r.read().decode()
def csrf(page):
    return html.unescape(re.search(r'name="csrf" value="([^"]+)"', page).group(1))
_, _, page = call("GET", "/login")
status, _, _ = call("POST", "/login", {"csrf": csrf(page), "email": email, "password": "correct horse battery staple", "return_to": "/account"})
assert status == 303, status
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
path = "/oauth/authorize?" + urllib.parse.urlencode({
    "response_type": "code", "client_id": client_id, "redirect_uri": "https://app.example/cb",
    "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256", "state": "bench"})
status, _, page = call("GET", path)
assert status == 200, status
fields = dict((html.unescape(k), html.unescape(v)) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
fields["decision"] = "allow"
status, location, _ = call("POST", "/oauth/authorize/decision", fields)
assert status in (302, 303) and "code=" in location, (status, location)
print("; ".join(f"{k}={v}" for k, v in cookies.items() if k.endswith("session")))
print(path)
PY
)
cookie=$(sed -n 1p <<<"$flow")
authorize_path=$(sed -n 2p <<<"$flow")
cat >"$work/flow.lua" <<'LUA'
-- One flow is two requests: the authorization request (a redirect with a code) and the code
-- exchange. Codes wait in a queue for the next request of the thread.
local authorize = os.getenv("AUTHORIZE_PATH")
local cookie = os.getenv("COOKIE")
local exchange = "grant_type=authorization_code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&client_id="
  .. os.getenv("CLIENT_ID") .. "&code_verifier=" .. os.getenv("VERIFIER") .. "&code="
local codes = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
flows = 0
bad = 0
function request()
  local code = table.remove(codes)
  if code then
    return wrk.format("POST", "/oauth/token", {["Content-Type"] = "application/x-www-form-urlencoded"}, exchange .. code)
  end
  return wrk.format("GET", authorize, {["Cookie"] = cookie})
end
function response(status, headers, body)
  local location = headers["Location"] or headers["location"]
  if (status == 302 or status == 303) and location then
    table.insert(codes, string.match(location, "[?&]code=([^&]+)"))
  elseif status == 200 and string.find(body, '"access_token"', 1, true) and string.find(body, '"id_token"', 1, true) then
    flows = flows + 1
  else
    bad = bad + 1
  end
end
function done(summary)
  local n, b = 0, 0
  for _, t in ipairs(threads) do n = n + t:get("flows"); b = b + t:get("bad") end
  io.write(string.format("flows/s %.1f\n", n / (summary.duration / 1e6)))
  if b > 0 then io.stderr:write(string.format("%d answers failed\n", b)); os.exit(1) end
end
LUA
flow_rps=""
for round in 1 2 3; do
  out=$(AUTHORIZE_PATH=$authorize_path COOKIE=$cookie CLIENT_ID=$app_id VERIFIER=$verifier \
    wrk -t2 -c"${FLOW_CONNECTIONS:-32}" -d"$duration" -s "$work/flow.lua" "$palisade_url")
  flow_rps+=" $(awk '/^flows\/s/ {print $2}' <<<"$out")"
done

python3 - "$results/oauth_vs_oidc_provider.json" "$connections" "$duration" "$op_workers" \
  "${rps[palisade-issue]}" "${rps[op-issue]}" "${p99[palisade-issue]}" "${p99[op-issue]}" \
  "${rps[palisade-introspect]}" "${p99[palisade-introspect]}" \
  "$flow_rps" "$(node -e 'console.log(require("./bench/oidc-provider/node_modules/oidc-provider/package.json").version)' 2>/dev/null || echo unknown)" <<'PY'
import json, os, platform, statistics, sys
out, connections, duration, op_workers, *series, flows, op_version = sys.argv[1:]
f = lambda s: [float(x) for x in s.split()]
m = statistics.median
pi, oi, pip, oip, pr, prp = map(f, series)
issue = {"palisade_rps": pi, "oidc_provider_rps": oi, "median_palisade_rps": m(pi),
         "median_oidc_provider_rps": m(oi), "ratio": m(pi) / m(oi),
         "median_palisade_p99_ms": m(pip), "median_oidc_provider_p99_ms": m(oip)}
doc = {
    "benchmark": "OAuth token endpoint: Palisade vs node-oidc-provider (wrk, same machine, same certificate)",
    "machine": {"cores": os.cpu_count(), "system": platform.platform()},
    "oidc_provider": {"version": op_version, "workers": int(op_workers), "NODE_ENV": "production"},
    "connections": int(connections), "duration": duration,
    "warm_up": "one round of each side, discarded",
    "tokens": "EdDSA JWTs on both sides (checked before measuring)",
    "client_credentials": issue,
    "palisade_introspection": {"rps": pr, "median_rps": m(pr), "median_p99_ms": m(prp),
        "peer": "none like for like: oidc-provider introspects only the opaque tokens it stores"},
    "palisade_full_code_flows_per_second": {"runs": f(flows), "median": m(f(flows)),
        "counted": "flows whose code exchange answered access_token and id_token"},
}
json.dump(doc, open(out, "w"), indent=2)
print(f"{'':30}{'Palisade':>10}{'oidc-provider':>15}{'ratio':>8}{'p99 P / op (ms)':>20}")
d = issue
print(f"{'client_credentials req/s':30}{d['median_palisade_rps']:>10.0f}{d['median_oidc_provider_rps']:>15.0f}{d['ratio']:>8.2f}"
      f"{d['median_palisade_p99_ms']:>10.1f} / {d['median_oidc_provider_p99_ms']:.1f}")
print(f"{'introspection req/s':30}{m(pr):>10.0f}{'(no peer)':>15}")
print(f"{'full code + PKCE flows/s':30}{doc['palisade_full_code_flows_per_second']['median']:>10.0f}")
print(f"oidc-provider: {op_workers} workers, NODE_ENV=production")

# The plot: median client_credentials requests per second, side by side, beside the JSON.
top = max(d["median_palisade_rps"], d["median_oidc_provider_rps"]) * 1.15
width, height, base, scale = 320, 300, 250, 200 / top
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         '<text x="10" y="20" font-size="14">client_credentials req/s (median of 3)</text>',
         f'<line x1="40" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#333"/>']
for j, (name, value, colour) in enumerate((("Palisade", d["median_palisade_rps"], "#1f5fbf"),
                                           (f"oidc-provider ×{op_workers}", d["median_oidc_provider_rps"], "#999"))):
    h = value * scale
    bx = 60 + j * 120
    parts.append(f'<rect x="{bx}" y="{base - h:.1f}" width="80" height="{h:.1f}" fill="{colour}"/>')
    parts.append(f'<text x="{bx + 40}" y="{base - h - 5:.1f}" text-anchor="middle">{value:,.0f}</text>')
    parts.append(f'<text x="{bx + 40}" y="{base + 15}" text-anchor="middle">{name}</text>')
parts.append(f'<text x="{width / 2}" y="{base + 35}" text-anchor="middle" font-weight="bold">ratio {d["ratio"]:.2f}×</text>')
parts.append("</svg>")
open(out.replace(".json", ".svg"), "w").write("\n".join(parts) + "\n")
PY
