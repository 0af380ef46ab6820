#!/usr/bin/env bash
# `npm run demo`: installs what is missing (Debian packages, npm packages, the native addon,
# the build), then runs the netns demo. Needs root (network namespaces, TUN, iptables).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "mip6 demo: needs root for network namespaces, TUN and iptables: sudo npm run demo" >&2
  exit 2
fi
bash scripts/setup.sh
exec node --import tsx scripts/demo.ts "$@"
