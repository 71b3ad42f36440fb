#!/usr/bin/env bash
# scripts/ensure-packages.sh CALLER PKG... — make sure the Debian packages PKG... are installed.
#
# Checks each with `dpkg -s`; installs the missing ones with apt-get (update, then install without
# recommends) when run as root; otherwise prints one line naming CALLER and the packages, and exits 1.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/ensure-packages.sh CALLER PKG..." >&2; exit 2; }
caller=$1
shift
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "== installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "$caller: missing packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
