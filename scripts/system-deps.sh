#!/usr/bin/env bash
# Install the Debian packages the tests and `make run` use, if any is missing.
# Prometheus/promtool, Alertmanager/amtool and Pushgateway back the rule tests and the live loop;
# kubectl (from the Google Cloud CLI package where present) backs the sandbox fidelity check; Chromium, the
# dashboard tests.
# Services are never started here: tests and `smart-rollback run` start their own on loopback.
set -euo pipefail

# The Swarm platform tests run Debian's dockerd unpacked into .cache/swarm-engine (nothing is installed).
bash "$(dirname "$0")/swarm-engine.sh" >/dev/null

want=(prometheus prometheus-alertmanager prometheus-pushgateway)
# The Jenkins shared-library step is compiled and run by Groovy 2.4 (the version Jenkins embeds) in tests/cicd.
want+=(groovy default-jre-headless)
# The /ui dashboard is tested in a real headless Chromium, driven over the DevTools protocol (tests/browser.py).
want+=(chromium)
# `make bench` (argument `bench`) also drives load with wrk.
[ "${1:-}" = bench ] && want+=(wrk)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "system-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' own services from starting on 0.0.0.0 (Debian enables them by default).
cleanup_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  cleanup_policy=1
fi
trap '[ -n "$cleanup_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
