#!/usr/bin/env bash
# Reproduces the reference vertebral model inference/models/spine-000, one
# stage at a time; each stage's training data is written by the Go service's
# own code with the stages before it (orthotriage phantom spine --crops-only):
#   1. localiser   seed 1 (TRAIN_N radiographs), seed 8 (VARY_N radiographs
#                  with clinical variation: rotation, shift, zoom, dose,
#                  noise, collimation, markers), and as negatives, where
#                  no vertebra is to be found, NEG_N pelvis radiographs
#                  (seed 6) and NEGK_N images of nothing and changed
#                  pelvises (seed 7: blank, black, white, noise, structured
#                  noise, upside-down, turned, collimated, badly exposed)
#                                                        -> localiser.onnx
#   2. network     seed 1 regions found by the localiser -> model.onnx
#                  (each ONNX file with its golden file, stored inputs and
#                  PyTorch's outputs for TestGoldenONNX)
#   3. fusion      seed 5 (FUSION_N radiographs), never seen by the network
#                  -> fusion.json (LASSO selection, trees, nomogram)
#   4. evaluation  seed 3 (TEST_N DICOM files), never seen in training,
#                  through `orthotriage eval --model vertebral-fracture-acuity`
# About 35 minutes on 2 cores; not part of `make test`. Knobs: TRAIN_N,
# FUSION_N, TEST_N, VARY_N, NEG_N, NEGK_N, LOC_EPOCHS, NET_EPOCHS; SPINE_WORK (work
# folder, default .cache/spine); SPINE_NO_COPY=1 stops after training,
# before the files replace the shipped model; SPINE_LOCALISER_ONLY=1 trains
# the localiser alone and keeps the shipped network and fusion (about 10
# minutes; their inputs change only where the localiser's boxes do, which
# the evaluation shows). Every run is the model's next minor version.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN_N=${TRAIN_N:-2500} FUSION_N=${FUSION_N:-2000} TEST_N=${TEST_N:-600} VARY_N=${VARY_N:-1000} NEG_N=${NEG_N:-500} NEGK_N=${NEGK_N:-440}
LOC_EPOCHS=${LOC_EPOCHS:-30} NET_EPOCHS=${NET_EPOCHS:-16}
W=${SPINE_WORK:-.cache/spine}
bin=bin/orthotriage
model=inference/models/spine-000
train=$model/train.py
scripts/setup.sh torch sklearn ort
make --no-print-directory build
began=$SECONDS
step() { echo "== $* ($((SECONDS - began))s)"; }
# The model folder being built: the manifest, then each stage's file.
rm -rf "$W/model" && mkdir -p "$W/model" && cp "$model/manifest.json" "$W/model/"
/usr/bin/python3 - "$W/model/manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
m = json.load(open(path))
major, minor, _ = (int(v) for v in m["version"].split("."))
m["version"] = f"{major}.{minor + 1}.0"
open(path, "w").write(json.dumps(m, indent=2) + "\n")
print(f"{path}: version {m['version']}")
PY

step "1/4 localiser data (seed 1, $TRAIN_N radiographs; seed 8, $VARY_N varied; negatives seeds 6 and 7)"
rm -rf "$W/loc" && $bin phantom spine --n "$TRAIN_N" --seed 1 --out "$W/loc" --crops-only --model "$W/model"
# Spines as departments take them (seed 8): the localiser must find them too.
rm -rf "$W/loc-vary" && $bin phantom spine --n "$VARY_N" --seed 8 --vary clinical --out "$W/loc-vary" --crops-only --model "$W/model"
# Negatives: AP pelvis radiographs (seed 6), where no vertebra is to be found.
rm -rf "$W/loc-neg" && $bin phantom pelvis --n "$NEG_N" --seed 6 --out "$W/loc-neg" --crops-only --model "$W/model"
# Images of nothing and changed pelvises (seed 7), clinically varied.
rm -rf "$W/loc-negk" && $bin phantom pelvis --n "$NEGK_N" --seed 7 --vary clinical --out "$W/loc-negk" --negatives --model "$W/model"
step "1/4 localiser training"
/usr/bin/python3 $train localiser --train "$W/loc" --train "$W/loc-vary" --negatives "$W/loc-neg" --negatives "$W/loc-negk" --out "$W/model" \
  --epochs "$LOC_EPOCHS" --golden | tee "$W/train-localiser.log"

if [ -n "${SPINE_LOCALISER_ONLY:-}" ]; then
  # The shipped network and fusion stay; the shipped training report
  # keeps their stages with the new localiser's.
  cp "$model/model.onnx" "$model/fusion.json" "$model/model.golden.json" "$W/model/"
  /usr/bin/python3 - "$model/training.json" "$W/model/training.json" <<'PY'
import json, sys
shipped, new = (json.load(open(p)) for p in sys.argv[1:])
shipped.update(new)
json.dump(shipped, open(sys.argv[2], "w"), indent=1)
PY
else

step "2/4 network data (seed 1, regions found by the localiser)"
rm -rf "$W/net" && $bin phantom spine --n "$TRAIN_N" --seed 1 --out "$W/net" --crops-only --model "$W/model"
step "2/4 network training"
/usr/bin/python3 $train net --train "$W/net" --out "$W/model" --epochs "$NET_EPOCHS" --golden | tee "$W/train-net.log"

step "3/4 fusion data (seed 5, $FUSION_N radiographs)"
rm -rf "$W/fusion" && $bin phantom spine --n "$FUSION_N" --seed 5 --out "$W/fusion" --crops-only --model "$W/model"
step "3/4 fusion training"
/usr/bin/python3 $train fusion --train "$W/fusion" --out "$W/model" | tee "$W/train-fusion.log"
fi

[ -n "${SPINE_NO_COPY:-}" ] && exit 0
cp "$W/model/manifest.json" "$W/model/localiser.onnx" "$W/model/model.onnx" "$W/model/fusion.json" "$W/model/training.json" \
  "$W/model/localiser.golden.json" "$W/model/model.golden.json" "$model/"
# The shipped model is embedded in the binary: rebuild it with the new files.
make --no-print-directory build
step "4/4 evaluation (seed 3, $TEST_N DICOM files)"
[ -f "$W/test-$TEST_N/labels.csv" ] || $bin phantom spine --n "$TEST_N" --seed 3 --out "$W/test-$TEST_N"
$bin eval --model spine-000 --data "$W/test-$TEST_N" --plots "$W/plots" | tee "$W/eval.txt"
step "done"
