#!/usr/bin/python3
"""Trains the reference hip model (seed 000 architecture) on phantom crops.

ResNet-50 topology (bottleneck blocks 3-4-6-3) at a quarter of the usual
width, a CBAM block after each stage, GeM pooling and a linear classifier,
trained with class-balanced focal loss on per-hip crops that the Go service
computed itself (`orthotriage phantom pelvis --crops-only`). Exports ONNX
with two outputs, the logits and the class activation maps, with weights
stored as float16 behind Cast nodes that ONNX Runtime folds at load.

Run through `make train-hip`; see MODEL_CARD.md for the recipe and budget.
"""
import argparse
import csv
import json
import math
import os
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

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


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride, cout=None):
        super().__init__()
        cout = cout or width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


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


def count_flops(model, size):
    """Floating-point operations of one input: convolutions and linear
    layers, a multiply-add counting two (the manifest's flopsPerInput)."""
    total = [0]

    def conv(mod, inp, out):
        total[0] += 2 * out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    def lin(mod, inp, out):
        total[0] += 2 * mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else lin)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        model(torch.zeros(1, 1, h, w))
    for h in hooks:
        h.remove()
    return total[0]


def load(folder):
    x = np.load(os.path.join(folder, "crops.npy"), mmap_mode="r")
    rows = list(csv.DictReader(open(os.path.join(folder, "crops.csv"))))
    y = np.array([CLASSES.index(r["class"]) for r in rows], dtype=np.int64)
    if len(rows) != x.shape[0]:
        raise SystemExit(f"{folder}: {x.shape[0]} crops but {len(rows)} label rows")
    return x, y, rows


def augment(x, g):
    """Small rotations, scale and shifts, exposure and contrast jitter, noise."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=g) - 0.5) * 2 * math.radians(8)
    sc = 1 + (torch.rand(b, generator=g) - 0.5) * 0.2
    tx = (torch.rand(b, 2, generator=g) - 0.5) * 0.12
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx[:, 0]], 1), torch.stack([sin, cos, tx[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.3
    bias = (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.4
    return x * gain + bias + torch.randn(x.shape, generator=g) * 0.03


class CBFocal(nn.Module):
    """Class-balanced focal loss (Cui et al. 2019): effective-number weights."""

    def __init__(self, counts, beta=0.999, gamma=2.0):
        super().__init__()
        eff = (1 - beta ** counts) / (1 - beta)
        w = 1 / eff
        self.register_buffer("w", torch.tensor(w / w.sum() * len(counts), dtype=torch.float32))
        self.gamma = gamma

    def forward(self, logits, y):
        logp = F.log_softmax(logits, 1)
        lp = logp.gather(1, y[:, None])[:, 0]
        return (-self.w[y] * (1 - lp.exp()) ** self.gamma * lp).mean()


def evaluate(model, x, y, bs=256):
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(y), bs):
            logits, _ = model(torch.from_numpy(np.ascontiguousarray(x[i : i + bs])))
            probs.append(F.softmax(logits, 1).numpy())
    p = np.concatenate(probs)
    return p, float((p.argmax(1) == y).mean())


def fuse_batchnorm(model):
    """Folds every BatchNorm into the convolution before it (inference form).

    Done here, before the weights are rounded to float16, so that the ONNX
    file holds exactly the rounded weights PyTorch computes with; folding at
    export would round the folded product again.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    model.stem[0] = fuse_conv_bn_eval(model.stem[0], model.stem[1])
    model.stem[1] = nn.Identity()
    for m in model.modules():
        if isinstance(m, Bottleneck):
            for c, b in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
                setattr(m, c, fuse_conv_bn_eval(getattr(m, c), getattr(m, b)))
                setattr(m, b, nn.Identity())
            if m.down is not None:
                m.down[0] = fuse_conv_bn_eval(m.down[0], m.down[1])
                m.down[1] = nn.Identity()
    return model


def export(model, path, size, outputs=("logits", "cam")):
    """Exports ONNX (opset 13, dynamic batch) with float16 weight storage.

    size is the input's side, or its (height, width).
    """
    model.eval()
    h, w = (size, size) if isinstance(size, int) else size
    dummy = torch.zeros(1, 1, h, w)
    tmp = path + ".fp32"
    axes = {name: {0: "batch"} for name in ("image",) + tuple(outputs)}
    torch.onnx.export(model, dummy, tmp, input_names=["image"], output_names=list(outputs),
                      dynamic_axes=axes, opset_version=13, do_constant_folding=True)
    m = onnx.load(tmp)
    os.remove(tmp)
    g = m.graph
    keep, casts = [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32 and a.size >= 64:
            half = numpy_helper.from_array(a.astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--golden", help="crops folder whose probabilities become the golden file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--checkpoint", help="skip training: export from this saved state (checkpoint.pt of an earlier run)")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
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
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    steps = a.epochs * math.ceil(len(yt) / a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.15)
    began = time.time()
    best, best_state = -1.0, None
    for ep in range(0 if a.checkpoint else a.epochs):
        model.train()
        order = torch.randperm(len(yt), generator=g).numpy()
        total = 0.0
        for i in range(0, len(order), a.batch):
            idx = np.sort(order[i : i + a.batch])
            x = augment(torch.from_numpy(xt[idx]), g)
            logits, _ = model(x)
            loss = loss_fn(logits, torch.from_numpy(yt[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        _, acc = evaluate(model, xv, yv)
        print(f"epoch {ep + 1}/{a.epochs}: loss {total / len(yt):.4f}, val accuracy {acc:.4f} ({time.time() - began:.0f}s)", flush=True)
        if acc >= best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    os.makedirs(a.out, exist_ok=True)
    if a.checkpoint:
        best_state = torch.load(a.checkpoint)
    else:
        torch.save(best_state, os.path.join(a.out, "checkpoint.pt"))
    model.load_state_dict(best_state)
    _, acc32 = evaluate(model, xv, yv)
    fuse_batchnorm(model)
    # Store weights as float16: round them in the PyTorch model too, so that
    # PyTorch and the exported file compute the same function, and report
    # what the rounding did to accuracy.
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.dtype == torch.float32 and p.numel() >= 64:
                p.copy_(p.half().float())
    pv, acc16 = evaluate(model, xv, yv)
    print(f"val accuracy: float32 weights {acc32:.4f}, float16 weights {acc16:.4f}", flush=True)
    export(model, os.path.join(a.out, "model.onnx"), xt.shape[-1])
    report = {"valAccuracyFloat32": acc32, "valAccuracyFloat16": acc16, "epochs": a.epochs, "batch": a.batch,
              "lr": a.lr, "trainCrops": int(len(yt)), "parameters": int(nparams), "seconds": round(time.time() - began),
              "flopsPerInput": count_flops(HipNet(len(CLASSES)), xt.shape[-1])}
    if a.golden:
        xg, yg, rows = load(a.golden)
        pg, _ = evaluate(model, xg, yg)
        report["golden"] = [{"file": r["file"], "side": r["side"], "probabilities": [round(float(v), 7) for v in p]} for r, p in zip(rows, pg)]
    with open(os.path.join(a.out, "training.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "golden"}), flush=True)


if __name__ == "__main__":
    main()
