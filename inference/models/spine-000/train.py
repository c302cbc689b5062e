#!/usr/bin/python3
"""Trains the reference vertebral fracture acuity model spine-000, one stage
at a time, on data the Go service computed itself (`orthotriage phantom
spine --crops-only`, which runs the stages already trained):

  localiser  whole-image CNN: per level T9-L5 presence and box
             (localiser.npy, localiser.csv) -> localiser.onnx
  net        per-vertebra ResNet-50 layout network, 3 classes none, acute,
             chronic, and its 2048-d pooled features (rois.npy, rois.csv)
             -> model.onnx
  fusion     on another seed's fractured vertebrae: L1-penalised logistic
             selection over deep + radiomics features, gradient-boosted
             trees (the DLR score), and the nomogram, a logistic model on
             the DLR score and the clinical data (deep.npy, radiomics.csv,
             rois.csv) -> fusion.json

Run through `make train-spine` (scripts/train-spine.sh); see MODEL_CARD.md.
What it shares with the hip trainer is in ../trainlib.py.
"""
import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import trainlib  # noqa: E402
from trainlib import (Bottleneck, CBFocal, Optimiser, add_training_args, augment, batches, count_flops,  # noqa: E402
                      export, fold_batchnorm, predict, round_half, rows, snapshot, start)

LEVELS = ["T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"]
CLASSES = ["none", "acute", "chronic"]
FEATURES = 2048


# ---------------------------------------------------------------- localiser


def train_localiser(a):
    """The whole-image localiser of T9-L5 (trainlib.train_localiser), with
    AP pelvis radiographs as negatives."""
    model, report, (xv, _, xv_neg) = trainlib.train_localiser(a, LEVELS)
    if a.golden:
        trainlib.localiser_golden(model, os.path.join(a.out, "localiser.golden.json"), xv, xv_neg, 4, a.seed)
    write_report(a.out, report)


# ---------------------------------------------------------------- network


class SpineNet(nn.Module):
    """ResNet-50 layout (bottleneck blocks 3-4-6-3) at a quarter of the
    usual width on a 64-px region of interest (stem without max pooling),
    then a 1x1 convolution to ResNet-50's 2048 channels, global average
    pooling (the 2048-d deep features) and a linear 3-class head."""

    def __init__(self, classes=3, base=16, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, base, 7, 2, 3, bias=False), nn.BatchNorm2d(base), nn.ReLU(inplace=True))
        stages, cin = [], base
        for i, n in enumerate(blocks):
            width = base * 2**i
            for j in range(n):
                stages.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * 4
        self.stages = nn.Sequential(*stages)
        self.expand = nn.Sequential(nn.Conv2d(cin, FEATURES, 1, bias=False), nn.BatchNorm2d(FEATURES), nn.ReLU(inplace=True))
        self.fc = nn.Linear(FEATURES, classes)

    def forward(self, x):
        f = self.expand(self.stages(self.stem(x))).mean((2, 3))
        return self.fc(f), f


def train_net(a):
    x = np.load(os.path.join(a.train, "rois.npy"))
    labels = rows(a.train, "rois.csv")
    y = np.array([CLASSES.index(r["fracture"]) for r in labels], dtype=np.int64)
    cases = np.array([r["file"] for r in labels])
    # Validation: the last tenth of the cases (whole radiographs).
    uniq = sorted(set(cases))
    val_cases = set(uniq[-max(20, len(uniq) // 10):])
    vmask = np.array([c in val_cases for c in cases])
    xt, yt, xv, yv = x[~vmask], y[~vmask], x[vmask], y[vmask]
    counts = np.bincount(yt, minlength=3).astype(np.float64)
    print(f"net: {len(yt)} train, {len(yv)} validation regions; class counts {dict(zip(CLASSES, counts.astype(int)))}", flush=True)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = SpineNet()
    nparams = sum(p.numel() for p in model.parameters())
    print(f"parameters: {nparams}", flush=True)
    loss_fn = CBFocal(np.maximum(counts, 1))
    # Each epoch: every fractured region and as many unfractured ones,
    # drawn afresh.
    frac, normal = np.where(yt > 0)[0], np.where(yt == 0)[0]
    per_epoch = len(frac) + min(len(normal), len(frac))
    opt = Optimiser(model, a, per_epoch, pct_start=0.15)
    began = time.time()
    best, best_state = -1.0, None
    for ep in range(a.epochs):
        model.train()
        pick = np.concatenate([frac, normal[torch.randperm(len(normal), generator=g).numpy()[: min(len(normal), len(frac))]]])
        order = pick[torch.randperm(len(pick), generator=g).numpy()]
        total = 0.0
        for idx in batches(order, a.batch):
            # Rotation +-6 degrees, scale +-8%, shift +-2.5% of the region
            # (the localiser's boxes wander).
            logits, _ = model(augment(torch.from_numpy(xt[idx]), g, degrees=6, scale=0.16, shift=0.1))
            loss = loss_fn(logits, torch.from_numpy(yt[idx]))
            opt.step(loss)
            total += loss.item() * len(idx)
        pv, _ = predict(model, xv, 512)
        acc = float((pv.argmax(1) == yv).mean())
        fr = yv > 0
        acute_acc = float((pv[fr][:, 1] > pv[fr][:, 2]).astype(int).__eq__(yv[fr] == 1).mean()) if fr.any() else float("nan")
        print(f"epoch {ep + 1}/{a.epochs}: loss {total / len(order):.4f}, val accuracy {acc:.4f}, "
              f"acute-vs-chronic on fractures {acute_acc:.4f} ({time.time() - began:.0f}s)", flush=True)
        if acc >= best:
            best, best_state = acc, snapshot(model)
    model.load_state_dict(best_state)
    fold_batchnorm(model, model.stem, model.expand)
    round_half(model)
    pv, _ = predict(model, xv, 512)
    acc16 = float((pv.argmax(1) == yv).mean())
    os.makedirs(a.out, exist_ok=True)
    export(model, os.path.join(a.out, "model.onnx"), x.shape[-1], outputs=("logits", "features"))
    if a.golden:
        trainlib.classifier_golden(model, os.path.join(a.out, "model.golden.json"), "model.onnx", xv[:64], 8, a.seed,
                                   ("logits", "features"), "validation regions")
    report = {"stage": "net", "trainRegions": int(len(yt)), "epochs": a.epochs, "batch": a.batch, "lr": a.lr,
              "valAccuracyFloat16": acc16, "parameters": int(nparams), "seconds": round(time.time() - began),
              "flopsPerInput": count_flops(SpineNet(), x.shape[-1])}
    write_report(a.out, report)


# ---------------------------------------------------------------- fusion


def clinical_of(r):
    return {"age": float(r["age"]), "female": 1.0 if r["sex"] == "F" else 0.0, "symptom_days": float(r["symptom_days"]),
            "trauma": 1.0 if r["trauma"] == "true" else 0.0, "tscore": float(r["tscore"])}


NOMOGRAM_TERMS = [  # name, label, unit, transform
    ("dlr", "DLR score (image)", "", "logit"),
    ("age", "Age", "years", ""),
    ("female", "Sex", "", ""),
    ("symptom_days", "Symptom duration", "days", "log"),
    ("trauma", "Recent minor trauma", "", ""),
    ("tscore", "BMD T-score", "", ""),
]


def transform(v, kind):
    if kind == "logit":
        p = np.clip(v, 1e-4, 1 - 1e-4)
        return np.log(p / (1 - p))
    if kind == "log":
        return np.log(np.maximum(v, 1))
    return v


def train_fusion(a):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = rows(a.train, "rois.csv")
    deep = np.load(os.path.join(a.train, "deep.npy"))
    radio_rows = list(csv.reader(open(os.path.join(a.train, "radiomics.csv"))))
    radio_names = radio_rows[0][1:]
    radio = np.array([[float(v) for v in r[1:]] for r in radio_rows[1:]])
    keep = np.array([r["fracture"] in ("acute", "chronic") for r in labels])
    y = np.array([1 if r["fracture"] == "acute" else 0 for r in labels])[keep]
    names = [f"deep:{i}" for i in range(deep.shape[1])] + [f"radiomics:{n}" for n in radio_names]
    x = np.concatenate([deep, radio], 1)[keep].astype(np.float64)
    clin = [clinical_of(r) for r, k in zip(labels, keep) if k]
    ok = np.isfinite(x).all(0) & (x.std(0) > 1e-9)
    print(f"fusion: {len(y)} fractured vertebrae ({int(y.sum())} acute), {int(ok.sum())} of {x.shape[1]} features usable", flush=True)
    x, names = x[:, ok], [n for n, o in zip(names, ok) if o]
    mean, std = x.mean(0), x.std(0)
    z = (x - mean) / std
    began = time.time()
    lasso = LogisticRegressionCV(Cs=np.logspace(-3, 0, 10), penalty="l1", solver="liblinear", cv=5, scoring="roc_auc",
                                 max_iter=2000, random_state=a.seed).fit(z, y)
    coef = lasso.coef_[0]
    sel = np.where(np.abs(coef) > 1e-8)[0]
    if len(sel) > a.max_features:
        sel = np.sort(sel[np.argsort(-np.abs(coef[sel]))[: a.max_features]])
    print(f"LASSO: C {lasso.C_[0]:.4g}, kept {len(sel)} features "
          f"({sum(names[i].startswith('deep:') for i in sel)} deep, {sum(names[i].startswith('radiomics:') for i in sel)} radiomics) "
          f"({time.time() - began:.0f}s)", flush=True)
    zs = z[:, sel]
    gbt = dict(n_estimators=a.trees, max_depth=3, learning_rate=0.05, subsample=0.8, random_state=a.seed)
    folds = StratifiedKFold(5, shuffle=True, random_state=a.seed)
    # The nomogram is fitted on out-of-fold DLR scores: scores of the final
    # trees on their own training rows would be overconfident.
    dlr_oof = cross_val_predict(GradientBoostingClassifier(**gbt), zs, y, cv=folds, method="predict_proba")[:, 1]
    trees = GradientBoostingClassifier(**gbt).fit(zs, y)
    print(f"trees: {a.trees}, out-of-fold DLR computed ({time.time() - began:.0f}s)", flush=True)

    def nomogram_matrix(dlr, cl):
        cols = []
        for name, _, _, tr in NOMOGRAM_TERMS:
            v = dlr if name == "dlr" else np.array([c[name] for c in cl])
            cols.append(transform(v, tr))
        return np.stack(cols, 1)

    xn = nomogram_matrix(dlr_oof, clin)
    # Logistic regression on standardised variables with a mild L2 penalty
    # (C 1): where the image separates most cases, an unpenalised fit runs
    # off to huge coefficients of arbitrary sign. The coefficients are then
    # put back on the variables' own scales, which the nomogram reads.
    mu, sd = xn.mean(0), xn.std(0)
    std_fit = LogisticRegression(C=a.nomogram_c, max_iter=5000).fit((xn - mu) / sd, y)
    coef = std_fit.coef_[0] / sd
    intercept = float(std_fit.intercept_[0] - (std_fit.coef_[0] * mu / sd).sum())
    lo, hi = xn.min(0), xn.max(0)
    terms = []
    widest = 0.0
    for k, (name, label, unit, tr) in enumerate(NOMOGRAM_TERMS):
        c = float(coef[k])
        widest = max(widest, abs(c) * (hi[k] - lo[k]))
        terms.append({"name": name, "label": label, "unit": unit, "coef": c, "min": float(lo[k]), "max": float(hi[k]), "transform": tr})
    fusion = {
        "schema": "orthotriage.fusion/v1",
        "features": [names[i] for i in sel],
        "mean": [float(mean[i]) for i in sel],
        "std": [float(std[i]) for i in sel],
        "trees": {"init": float(init_logodds(trees)), "learningRate": trees.learning_rate, "trees": export_trees(trees)},
        "nomogram": {"intercept": intercept, "terms": terms, "pointsPerUnit": 100 / widest},
    }
    # Golden rows: scikit-learn's own scores, which the Go evaluation must
    # give (TestFusionGolden).
    dlr_fit = trees.predict_proba(zs)[:, 1]
    gold = []
    for i in range(0, len(y), max(1, len(y) // 8))[:8]:
        xi = nomogram_matrix(dlr_fit[i : i + 1], clin[i : i + 1])
        gold.append({"x": [float(v) for v in x[i, sel]], "clinical": clin[i], "dlr": float(dlr_fit[i]),
                     "nomogram": float(std_fit.predict_proba((np.clip(xi, lo, hi) - mu) / sd)[0, 1])})
    fusion["golden"] = gold
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "fusion.json"), "w") as f:
        json.dump(fusion, f, separators=(",", ":"))
    from sklearn.metrics import roc_auc_score
    report = {"stage": "fusion", "fracturedVertebrae": int(len(y)), "acute": int(y.sum()), "lassoC": float(lasso.C_[0]),
              "selected": len(sel), "selectedDeep": int(sum(names[i].startswith("deep:") for i in sel)),
              "trees": a.trees, "oofAUC_DLR": float(roc_auc_score(y, dlr_oof)),
              "oofAUC_nomogram_in_sample": float(roc_auc_score(y, std_fit.predict_proba((xn - mu) / sd)[:, 1])),
              "nomogramC": a.nomogram_c,
              "nomogram": {t["name"]: round(t["coef"], 4) for t in terms}, "seconds": round(time.time() - began)}
    write_report(a.out, report)


def init_logodds(gbt):
    """The ensemble's starting log-odds (scikit-learn's prior)."""
    p = gbt.init_.class_prior_[1]
    return math.log(p / (1 - p))


def export_trees(gbt):
    out = []
    for est in gbt.estimators_[:, 0]:
        t = est.tree_
        out.append({"feature": [int(v) for v in t.feature], "threshold": [float(v) for v in t.threshold],
                    "left": [int(v) for v in t.children_left], "right": [int(v) for v in t.children_right],
                    "value": [float(v) for v in t.value[:, 0, 0]]})
    return out


def write_report(out, report):
    path = os.path.join(out, "training.json")
    all_reports = json.load(open(path)) if os.path.exists(path) else {}
    all_reports[report["stage"]] = report
    with open(path, "w") as f:
        json.dump(all_reports, f, indent=1)
    print(json.dumps(report), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["localiser", "net", "fusion"])
    ap.add_argument("--train", required=True, action="append",
                    help="folder written by orthotriage phantom spine --crops-only; the localiser takes several (repeat it)")
    ap.add_argument("--negatives", action="append",
                    help="localiser: folder of images without vertebrae (orthotriage phantom pelvis --crops-only [--negatives] "
                         "--model spine-000); repeat for several folders")
    ap.add_argument("--out", required=True, help="the model folder being built")
    ap.add_argument("--golden", action="store_true",
                    help="localiser, net: also write localiser.golden.json / model.golden.json (TestGoldenONNX)")
    add_training_args(ap, epochs=20)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--max-features", type=int, default=64)
    ap.add_argument("--nomogram-c", type=float, default=1.0, help="inverse L2 penalty of the nomogram's logistic fit (standardised variables)")
    a = ap.parse_args()
    if a.stage != "localiser":
        if len(a.train) > 1:
            ap.error(f"{a.stage}: one --train folder")
        a.train = a.train[0]
    start(a)
    {"localiser": train_localiser, "net": train_net, "fusion": train_fusion}[a.stage](a)


if __name__ == "__main__":
    main()
