"""What the reference models' trainers share: hip-000/train.py and
spine-000/train.py (and scripts/resnet50-bench.py for count_flops).

Neither trainer imports the other; each puts this folder on sys.path
(the folder above its own) and imports this module, so they run the same
from `make train-hip`, `make train-spine` or by hand from any directory.

Here: the common command-line options and seeding, label rows, the
bottleneck block, class-balanced focal loss, augmentation (geometry,
exposure, contrast and noise, drawn from the trainer's generator in a fixed
order), the AdamW one-cycle optimiser, batching and the best-epoch
snapshot, prediction in batches, BatchNorm folding, float16 rounding of the
weights and the ONNX export that stores them, and the FLOP count of the
manifests.
"""
import csv
import math
import os

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
