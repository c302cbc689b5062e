"""What the reference models' trainers share: hip-000/train.py,
hip-000/train_localiser.py and spine-000/train.py (and
scripts/resnet50-bench.py for count_flops).

Neither trainer imports the other; each puts this folder on sys.path
(the folder above its own) and imports this module, so they run the same
from `make train-hip`, `make train-spine` or by hand from any directory.

Here: the common command-line options and seeding, label rows, the
bottleneck block, class-balanced focal loss, augmentation (geometry,
exposure, contrast and noise, drawn from the trainer's generator in a fixed
order), the AdamW one-cycle optimiser, batching and the best-epoch
snapshot, prediction in batches, BatchNorm folding, float16 rounding of the
weights and the ONNX export that stores them, the FLOP count of the
manifests; the whole-image localiser (network, data, loss, training loop,
BatchNorm fusion, export) that the vertebral and hip models share,
parametrised by levels and input size; and the golden files that the Go
test TestGoldenONNX compares ONNX Runtime with.
"""
import base64
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

# Weights of at least this many float32 values are stored as float16 by
# export; round_half rounds the same ones in PyTorch.
HALF_MIN = 64


# ---------------------------------------------------------------- set-up


def add_training_args(ap, epochs):
    """The options every trainer takes (epochs defaults per trainer)."""
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())


def start(a):
    """Seeds PyTorch's global generator (weight initialisation) and sets
    the thread count; the trainers draw their batches and augmentation from
    their own generator, torch.Generator().manual_seed(a.seed)."""
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)


def rows(folder, name):
    """The rows of a CSV file written by `orthotriage phantom --crops-only`."""
    with open(os.path.join(folder, name)) as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- network


class Bottleneck(nn.Module):
    """ResNet bottleneck block: 1x1, 3x3 (stride), 1x1 (width x 4), with a
    projection shortcut where the shape changes."""

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


# ---------------------------------------------------------------- training


def jitter(x, g):
    """Exposure and contrast jitter (gain +-15%, offset +-0.2) and Gaussian
    noise (0.03), per image of the batch x (b, 1, h, w)."""
    b = x.shape[0]
    gain = 1 + (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.3
    bias = (torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.4
    return x * gain + bias + torch.randn(x.shape, generator=g) * 0.03


def degrade(x, g, noise=0.3, blur=0.25):
    """What the radiograph's own quality varies by, beyond jitter: for
    half of the images Gaussian noise of a standard deviation drawn up to
    noise (in the normalised units: 0.3 is 0.075 of the display range), and
    for a share blur of them the loss of half the resolution (2x2 average
    pooling, then bilinear upsampling back)."""
    b = x.shape[0]
    sigma = torch.rand(b, 1, 1, 1, generator=g) * noise * (torch.rand(b, 1, 1, 1, generator=g) < 0.5)
    x = x + torch.randn(x.shape, generator=g) * sigma
    half = (torch.rand(b, generator=g) < blur)
    if half.any():
        lo = F.interpolate(F.avg_pool2d(x[half], 2), size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = x.clone()
        x[half] = lo
    return x


def augment(x, g, degrees, scale, shift):
    """Small rotations (+-degrees), scale (+-scale/2) and shifts (+-shift/2
    in affine_grid's [-1, 1] coordinates: +-shift/4 of the side), then
    jitter; border pixels repeated."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=g) - 0.5) * 2 * math.radians(degrees)
    sc = 1 + (torch.rand(b, generator=g) - 0.5) * scale
    tx = (torch.rand(b, 2, generator=g) - 0.5) * shift
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx[:, 0]], 1), torch.stack([sin, cos, tx[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    return jitter(F.grid_sample(x, grid, padding_mode="border", align_corners=False), g)


class Optimiser:
    """AdamW (weight decay 1e-4) on a one-cycle schedule peaking at a.lr,
    over a.epochs epochs of per_epoch samples in batches of a.batch."""

    def __init__(self, model, a, per_epoch, pct_start):
        self.opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
        steps = a.epochs * math.ceil(per_epoch / a.batch)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=a.lr, total_steps=steps, pct_start=pct_start)

    def step(self, loss):
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()


def batches(order, size):
    """The batches of an epoch's order, each batch's indices sorted."""
    for i in range(0, len(order), size):
        yield np.sort(order[i : i + size])


def snapshot(model):
    """A copy of the model's state (the best epoch's, kept)."""
    return {k: v.clone() for k, v in model.state_dict().items()}


def predict(model, x, bs):
    """Softmax of the first output and the second output (class maps or
    features) of a two-output model, in batches of bs, in eval mode."""
    model.eval()
    ps, second = [], []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            logits, s = model(torch.from_numpy(np.ascontiguousarray(x[i : i + bs])))
            ps.append(F.softmax(logits, 1).numpy())
            second.append(s.numpy())
    return np.concatenate(ps), np.concatenate(second)


# ---------------------------------------------------------------- export


def fold_batchnorm(model, *pairs):
    """Folds every BatchNorm into the convolution before it (inference
    form): in each Bottleneck, and in each Sequential of pairs whose first
    two layers are a convolution and its BatchNorm (which becomes Identity).

    Done before the weights are rounded to float16, so that the ONNX file
    holds exactly the rounded weights PyTorch computes with; folding at
    export would round the folded product again.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for seq in pairs:
        seq[0] = fuse_conv_bn_eval(seq[0], seq[1])
        seq[1] = nn.Identity()
    for m in model.modules():
        if isinstance(m, Bottleneck):
            for c, b in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
                setattr(m, c, fuse_conv_bn_eval(getattr(m, c), getattr(m, b)))
                setattr(m, b, nn.Identity())
            if m.down is not None:
                m.down[0] = fuse_conv_bn_eval(m.down[0], m.down[1])
                m.down[1] = nn.Identity()
    return model


def round_half(model):
    """Rounds the weights the export stores as float16, so that PyTorch
    computes what the ONNX file will."""
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.dtype == torch.float32 and p.numel() >= HALF_MIN:
                p.copy_(p.half().float())


def export(model, path, size, outputs):
    """Exports ONNX (opset 13, dynamic batch; input "image", the outputs
    named by outputs) with float16 weight storage behind Cast nodes that
    ONNX Runtime folds at load.

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
        if a.dtype == np.float32 and a.size >= HALF_MIN:
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


def count_flops(model, size):
    """Floating-point operations of one input: convolutions and linear
    layers, a multiply-add counting two (the manifest's flopsPerInput).

    size is the input's side, or its (height, width).
    """
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
    for hk in hooks:
        hk.remove()
    return total[0]


# ---------------------------------------------------------------- localiser


class Localiser(nn.Module):
    """Six stride-2 conv stages, then a small fully connected head: per
    level a presence probability and a box (cx, cy, w, h as fractions of
    the image), all through a sigmoid. Input (b, 1, h, w), output
    (b, levels, 5)."""

    def __init__(self, h, w, levels):
        super().__init__()
        chans, layers, cin = (16, 32, 48, 64, 96, 128), [], 1
        for c in chans:
            layers += [nn.Conv2d(cin, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            cin = c
        self.body = nn.Sequential(*layers)
        fh, fw = math.ceil(h / 64), math.ceil(w / 64)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(cin * fh * fw, 256), nn.ReLU(inplace=True),
                                  nn.Linear(256, levels * 5))
        self.levels = levels

    def forward(self, x):
        return torch.sigmoid(self.head(self.body(x)).view(-1, self.levels, 5))


def localiser_data(folder, levels):
    """localiser.npy (n, 1, h, w) and localiser.csv (index, file, level,
    present, cx, cy, w, h; one row per image and level) of a folder written
    by `orthotriage phantom ... --crops-only`: the images and their targets
    (n, len(levels), 5), presence then box. Levels without a row are
    absent."""
    x = np.load(os.path.join(folder, "localiser.npy"))
    t = np.zeros((x.shape[0], len(levels), 5), dtype=np.float32)
    for r in rows(folder, "localiser.csv"):
        k = levels.index(r["level"])
        t[int(r["index"]), k] = [float(r["present"]), float(r["cx"]), float(r["cy"]), float(r["w"]), float(r["h"])]
    return x, t


def localiser_loss(p, y):
    """Binary cross-entropy of presence, plus 20 x the smooth L1 error of
    the boxes (beta 0.01 of the image) of the levels present."""
    present = y[..., 0]
    bce = F.binary_cross_entropy(p[..., 0].clamp(1e-6, 1 - 1e-6), present)
    box = (F.smooth_l1_loss(p[..., 1:], y[..., 1:], reduction="none", beta=0.01).sum(-1) * present).sum() / present.sum().clamp(min=1)
    return bce + 20 * box


def box_iou(p, y):
    """Intersection over union of boxes (..., 4) given as cx, cy, w, h
    (fractions of the image: the ratio is the same as in pixels)."""
    def corners(b):
        return b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2, b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2
    ax0, ay0, ax1, ay1 = corners(p)
    bx0, by0, bx1, by1 = corners(y)
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = np.clip(p[..., 2], 0, None) * np.clip(p[..., 3], 0, None) + y[..., 2] * y[..., 3] - inter
    return inter / np.maximum(union, 1e-12)


def localiser_metrics(p, y):
    """Presence accuracy (threshold 0.5, over every image and level), the
    mean centre error (x, y) of the levels present, and the box IoU of the
    levels present: the mean, per level (nan where a level is never
    present), and the share of present levels found (p >= 0.5) with IoU of
    at least 0.5."""
    present = y[..., 0] > 0.5
    called = p[..., 0] > 0.5
    err = (np.abs(p[..., 1:3] - y[..., 1:3])[present]).mean(0)
    iou = box_iou(p[..., 1:], y[..., 1:])
    per_level = [float(iou[:, k][present[:, k]].mean()) if present[:, k].any() else float("nan") for k in range(y.shape[1])]
    hit = float((called & (iou >= 0.5))[present].mean()) if present.any() else float("nan")
    return float((called == present).mean()), err, float(iou[present].mean()) if present.any() else float("nan"), per_level, hit


def localiser_predict(model, x, bs=256):
    """The localiser's output for images x, in batches of bs, in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i : i + bs]))).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.levels, 5), np.float32)


def fuse_localiser(model):
    """Folds each BatchNorm of the localiser's body into its convolution."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    layers = list(model.body)
    out = []
    i = 0
    while i < len(layers):
        if isinstance(layers[i], nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(layers[i], layers[i + 1]))
            i += 2
        else:
            out.append(layers[i])
            i += 1
    model.body = nn.Sequential(*out)


def add_localiser_args(ap):
    """The localiser trainer's data options (train, negatives, val, out)."""
    ap.add_argument("--negatives", action="append", default=[],
                    help="folder of images where no level is to be found (localiser.npy/csv, every level present=0); repeatable")
    ap.add_argument("--val", help="validation folder (default: the first tenth of --train)")
    ap.add_argument("--val-negatives", help="validation negatives (default: the first tenth of each --negatives)")


def train_localiser(a, levels, iou=False):
    """Trains a Localiser for levels on a.train (a folder or a list of
    them) and a.negatives, exports a.out/localiser.onnx (input "image",
    output "levels") and returns the fused, float16-rounded model, its
    report and the validation data (x, targets, negative x).

    Validation: a.val if given, else the first tenth of each a.train
    folder; negatives' validation: a.val_negatives if given, else the first
    tenth of each negatives folder. a.negatives is a folder or a list of
    them. iou adds the box IoU to the log and report (the vertebral model's
    log and report stay as they were before it)."""
    trains = a.train if isinstance(a.train, list) else [a.train]
    val = getattr(a, "val", None)
    if val:
        parts = [localiser_data(folder, levels) for folder in trains]
        xt, tt = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        xv, tv = localiser_data(val, levels)
        x = xt
    else:
        # The first tenth of each training folder validates.
        xs, ts, vxs, vts = [], [], [], []
        for folder in trains:
            xf, tf = localiser_data(folder, levels)
            k = max(1, len(xf) // 10)
            xs.append(xf[k:]), ts.append(tf[k:]), vxs.append(xf[:k]), vts.append(tf[:k])
        xt, tt, xv, tv = (np.concatenate(p) for p in (xs, ts, vxs, vts))
        x = xt
    negs = a.negatives or []
    if isinstance(negs, str):
        negs = [negs]
    xv_neg, nneg = None, 0
    if negs:
        # Other radiographs with none of the levels: a localiser that never
        # saw one would find them on any image.
        train_parts, val_parts = [], []
        for folder in negs:
            xn, tn = localiser_data(folder, levels)
            kn = 0 if getattr(a, "val_negatives", None) else max(1, len(xn) // 10)
            train_parts.append((xn[kn:], tn[kn:]))
            val_parts.append(xn[:kn])
            nneg += len(xn) - kn
        xt = np.concatenate([xt] + [p[0] for p in train_parts])
        tt = np.concatenate([tt] + [p[1] for p in train_parts])
        if getattr(a, "val_negatives", None):
            xv_neg = localiser_data(a.val_negatives, levels)[0]
        else:
            xv_neg = np.concatenate(val_parts)
    h, w = x.shape[2], x.shape[3]
    model = Localiser(h, w, len(levels))
    print(f"localiser: {len(xt)} train, {len(xv)} validation images {w}x{h}; "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    g = torch.Generator().manual_seed(a.seed)
    opt = Optimiser(model, a, len(xt), pct_start=0.2)

    began = time.time()
    for ep in range(a.epochs):
        model.train()
        order = torch.randperm(len(xt), generator=g).numpy()
        total = 0.0
        for idx in batches(order, a.batch):
            # Exposure and contrast jitter and noise (no geometry: the
            # targets are boxes).
            xb = jitter(torch.from_numpy(xt[idx]), g)
            loss = localiser_loss(model(xb), torch.from_numpy(tt[idx]))
            opt.step(loss)
            total += loss.item() * len(idx)
        pv = localiser_predict(model, xv)
        acc, err, miou, _, _ = localiser_metrics(pv, tv)
        extra = f", box IoU {miou:.4f}" if iou else ""
        print(f"epoch {ep + 1}/{a.epochs}: loss {total / len(xt):.4f}, val presence accuracy {acc:.4f}, "
              f"centre error x {err[0]:.4f} y {err[1]:.4f} of the image{extra} ({time.time() - began:.0f}s)", flush=True)
    fuse_localiser(model)
    round_half(model)
    pv = localiser_predict(model, xv)
    acc, err, miou, per_level, hit = localiser_metrics(pv, tv)
    neg_found = None
    if xv_neg is not None and len(xv_neg):
        pn = localiser_predict(model, xv_neg)
        neg_found = float((pn[..., 0] > 0.5).any(1).mean())
        print(f"validation negatives: {len(xv_neg)} images, {neg_found:.4f} with any level found", flush=True)
    if iou:
        print(f"validation: presence accuracy {acc:.4f}, box IoU {miou:.4f} (" +
              ", ".join(f"{lv} {v:.4f}" for lv, v in zip(levels, per_level)) +
              f"), present levels found with IoU >= 0.5: {hit:.4f}", flush=True)
    os.makedirs(a.out, exist_ok=True)
    export(model, os.path.join(a.out, "localiser.onnx"), (h, w), outputs=("levels",))
    report = {"stage": "localiser", "trainImages": int(len(xt)), "epochs": a.epochs, "valPresenceAccuracy": acc,
              "valCentreError": [float(e) for e in err], "valNegativesWithALevelFound": neg_found,
              "negatives": int(nneg),
              "parameters": int(sum(p.numel() for p in model.parameters())),
              "seconds": round(time.time() - began)}
    if iou:
        report.update({"levels": list(levels), "width": int(w), "height": int(h), "valImages": int(len(xv)),
                       "valBoxIoU": miou, "valBoxIoUByLevel": dict(zip(levels, per_level)),
                       "valFoundWithIoU05": hit,
                       "valNegatives": int(0 if xv_neg is None else len(xv_neg))})
    return model, report, (xv, tv, xv_neg)


# ---------------------------------------------------------------- goldens


def as_half(x):
    """x rounded to float16 and back: the inputs a golden file stores."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def mixes(x, g, n):
    """n inputs between the images of x: the mean of two (drawn by the
    torch generator g) and images at reduced contrast, which move a
    confident model's outputs off 0 and 1."""
    out = []
    for j in range(n):
        a, b = torch.randint(len(x), (2,), generator=g).tolist()
        if j % 2 == 0:
            out.append((x[a] + x[b]) / 2)
        else:
            w = 0.3 + 0.4 * torch.rand(1, generator=g).item()
            out.append(w * x[a] + (1 - w) * float(x[a].mean()))
    return np.stack(out).astype(np.float32) if out else x[:0]


def pick_unsaturated(probs, k, lo=0.3, hi=0.95):
    """Indices of k rows of probs (n, classes) whose largest probability
    lies in [lo, hi], spread over the top classes; where fewer do, the rows
    closest to the middle of the range fill up."""
    top = probs.max(1)
    ok = np.where((top >= lo) & (top <= hi))[0]
    chosen = []
    by_class = {}
    for i in ok[np.argsort(np.abs(top[ok] - (lo + hi) / 2))]:
        by_class.setdefault(int(probs[i].argmax()), []).append(int(i))
    while len(chosen) < k and any(by_class.values()):
        for c in sorted(by_class):
            if by_class[c] and len(chosen) < k:
                chosen.append(by_class[c].pop(0))
    if len(chosen) < k:
        rest = [int(i) for i in np.argsort(np.abs(top - (lo + hi) / 2)) if int(i) not in chosen]
        chosen += rest[: k - len(chosen)]
    return chosen


def b64_half(x):
    return base64.b64encode(np.ascontiguousarray(x, dtype="<f2").tobytes()).decode()


def write_golden(path, onnx_file, x, outputs, selection, tolerance=1e-4):
    """Writes a golden file for TestGoldenONNX (inference/models): the
    inputs x (n, 1, h, w; float16 values, stored as little-endian float16
    in base64) for the ONNX file's input "image", and for each output
    (name, values, transform) what PyTorch computed on them: transform
    "softmax" for logits (the probabilities are compared, over axis 1) or
    "" for outputs compared as they are. tolerance: the largest absolute
    difference the test accepts."""
    x = np.asarray(x, dtype=np.float32)
    if not np.array_equal(x, as_half(x)):
        raise ValueError("golden inputs must be float16 values (as_half)")
    doc = {"schema": "orthotriage.golden/v1", "file": onnx_file, "input": "image", "shape": list(x.shape),
           "inputFloat16": b64_half(x.astype(np.float16)), "tolerance": tolerance, "selection": selection,
           "outputs": [{"name": name, "transform": tr, "shape": list(v.shape),
                        "values": [round(float(f), 7) for f in np.asarray(v).ravel()]} for name, v, tr in outputs]}
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    return doc


def classifier_golden(model, path, onnx_file, pool, k, seed, outputs, selection_note, lo=0.3, hi=0.95):
    """Golden file for a two-output classifier (logits first): k inputs
    from pool (originals and mixes, float16-rounded) whose largest
    probability lies in [lo, hi] where possible. outputs names the two
    outputs; the second (class maps or features) is stored as well.
    Returns the chosen inputs' probabilities."""
    g = torch.Generator().manual_seed(seed)
    cand = as_half(np.concatenate([pool, mixes(pool, g, 2 * len(pool))]))
    p, _ = predict(model, cand, 256)
    idx = pick_unsaturated(p, k, lo, hi)
    x = cand[idx]
    model.eval()
    with torch.no_grad():
        logits, second = model(torch.from_numpy(x))
    probs = F.softmax(logits, 1).numpy()
    inside = int(((probs.max(1) >= lo) & (probs.max(1) <= hi)).sum())
    sel = f"{selection_note}; {k} of {len(cand)} candidates (originals and mixes), {inside} with the top probability in [{lo}, {hi}]"
    write_golden(path, onnx_file, x, [(outputs[0], probs, "softmax"), (outputs[1], second.numpy(), "")], sel)
    print(f"golden {path}: top probabilities " + ", ".join(f"{v:.3f}" for v in probs.max(1)), flush=True)
    return probs


def localiser_golden(model, path, x_pos, x_neg, k, seed):
    """Golden file for a localiser: k inputs from positives, negatives and
    mixes of them (float16-rounded), at least one unmixed positive, the
    rest those with the most presence values in [0.05, 0.95]."""
    g = torch.Generator().manual_seed(seed)
    pool = x_pos if x_neg is None or not len(x_neg) else np.concatenate([x_pos, x_neg])
    cand = as_half(np.concatenate([pool, mixes(pool, g, 2 * len(pool))]))
    p = localiser_predict(model, cand)
    pres = p[..., 0]
    score = ((pres > 0.05) & (pres < 0.95)).sum(1) + 0.01 * (0.5 - np.abs(pres - 0.5)).mean(1)
    npos = len(x_pos)
    first = int(np.argmax(score[:npos]))
    rest = [int(i) for i in np.argsort(-score) if int(i) != first][: k - 1]
    idx = [first] + rest
    x = cand[idx]
    out = localiser_predict(model, x)
    unsat = int(((out[..., 0] > 0.05) & (out[..., 0] < 0.95)).sum())
    sel = (f"{k} of {len(cand)} candidates (validation images, negatives, mixes): one unmixed positive, then the most "
           f"presence values in [0.05, 0.95] ({unsat} of {out[..., 0].size} here)")
    write_golden(path, "localiser.onnx", x, [("levels", out, "")], sel)
    print(f"golden {path}: {unsat} of {out[..., 0].size} presence values in [0.05, 0.95]", flush=True)
