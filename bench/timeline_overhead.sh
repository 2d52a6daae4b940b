#!/usr/bin/env bash
# What protecting the home timeline costs (RES-1, RES-2, SOC-2): one page of 20 posts through
# the real API (allowances, token verification with its grant and account checks, the scope,
# the Cedar decisions) and through the same page code with authentication and authorization
# taken out, on SQLite and, when PALISADE_TEST_POSTGRES_URL names a server, PostgreSQL; one
# request at a time and eight in flight; the two sides take turns in rounds, medians reported.
# Results go to bench/results/timeline_overhead.json.
source "$(dirname "$0")/lib.sh"
cd "$root"
PALISADE_BENCH_OUT="$results/timeline_overhead.json" \
  cargo bench -p palisade-social --features bench-unprotected --bench timeline
