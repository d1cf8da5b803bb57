#!/usr/bin/env bash
# The peers `make bench` measures civicq-ops against: check_postgres (bench/run_checks.py times its
# 22 actions). Idempotent: apt only runs when the binary is missing, and only as root with apt-get
# available; otherwise the benchmark says so and leaves the peer comparison out.
set -euo pipefail
missing=()
command -v check_postgres >/dev/null 2>&1 || command -v check_postgres.pl >/dev/null 2>&1 || missing+=(check-postgres)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-bench-deps: missing ${missing[*]} and cannot install (need root and apt-get); the benchmark leaves the peer out" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
