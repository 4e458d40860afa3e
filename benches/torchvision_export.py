"""Exports torchvision's classifiers for benches/torchvision.sh (issue 25).

    python benches/torchvision_export.py OUT [MODEL ...]

For each model (default: the twelve of the issue), built by torchvision
with fresh weights for 10 classes, its batch-norm statistics set by a few
training-mode passes over random images (so that they are not the trivial
0 and 1), in evaluation mode:

- OUT/MODEL-legacy.onnx: torch.onnx.export(..., dynamo=False), opset 17;
- OUT/MODEL-dynamo.onnx (+ .onnx.data): the default exporter
  (dynamo=True), which writes the weights as external data;
- OUT/MODEL-input.npy and OUT/MODEL-torch.npy: a batch of 4 normalised
  64×64 images and PyTorch's logits on it.

Then OUT/images/{train,test}/CLASS/*.png: 64×64 RGB images (smooth random
patterns) for pf's calibration and --verify. A model that fails to export
is reported in OUT/MODEL-export-error.txt and skipped.

Needs torch, torchvision, onnx, onnxscript, numpy and pillow (never in CI).
"""

import sys
import traceback
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

MODELS = [
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "densenet121",
    "googlenet",
    "shufflenet_v2_x0_5",
    "mnasnet0_5",
    "regnet_x_400mf",
    "squeezenet1_1",
]
# torchvision's normalisation (pf import --mean/--std take the same).
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
SIZE = 64


def build(name):
    torch.manual_seed(0)
    extra = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    m = torchvision.models.get_model(name, weights=None, num_classes=10, **extra)
    # Batch-norm statistics from random images, then evaluation mode.
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 3, SIZE, SIZE))
    return m.eval()


def images(out, per_class=8):
    rng = np.random.default_rng(0)
    for split in ["train", "test"]:
        for c in range(10):
            d = out / "images" / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                # A coarse random pattern upscaled: smooth, like photographs.
                small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                img = Image.fromarray(small).resize((SIZE, SIZE), Image.BILINEAR)
                img.save(d / f"{i}.png")


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    names = sys.argv[2:] or MODELS
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    for name in names:
        m = build(name)
        torch.manual_seed(1)
        x = (torch.rand(4, 3, SIZE, SIZE) - mean) / std
        with torch.no_grad():
            y = m(x)
        np.save(out / f"{name}-input.npy", x.numpy())
        np.save(out / f"{name}-torch.npy", y.numpy())
        for exporter, dynamo in [("legacy", False), ("dynamo", True)]:
            path = out / f"{name}-{exporter}.onnx"
            err = out / f"{name}-{exporter}-export-error.txt"
            err.unlink(missing_ok=True)
            try:
                if dynamo:
                    torch.onnx.export(
                        m, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                        dynamic_shapes={"x": {0: torch.export.Dim("N", min=1, max=64)}},
                    )
                else:
                    torch.onnx.export(
                        m, (x,), str(path), dynamo=False, opset_version=17,
                        input_names=["x"], output_names=["y"],
                        dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                    )
                print(f"exported {name} ({exporter})", file=sys.stderr)
            except Exception:
                err.write_text(traceback.format_exc())
                print(f"export of {name} ({exporter}) failed: see {err}", file=sys.stderr)
    images(out)


if __name__ == "__main__":
    main()
