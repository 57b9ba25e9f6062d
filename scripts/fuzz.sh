#!/usr/bin/env bash
# fuzz.sh: runs every Go fuzz target (func FuzzX in a _test.go file) of every
# module for FUZZTIME each (default 8s; e.g. FUZZTIME=5m for a long run), one
# at a time. Seeds come from f.Add and the package's testdata/fuzz/FuzzX/; a
# crash fails the run and Go writes the input to testdata/fuzz/FuzzX/, where
# it is to be committed as a regression entry once the bug is fixed (plain
# `go test` replays it from then on). FUZZ_MATCH limits the targets by name
# (a grep -E pattern).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME="${FUZZTIME:-8s}"
PARALLEL="${FUZZ_PARALLEL:-2}"
status=0
failed=()
while IFS= read -r file; do
  dir=$(dirname "$file")
  mod=$dir
  until [ -f "$mod/go.mod" ]; do mod=$(dirname "$mod"); done
  rel=${dir#"$mod"}; rel=".${rel}"
  for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    if [ -n "${FUZZ_MATCH:-}" ] && ! grep -qE "$FUZZ_MATCH" <<<"$target"; then continue; fi
    echo "== fuzz $target ($dir, $FUZZTIME)"
    if ! (cd "$mod" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel "$PARALLEL" "$rel" 2>&1 | tail -n 25); then
      status=1
      failed+=("$target ($dir)")
    fi
  done
done < <(grep -rlE --include='*_test.go' '^func Fuzz' pkg services cmd tests proto 2>/dev/null | sort)
if [ $status -ne 0 ]; then
  echo "fuzz: failing targets: ${failed[*]}" >&2
  echo "fuzz: the crashing inputs are in the packages' testdata/fuzz/; fix the bug and commit them" >&2
fi
exit $status
