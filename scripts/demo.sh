#!/usr/bin/env bash
# Starts orthotriage on its embedded defaults, shows discovery and a sample
# patient-view hook call, then keeps serving until Ctrl-C (DEMO_EXIT=1: stop
# right away).
set -euo pipefail
cd "$(dirname "$0")/.."

listen="${ORTHOTRIAGE_LISTEN:-127.0.0.1:8080}"
base="http://$listen"
pretty() { if command -v python3 >/dev/null; then python3 -m json.tool; else cat; echo; fi; }

bin/orthotriage version
echo
ORTHOTRIAGE_AUTH_DISABLED=true bin/orthotriage serve --listen "$listen" > .cache/demo.log 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT

for _ in $(seq 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  if ! kill -0 $pid 2>/dev/null; then
    echo "demo: the service did not start; its log:" >&2; cat .cache/demo.log >&2; exit 1
  fi
  sleep 0.1
done

echo "== GET $base/cds-services"
curl -fsS "$base/cds-services" | pretty
echo
echo "== POST $base/cds-services/hip-radiograph-screening (testdata/cds/patient-view.json)"
curl -sS -H 'Content-Type: application/json' --data @testdata/cds/patient-view.json \
  "$base/cds-services/hip-radiograph-screening" | pretty
echo
echo "== POST the same hook without context (a validation error, as a FHIR OperationOutcome)"
curl -sS -H 'Content-Type: application/json' --data '{"hook":"patient-view","hookInstance":"x"}' \
  "$base/cds-services/hip-radiograph-screening" | pretty
echo
echo "== the shipped hip model on a synthetic AP pelvis (orthotriage phantom + orthotriage analyze)"
rm -rf .cache/demo-phantom
bin/orthotriage phantom pelvis --n 1 --seed 2026 --out .cache/demo-phantom 2>/dev/null >/dev/null
echo "truth: $(tail -1 .cache/demo-phantom/labels.csv | cut -d, -f1-3 | sed 's/,/: left /; s/,/, right /')"
bin/orthotriage analyze --heatmap .cache/demo-phantom/heatmap.png .cache/demo-phantom/pelvis-2026-00000.dcm
echo
echo "The hook answers {\"cards\":[]} (no guidance) until analysis is wired into the hooks."
echo "Authentication is switched off for this demo (ORTHOTRIAGE_AUTH_DISABLED=true); see README, Registering an EHR."
echo "Log: .cache/demo.log. Readiness: $base/readyz  Metrics: $base/metrics"
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "Serving on $base; press Ctrl-C to stop."
wait $pid
