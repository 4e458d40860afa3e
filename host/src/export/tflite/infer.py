"""Runs a .tflite file on samples in the official LiteRT interpreter (run by pf).

    infer.py MODEL INPUTS OUTPUTS {xnnpack|reference}

INPUTS holds float32 samples (little-endian, NHWC, one after another).
An int8 input is quantized with the file's own scale and zero point
(round half away from zero, as TFLite's QUANTIZE), and an int8 output is
dequantized, so OUTPUTS always receives float32 values, sample after sample.
"""

import sys

import numpy as np
from ai_edge_litert import interpreter as litert


def main() -> None:
    model, inputs, outputs, kernels = sys.argv[1:5]
    resolver = (
        litert.OpResolverType.BUILTIN_REF
        if kernels == "reference"
        else litert.OpResolverType.AUTO
    )
    interp = litert.Interpreter(model_path=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outp = interp.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"][1:])
    x = np.fromfile(inputs, dtype="<f4").reshape((-1,) + shape)
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        q = np.sign(x / scale) * np.floor(np.abs(x / scale) + 0.5) + zero
        x = np.clip(q, -128, 127).astype(np.int8)
    else:
        x = x.astype(inp["dtype"])
    out_scale, out_zero = outp["quantization"]
    results = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None])
        interp.invoke()
        y = interp.get_tensor(outp["index"]).reshape(-1)
        if outp["dtype"] == np.int8:
            y = (y.astype(np.float32) - out_zero) * out_scale
        results.append(y.astype("<f4"))
    np.concatenate(results).astype("<f4").tofile(outputs)


if __name__ == "__main__":
    main()
