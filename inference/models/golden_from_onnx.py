#!/usr/bin/python3
"""Writes the TestGoldenONNX golden files of ONNX files already shipped,
without retraining: the PyTorch network (in its BatchNorm-folded form) is
rebuilt with the weights the ONNX file stores, run on inputs from a pool of
data the Go service wrote (`orthotriage phantom ... --crops-only`), and its
outputs become the golden, as the trainers write it after training
(trainlib.localiser_golden, trainlib.classifier_golden).

  golden_from_onnx.py spine-000 localiser --pool DIR [--negatives DIR]
  golden_from_onnx.py spine-000 model --pool DIR      (rois.npy)
  golden_from_onnx.py hip-000 model --pool DIR        (crops.npy)
  golden_from_onnx.py hip-000 localiser --pool DIR [--negatives DIR]

The trainers write these files themselves (--golden) when they train.
"""
import argparse
import importlib.util
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import trainlib  # noqa: E402


def trainer(model_id, name="train.py"):
    spec = importlib.util.spec_from_file_location(model_id.replace("-", "_") + "_" + name[:-3], os.path.join(HERE, model_id, name))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_onnx_weights(model, path):
    """Loads the ONNX file's initialisers (float16 ones widened) into the
    folded model's state; every state entry must be found."""
    m = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    state = model.state_dict()
    for k, v in state.items():
        a = init.get(k, init.get(k + "_fp16"))
        if a is None:
            raise SystemExit(f"{path}: no initialiser for {k}")
        if tuple(a.shape) != tuple(v.shape):
            raise SystemExit(f"{path}: {k} has shape {a.shape}, the network {tuple(v.shape)}")
        state[k] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(state)
    model.eval()
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    return dims


def input_dims(path):
    m = onnx.load(path)
    return [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["hip-000", "spine-000"])
    ap.add_argument("file", choices=["model", "localiser"])
    ap.add_argument("--pool", required=True, help="folder written by orthotriage phantom --crops-only")
    ap.add_argument("--negatives", help="localiser: folder of negatives (localiser.npy)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    folder = os.path.join(HERE, a.model)
    path = os.path.join(folder, a.file + ".onnx")
    if a.file == "localiser":
        levels = trainer(a.model, "train.py" if a.model == "spine-000" else "train_localiser.py").LEVELS
        _, _, h, w = input_dims(path)
        net = trainlib.Localiser(h, w, len(levels))
        trainlib.fuse_localiser(net)
        load_onnx_weights(net, path)
        x = np.load(os.path.join(a.pool, "localiser.npy"))[:64]
        xn = np.load(os.path.join(a.negatives, "localiser.npy"))[:16] if a.negatives else None
        trainlib.localiser_golden(net, os.path.join(folder, "localiser.golden.json"), x, xn, 4, a.seed)
        return
    if a.model == "spine-000":
        t = trainer(a.model)
        net = t.SpineNet()
        trainlib.fold_batchnorm(net, net.stem, net.expand)
        outputs, pool = ("logits", "features"), "rois.npy"
    else:
        t = trainer(a.model)
        net = t.HipNet(len(t.CLASSES))
        trainlib.fold_batchnorm(net, net.stem)
        outputs, pool = ("logits", "cam"), "crops.npy"
    load_onnx_weights(net, path)
    x = np.load(os.path.join(a.pool, pool))[:64]
    trainlib.classifier_golden(net, os.path.join(folder, "model.golden.json"), "model.onnx", x, 8, a.seed, outputs,
                               f"{pool} of a phantom pool, weights read back from the shipped ONNX file")


if __name__ == "__main__":
    main()
