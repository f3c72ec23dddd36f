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
# ssh2's optional native crypto must not load under Node 24: its AESGCMCipher destructor fails an assertion in Node's
# environment cleanup and kills the process (seen at 1,000 hosts in the BPA benchmark). Whether it loads depends on
# which Node and headers npm built it with, so remove it: ssh2 then uses Node's own crypto, as every tested run did.
rm -rf node_modules/ssh2/lib/protocol/crypto/build
case "$version" in
  v24.*) ;;
  *) echo "[deps] node_modules/.bin/node is $version, expected v24 (the pinned 'node' package)" >&2; exit 1 ;;
esac
