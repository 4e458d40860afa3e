"""Runs an .onnx file on samples in ONNX Runtime (run by pf).

    infer.py MODEL INPUTS OUTPUTS CxHxW

INPUTS holds float32 samples of shape C×H×W (little-endian, one after
another);
OUTPUTS receives the model's float32 outputs, sample after sample. The
session uses the CPU provider with ONNX Runtime's default graph
optimisations, as a deployment would (QDQ patterns become integer kernels).
"""

import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, inputs, outputs, sample = sys.argv[1:5]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = tuple(int(d) for d in sample.split("x"))
    x = np.fromfile(inputs, dtype="<f4").reshape((-1,) + shape)
    results = []
    for start in range(0, len(x), 256):
        (y,) = session.run(None, {inp.name: x[start : start + 256]})
        results.append(y.reshape(len(y), -1).astype("<f4"))
    np.concatenate(results).astype("<f4").tofile(outputs)


if __name__ == "__main__":
    main()
