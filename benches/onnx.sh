#!/usr/bin/env bash
# ONNX export on MNIST: for LeNet and ResNet-20 (trained by
# benches/tflite-int8.sh into out/int8, or given), `pf export --format onnx
# --verify` on the full 10,000-image test set, float32 and int8 QDQ (with
# and without --reduce-range), beside
# the int8 TFLite file of the same model in LiteRT: accuracies, agreement
# with pf, file sizes, and single-thread batch-1 latency in ONNX Runtime
# (median of 500 runs after 50 warm-up runs).
#
#   benches/onnx.sh
#   LENET=a.pf RESNET20=b.pf benches/onnx.sh
#
# Needs scripts/fetch-mnist.sh's data and ONNX Runtime and LiteRT
# (scripts/test.sh sets up target/litert-venv).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SKIP_PLUGIN_BUILD=1 bench_setup
py="${PF_LITERT_PYTHON:-target/litert-venv/bin/python}"
lenet="${LENET:-out/int8/lenet-0.pf}"
resnet="${RESNET20:-out/int8/resnet20-0.pf}"
for m in "$lenet" "$resnet"; do
  [ -f "$m" ] || { echo "error: $m is missing; run benches/tflite-int8.sh first" >&2; exit 1; }
done
latency() { # file → median ms
  "$py" - "$1" <<'PY'
import sys, time
import numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.zeros([1] + [int(d) for d in i.shape[1:]], np.float32)
for _ in range(50): s.run(None, {i.name: x})
t = []
for _ in range(500):
    a = time.perf_counter(); s.run(None, {i.name: x}); t.append(time.perf_counter() - a)
print(f"{sorted(t)[len(t)//2]*1e3:.3f}")
PY
}
echo "| model | file | float (pf) | pf's evaluation of the file | runtime | top-1 agreement runtime–pf | largest output difference | bytes | ORT latency (ms, 1 thread) |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in "$lenet" "$resnet"; do
  name="$(basename "$m" .pf)"
  "$PF" export "$m" --format onnx -o "$out/$name.onnx" --data mnist:data/mnist --verify --json > "$out/$name-onnx.json"
  "$PF" export "$m" --format onnx --int8 -o "$out/$name-int8.onnx" --data mnist:data/mnist \
    --calibration-images 512 --verify --json > "$out/$name-int8-onnx.json"
  "$PF" export "$m" --format onnx --int8 --reduce-range -o "$out/$name-int8r.onnx" --data mnist:data/mnist \
    --calibration-images 512 --verify --json > "$out/$name-int8r-onnx.json"
  "$PF" export "$m" -o "$out/$name-int8.tflite" --int8 --data mnist:data/mnist \
    --calibration-images 512 --verify --json > "$out/$name-int8-tflite.json"
  lf="$(latency "$out/$name.onnx")"
  lq="$(latency "$out/$name-int8.onnx")"
  "$py" - "$name" "$out" "$lf" "$lq" <<'PY'
import json, sys
name, out, lf, lq = sys.argv[1:5]
for suffix, label, lat in [("onnx", "ONNX float32", lf), ("int8-onnx", "ONNX int8 QDQ", lq),
                          ("int8r-onnx", "ONNX int8 QDQ, --reduce-range", ""), ("int8-tflite", "TFLite int8 (LiteRT)", "")]:
    r = json.load(open(f"{out}/{name}-{suffix}.json"))
    v = r["verification"]
    rt = v.get("onnxruntime_accuracy", v.get("litert_accuracy"))
    print(f"| {name} | {label} | {v['float_accuracy']*100:.2f}% | {v['pf_accuracy']*100:.2f}% | {rt*100:.2f}% | {v['agreement']*100:.2f}% ({v['images']} images) | "
          f"{v['max_abs_diff']:.2e} (outputs up to {v['max_abs_output']:.1f}) | {r['bytes']:,} | {lat or '—'} |")
PY
done
