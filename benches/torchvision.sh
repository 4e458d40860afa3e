#!/usr/bin/env bash
# torchvision's classifiers through pf (issue 25). For each model, at 64×64
# with 10 classes and fresh weights (benches/torchvision_export.py):
#
# 1. export with both PyTorch exporters (legacy `dynamo=False`, and the
#    default `dynamo=True` with external data);
# 2. `pf import` each file with torchvision's mean and std, and compare pf
#    with PyTorch on 4 images: pf's model, written back to ONNX by
#    `pf export --format onnx` (which `--verify` checks against pf), run in
#    ONNX Runtime, against PyTorch's logits (largest difference, relative
#    to the largest logit);
# 3. prune the legacy import physically (`pf prune`, the L1-weakest channels
#    of every prunable group) to about half its MACs, the keep ratio found
#    by bisection;
# 4. export the unpruned and pruned models to TFLite, float32 and int8,
#    each verified in LiteRT on generated 64×64 images (`--verify`), and
#    time the float files in LiteRT at 1 thread (`pf bench-tflite`).
#
# The table goes to stdout and OUT/table.md.
#
#   benches/torchvision.sh
#   MODELS="resnet18 googlenet" OUT=/tmp/tv benches/torchvision.sh
#   PF=target/release/pf benches/torchvision.sh     (pf already built)
#   SKIP_EXPORT=1 OUT=/tmp/tv benches/torchvision.sh (the ONNX files of a run)
#
# Needs PyTorch, never in CI: installs torch, torchvision, onnxscript, onnx,
# ONNX Runtime, LiteRT and pillow from PyPI into target/torch-venv (about
# 4 GB, with PyTorch's CUDA libraries) when they are missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
MODELS="${MODELS:-resnet18 resnet50 mobilenet_v2 mobilenet_v3_small mobilenet_v3_large efficientnet_b0 densenet121 googlenet shufflenet_v2_x0_5 mnasnet0_5 regnet_x_400mf squeezenet1_1}"
RUNS="${RUNS:-100}"
out="${OUT:-$root/out/torchvision}"
mkdir -p "$out"
if [ -z "${PF:-}" ]; then
  cargo build --release -q -p pf --locked
  PF="$root/target/release/pf"
fi
py="$root/target/torch-venv/bin/python"
if ! "$py" -c "import torch, torchvision, onnxscript, onnxruntime, ai_edge_litert, PIL" 2>/dev/null; then
  echo "installing PyTorch, torchvision, ONNX Runtime and LiteRT into target/torch-venv..." >&2
  rm -rf target/torch-venv
  python3 -m venv target/torch-venv
  target/torch-venv/bin/pip install -q torch torchvision onnxscript onnx==1.23.2 \
    onnxruntime==1.32.0 ai-edge-litert==2.3.0 tflite==2.18.0 pillow
fi
export PF_LITERT_PYTHON="$py"
# SKIP_EXPORT=1 reuses the ONNX files of an earlier run in OUT.
[ -n "${SKIP_EXPORT:-}" ] || "$py" benches/torchvision_export.py "$out" $MODELS

data=(--data "folder:$out/images" --image-size 64)
macs() { "$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["macs_after"]/r["macs_before"])' "$1"; }
for name in $MODELS; do
  for exp in legacy dynamo; do
    onnx="$out/$name-$exp.onnx"
    rm -f "$out/$name-$exp.pf" "$out/$name-$exp.pf.onnx"
    [ -f "$onnx" ] || continue
    if "$PF" import "$onnx" -o "$out/$name-$exp.pf" --mean 0.485,0.456,0.406 \
      --std 0.229,0.224,0.225 > "$out/$name-$exp-import.log" 2>&1; then
      "$PF" export "$out/$name-$exp.pf" --format onnx -o "$out/$name-$exp.pf.onnx" \
        > "$out/$name-$exp-onnx.log" 2>&1 || true
    fi
  done
  model="$out/$name-legacy.pf"
  [ -f "$model" ] || model="$out/$name-dynamo.pf"
  [ -f "$model" ] || continue
  # Bisection of the keep ratio for half the MACs (8 steps).
  lo=0.05; hi=1.0
  for _ in 1 2 3 4 5 6 7 8; do
    mid=$("$py" -c "print(($lo + $hi) / 2)")
    "$PF" prune "$model" --keep "$mid" -o "$out/$name-pruned.pf" --json > "$out/$name-prune.json" 2> "$out/$name-prune.log" || break
    if "$py" -c "import sys; sys.exit(0 if $(macs "$out/$name-prune.json") > 0.5 else 1)"; then hi=$mid; else lo=$mid; fi
  done
  "$PF" prune "$model" --keep "$hi" -o "$out/$name-pruned.pf" --json > "$out/$name-prune.json" 2> "$out/$name-prune.log" || true
  for variant in plain pruned; do
    m="$model"; [ "$variant" = pruned ] && m="$out/$name-pruned.pf"
    [ -f "$m" ] || continue
    for q in float int8; do
      f="$out/$name-$variant-$q.tflite"
      rm -f "$f"
      flags=(); [ "$q" = int8 ] && flags=(--int8 --calibration-images 64)
      "$PF" export "$m" -o "$f" "${data[@]}" "${flags[@]}" --verify --json \
        > "$out/$name-$variant-$q.json" 2> "$out/$name-$variant-$q.log" || true
    done
    if [ -f "$out/$name-$variant-float.tflite" ]; then
      "$PF" bench-tflite "$out/$name-$variant-float.tflite" --runs "$RUNS" --threads 1 --json \
        > "$out/$name-$variant-bench.json" 2>/dev/null || true
    fi
  done
done

"$py" - "$out" $MODELS <<'PY' | tee "$out/table.md"
import json, os, sys
import numpy as np
import onnxruntime as ort

out, names = sys.argv[1], sys.argv[2:]

def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None

def compare(name, exp):
    """pf vs PyTorch on the reference batch: 'ok 3.1e-06' or why not."""
    if not os.path.exists(f"{out}/{name}-{exp}.onnx"):
        return "export failed"
    if not os.path.exists(f"{out}/{name}-{exp}.pf"):
        log = open(f"{out}/{name}-{exp}-import.log").read().strip().splitlines()
        why = log[-1] if log else "?"
        return "refused: " + why.split(": ")[-1][:90]
    x = np.load(f"{out}/{name}-input.npy")
    want = np.load(f"{out}/{name}-torch.npy")
    s = ort.InferenceSession(f"{out}/{name}-{exp}.pf.onnx", providers=["CPUExecutionProvider"])
    got = s.run(None, {s.get_inputs()[0].name: x})[0]
    rel = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    return f"ok, {rel:.1e}"

def tflite(name, variant, q):
    r = load(f"{out}/{name}-{variant}-{q}.json")
    if not r:
        log = open(f"{out}/{name}-{variant}-{q}.log").read().strip().splitlines() if os.path.exists(f"{out}/{name}-{variant}-{q}.log") else []
        return "failed" + (": " + log[-1][:60] if log else "")
    v = r["verification"]
    return f"{v['agreement']*100:.0f}% agree"

print("| model | legacy export → pf (max logit diff / max logit) | default (dynamo) export → pf | pruned MACs | TFLite float | TFLite int8 | pruned float | pruned int8 | LiteRT ms, 1 thread: unpruned → pruned |")
print("|---|---|---|---|---|---|---|---|---|")
for name in names:
    p = load(f"{out}/{name}-prune.json")
    pruned = f"{p['macs_after']/1e6:.1f}M of {p['macs_before']/1e6:.1f}M ({p['macs_after']/p['macs_before']:.2f})" if p else "—"
    b0, b1 = load(f"{out}/{name}-plain-bench.json"), load(f"{out}/{name}-pruned-bench.json")
    ms = f"{b0['median_ms']:.2f} → {b1['median_ms']:.2f} ({b0['median_ms']/b1['median_ms']:.2f}×)" if b0 and b1 else "—"
    cells = [compare(name, "legacy"), compare(name, "dynamo"), pruned,
             tflite(name, "plain", "float"), tflite(name, "plain", "int8"),
             tflite(name, "pruned", "float"), tflite(name, "pruned", "int8"), ms]
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
