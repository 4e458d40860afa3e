#!/usr/bin/env bash
# Latency of pf's float32 TFLite exports in the official LiteRT interpreter
# (XNNPACK kernels), unpruned against physically pruned to about half the
# MACs, as the export issue asks:
#   - resnet20 at 32×32, the first conv of every residual block halved (the
#     inner widths, as PocketFlow prunes residual networks);
#   - mobilenet_v1 at 224×224, every prunable group kept at 0.7 (α≈0.7).
# Goals at 1 thread: pruned ≥1.5× faster (ResNet-20), ≥1.4× (MobileNetV1).
# Files are timed in alternation over ROUNDS rounds of RUNS runs each, and the
# median of the round medians is reported, since runs vary by 10-25%.
#
#   benches/tflite-latency.sh                 (RUNS=200 ROUNDS=3 THREADS=1)
#   THREADS=2 benches/tflite-latency.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
RUNS="${RUNS:-200}"; ROUNDS="${ROUNDS:-3}"; THREADS="${THREADS:-1}"
cargo build -p pf --locked --quiet
PF="$root/target/debug/pf"   # pf only writes the files; LiteRT times them
if ! target/litert-venv/bin/python -c "import ai_edge_litert" 2>/dev/null; then
  rm -rf target/litert-venv && python3 -m venv target/litert-venv
  target/litert-venv/bin/pip install -q ai-edge-litert==2.3.0 tflite==2.18.0
fi
export PF_LITERT_PYTHON="$root/target/litert-venv/bin/python"
out="$(mktemp -d)"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); LiteRT $("$PF_LITERT_PYTHON" -c 'from importlib.metadata import version; print(version("ai-edge-litert"))'); $THREADS thread(s); files in $out"

inner=$(for s in 1 2 3; do for b in 0 1 2; do printf 'layer%s.%s.a.conv,' "$s" "$b"; done; done)
"$PF" prune resnet20 --layers "${inner%,}" --keep 0.5 -o "$out/resnet20-pruned.pf" --json > "$out/resnet20-prune.json"
"$PF" prune mobilenet_v1 --keep 0.7 -o "$out/mobilenet_v1-pruned.pf" --json > "$out/mobilenet_v1-prune.json"
"$PF" export resnet20 -o "$out/resnet20.tflite" >/dev/null
"$PF" export "$out/resnet20-pruned.pf" -o "$out/resnet20-pruned.tflite" >/dev/null
"$PF" export mobilenet_v1 -o "$out/mobilenet_v1.tflite" >/dev/null
"$PF" export "$out/mobilenet_v1-pruned.pf" -o "$out/mobilenet_v1-pruned.tflite" >/dev/null

files=(resnet20 resnet20-pruned mobilenet_v1 mobilenet_v1-pruned)
for round in $(seq 1 "$ROUNDS"); do
  for f in "${files[@]}"; do
    "$PF" bench-tflite "$out/$f.tflite" --runs "$RUNS" --threads "$THREADS" --json > "$out/$f.$round.json"
  done
done

python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def median_ms(name):
    return statistics.median(json.load(open(f"{out}/{name}.{r}.json"))["median_ms"] for r in range(1, rounds + 1))
print("| model | variant | MACs | file bytes | median ms | speed-up |")
print("|---|---|---|---|---|---|")
for model in ["resnet20", "mobilenet_v1"]:
    p = json.load(open(f"{out}/{model}-prune.json"))
    base = median_ms(model)
    for variant, name, macs in [("float32", model, p["macs_before"]), ("float32, pruned", model + "-pruned", p["macs_after"])]:
        ms = median_ms(name)
        size = json.load(open(f"{out}/{name}.1.json"))["bytes"]
        print(f"| {model} | {variant} | {macs/1e6:.2f}M ({macs/p['macs_before']:.2f}) | {size} | {ms:.3f} | {base/ms:.2f}× |")
PY
