#!/usr/bin/env bash
# modules.sh: the Go modules of this repository, from go.work, in build order.
cd "$(dirname "$0")/.."
sed -n '/^use (/,/^)/p' go.work | grep -v -e '^use (' -e '^)' | tr -d '\t ' | sed 's|^\./||'
