#!/usr/bin/env bash
# Installs headless Chromium (Debian package `chromium`) when it is missing; does nothing otherwise.
# The HTML report's browser test needs it; .ci/run calls this on a clean machine. Idempotent, and
# patient with other apt processes (waits for the dpkg lock instead of failing).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
APT=($SUDO apt-get -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends)
install() { "${APT[@]}" install chromium >/dev/null; }
# Try with the package lists already present; refresh them only when that fails (a clean machine).
for attempt in 1 2 3; do
  if install || { "${APT[@]}" update >/dev/null && install; }; then
    break
  fi
  echo "ensure-browser: apt-get failed (attempt $attempt), retrying" >&2
  sleep 20
done
command -v chromium >/dev/null || { echo "ensure-browser: chromium is still missing" >&2; exit 1; }
