#!/usr/bin/env bash
# Install the servers the e2e tests run (Prometheus, promtool, Alertmanager, amtool, PostgreSQL) and the
# headless browser the cost page is checked in (Chromium) from Debian's packages, only when missing.
# Idempotent; starts no service (the tests start their own processes on free 127.0.0.1 ports).
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
{ command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } \
  && command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The font keeps the page's screenshot the same on a bare image (Chromium falls back to it).
{ command -v chromium >/dev/null 2>&1 && [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; } \
  || missing+=(chromium fonts-dejavu-core)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-servers: prometheus, alertmanager, postgresql and chromium already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "install-servers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps the packages' postinst scripts from starting their services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

command -v prometheus promtool amtool chromium >/dev/null
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
echo "install-servers: done"
