#!/usr/bin/env bash
# Installs what mip6's tests and demo need on a fresh Debian/Ubuntu machine (as root), then
# installs the npm packages, builds the native addon and compiles the TypeScript.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
PKGS=(iproute2 iptables nftables conntrack procps iputils-ping iperf3 tshark python3-scapy socat make g++ python3)
# npm pack (scripts/prepack.mjs, test/unit/package-install.test.ts) cross-builds the linux-arm64
# addon and smoke-runs it under qemu-user.
PKGS+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross libstdc++6-arm64-cross qemu-user)
# The home agent cluster's tests (issue 18) start their own etcd processes on free loopback
# ports (or inside the lab's namespaces) with private data directories.
PKGS+=(etcd-server)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "mip6 setup: missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "mip6 setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package enables its own etcd service (127.0.0.1:2379, /var/lib/etcd) where systemd
  # runs. The tests never use it (free ports of their own); a test machine need not run it.
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# better-sqlite3 (the home agent's [home] state, issue 20) is an optional dependency: npm ci
# builds it from source with node-gyp where no prebuilt binary can be fetched, and carries on
# without it if that fails. The tests need it: rebuild once, then fail with the reason.
sqlite_ok() { node -e "new (require('better-sqlite3'))(':memory:').close()" >/dev/null 2>&1; }
if ! sqlite_ok; then
  echo "mip6 setup: better-sqlite3 does not load; building it from source"
  npm rebuild better-sqlite3 --no-audit --no-fund >/dev/null || true
  if ! sqlite_ok; then
    echo "mip6 setup: better-sqlite3 still does not load (needs g++, make, python3):" >&2
    node -e "new (require('better-sqlite3'))(':memory:')" 2>&1 | head -3 >&2
    exit 1
  fi
fi
# The addon (package.json has gypfile: false, so that the npm package runs no install script;
# it ships prebuilt addons instead): built here when missing or older than its sources.
if [ ! -f build/Release/mip6.node ] || [ -n "$(find binding.gyp native -newer build/Release/mip6.node)" ]; then
  npm run build:addon --silent
fi
npm run build --silent
