#!/usr/bin/env bash
# js.sh deps|test|bundle|bundle-check: the JavaScript client (clients/js).
#   deps          npm ci from the committed lockfile, when node_modules is absent or older than it
#   test          deps, type checks (library and demo), unit tests and the package check (node --test: test/pack.test.mjs packs the tarball, installs it in a temp dir, imports and type-checks it)
#   bundle        rebuild the demo client's bundle into services/ws-edge/internal/webclient/static/app.js
#   bundle-check  fail when that committed bundle differs from a fresh build
# Everything after `deps` works offline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-tool.sh node >/dev/null
cd clients/js

deps() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

case "${1:-}" in
  deps) deps ;;
  test)
    deps
    npm run --silent typecheck
    npm test ;;
  bundle)
    deps
    npm run --silent demo ;;
  bundle-check)
    deps
    npm run --silent demo:check ;;
  *)
    echo "usage: js.sh deps|test|bundle|bundle-check" >&2; exit 2 ;;
esac
