#!/usr/bin/env bash
# Installs the Debian packages a caller found missing (scripts/ensure-deps.sh, ensure-bench-deps.sh):
# only as root with apt-get available; otherwise it says what is missing and what that costs, and
# succeeds, so that `make test` and `make bench` go on.
# Usage: apt-install-missing.sh WHO CONSEQUENCE [PACKAGE...]
set -euo pipefail
who=$1
consequence=$2
shift 2
if [ $# -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: missing $* and cannot install (need root and apt-get); $consequence" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
