#!/usr/bin/env bash
# HS256 secrets guessed per second: `palisade scan jwt --wordlist` against jwt-hack (crates.io,
# `crack -m dict --power`, every core) on the same word list and token, in one run. The
# secret is in no list, so both try every word; the rate is words over wall time, start-up and
# reading the list included. Medians of BENCH_RUNS runs (default 3) after one warm-up run
# each, so the list is in the page cache for both.
#
#   bench/jwt_crack.sh            (BENCH_WORDS=5000000 words by default)
#
# Writes bench/results/jwt_crack.json.
source "$(dirname "$0")/lib.sh"
words=${BENCH_WORDS:-5000000}
runs=${BENCH_RUNS:-3}
jwt_hack_version=2.6.0
jwt_hack=${BENCH_JWT_HACK:-/opt/jwt-hack/bin/jwt-hack}
if [ ! -x "$jwt_hack" ]; then
  cargo install jwt-hack --version "$jwt_hack_version" --locked --root /opt/jwt-hack >&2
fi
build_release

work=$(mktemp -d /tmp/palisade-bench-crack.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Words of 6 to 14 characters from a fixed seed; a token under a secret that is none of them.
python3 - "$work/words.txt" "$words" <<'EOF'
import random, string, sys
rng = random.Random(7)
alphabet = string.ascii_lowercase + string.digits
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write("".join(rng.choice(alphabet) for _ in range(rng.randint(6, 14))) + "\n")
EOF
token=$(python3 - <<'EOF'
import base64, hashlib, hmac, json
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
signing_input = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b(json.dumps(
    {"sub": "1234567890", "name": "Benchmark", "iat": 1700000000, "exp": 1700003600}).encode())
sig = hmac.new(b"NOT in the list: 7f3c9a", signing_input.encode(), hashlib.sha256).digest()
print(signing_input + "." + b(sig))
EOF
)

elapsed() { # elapsed COMMAND...: wall seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || true
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}
palisade_run() { "$palisade_bin" scan jwt "$token" --wordlist "$work/words.txt" --no-common-secrets --quiet --format json || true; }
jwt_hack_run() { "$jwt_hack" crack -m dict -w "$work/words.txt" --power "$token"; }

# The palisade report says how many it tried: all of them, or the figure is not comparable.
tried=$(palisade_run | python3 -c 'import json,sys; r=json.load(sys.stdin); print(next(f["message"] for f in r["findings"] if f["rule"]=="JWT-WEAK-SECRET"))')
echo "palisade: $tried" >&2
jwt_hack_run >/dev/null 2>&1 || true

p=() j=()
for _ in $(seq "$runs"); do
  p+=("$(elapsed palisade_run)")
  j+=("$(elapsed jwt_hack_run)")
done
p_med=$(median "${p[@]}")
j_med=$(median "${j[@]}")
python3 - "$words" "$p_med" "$j_med" "$jwt_hack_version" "$(nproc)" "$results/jwt_crack.json" <<'EOF'
import json, sys, datetime
words, p, j = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
result = {
    "date": datetime.date.today().isoformat(),
    "words": words,
    "cores": int(sys.argv[5]),
    "palisade": {"seconds": round(p, 3), "guesses_per_second": round(words / p)},
    "jwt_hack": {"version": sys.argv[4], "seconds": round(j, 3), "guesses_per_second": round(words / j)},
    "ratio": round(j / p, 2),
}
json.dump(result, open(sys.argv[6], "w"), indent=2)
print(json.dumps(result, indent=2))
EOF
