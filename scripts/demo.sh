#!/usr/bin/env bash
# Starts orthotriage on its embedded defaults, shows discovery, hook calls,
# the shipped model on a synthetic pelvis and a hook answered with a card for
# that radiograph stored in a local Orthanc (DICOMweb), then keeps serving
# until Ctrl-C (DEMO_EXIT=1: stop right away).
set -euo pipefail
cd "$(dirname "$0")/.."

listen="${ORTHOTRIAGE_LISTEN:-127.0.0.1:8080}"
base="http://$listen"
pretty() { if command -v python3 >/dev/null; then python3 -m json.tool; else cat; echo; fi; }

bin/orthotriage version
echo
# A local Orthanc (Debian's, with its DICOMweb plugin) holds the demo's
# radiograph, on a free loopback port, storing under .cache/demo-orthanc.
oport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -rf .cache/demo-orthanc && mkdir -p .cache/demo-orthanc
cat > .cache/demo-orthanc/orthanc.json <<JSON
{"Name": "orthotriage-demo", "StorageDirectory": "$PWD/.cache/demo-orthanc/db", "IndexDirectory": "$PWD/.cache/demo-orthanc/db",
 "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "HttpPort": $oport, "DicomServerEnabled": false,
 "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
JSON
/usr/sbin/Orthanc --logdir=.cache/demo-orthanc .cache/demo-orthanc/orthanc.json > /dev/null 2>&1 &
opid=$!
orthanc="http://127.0.0.1:$oport"

# Authentication is off for the demo, and request-named URLs may reach
# loopback (the demo's Orthanc): both for a local demo only.
ORTHOTRIAGE_AUTH_DISABLED=true ORTHOTRIAGE_EGRESS_ALLOW_PRIVATE=true \
  bin/orthotriage serve --listen "$listen" > .cache/demo.log 2>&1 &
pid=$!
trap 'kill -TERM $pid $opid 2>/dev/null; wait $pid $opid 2>/dev/null || true' EXIT

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
bin/orthotriage phantom pelvis --n 1 --seed 3 --start 13 --out .cache/demo-phantom 2>/dev/null >/dev/null
file=.cache/demo-phantom/pelvis-3-00013.dcm
echo "truth: $(tail -1 .cache/demo-phantom/labels.csv | cut -d, -f1-3 | sed 's/,/: left /; s/,/, right /')"
bin/orthotriage analyze --heatmap .cache/demo-phantom/heatmap.png "$file"
echo
echo "== the same radiograph stored in Orthanc ($orthanc); a patient-view hook whose prefetch names its study"
for _ in $(seq 100); do curl -fsS "$orthanc/system" >/dev/null 2>&1 && break; sleep 0.1; done
python3 scripts/demo-study.py request "$orthanc" "$file" .cache/demo-hook.json
curl -sS -H 'Content-Type: application/json' --data @.cache/demo-hook.json \
  "$base/cds-services/hip-radiograph-screening" > .cache/demo-card.json
python3 scripts/demo-study.py summary .cache/demo-card.json
echo
echo "== a synthetic lateral spine with an acute L1 fracture, its clinical data prefetched; the vertebral service"
bin/orthotriage phantom spine --n 1 --seed 3 --start 1 --out .cache/demo-phantom 2>/dev/null >/dev/null
spine=.cache/demo-phantom/spine-3-00001.dcm
echo "truth: $(awk -F, '$7 != "none" && NR > 1 {print $2 ": " $7 " (" $8 ")"}' .cache/demo-phantom/labels.csv | paste -sd ';' -)"
bin/orthotriage analyze --model spine-000 "$spine"
python3 scripts/demo-study.py spine "$orthanc" "$spine" .cache/demo-phantom/labels.csv .cache/demo-spine-hook.json
curl -sS -H 'Content-Type: application/json' --data @.cache/demo-spine-hook.json \
  "$base/cds-services/vertebral-fracture-acuity" > .cache/demo-spine-card.json
python3 scripts/demo-study.py summary .cache/demo-spine-card.json
echo
echo "Full answers (cards, FHIR resources): .cache/demo-card.json, .cache/demo-spine-card.json"
echo "Authentication is switched off for this demo (ORTHOTRIAGE_AUTH_DISABLED=true); see docs/security.md, Registering an EHR."
echo "Log: .cache/demo.log. Readiness: $base/readyz  Metrics: $base/metrics"
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "Serving on $base; press Ctrl-C to stop."
wait $pid
