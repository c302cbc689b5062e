#!/usr/bin/env bash
# Runs every Go test with the race detector, shows each package's result and
# each failure, keeps the full log in .cache/test.log, and ends with one
# "N passed, N failed, N skipped" line (subtests counted).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
go test -race -count=1 -v ./... > .cache/test.log 2>&1
status=$?
# Each fuzz target of an untrusted-input parser runs briefly from its seeds
# (longer runs: make fuzz FUZZTIME=60s).
for target in imaging:FuzzDecode imaging:FuzzParseMultipart cds:FuzzParseAndValidate cds:FuzzParseFeedback; do
  pkg=${target%%:*} name=${target#*:}
  if ! go test "./$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "${FUZZTIME:-5s}" >> .cache/test.log 2>&1; then
    echo "--- FAIL: $name (fuzzing found a failing input; see .cache/test.log and $pkg/testdata/fuzz)" | tee -a .cache/test.log
    status=1
  else
    echo "--- PASS: $name (fuzzed ${FUZZTIME:-5s})" >> .cache/test.log
  fi
done
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
