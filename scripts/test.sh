#!/usr/bin/env bash
# Runs every Go test with the race detector, shows each package's result and
# each failure, keeps the full log in .cache/test.log, and ends with one
# "N passed, N failed, N skipped" line (subtests counted).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
go test -race -count=1 -v ./... > .cache/test.log 2>&1
status=$?
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
if [ $status -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "go test failed outside a test (build error or panic); see .cache/test.log"
fi
exit $status
