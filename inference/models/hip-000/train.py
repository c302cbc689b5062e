#!/usr/bin/python3
"""Trains the reference hip model (seed 000 architecture) on phantom crops.

ResNet-50 topology (bottleneck blocks 3-4-6-3) at a quarter of the usual
width, a CBAM block after each stage, GeM pooling and a linear classifier,
trained with class-balanced focal loss on per-hip crops that the Go service
computed itself (`orthotriage phantom pelvis --vary clinical --crops-only
--model M`: varied phantoms, each hip cut upright around where the trained
localiser (train_localiser.py) found it). The localiser leaves a little
rotation, shift and scale, and the radiographs' exposure, noise and
resolution vary: the augmentation draws small rotations (+-6 degrees),
scale (+-10%), shifts (+-3%), exposure and contrast, noise up to 0.075 of
the display range and half resolution. Exports ONNX
with two outputs, the logits and the class activation maps, with weights
stored as float16 behind Cast nodes that ONNX Runtime folds at load.

Run through `make train-hip`; see MODEL_CARD.md for the recipe and budget.
What it shares with the spine trainer is in ../trainlib.py.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainlib  # noqa: E402
from trainlib import (Bottleneck, CBFocal, Optimiser, add_training_args, augment, batches, count_flops,  # noqa: E402
                      degrade, export, fold_batchnorm, pick_unsaturated, predict, round_half, rows, snapshot, start)

CLASSES = ["normal", "oa", "onfh", "fnf", "itf", "ddh", "tha", "fixation"]


class CBAM(nn.Module):
    """Convolutional block attention: channel then spatial attention."""

    def __init__(self, c, reduction=8):
        super().__init__()
        h = max(4, c // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(c, h, 1), nn.ReLU(inplace=True), nn.Conv2d(h, c, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x):
        a = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(a)
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial(s))


class GeM(nn.Module):
    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([p]))
        self.eps = eps

    def forward(self, x):
        return x.clamp(min=self.eps).pow(self.p).mean((2, 3)).pow(1.0 / self.p)


class HipNet(nn.Module):
    def __init__(self, classes=8, base=16, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, base, 7, 2, 3, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], base
        for i, n in enumerate(blocks):
            width = base * 2**i
            layers = []
            for j in range(n):
                layers.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * 4
            layers.append(CBAM(cin))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = GeM()
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        f = self.stages(self.stem(x))
        logits = self.fc(self.pool(f))
        # Class activation maps: the classifier applied at each location of
        # the final feature map (before pooling).
        cam = torch.einsum("bchw,kc->bkhw", f, self.fc.weight) + self.fc.bias[None, :, None, None]
        return logits, cam


def load(folder):
    x = np.load(os.path.join(folder, "crops.npy"), mmap_mode="r")
    labels = rows(folder, "crops.csv")
    y = np.array([CLASSES.index(r["class"]) for r in labels], dtype=np.int64)
    if len(labels) != x.shape[0]:
        raise SystemExit(f"{folder}: {x.shape[0]} crops but {len(labels)} label rows")
    return x, y, labels


def evaluate(model, x, y):
    p, _ = predict(model, x, 256)
    return p, float((p.argmax(1) == y).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--golden", help="crops folder (a pool of cases) from which the golden rows are picked: "
                    "those whose top probability is least saturated (in [0.3, 0.95] where possible)")
    ap.add_argument("--golden-rows", type=int, default=8, help="crops in the golden file")
    ap.add_argument("--degrees", type=float, default=6, help="augmentation: rotation +-degrees")
    ap.add_argument("--noise", type=float, default=0.3, help="augmentation: largest added noise (normalised units)")
    ap.add_argument("--out", required=True)
    add_training_args(ap, epochs=12)
    ap.add_argument("--checkpoint", help="skip training: export from this saved state (checkpoint.pt of an earlier run)")
    a = ap.parse_args()
    start(a)
    g = torch.Generator().manual_seed(a.seed)

    xt, yt, _ = load(a.train)
    xv, yv, _ = load(a.val)
    xt = np.ascontiguousarray(xt)
    counts = np.bincount(yt, minlength=len(CLASSES)).astype(np.float64)
    print(f"train {len(yt)} crops, val {len(yv)}; class counts {dict(zip(CLASSES, counts.astype(int)))}", flush=True)
    model = HipNet(len(CLASSES))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"parameters: {nparams}", flush=True)
    loss_fn = CBFocal(np.maximum(counts, 1))
    opt = Optimiser(model, a, len(yt), pct_start=0.15)
    began = time.time()
    best, best_state = -1.0, None
    for ep in range(0 if a.checkpoint else a.epochs):
        model.train()
        order = torch.randperm(len(yt), generator=g).numpy()
        total = 0.0
        for idx in batches(order, a.batch):
            # Rotation +-6 degrees, scale +-10%, shift +-3% of the crop
            # (what the localiser leaves), exposure, noise, half resolution.
            x = degrade(augment(torch.from_numpy(xt[idx]), g, degrees=a.degrees, scale=0.2, shift=0.12), g, noise=a.noise)
            logits, _ = model(x)
            loss = loss_fn(logits, torch.from_numpy(yt[idx]))
            opt.step(loss)
            total += loss.item() * len(idx)
        _, acc = evaluate(model, xv, yv)
        print(f"epoch {ep + 1}/{a.epochs}: loss {total / len(yt):.4f}, val accuracy {acc:.4f} ({time.time() - began:.0f}s)", flush=True)
        if acc >= best:
            best, best_state = acc, snapshot(model)
    os.makedirs(a.out, exist_ok=True)
    if a.checkpoint:
        best_state = torch.load(a.checkpoint)
    else:
        torch.save(best_state, os.path.join(a.out, "checkpoint.pt"))
    model.load_state_dict(best_state)
    _, acc32 = evaluate(model, xv, yv)
    fold_batchnorm(model, model.stem)
    # Store weights as float16: round them in the PyTorch model too, so that
    # PyTorch and the exported file compute the same function, and report
    # what the rounding did to accuracy.
    round_half(model)
    pv, acc16 = evaluate(model, xv, yv)
    print(f"val accuracy: float32 weights {acc32:.4f}, float16 weights {acc16:.4f}", flush=True)
    export(model, os.path.join(a.out, "model.onnx"), xt.shape[-1], outputs=("logits", "cam"))
    report = {"valAccuracyFloat32": acc32, "valAccuracyFloat16": acc16, "epochs": a.epochs, "batch": a.batch,
              "lr": a.lr, "trainCrops": int(len(yt)), "parameters": int(nparams), "seconds": round(time.time() - began),
              "flopsPerInput": count_flops(HipNet(len(CLASSES)), xt.shape[-1])}
    report["augmentation"] = {"degrees": a.degrees, "scale": 0.2, "shift": 0.12, "noise": a.noise, "halfResolution": 0.25}
    if a.golden:
        xg, yg, golden = load(a.golden)
        pg, _ = evaluate(model, xg, yg)
        # The rows least saturated: a golden probability of 0.9999 checks
        # little of the numerics.
        pick = sorted(pick_unsaturated(pg, min(a.golden_rows, len(pg))))
        inside = int(sum(0.3 <= pg[i].max() <= 0.95 for i in pick))
        print(f"golden: {len(pick)} of {len(pg)} crops, {inside} with the top probability in [0.3, 0.95]: "
              + ", ".join(f"{pg[i].max():.3f}" for i in pick), flush=True)
        report["golden"] = [{"index": int(golden[i]["file"].rsplit("-", 1)[1]), "file": golden[i]["file"], "side": golden[i]["side"],
                             "probabilities": [round(float(v), 7) for v in pg[i]]} for i in pick]
        # And stored inputs (originals and mixes of validation crops) for
        # TestGoldenONNX, unsaturated whatever the pool.
        trainlib.classifier_golden(model, os.path.join(a.out, "model.golden.json"), "model.onnx", xv[:64], 8, a.seed,
                                   ("logits", "cam"), "validation crops")
    path = os.path.join(a.out, "training.json")
    if os.path.exists(path):
        # The localiser's report (train_localiser.py) stays.
        earlier = json.load(open(path))
        if "localiser" in earlier:
            report["localiser"] = earlier["localiser"]
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "golden"}), flush=True)


if __name__ == "__main__":
    main()
