#!/usr/bin/env bash
# Installs the Debian 12 packages that building, running and testing redline need.
# Idempotent: asks dpkg what is present first and runs apt-get (and its update)
# only when something is missing. Works as root or through sudo.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config clang libclang-rt-14-dev
  # libraries libredline and coursed link
  libuv1-dev libfyaml-dev libjansson-dev libsqlite3-dev zlib1g-dev libcurl4-openssl-dev libpcre2-dev
  # tests: unit framework, parser oracle, peers and scripts
  libcmocka-dev libhttp-parser-dev python3 python3-yaml curl sqlite3
  # metrics integration test: the real scraper and its linter (Prometheus 2.42, promtool)
  prometheus
  # test peers on npm (tests/node: the official OTLP decoder)
  nodejs
  # benchmarks: load generator and the nginx ceiling
  wrk nginx-light
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

# npm test tooling, pinned by tests/node/package-lock.json.
node_tools() {
  if [ ! -d tests/node/node_modules ]; then
    echo "deps: npm ci in tests/node"
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
cd "$(dirname "$0")/.."

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  node_tools
  exit 0
fi

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "deps: missing packages and neither root nor sudo: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
node_tools
echo "deps: done"
