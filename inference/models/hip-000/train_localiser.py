#!/usr/bin/python3
"""Trains hip-000's localiser: the whole AP pelvis radiograph in, per level
(right hip, left hip, pelvis) a presence probability and a box (cx, cy, w,
h as fractions of the image) out; the service cuts each hip's crop from it,
rotated upright along the line through both hips, at a size relative to the
anatomy (manifest `preprocessing.localiser`).

Data: `orthotriage phantom pelvis --vary clinical --crops-only` before the
localiser exists writes localiser.npy (n, 1, h, w; the manifest's input
plane, normalised) and localiser.csv (index, file, level, present, cx, cy,
w, h), the format of the vertebral localiser; negatives (blank, black,
noise, a lateral spine, upside down, heavy under- and over-exposure) the
same with every level present=0. The network, loss, training loop,
BatchNorm fusion and export are trainlib's, shared with spine-000.

Writes OUT/localiser.onnx (input "image" (n, 1, h, w), output "levels"
(n, 3, 5)), its report under "localiser" in OUT/training.json and, with
--golden, OUT/localiser.golden.json (TestGoldenONNX). Prints presence
accuracy and box IoU on the validation set.

Run through `make train-hip` (scripts/train-hip.sh).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainlib  # noqa: E402

LEVELS = ["right", "left", "pelvis"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True, help="folder with localiser.npy and localiser.csv (varied phantoms)")
    trainlib.add_localiser_args(ap)
    ap.add_argument("--out", required=True, help="the model folder being built")
    ap.add_argument("--golden", action="store_true", help="also write localiser.golden.json")
    trainlib.add_training_args(ap, epochs=30)
    a = ap.parse_args()
    trainlib.start(a)
    model, report, (xv, _, xv_neg) = trainlib.train_localiser(a, LEVELS, iou=True)
    if a.golden:
        trainlib.localiser_golden(model, os.path.join(a.out, "localiser.golden.json"), xv, xv_neg, 4, a.seed)
    path = os.path.join(a.out, "training.json")
    reports = json.load(open(path)) if os.path.exists(path) else {}
    reports["localiser"] = report
    with open(path, "w") as f:
        json.dump(reports, f, indent=1)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
