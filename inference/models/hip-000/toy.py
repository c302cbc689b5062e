#!/usr/bin/python3
"""Toy data in the formats `orthotriage phantom pelvis --crops-only` writes,
to test the hip trainers without the Go binary (not used by make
train-hip):

  toy.py localiser OUT [--n N] [--seed S] [--negatives]
      localiser.npy (n, 1, 160, 192) and localiser.csv (index, file, level,
      present, cx, cy, w, h; levels right, left, pelvis): a pelvic ring
      with two bright femoral heads and shafts, rotated up to +-15 degrees,
      shifted up to +-15% and zoomed 0.8-1.2, exposure and noise varied,
      sometimes collimated. --negatives: blank, black, noise, a "spine"
      (a column of blocks), the toy pelvis upside down, and burnt-out or
      black exposures, every level present=0.
  toy.py crops OUT [--n N] [--seed S]
      crops.npy (2n, 1, 128, 128) and crops.csv (index, file, side, class,
      difficulty, detail): a femoral head whose stripe angle tells the
      class, with small rotations, exposure and noise.

Images are normalised like the manifest's (x - 0.5) / 0.25.
"""
import argparse
import csv
import math
import os

import numpy as np

LEVELS = ["right", "left", "pelvis"]
CLASSES = ["normal", "oa", "onfh", "fnf", "itf", "ddh", "tha", "fixation"]
H, W = 160, 192


def pelvis(rng, yy, xx):
    """One toy AP pelvis: the image in [0, 1] and its boxes (level -> cx,
    cy, w, h as fractions), hips on the image's left (patient's right) and
    right."""
    th = math.radians(rng.uniform(-15, 15))
    zoom = rng.uniform(0.8, 1.2)
    cx, cy = W * (0.5 + rng.uniform(-0.15, 0.15)), H * (0.5 + rng.uniform(-0.15, 0.15))
    c, s = math.cos(th), math.sin(th)

    def to_img(u, v):  # pelvis frame (pixels at zoom 1) -> image
        return cx + zoom * (c * u - s * v), cy + zoom * (s * u + c * v)

    # Pelvis frame coordinates of each image pixel.
    du, dv = (xx - cx) / zoom, (yy - cy) / zoom
    u, v = c * du + s * dv, -s * du + c * dv
    img = 0.15 + 0.05 * rng.standard_normal() * (xx / W) + np.zeros_like(xx)
    ring = np.abs(np.hypot(u / 62, (v + 12) / 40) - 1) < 0.12
    img = img + 0.3 * ring
    r = 14.0
    boxes = {}
    for level, su in (("right", -1), ("left", 1)):
        hu, hv = su * 50.0, 12.0
        head = np.hypot(u - hu, v - hv) < r
        shaft = (np.abs(u - (hu + su * 8)) < 7) & (v > hv) & (v < hv + 70)
        img = img + 0.45 * head + 0.3 * shaft
        x, y = to_img(hu, hv)
        side = 2.6 * r * zoom
        boxes[level] = (x / W, y / H, side / W, side / H)
    # Pelvis box: the ring and both heads, axis-aligned in the image.
    pts = [to_img(u0, v0) for u0 in (-68, 68) for v0 in (-55, 30)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = max(min(xs), 0), min(max(xs), W), max(min(ys), 0), min(max(ys), H)
    boxes["pelvis"] = ((x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W, (y1 - y0) / H)
    return img, boxes


def expose(rng, img):
    gain, off = rng.uniform(0.6, 1.4), rng.uniform(-0.15, 0.15)
    img = img * gain + off + rng.standard_normal(img.shape) * rng.uniform(0.01, 0.08)
    if rng.random() < 0.2:  # collimation from one side
        k = int(rng.uniform(0.03, 0.12) * W)
        if rng.random() < 0.5:
            img[:, :k] = 0.02
        else:
            img[:, -k:] = 0.02
    return np.clip(img, 0, 1)


def negative(rng, kind, yy, xx):
    if kind == "blank":
        return np.full((H, W), rng.uniform(0.2, 0.8))
    if kind == "black":
        return np.full((H, W), rng.uniform(0, 0.03))
    if kind == "noise":
        return rng.random((H, W))
    if kind == "spine":
        img = 0.15 + np.zeros((H, W))
        x0 = W * rng.uniform(0.35, 0.55)
        for k in range(7):
            y = 8 + k * 22
            img[int(y) : int(y + 16), int(x0) : int(x0 + 34)] += 0.5
        return img
    img, _ = pelvis(rng, yy, xx)
    if kind == "upside-down":
        return img[::-1].copy()
    return np.clip(img * 6, 0, 1) if kind == "over" else img * 0.05


KINDS = ["blank", "black", "noise", "spine", "upside-down", "over", "under"]


def localiser(out, n, seed, negatives):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64) + 0.5
    x = np.zeros((n, 1, H, W), np.float32)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "localiser.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["index", "file", "level", "present", "cx", "cy", "w", "h"])
        for i in range(n):
            name = f"toy-{seed}-{i:05d}"
            if negatives:
                kind = KINDS[i % len(KINDS)]
                img = negative(rng, kind, yy, xx)
                if kind not in ("noise", "black", "over", "under"):
                    img = img + rng.standard_normal(img.shape) * 0.02
                boxes = {}
            else:
                img, boxes = pelvis(rng, yy, xx)
                img = expose(rng, img)
            x[i, 0] = (np.clip(img, 0, 1) - 0.5) / 0.25
            for level in LEVELS:
                b = boxes.get(level)
                wr.writerow([i, name, level, 1 if b else 0] + ([f"{v:.5f}" for v in b] if b else [0, 0, 0, 0]))
    np.save(os.path.join(out, "localiser.npy"), x)


def crops(out, n, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64) + 0.5 - 64
    x = np.zeros((2 * n, 1, 128, 128), np.float32)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "crops.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["index", "file", "side", "class", "difficulty", "detail"])
        for i in range(2 * n):
            k = int(rng.integers(len(CLASSES)))
            th = math.radians(rng.uniform(-5, 5))
            u = math.cos(th) * xx + math.sin(th) * yy
            v = -math.sin(th) * xx + math.cos(th) * yy
            ang = math.pi * k / len(CLASSES)
            stripe = 0.5 + 0.5 * np.cos((math.cos(ang) * u + math.sin(ang) * v) / 3.0)
            head = np.hypot(u + rng.uniform(-4, 4), v + rng.uniform(-4, 4)) < 34
            img = 0.2 + head * (0.4 + 0.25 * stripe)
            img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1) + rng.standard_normal(img.shape) * 0.05, 0, 1)
            x[i, 0] = (img - 0.5) / 0.25
            wr.writerow([i, f"toy-{seed}-{i // 2:05d}", "right" if i % 2 == 0 else "left", CLASSES[k], "typical", ""])
    np.save(os.path.join(out, "crops.npy"), x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["localiser", "crops"])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--negatives", action="store_true")
    a = ap.parse_args()
    if a.kind == "localiser":
        localiser(a.out, a.n, a.seed, a.negatives)
    else:
        crops(a.out, a.n, a.seed)


if __name__ == "__main__":
    main()
