#!/usr/bin/env bash
# Reproduces the reference hip model inference/models/hip-000 on phantoms
# with the variation departments see (--vary clinical: rotation +-15
# degrees, shift +-15%, zoom 0.8-1.2, exposure, noise, collimation,
# markers, text). Each stage's data is written by the Go service's own code
# with the stages before it (orthotriage phantom pelvis --crops-only):
#   1. localiser   seed 1 (LOC_N radiographs), seed 2 (LOC_VAL_N) for
#                  validation, negatives seeds 7 (NEG_N) and 8 (NEG_VAL_N):
#                  blank, black, white, noise, lateral spine, upside down,
#                  turned 90 or 180 degrees, one quadrant, over- and
#                  under-exposed (12 kinds), where no hip is to be found
#                                                    -> localiser.onnx
#   2. classifier  seed 1 (TRAIN_N) and seed 2 (VAL_N) crops cut upright
#                  around the hips the trained localiser finds; golden
#                  rows from a pool of seed 4 (GOLDEN_N, default variation,
#                  as TestGoldenProbabilities regenerates them)
#                                                    -> model.onnx
#   3. calibration the temperature fitted on seed 2 (VAL_N DICOM files)
#                  goes into manifest.json
#   4. evaluation  seed 3 (TEST_N DICOM files), never seen in training,
#                  unperturbed and under each of PERTURB
# Goldens: golden.json (end to end), model.golden.json and
# localiser.golden.json (stored inputs, TestGoldenONNX).
# About an hour on 2 cores; not part of `make test`. Knobs: LOC_N,
# LOC_VAL_N, NEG_N, NEG_VAL_N, TRAIN_N, VAL_N, TEST_N, GOLDEN_N,
# LOC_EPOCHS, EPOCHS, BATCH, THREADS, PERTURB; HIP_WORK (work folder,
# default .cache/hip); HIP_NO_COPY=1 stops after training, before the
# files replace the shipped model; HIP_KEEP_LOCALISER=1 keeps the shipped
# localiser (step 1 skipped: the classifier's crops come through it);
# NEG_FLAGS (the phantom option that writes negatives, default
# --negatives). Every run is the model's next minor version.
set -euo pipefail
cd "$(dirname "$0")/.."
LOC_N=${LOC_N:-2500} LOC_VAL_N=${LOC_VAL_N:-300} NEG_N=${NEG_N:-840} NEG_VAL_N=${NEG_VAL_N:-180}
TRAIN_N=${TRAIN_N:-4000} VAL_N=${VAL_N:-300} TEST_N=${TEST_N:-400} GOLDEN_N=${GOLDEN_N:-40}
LOC_EPOCHS=${LOC_EPOCHS:-25} EPOCHS=${EPOCHS:-14} CROP_SCALE=${CROP_SCALE:-1.1} BATCH=${BATCH:-64} THREADS=${THREADS:-$(nproc)}
PERTURB=${PERTURB:-rotate=15,shiftx=0.1,shifty=0.1,zoom=0.85,zoom=1.15,noise=0.10,halfres,mono1}
NEG_FLAGS=${NEG_FLAGS:---negatives}
W=${HIP_WORK:-.cache/hip}
bin=bin/orthotriage
model=inference/models/hip-000
py=/usr/bin/python3
vary="--vary clinical"
scripts/setup.sh torch ort
make --no-print-directory build
began=$SECONDS
step() { echo "== $* ($((SECONDS - began))s)"; }
mkdir -p "$W"
# The model folder being built: the manifest (with its localiser stage),
# then each stage's file. The shipped classifier stands in until step 2.
rm -rf "$W/model" && mkdir -p "$W/model" && cp "$model/manifest.json" "$model/model.onnx" "$W/model/"
if [ -n "${HIP_KEEP_LOCALISER:-}" ]; then
  cp "$model/localiser.onnx" "$model/localiser.golden.json" "$model/training.json" "$W/model/"
fi
# A shipped manifest with fixed crops gets its localiser stage here (crops
# CROP_SCALE x the joint box, turned upright) and the next minor version.
$py - "$W/model/manifest.json" "$CROP_SCALE" <<'PY'
import json, re, sys
path, scale = sys.argv[1], float(sys.argv[2])
m = json.load(open(path))
pre = m["preprocessing"]
if "localiser" not in pre:
    pre["localiser"] = {"file": "localiser.onnx", "input": "image", "output": "levels", "width": 192, "height": 160,
                        "levels": ["right", "left", "pelvis"], "minPresence": 0.5}
    pre["regions"] = [{k: r[k] for k in ("name", "laterality", "mirror")} for r in pre["regions"]]
major, minor, _ = (int(v) for v in m["version"].split("."))
m["version"] = f"{major}.{minor + 1}.0"
pre["cropScale"], pre["upright"] = scale, True
open(path, "w").write(json.dumps(m, indent=2) + "\n")
print(f"{path}: version {m['version']}, localiser stage, cropScale {scale}, upright")
PY
# Seeds: 1 train, 2 validation, 3 test (never seen in training), 4 golden,
# 7 and 8 negatives (train, validation).
phantom() { # phantom OUT ARGS...: crops-only data through the model being built
  local out=$1; shift
  rm -rf "$out" && $bin phantom pelvis --out "$out" --crops-only --model "$W/model" "$@"
}

if [ -z "${HIP_KEEP_LOCALISER:-}" ]; then
step "1/4 localiser data (seed 1: $LOC_N, seed 2: $LOC_VAL_N varied radiographs; negatives seed 7: $NEG_N, seed 8: $NEG_VAL_N)"
phantom "$W/loc-train" --n "$LOC_N" --seed 1 $vary
phantom "$W/loc-val" --n "$LOC_VAL_N" --seed 2 $vary
phantom "$W/loc-neg" --n "$NEG_N" --seed 7 $NEG_FLAGS
phantom "$W/loc-neg-val" --n "$NEG_VAL_N" --seed 8 $NEG_FLAGS
step "1/4 localiser training ($LOC_EPOCHS epochs)"
$py "$model/train_localiser.py" --train "$W/loc-train" --val "$W/loc-val" --negatives "$W/loc-neg" \
  --val-negatives "$W/loc-neg-val" --out "$W/model" --epochs "$LOC_EPOCHS" --batch 32 --threads "$THREADS" --golden \
  | tee "$W/train-localiser.log"
if [ -z "${HIP_NO_COPY:-}" ]; then
  cp "$W/model/localiser.onnx" "$W/model/localiser.golden.json" "$model/"
  # The shipped model is embedded in the binary: rebuild it with the new file.
  make --no-print-directory build
fi
else
  step "1/4 the shipped localiser is kept (HIP_KEEP_LOCALISER)"
fi

step "2/4 classifier crops through the trained localiser (seed 1: $TRAIN_N, seed 2: $VAL_N, golden pool seed 4: $GOLDEN_N)"
phantom "$W/train" --n "$TRAIN_N" --seed 1 $vary
phantom "$W/val" --n "$VAL_N" --seed 2 $vary
phantom "$W/golden" --n "$GOLDEN_N" --seed 4
for d in train val golden; do
  [ -f "$W/$d/crops.npy" ] || { echo "$W/$d: no crops.npy (does the localiser stage write crops once localiser.onnx exists?)" >&2; exit 1; }
done
step "2/4 classifier training ($EPOCHS epochs)"
$py "$model/train.py" --train "$W/train" --val "$W/val" --golden "$W/golden" \
  --epochs "$EPOCHS" --batch "$BATCH" --threads "$THREADS" --out "$W/model" | tee "$W/train.log"
# golden.json: the end-to-end rows (case index, side) for
# TestGoldenProbabilities; training.json without them.
$py - "$W/model/training.json" "$W/model/golden.json" "$GOLDEN_N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rows = r.pop("golden")
json.dump({"seed": 4, "cases": len({g["index"] for g in rows}), "pool": int(sys.argv[3]), "temperature": 1, "probabilities": rows},
          open(sys.argv[2], "w"), indent=1)
json.dump(r, open(sys.argv[1], "w"), indent=1)
PY
[ -n "${HIP_NO_COPY:-}" ] && { step "stopped before copying (HIP_NO_COPY)"; exit 0; }
cp "$W/model/manifest.json" "$W/model/model.onnx" "$W/model/model.golden.json" "$W/model/golden.json" "$W/model/training.json" "$model/"
make --no-print-directory build

step "3/4 temperature fitted on seed 2 ($VAL_N varied DICOM files)"
[ -f "$W/val-dicom-$VAL_N/labels.csv" ] || { rm -rf "$W/val-dicom-$VAL_N"; $bin phantom pelvis --n "$VAL_N" --seed 2 $vary --out "$W/val-dicom-$VAL_N"; }
$bin eval --model hip-000 --data "$W/val-dicom-$VAL_N" --fit-temperature --json > "$W/fit.json"
$py - "$W/fit.json" "$model/manifest.json" <<'PY'
import json, sys
fit = json.load(open(sys.argv[1]))["temperatureFit"]
t = round(float(fit["temperature"]), 4)
if fit.get("atBound"):
    print(f"warning: the temperature fit stopped at a bound ({t}): the validation set has too few errors to calibrate on")
path = sys.argv[2]
m = json.load(open(path))
m["calibration"] = {"temperature": t}
open(path, "w").write(json.dumps(m, indent=2) + "\n")
print(f"temperature {t} (fitted on {fit.get('n', fit.get('N', '?'))} hips) -> {path}")
PY
make --no-print-directory build

step "4/4 evaluation (seed 3, $TEST_N varied DICOM files, perturbations $PERTURB)"
[ -f "$W/test-$TEST_N/labels.csv" ] || { rm -rf "$W/test-$TEST_N"; $bin phantom pelvis --n "$TEST_N" --seed 3 $vary --out "$W/test-$TEST_N"; }
$bin eval --model hip-000 --data "$W/test-$TEST_N" --perturb "$PERTURB" --plots "$W/plots" | tee "$W/eval.txt"
step "done"
