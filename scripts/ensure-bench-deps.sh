#!/usr/bin/env bash
# The peers `make bench` measures civicq-ops against: check_postgres (bench/run_checks.py times its
# 22 actions). Idempotent: apt only runs when the binary is missing, and only as root with apt-get
# available; otherwise the benchmark says so and leaves the peer comparison out.
set -euo pipefail
missing=()
command -v check_postgres >/dev/null 2>&1 || command -v check_postgres.pl >/dev/null 2>&1 || missing+=(check-postgres)
"$(dirname "$0")/apt-install-missing.sh" ensure-bench-deps "the benchmark leaves the peer out" ${missing[@]+"${missing[@]}"}
