"""Times a .tflite file in the official LiteRT interpreter (run by `pf bench-tflite`).

    bench.py MODEL RUNS WARMUP THREADS {xnnpack|reference}

Prints one JSON object: the interpreter version, operators, the settings,
and every run's latency in milliseconds. Inputs are zeros of the model's
input type and shape (latency does not depend on their values).
"""

import json
import sys
import time

import numpy as np
from ai_edge_litert import interpreter as litert


def main() -> None:
    model, runs, warmup, threads, kernels = sys.argv[1:6]
    runs, warmup, threads = int(runs), int(warmup), int(threads)
    resolver = (
        litert.OpResolverType.BUILTIN_REF
        if kernels == "reference"
        else litert.OpResolverType.AUTO
    )
    interp = litert.Interpreter(
        model_path=model, num_threads=threads, experimental_op_resolver_type=resolver
    )
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], dtype=inp["dtype"]))
    for _ in range(warmup):
        interp.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    ops = [op["op_name"] for op in interp._get_ops_details()]
    try:
        from importlib.metadata import version

        v = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - the version is informative only
        v = "unknown"
    print(
        json.dumps(
            {
                "litert": v,
                "ops": ops,
                "input_shape": [int(d) for d in inp["shape"]],
                "input_type": str(np.dtype(inp["dtype"])),
                "threads": threads,
                "warmup": warmup,
                "kernels": kernels,
                "runs_ms": times,
            }
        )
    )


if __name__ == "__main__":
    main()
