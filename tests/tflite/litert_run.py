"""Runs a .tflite file in the official LiteRT interpreter, for pf's tests.

    litert_run.py MODEL INPUTS OUT [--ref]

INPUTS holds float32 samples, little-endian, each shaped like the model's
input (NHWC). OUT receives JSON: the operators LiteRT built (in execution
order), the input and output shapes, and one output vector per sample.
--ref runs LiteRT's reference kernels (BUILTIN_REF) instead of the
optimised ones (XNNPACK).
"""

import json
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main() -> None:
    model, inputs, out = sys.argv[1:4]
    resolver = (
        OpResolverType.BUILTIN_REF if "--ref" in sys.argv[4:] else OpResolverType.AUTO
    )
    interp = Interpreter(model_path=model, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outp = interp.get_output_details()[0]
    shape = tuple(int(d) for d in inp["shape"][1:])
    x = np.fromfile(inputs, dtype="<f4").reshape((-1,) + shape)
    outputs = []
    for sample in x:
        interp.set_tensor(inp["index"], sample[None].astype(np.float32))
        interp.invoke()
        outputs.append(interp.get_tensor(outp["index"]).reshape(-1).tolist())
    ops = [op["op_name"] for op in interp._get_ops_details()]
    with open(out, "w") as f:
        json.dump(
            {
                "ops": ops,
                "input_shape": [int(d) for d in inp["shape"]],
                "output_shape": [int(d) for d in outp["shape"]],
                "outputs": outputs,
            },
            f,
        )


if __name__ == "__main__":
    main()
