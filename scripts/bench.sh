#!/usr/bin/env bash
# `npm run bench [-- --quick]`: mip6 side by side with WireGuard and OpenVPN on the netns lab
# (bench/compare.ts). Installs what is missing first: the peers and the plotting tool from Debian
# packages (wireguard-go, wireguard-tools, openvpn, iperf3, python3-matplotlib, openssl), then the
# npm packages, the native addon and the build (scripts/setup.sh). Needs root (namespaces, TUN).
# Never part of `npm test`. Arguments are passed to bench/compare.ts (--quick for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "mip6 bench: needs root for network namespaces and TUN devices: sudo npm run bench" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(wireguard-go wireguard-tools openvpn iperf3 openssl iputils-ping python3-matplotlib)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "mip6 bench: installing ${missing[*]}"
  apt-get update -qq
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # wireguard-go is not packaged everywhere: the bench needs it (it measures the userspace
    # implementation, like mip6); say so instead of silently measuring something else.
    echo "mip6 bench: could not install ${missing[*]} (is wireguard-go packaged for this release?)" >&2
    exit 1
  fi
fi
# A build that fails (e.g. a source file mid-edit) is not fatal: the lab then runs the daemons
# from the TypeScript sources, and the report says which one ran.
bash scripts/setup.sh || echo "mip6 bench: setup/build failed; the daemons run from the sources" >&2
exec node --import tsx bench/compare.ts "$@"
