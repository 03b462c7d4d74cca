#!/usr/bin/env bash
# Install the servers the e2e tests run (Prometheus, promtool, Alertmanager, amtool, PostgreSQL) from
# Debian's packages, only when their binaries are missing. Idempotent; starts no service (the tests
# start their own processes on free 127.0.0.1 ports).
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
{ command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; } \
  && command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-servers: prometheus, alertmanager and postgresql already installed"
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

command -v prometheus promtool amtool >/dev/null
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
echo "install-servers: done"
