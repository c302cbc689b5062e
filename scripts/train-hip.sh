#!/usr/bin/env bash
# Reproduces the reference hip model inference/models/hip-000: generates the
# phantom crops with the service's own preprocessing, trains with Debian's
# PyTorch, exports ONNX and the golden probabilities, then evaluates the
# exported model in Go on a held-out DICOM test set. About 25 minutes on
# 2 cores. Knobs: TRAIN_N (pelvis cases, 2 hips each), EPOCHS, TEST_N.
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN_N=${TRAIN_N:-4000} VAL_N=${VAL_N:-300} TEST_N=${TEST_N:-400} EPOCHS=${EPOCHS:-14}
W=.cache/hip
bin=bin/orthotriage
model=inference/models/hip-000
scripts/setup.sh torch ort
mkdir -p "$W"
# Seeds: 1 train, 2 validation, 3 test (never seen in training), 4 golden.
[ -f "$W/train-$TRAIN_N/crops.npy" ] || $bin phantom pelvis --n "$TRAIN_N" --seed 1 --out "$W/train-$TRAIN_N" --crops-only
[ -f "$W/val-$VAL_N/crops.npy" ] || $bin phantom pelvis --n "$VAL_N" --seed 2 --out "$W/val-$VAL_N" --crops-only
$bin phantom pelvis --n 4 --seed 4 --out "$W/golden" --crops-only
/usr/bin/python3 "$model/train.py" --train "$W/train-$TRAIN_N" --val "$W/val-$VAL_N" --golden "$W/golden" \
  --epochs "$EPOCHS" --out "$W/model" | tee "$W/train.log"
cp "$W/model/model.onnx" "$model/model.onnx"
# The shipped model is embedded in the binary: rebuild it with the new file.
make --no-print-directory build
/usr/bin/python3 - "$W/model/training.json" "$model/golden.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
json.dump({"seed": 4, "cases": 4, "probabilities": r.pop("golden")}, open(sys.argv[2], "w"), indent=1)
json.dump(r, open(sys.argv[2].replace("golden.json", "training.json"), "w"), indent=1)
PY
[ -f "$W/test-$TEST_N/labels.csv" ] || $bin phantom pelvis --n "$TEST_N" --seed 3 --out "$W/test-$TEST_N"
$bin eval --model hip-000 --data "$W/test-$TEST_N" --plots "$W/plots" | tee "$W/eval.txt"
