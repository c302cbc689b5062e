#!/usr/bin/python3
"""Writes a full-size ResNet-50 with random weights as an orthotriage model
folder (model.onnx + manifest.json) for `make bench`: the pipeline's
overhead shown for the model size a hospital would bring. Not a model of
anything: its weights are random (seeded), nothing of it is committed.
The hip localiser is hip-000's, copied beside it (localiser.onnx): the
service finds the joints with it before the crops reach the classifier,
as it would for a hospital's own classifier.

Usage: resnet50-bench.py OUT_DIR (the hip-000 manifest is read for labels,
regions, the localiser and triage rules).
"""
import json
import os
import shutil
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "inference", "models"))
from trainlib import count_flops  # noqa: E402

SIZE = 224


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        s = x if self.skip is None else self.skip(x)
        return torch.relu(self.body(x) + s)


class ResNet50(nn.Module):
    """torchvision's ResNet-50 layout (3-4-6-3 bottlenecks, widths 64-512),
    one input channel, and a class activation map beside the logits."""

    def __init__(self, classes):
        super().__init__()
        layers = [nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        f = self.features(x)
        logits = self.fc(f.mean(dim=(2, 3)))
        cam = torch.einsum("nchw,kc->nkhw", f, self.fc.weight)
        return logits, cam


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    hip_dir = os.path.join(here, "..", "inference", "models", "hip-000")
    hip = json.load(open(os.path.join(hip_dir, "manifest.json")))
    torch.manual_seed(50)
    model = ResNet50(len(hip["labels"])).eval()
    flops = count_flops(model, SIZE)
    torch.onnx.export(model, torch.zeros(1, 1, SIZE, SIZE), os.path.join(out, "model.onnx"),
                      input_names=["image"], output_names=["logits", "cam"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}, "cam": {0: "n"}}, opset_version=13)
    side = SIZE // 32
    m = dict(hip)
    m.update({
        "id": "resnet50-bench",
        "version": "0.0.0",
        "architecture": "ResNet-50 (torchvision layout, one input channel), random weights: a benchmark stand-in, not a model",
        "file": "model.onnx",
        "inputs": [{"name": "image", "shape": [-1, 1, SIZE, SIZE], "dtype": "float32"}],
        "outputs": [
            {"name": "logits", "shape": [-1, len(hip["labels"])], "dtype": "float32", "role": "logits"},
            {"name": "cam", "shape": [-1, len(hip["labels"]), side, side], "dtype": "float32", "role": "cam"},
        ],
        "flopsPerInput": flops,
        "intendedUse": "Benchmarking only: random weights.",
    })
    m["preprocessing"] = dict(hip["preprocessing"], resize=dict(hip["preprocessing"]["resize"], width=SIZE, height=SIZE))
    m.pop("golden", None)
    localiser = hip["preprocessing"].get("localiser")
    if localiser:
        shutil.copyfile(os.path.join(hip_dir, localiser["file"]), os.path.join(out, localiser["file"]))
    json.dump(m, open(os.path.join(out, "manifest.json"), "w"), indent=1)
    print(f"resnet50-bench: {flops / 1e9:.2f} GFLOPs per {SIZE}x{SIZE} crop -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
