#!/usr/bin/env bash
# Runs every Go test, shows each package's result and each failure, keeps
# the full log in .cache/test.log, and ends with one "N passed, N failed,
# N skipped" line (subtests counted) and the five slowest tests.
#
# Every package runs under the race detector except those in NORACE: pure
# single-goroutine arithmetic (the phantom generator, whose population
# checks draw 80 radiographs each), which -race slows five- to seven-fold
# and cannot find anything in. Their code still runs under -race wherever
# other packages' tests use it. A package listed there that starts
# goroutines is refused, below.
#
# TEST_TIMEOUT bounds each test binary (go test's default, 10m, is too
# tight on a busy 2-core machine); a test timeout's panic also kills the
# servers the tests started (internal/testenv binds them to the binary).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
timeout=${TEST_TIMEOUT:-30m}
module=$(go list -m)
NORACE=("$module/phantom")

for pkg in "${NORACE[@]}"; do
  dir=${pkg#"$module"/}
  if grep -nE '^\s*go\s' "$dir"/*.go; then
    echo "$pkg starts goroutines: it must run under -race (remove it from NORACE in $0)"
    exit 1
  fi
done
race=$(go list ./... | grep -vxF -f <(printf '%s\n' "${NORACE[@]}"))

# shellcheck disable=SC2086 # package paths hold no spaces
go test -race -count=1 -v -timeout "$timeout" $race > .cache/test.log 2>&1
status=$?
go test -count=1 -v -timeout "$timeout" "${NORACE[@]}" >> .cache/test.log 2>&1 || status=$?
# Fuzz targets run here only on their seeds and stored corpora (testdata/fuzz),
# which `go test` executes as ordinary tests: random exploration is not
# repeatable, so it lives in `make fuzz FUZZTIME=60s`, and each crasher it
# finds is committed under testdata/fuzz where this run replays it.
grep -E '^(ok|FAIL|panic:|\?)|--- FAIL|^\s+\S+_test\.go:[0-9]+:' .cache/test.log
passed=$(grep -cE '^\s*--- PASS' .cache/test.log)
failed=$(grep -cE '^\s*--- FAIL' .cache/test.log)
skipped=$(grep -cE '^\s*--- SKIP' .cache/test.log)
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
# The slowest top-level tests, each with its package: go test -v prints a
# package's tests before its ok/FAIL line.
echo "slowest tests:"
awk '
  /^--- (PASS|FAIL|SKIP): / { name[n] = $3; secs[n] = substr($4, 2) + 0; n++; next }
  /^(ok|FAIL)[ \t]+[^ \t]+[ \t]/ { for (; m < n; m++) pkg[m] = $2; next }
  END { for (i = 0; i < n; i++) printf "%10.2fs  %s  %s\n", secs[i], name[i], (i in pkg ? pkg[i] : "?") }
' .cache/test.log | sort -rn | head -5
if [ $status -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "go test failed outside a test (build error or panic); see .cache/test.log"
fi
exit $status
